"""PDS's documented business rules for an update, judged against the record before and after the patch.

Each rule gives the code live PDS uses: INVALID_UPDATE for a change that breaks a rule, FORBIDDEN_UPDATE for one
only certain systems may make, UNSUPPORTED_VALUE for a legacy value, INVALID_VALUE for a malformed one. (The
published example patients skip these, as the published sandbox documents.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from sandbox.conformance.findings import SpineError
from sandbox.services.pds.patch_request import LIST_FIELDS, invalid_update
from sandbox.services.pds.problems import Problem, invalid_value

REQ_IDENTITY, REQ_PERIOD, REQ_GENDER, REQ_LIFE, REQ_DEATH_NOTICE, REQ_NAME, REQ_ADDRESS, REQ_CONTACT = (
    "PDS-UPD-007", "PDS-UPD-009", "PDS-UPD-010", "PDS-UPD-011", "PDS-UPD-012", "PDS-UPD-013", "PDS-UPD-014",
    "PDS-UPD-015")
REQ_RESTRICTED, REQ_VALID, REQ_PRACTICE = "PDS-UPD-017", "PDS-UPD-018", "PDS-UPD-020"
DEATH_NOTICE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"
COMMUNICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication"
CONTACT_PREFERENCE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
PHARMACIES = tuple(f"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-{kind}" for kind in (
    "NominatedPharmacy", "PreferredDispenserOrganization", "MedicalApplianceSupplier"))
TITLES = ("Mr", "Mrs", "Ms", "Dr", "Rev", "Sir", "Lady", "Lord")
# Name characters PDS accepts: A-Z a-z 0-9 space ' - . and the Latin-1/Extended-A letters (192-214, 216-246, 248-383).
NAME_CHARACTERS = re.compile(r"^[A-Za-z0-9 '\-.\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ITEM_PATH = re.compile(r"^/([A-Za-z]+)/([0-9]+)(/.*)?$")


def forbidden(reason: str) -> SpineError:
    return SpineError(403, "FORBIDDEN_UPDATE", f"Forbidden update with error - {reason}")


def unsupported(value, field: str) -> SpineError:
    text = f"Unsupported value - '{value}' in field '{field}'"
    return SpineError(400, "UNSUPPORTED_VALUE", text, display=text)


# --- before the patch is applied ---------------------------------------------------------------------------------
def restricted_problem(nhs_number: str) -> Problem:
    return Problem(REQ_RESTRICTED, forbidden("updating a restricted (sensitive) patient is only permitted from "
                                             "certain systems"),
                   f"Patient {nhs_number} is restricted (meta.security R): PDS refuses updates from ordinary systems.",
                   "path:id")


def identity_problems(resource: dict, patches: list[dict]) -> list[Problem]:
    """Changing an existing list item names it by its id (extensions: url), mirrored from the retrieval."""
    problems = []
    for i, op in enumerate(patches):
        match = ITEM_PATH.match(op["path"])
        if op["op"] == "test" or not match or match.group(1) not in LIST_FIELDS:
            continue
        field, index, rest = match.group(1), int(match.group(2)), match.group(3)
        items = resource.get(field) or []
        key = "url" if field == "extension" else "id"
        if index >= len(items) or not isinstance(items[index], dict) or key not in items[index]:
            continue  # out of bounds is the patch's own error; items without an id cannot be named
        existing, root = items[index][key], f"/{field}/{index}"
        if rest is None:
            if op["op"] == "remove":
                continue  # its test names it (checked on the request)
            named = op["value"].get(key) if isinstance(op["value"], dict) else None
        elif rest == f"/{key}":
            named = op["value"] if op["op"] != "remove" else existing
        else:
            named = next((p.get("value") for p in patches if p.get("path") == f"{root}/{key}"
                          and p.get("op") in ("test", "add", "replace")), None)
        if named is None:
            problems.append(Problem(REQ_IDENTITY, invalid_update(f"no id or url found for path with root {root}"),
                                    f"Operation {i}: {op['op']} {op['path']} changes {root} without naming it: "
                                    f"include {root}/{key} ({existing!r}, as retrieved).", f"/patches/{i}"))
        elif named != existing:
            noun = "object id" if key == "id" else "url"
            problems.append(Problem(REQ_IDENTITY, invalid_update(f"no '{field}' resources with {noun} '{named}'"),
                                    f"Operation {i}: {root} has {key} {existing!r}, not {named!r}: the index and the "
                                    "id must name the same item.", f"/patches/{i}"))
    return problems


# --- after the patch is applied ----------------------------------------------------------------------------------
def change_problems(before: dict, after: dict, today: date) -> list[Problem]:
    problems: list[Problem] = []
    for rule in (_gender, _life_dates, _death_notice, _names, _addresses, _telecom, _contacts, _practice,
                 _extensions, _periods):
        problems.extend(rule(before, after, today))
    return problems


def changed_items(before: dict, after: dict, field: str) -> Iterator[tuple[int, dict, dict | None]]:
    """(index, item, its previous version) for each item of a list that is new or differs from before."""
    previous = {item.get("id") or item.get("url"): item for item in before.get(field, []) if isinstance(item, dict)}
    for index, item in enumerate(after.get(field, [])):
        if not isinstance(item, dict):
            continue
        old = previous.get(item.get("id") or item.get("url")) if (item.get("id") or item.get("url")) else None
        if old != item:
            yield index, item, old


def _gender(before: dict, after: dict, today: date) -> Iterator[Problem]:
    if "gender" in before and "gender" not in after:
        yield Problem(REQ_GENDER, invalid_update("gender cannot be removed"), "The patch removes gender, which PDS "
                      "never allows (set male, female or unknown instead).", "/gender")
    elif after.get("gender") != before.get("gender") and after.get("gender") == "other":
        yield Problem(REQ_GENDER, unsupported("other", "gender"), "gender 'other' (indeterminate) is a legacy value "
                      "that cannot be set; use male, female or unknown.", "/gender")


def _life_dates(before: dict, after: dict, today: date) -> Iterator[Problem]:
    birth, death = after.get("birthDate"), after.get("deceasedDateTime")
    for field in ("birthDate", "deceasedDateTime"):
        if field in before and field not in after:
            yield Problem(REQ_LIFE, invalid_update(f"{field} cannot be removed"), f"The patch removes {field}, "
                          "which PDS never allows.", f"/{field}")
    born, died = _day(birth), _day(death)
    if birth != before.get("birthDate") and born and born > today:
        yield Problem(REQ_LIFE, invalid_update("birthDate cannot be in the future"), f"birthDate {birth} is in the "
                      "future.", "/birthDate")
    if death != before.get("deceasedDateTime") and death is not None:
        if not isinstance(death, str) or (len(death) > 10 and not death.endswith("+00:00")):
            yield Problem(REQ_LIFE, invalid_value(death, "/deceasedDateTime"), f"deceasedDateTime {death!r} must be "
                          "UTC, yyyy-mm-ddTHH:MM:SS+00:00.", "/deceasedDateTime")
        elif died and died > today:
            yield Problem(REQ_LIFE, invalid_update("deceasedDateTime cannot be in the future"),
                          f"deceasedDateTime {death} is in the future.", "/deceasedDateTime")
        if "deceasedDateTime" in before and _status(before) == "2":
            yield Problem(REQ_LIFE, forbidden("the date of death cannot be changed once a formal death notification "
                                              "has been recorded"),
                          "The date of death is already set with a formal (2) death notification; only the National "
                          "Back Office may change it.", "/deceasedDateTime")
        if _status(after) is None:
            yield Problem(REQ_LIFE, invalid_update("a death notification status must be added with the date of "
                                                   "death"),
                          "deceasedDateTime is set without a DeathNotificationStatus extension; add both together.",
                          "/extension")
    if born and died and died < born:
        yield Problem(REQ_LIFE, invalid_update("deceasedDateTime cannot be before birthDate"),
                      f"Date of death {death} is before date of birth {birth}.", "/deceasedDateTime")


def _death_notice(before: dict, after: dict, today: date) -> Iterator[Problem]:
    old, new = _notice(before), _notice(after)
    if old == new:
        return
    if old is not None and new is None:
        yield Problem(REQ_DEATH_NOTICE, invalid_update("the death notification cannot be removed"),
                      "The patch removes the death notification, which PDS never allows.", "/extension")
        return
    if _status(before) == "2":
        yield Problem(REQ_DEATH_NOTICE, forbidden("a formal death notification cannot be replaced"),
                      "The death notification is formal (2); only the National Back Office may change it.",
                      "/extension")
    status = _status(after)
    if status == "U":
        yield Problem(REQ_DEATH_NOTICE, unsupported("U", "deathNotificationStatus"), "Death notification status U "
                      "(removed) can be returned but never set.", "/extension")
    elif status == "2" and _status(before) != "2":
        yield Problem(REQ_DEATH_NOTICE, forbidden("a formal death notification (2) can only be added by the National "
                                                  "Back Office, ONS or maternity systems"),
                      "Setting a formal (2) death notification is reserved to certain systems; use informal (1).",
                      "/extension")
    if "deceasedDateTime" not in after:
        yield Problem(REQ_DEATH_NOTICE, invalid_update("a date of death must be added with the death notification"),
                      "A death notification is set without deceasedDateTime; add both together.", "/deceasedDateTime")


def _notice(resource: dict) -> dict | None:
    return next((e for e in resource.get("extension", []) if isinstance(e, dict) and e.get("url") == DEATH_NOTICE),
                None)


def _status(resource: dict) -> str | None:
    notice = _notice(resource)
    for part in (notice or {}).get("extension", []):
        if part.get("url") == "deathNotificationStatus":
            codings = (part.get("valueCodeableConcept") or {}).get("coding") or [{}]
            return codings[0].get("code")
    return None


def _names(before: dict, after: dict, today: date) -> Iterator[Problem]:
    for index, name, old in changed_items(before, after, "name"):
        where = f"/name/{index}"
        if old is not None and old.get("use") != name.get("use"):
            yield Problem(REQ_NAME, invalid_update(f"the use of name '{name.get('id')}' cannot change from "
                                                   f"'{old.get('use')}' to '{name.get('use')}'"),
                          "A name's use cannot change: remove the name and add a new one.", where + "/use")
        for part in ("family", "given", "prefix", "suffix"):
            values = name.get(part) if isinstance(name.get(part), list) else [name.get(part)]
            for n, value in enumerate(v for v in values if isinstance(v, str)):
                field = f"name/{index}/{part}" + (f"/{n}" if part != "family" else "")
                if not NAME_CHARACTERS.match(value):
                    yield Problem(REQ_NAME, SpineError(400, "UNSUPPORTED_CHARACTERS_IN_FIELD", f"Unsupported "
                                                       f"characters in field - '{field}'"),
                                  f"{field} {value!r} has characters PDS does not accept in names.", "/" + field)
                elif part == "suffix" and not ("A" <= value[:1] <= "Z"):
                    yield Problem(REQ_NAME, invalid_value(value, field), f"{field} {value!r}: a suffix starts with "
                                  "a capital letter A-Z.", "/" + field)
                elif part == "prefix" and value.rstrip(".").lower() in (t.lower() for t in TITLES) and \
                        value.rstrip(".") not in TITLES:
                    yield Problem(REQ_NAME, invalid_value(value, field), f"{field} {value!r}: write the title as "
                                  f"{', '.join(TITLES)}.", "/" + field)
    names = [n for n in after.get("name", []) if isinstance(n, dict)]
    uses = [n.get("use") for n in names]
    if uses.count("usual") > 1:
        yield Problem(REQ_NAME, forbidden("multiple usual names cannot be added"), "A patient has exactly one usual "
                      "name: replace it rather than add another.", "/name")
    if uses.count("nickname") > 1 and uses.count("nickname") > [n.get("use") for n in before.get("name", [])].count(
            "nickname"):
        yield Problem(REQ_NAME, forbidden("multiple nicknames cannot be added"), "A patient can have only one "
                      "nickname.", "/name")
    if "usual" not in uses and any(n.get("use") == "usual" for n in before.get("name", [])):
        yield Problem(REQ_NAME, invalid_update("the usual name cannot be removed"), "The patch removes the usual "
                      "name; replace it instead.", "/name")


def _addresses(before: dict, after: dict, today: date) -> Iterator[Problem]:
    for index, address, _old in changed_items(before, after, "address"):
        where, use = f"/address/{index}", address.get("use")
        if use == "work":
            yield Problem(REQ_ADDRESS, unsupported("work", f"address/{index}/use"), "A work address is a legacy value "
                          "that can be removed but not added or replaced.", where + "/use")
        if use in ("temp", "billing") and not (address.get("period") or {}).get("end"):
            yield Problem(REQ_ADDRESS, invalid_update(f"a {use} address must have a period with a start and an end "
                                                      "date"),
                          f"{where}: a {use} address needs period.start and period.end (e.g. 30 days after the "
                          "start).", where + "/period")
        if use == "temp" and not address.get("text"):
            yield Problem(REQ_ADDRESS, invalid_update("a temp address must have a text description"),
                          f"{where}: a temp address needs text, e.g. 'Student Accommodation'.", where + "/text")
    for use in ("home", "temp", "billing"):
        current = [a for a in after.get("address", []) if isinstance(a, dict) and a.get("use") == use
                   and not _ended(a, today)]
        was = [a for a in before.get("address", []) if a.get("use") == use and not _ended(a, today)]
        if len(current) > max(1, len(was)):
            yield Problem(REQ_ADDRESS, invalid_update(f"cannot add more than one current '{use}' address"),
                          f"A patient has at most one current {use} address: replace it instead.", "/address")


def _telecom(before: dict, after: dict, today: date) -> Iterator[Problem]:
    for index, telecom, old in changed_items(before, after, "telecom"):
        where = f"/telecom/{index}"
        if old is not None and (old.get("system"), old.get("use")) != (telecom.get("system"), telecom.get("use")):
            yield Problem(REQ_CONTACT, invalid_update(f"telecom '{telecom.get('id')}' cannot change its system or "
                                                      "use"),
                          "A replaced telecom keeps its system and use; remove it and add a new one instead.", where)
        yield from _email(telecom, where)


def _email(telecom: dict, where: str) -> Iterator[Problem]:
    value = telecom.get("value")
    if telecom.get("system") == "email" and isinstance(value, str) and not (
            EMAIL.match(value) and 6 < len(value) < 90):
        yield Problem(REQ_CONTACT, invalid_value(value, where + "/value"), f"{where}: an e-mail address must be a "
                      "valid address of 7 to 89 characters.", where + "/value")


def _contacts(before: dict, after: dict, today: date) -> Iterator[Problem]:
    for index, contact, _old in changed_items(before, after, "contact"):
        where = f"/contact/{index}"
        codes = [c.get("code") for r in contact.get("relationship", []) if isinstance(r, dict)
                 for c in r.get("coding", []) if isinstance(c, dict)]
        if codes and codes != ["C"]:
            yield Problem(REQ_CONTACT, unsupported(codes[0], f"contact/{index}/relationship"), "contact holds "
                          "emergency contacts only (relationship C); other people belong on RelatedPerson.",
                          where + "/relationship")
        for n, telecom in enumerate(t for t in contact.get("telecom", []) if isinstance(t, dict)):
            if "use" in telecom or telecom.get("system") == "fax" or "period" in telecom:
                yield Problem(REQ_CONTACT, invalid_update("an emergency contact telecom has only a system (not fax) "
                                                          "and a value"),
                              f"{where}/telecom/{n}: no use, no period (it belongs on the contact), and not fax.",
                              f"{where}/telecom/{n}")
            yield from _email(telecom, f"{where}/telecom/{n}")


def _practice(before: dict, after: dict, today: date) -> Iterator[Problem]:
    if before.get("generalPractitioner") and not after.get("generalPractitioner"):
        yield Problem(REQ_PRACTICE, forbidden("removal of a general practice can only be done by NHAIS or the "
                                              "National Back Office"),
                      "The patch removes the registered GP practice, which only NHAIS or the National Back Office "
                      "may do.", "/generalPractitioner")
    for index, practice, _old in changed_items(before, after, "generalPractitioner"):
        if ((practice.get("identifier") or {}).get("period") or {}).get("end"):
            yield Problem(REQ_PRACTICE, invalid_update("a general practice must not have a period end date"),
                          "The registered practice is current: give no period.end.",
                          f"/generalPractitioner/{index}/identifier/period/end")


def _extensions(before: dict, after: dict, today: date) -> Iterator[Problem]:
    urls = [e.get("url") for e in after.get("extension", []) if isinstance(e, dict)]
    for url in set(urls):
        if urls.count(url) > 1 and url in (*PHARMACIES, DEATH_NOTICE, COMMUNICATION, CONTACT_PREFERENCE, BIRTH_PLACE):
            yield Problem(REQ_VALID, invalid_update(f"only one '{url.rsplit('-', 1)[-1]}' extension is allowed"),
                          f"The patient would have {urls.count(url)} extensions {url}; PDS keeps one of each.",
                          "/extension")
    for index, extension, _old in changed_items(before, after, "extension"):
        where = f"/extension/{index}"
        parts = {p.get("url"): p for p in extension.get("extension", []) if isinstance(p, dict)}
        if extension.get("url") == BIRTH_PLACE and not any((extension.get("valueAddress") or {}).get(k)
                                                             for k in ("city", "district", "country")):
            yield Problem(REQ_VALID, invalid_update("place of birth needs at least one of city, district or country"),
                          f"{where}: give a city, district or country.", where)
        if extension.get("url") == COMMUNICATION:
            language = ((parts.get("language") or {}).get("valueCodeableConcept") or {}).get("coding") or [{}]
            if language[0].get("code") == "en":
                yield Problem(REQ_VALID, unsupported("en", f"extension/{index}/language"), "English must not be "
                              "recorded as a preferred language.", where)
        if extension.get("url") == CONTACT_PREFERENCE:
            times = (parts.get("PreferredContactTimes") or {}).get("valueString")
            if isinstance(times, str) and len(times) > 40:
                yield Problem(REQ_VALID, invalid_value(times, f"extension/{index}/PreferredContactTimes"),
                              "Preferred contact times are free text of at most 40 characters.", where)
            if times and "PreferredContactMethod" not in parts:
                yield Problem(REQ_VALID, invalid_update("a preferred contact time needs a preferred contact method"),
                              f"{where}: add PreferredContactMethod with PreferredContactTimes.", where)


def _periods(before: dict, after: dict, today: date) -> Iterator[Problem]:
    for field in ("name", "address", "telecom", "contact"):
        for index, item, old in changed_items(before, after, field):
            period = item.get("period")
            if not isinstance(period, dict) or (old is not None and old.get("period") == period):
                continue
            where = f"/{field}/{index}/period"
            start, end = _day(period.get("start")), _day(period.get("end"))
            if start and start > today:
                yield Problem(REQ_PERIOD, invalid_update(f"period start '{period['start']}' cannot be in the future"),
                              f"{where}: start {period['start']} is in the future.", where + "/start")
            if start and end and end < start:
                yield Problem(REQ_PERIOD, invalid_update(f"period end '{period['end']}' is before its start "
                                                         f"'{period['start']}'"),
                              f"{where}: end {period['end']} is before start {period['start']}.", where + "/end")


def _day(value) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if isinstance(value, str) else None
    except ValueError:
        return None


def _ended(item: dict, today: date) -> bool:
    end = _day((item.get("period") or {}).get("end"))
    return end is not None and end < today
