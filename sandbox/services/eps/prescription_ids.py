"""Prescription ids as EPS writes them.

The short form (https://fhir.nhs.uk/Id/prescription-order-number), e.g. 24F5DA-A83008-7EFE6Z: three blocks of six
characters split by hyphens — 6 random hex characters, the prescriber's ODS code zero-padded to 6, a 5 hex character
sequence, and a check character. The check character is ISO/IEC 7064 MOD 37-2 over the 17 characters before it
(hyphens left out), with '+' in place of the standard's '*' for the value 36 (the NHS Digital FHIR implementation
guide, MedicationRequest.groupIdentifier; the live implementation's prescription id utilities compute it the same
way). Spine refuses an order whose id fails the check (FAILURE_TO_PROCESS_MESSAGE: "the prescription ID has an
invalid checksum").

The long form (https://fhir.nhs.uk/Id/prescription, Extension-DM-PrescriptionId) is a UUID; EPS release 2 gives it
no check character."""

from __future__ import annotations

import re
import secrets
import uuid

CHECK_CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+"  # value 0 … 36
_MODULUS = 37
_BODY = re.compile(r"[0-9A-Z]{17}")
_SHAPE = re.compile(r"[0-9A-Z]{6}-[0-9A-Z]{6}-[0-9A-Z]{5}[0-9A-Z+]")
EXAMPLE = "24F5DA-A83008-7EFE6Z"


def _mod37_2_total(body: str) -> int:
    """The running MOD 37-2 total of the characters (each its base-36 value), before the check character."""
    total = 0
    for char in body:
        total = ((total + int(char, 36)) * 2) % _MODULUS
    return total


def check_character(base: str) -> str:
    """The check character of a short-form id's first 17 characters (hyphens, if given, are left out).

    Raises ValueError when `base` is not 17 characters of 0-9 and A-Z."""
    body = base.replace("-", "")
    if not _BODY.fullmatch(body):
        raise ValueError(f"{base!r} is not the 17 characters (0-9, A-Z) of a short-form prescription id "
                         "before its check character")
    return CHECK_CHARACTERS[(_MODULUS + 1 - _mod37_2_total(body)) % _MODULUS]


def short_form_problem(value: object) -> str | None:
    """None when `value` is a valid short-form prescription id; otherwise one sentence naming what is wrong (for a
    wrong check character, the character it must be)."""
    if not isinstance(value, str) or not value:
        return f"Prescription id must be a short-form prescription id such as {EXAMPLE}."
    if value != value.upper() and _SHAPE.fullmatch(value.upper()):
        return f"Prescription id {value} must be in upper case: {value.upper()}."
    if not _SHAPE.fullmatch(value):
        return (f"Prescription id {value} is not a short-form prescription id: it must be three blocks of six "
                f"characters (0-9, A-Z; the last may be '+') separated by hyphens, such as {EXAMPLE}.")
    expected = check_character(value[:-1])
    if value[-1] != expected:
        return (f"Prescription id {value} has check character '{value[-1]}'; for {value[:-1]} it must be "
                f"'{expected}'.")
    return None


def is_valid_short_form(value: object) -> bool:
    return short_form_problem(value) is None


def new_short_form(ods_code: str, sequence: int | None = None) -> str:
    """A new, valid short-form id as prescribing systems make them: 6 random hex characters, the ODS code padded
    with zeros to 6, the 5 hex character sequence (random when None; wraps after FFFFF), the check character."""
    ods = re.sub(r"[^0-9A-Z]", "", ods_code.upper())[-6:].rjust(6, "0")
    counter = secrets.randbelow(0x100000) if sequence is None else sequence % 0x100000
    body = f"{secrets.token_hex(3).upper()}-{ods}-{counter:05X}"
    return body + check_character(body)


def long_form_problem(value: object) -> str | None:
    """None when `value` is a long-form prescription id (a UUID, any case); else what is wrong."""
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            if len(value) == 36:
                return None
        except ValueError:
            pass
    return f"Prescription id {value!r} is not a long-form prescription id (a UUID such as {uuid.UUID(int=0)})."
