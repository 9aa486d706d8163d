"""What creating a patient and recording a birth share: reading the request's fields as PDS does, the errors it
answers first, the NHS number a new record gets, and the record the published sandbox answers with.

A new NHS number comes from the allocation range, the next one for the session (9998000009, 9998000017, ...): a
create and a record at birth draw from the same counter, so no two new patients of a session share a number.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable

from sandbox.conformance.findings import SpineError
from sandbox.services.pds.records import NAMESPACE, PatientRecords
from sandbox.synthetic.fhir import SECURITY, nhs_identifier
from sandbox.synthetic.identifiers import ALLOCATION_START, nth_valid_number

ALLOCATION_COUNTER = "pds.allocated-nhs-number"
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
GENDERS = ("male", "female", "unknown")  # 'other' is a legacy value PDS no longer accepts for a new record


def absent(value) -> bool:
    """As PDS reads a required field: missing, null, false, 0 and "" are absent; an empty list is not."""
    return value is None or value is False or (not isinstance(value, (list, dict)) and value in (0, ""))


def at(document, *steps: str | int):
    """The value at a path of dicts and lists, or None where the path does not exist (never an exception)."""
    for step in steps:
        if isinstance(step, int) and isinstance(document, list) and 0 <= step < len(document):
            document = document[step]
        elif isinstance(step, str) and isinstance(document, dict):
            document = document.get(step)
        else:
            return None
    return document


def shown(value) -> str:
    """A value quoted back in diagnostics: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def missing(field: str) -> SpineError:
    return SpineError(400, "MISSING_VALUE", f"Missing value - '{field}'")


def invalid(value: str, field: str) -> SpineError:
    return SpineError(400, "INVALID_VALUE", f"Invalid value - '{value}' in field '{field}'")


ADDRESS_LINES = "address lines 1 and 4 or 2 and 4 must be completed as a minimum"


def invalid_create(reason: str) -> SpineError:
    return SpineError(400, "INVALID_CREATE", f"Invalid patient create data provided - '{reason}'")


def single_match(nhs_number: str) -> SpineError:
    return SpineError(200, "SINGLE_MATCH", f"Unable to create new patient. NHS number {nhs_number} found for supplied "
                      "demographic data.")


def multiple_matches() -> SpineError:
    return SpineError(200, "MULTIPLE_MATCHES", "Unable to create new patient. Multiple matches found for supplied "
                      "demographic data.")


def allocate(records: PatientRecords) -> str:
    """The session's next NHS number from the allocation range."""
    state = records.sandbox.store.state
    return nth_valid_number(ALLOCATION_START, state.next_counter(records.session, ALLOCATION_COUNTER))


def register(records: PatientRecords, matches: list[str], make: Callable[[str], dict]) -> tuple[str, dict]:
    """A new patient as PDS registers one: refused with 200 SINGLE_MATCH or MULTIPLE_MATCHES when the demographics
    match patients already known, else given the session's next number and stored for the session. Returns the
    number and the record `make(number)` built."""
    if len(matches) == 1:
        raise single_match(matches[0])
    if matches:
        raise multiple_matches()
    number = allocate(records)
    resource = make(number)
    records.sandbox.store.state.put(records.session, NAMESPACE, number, resource, create_only=True)
    return number, resource


def object_id(length: int) -> str:
    """An object id as PDS allocates them: upper-case hexadecimal."""
    return secrets.token_hex(length // 2 + 1)[:length].upper()


def published_record(number: str, name: dict, address: dict, gender: str, birth_date: str, id_length: int) -> dict:
    """A new record as the published sandbox answers it: the first name and address as sent, each with a new id
    (the empty address lines dropped), the gender and date of birth, and a first version."""
    lines = address.get("line")
    kept = {**address, "line": [line for line in lines if line != ""]} if isinstance(lines, list) else dict(address)
    return {"address": [{**kept, "id": object_id(id_length)}], "birthDate": birth_date, "gender": gender,
            "id": number, "identifier": [nhs_identifier(number)],
            "meta": {"security": [dict(SECURITY["U"])], "versionId": "1"},
            "name": [{**name, "id": object_id(id_length)}], "resourceType": "Patient"}
