"""Patient access updates: the fields a patient may change on their own record (PDS FHIR API, Update patient
details, Access Mode: Patient access).

A patient may change addresses, emergency contacts, communication (language and interpreter required only),
pharmacies, place of birth and mobile or e-mail telecom. Communication, pharmacies, place of birth and telecom are
changed as whole items (/telecom/0, /extension/-), except when removed. Test operations change nothing, so they
may name anything.
"""

from __future__ import annotations

from sandbox.conformance.parsing import is_ascii_digits
from sandbox.services.pds.patch_request import invalid_update
from sandbox.services.pds.patch_rules import BIRTH_PLACE, COMMUNICATION, PHARMACIES
from sandbox.services.pds.problems import Problem

REQUIREMENT = "PDS-ACC-005"
NOT_PERMITTED = invalid_update("This user does not have permission to update the fields in the patches provided.")
OPEN = ("address", "contact")  # any change
WHOLE_ITEMS = ("telecom", "extension")  # only whole items of the permitted kinds
EXTENSIONS = {COMMUNICATION: "communication", BIRTH_PLACE: "place of birth", **{url: "pharmacy" for url in PHARMACIES}}
COMMUNICATION_PARTS = ("language", "interpreterRequired")
PERMITTED = ("addresses, emergency contacts (contact), communication language and interpreter, pharmacies, place of "
             "birth, and mobile or e-mail telecom")


def problems(resource: dict, patches: list[dict]) -> list[Problem]:
    found = []
    for i, op in enumerate(patches):
        why = None if op["op"] == "test" else _refused(resource, op)
        if why:
            found.append(Problem(REQUIREMENT, NOT_PERMITTED, f"Operation {i} ({op['op']} {op['path']}): {why} In "
                                 f"patient access a patient may update only {PERMITTED}.", f"/patches/{i}"))
    return found


def _refused(resource: dict, op: dict) -> str | None:
    parts = op["path"].split("/")
    field = parts[1] if len(parts) > 1 else ""
    if field in OPEN:
        return None
    if field not in WHOLE_ITEMS:
        return f"'{field or op['path']}' is not a field patients may change."
    if len(parts) != 3:
        return (f"a {field} change must send the whole item (/{field}/<index> or /{field}/-), not "
                f"{'the whole list' if len(parts) < 3 else 'a part of one'}.")
    if op["op"] in ("replace", "remove"):
        items = resource.get(field) or []
        index = int(parts[2]) if is_ascii_digits(parts[2], most=9) else len(items)
        if index < len(items) and not _permitted(field, items[index], whole=False):
            return f"{field}/{index} is {_kind(field, items[index])}, which patients may not change."
    if op["op"] in ("add", "replace") and not _permitted(field, op.get("value"), whole=True):
        return f"the new {field} item is {_kind(field, op.get('value'))}, which patients may not set."
    return None


def _permitted(field: str, item, whole: bool) -> bool:
    if not isinstance(item, dict):
        return False
    if field == "telecom":
        return item.get("system") == "email" or (item.get("system") == "phone" and item.get("use") == "mobile")
    if item.get("url") not in EXTENSIONS:
        return False
    parts = [p.get("url") for p in item.get("extension", []) if isinstance(p, dict)]
    return not whole or item["url"] != COMMUNICATION or all(p in COMMUNICATION_PARTS for p in parts)


def _kind(field: str, item) -> str:
    if not isinstance(item, dict):
        return "not an object"
    if field == "telecom":
        return f"a {item.get('system', '?')} ({item.get('use', 'no use')}) contact"
    url = item.get("url", "")
    if url == COMMUNICATION:
        return "a communication extension with parts other than language and interpreterRequired"
    return f"the {EXTENSIONS[url]} extension" if url in EXTENSIONS else f"extension {url or '(no url)'}"
