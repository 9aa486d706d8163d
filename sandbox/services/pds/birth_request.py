"""POST /Patient/$process-birth-details: reading and checking the birth notification Bundle from the request alone.

The request is a transaction Bundle: the baby's Patient (the first Patient without an NHS number), the birth weight
Observation (SNOMED 364589006), the mother's Patient (with her NHS number), the delivery Location and other
resources. PDS's first checks come in the published sandbox's order and wording: the baby, the name's use, address,
gender, date of birth, the birth weight, the first address's form and period, the given names, the gender and date
of birth values, the mother's NHS number, the weight range (1000-9999 g) and the birth order (1-9), and the address
lines. A birth registered for a synthetic mother is then held to live PDS's further rules (registration_problems):
the mandatory resources and the ethnic category, the family and given names, the address lines, no end date on the
usual name, a baby under six months old, and a stillbirth's death status consistent with the stillbirth observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.conformance.checks import RequestView
from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import Malformed
from sandbox.services.pds.new_patient import (
    ADDRESS_LINES,
    DATE,
    GENDERS,
    absent,
    at,
    invalid,
    invalid_create,
    missing,
    shown,
)
from sandbox.services.pds.problems import Problem
from sandbox.synthetic.identifiers import NHS_NUMBER_SYSTEM, is_valid_nhs_number

REQ_BODY, REQ_REGISTRATION = "PDS-BRT-001", "PDS-BRT-002"
BIRTH_WEIGHT, STILLBIRTH = "364589006", "237364002"  # SNOMED CT: Birth weight; Stillbirth
STILLBORN = ("2", "3", "4")  # the stillbirth observation's codes for antepartum, intrapartum and postpartum deaths
ETHNIC_CATEGORY = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
DEATH_NOTICE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"
MANDATORY = ("Location",)  # besides the baby, the birth weight and the mother, which have their own checks
NO_BABY = "Missing baby Patient resource in entry array"
TOO_LONG = "<json too long to display>"  # how PDS names a whole resource list it cannot quote
SIX_MONTHS_DAYS = 183


@dataclass(frozen=True)
class Birth:
    """Where the parts of a birth notification are: the baby, its birth weight and the mother, by entry index."""

    entries: list
    baby_at: int
    weight_at: int | None
    mother_at: int | None

    @property
    def baby(self) -> dict:
        return self.entries[self.baby_at]["resource"]

    @property
    def weight(self):
        return at(self.entries, self.weight_at if self.weight_at is not None else 1, "resource", "valueQuantity",
                  "value")

    @property
    def mother_number(self):
        return at(self.entries, self.mother_at if self.mother_at is not None else 7, "resource", "identifier", 0,
                  "value")

    @property
    def mother_field(self) -> str:
        return f"entry/{self.mother_at if self.mother_at is not None else 7}/resource/identifier/0/value"

    @property
    def weight_field(self) -> str:
        return f"entry/{self.weight_at if self.weight_at is not None else 1}/resource/valueQuantity/value"

    def resources(self, kind: str) -> list[dict]:
        return [e["resource"] for e in self.entries if at(e, "resource", "resourceType") == kind]

    def stillbirth_code(self) -> str | None:
        for observation in self.resources("Observation"):
            if _coded(observation, STILLBIRTH):
                code = at(observation, "valueCodeableConcept", "coding", 0, "code")
                return code if isinstance(code, str) else None
        return None


def read(body) -> tuple[Birth | None, SpineError | None]:
    """The notification's parts, or the error PDS answers when it cannot find them."""
    entries = body.get("entry") if isinstance(body, dict) else None
    if entries is None:
        return None, missing_baby()
    if not isinstance(entries, list):
        return None, invalid(shown(entries), "entry")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return None, invalid(shown(entry), f"entry/{i}")
    baby = next((i for i, e in enumerate(entries) if _is_patient(e) and not _has_nhs_number(e["resource"])), None)
    if baby is None:
        return None, missing_baby()
    weight = next((i for i, e in enumerate(entries) if at(e, "resource", "resourceType") == "Observation"
                   and _coded(e["resource"], BIRTH_WEIGHT)), None)
    mother = next((i for i, e in enumerate(entries) if i != baby and _is_patient(e)
                   and _has_nhs_number(e["resource"])), None)
    return Birth(entries, baby, weight, mother), None


def missing_baby() -> SpineError:
    return SpineError(400, "MISSING_VALUE", NO_BABY)


def problems(req: RequestView) -> list[Problem]:
    """Why PDS would refuse this notification, in its order (the first is the answer); empty when it passes."""
    try:
        body = req.json()
    except Malformed as exc:
        return [Problem(REQ_BODY, invalid_create("Invalid payload received - incorrect format"),
                        f"The body is not JSON: {exc}.", "body")]
    birth, error = read(body)
    if error is not None:
        return [Problem(REQ_BODY, error, f"The birth notification: {error.diagnostics}.", "/entry")]
    return [Problem(REQ_BODY, e, f"The birth notification: {e.diagnostics}.", pointer)
            for e, pointer in first_checks(birth)]


def judge(req: RequestView, published: bool) -> list[Finding]:
    """Every finding on the request: PDS's first checks, then (for a synthetic mother) the registration rules."""
    found = problems(req)
    if not found and not published:
        birth, _ = read(req.json())
        found = [Problem(REQ_REGISTRATION, e, f"The birth registration: {e.diagnostics}.", pointer)
                 for e, pointer in registration_problems(birth, date.today())]
        if not found:
            return [Finding.passed(REQ_BODY, "The birth notification has everything PDS checks first.", "body"),
                    Finding.passed(REQ_REGISTRATION, "The birth meets PDS's registration rules.", "body")]
    return [p.finding() for p in found] or [Finding.passed(REQ_BODY, "The birth notification has everything PDS "
                                                            "checks first.", "body")]


def first_checks(birth: Birth) -> list[tuple[SpineError, str]]:
    baby, prefix = birth.baby, f"/entry/{birth.baby_at}/resource"
    found: list[tuple[SpineError, str]] = []
    address, born = baby.get("address"), baby.get("birthDate")
    if not absent(address) and not isinstance(address, list):
        found.append((invalid(shown(address), "entry/0/resource/address"), f"{prefix}/address"))
    elif isinstance(address, list) and (not address or address[0] is None):
        found.append((missing("entry/0/resource/address/0"), f"{prefix}/address/0"))
    if not absent(born) and not isinstance(born, str):
        found.append((invalid(shown(born), "birthDate"), f"{prefix}/birthDate"))
    if absent(at(baby, "name", 0, "use")):
        found.append((missing("entry/0/resource/name/0/use"), f"{prefix}/name/0/use"))
    for field in ("address", "gender", "birthDate"):
        if absent(baby.get(field)):
            found.append((missing(f"entry/0/resource/{field}"), f"{prefix}/{field}"))
    if absent(birth.weight):
        found.append((missing(birth.weight_field), "/" + birth.weight_field))
    first = at(address, 0) if isinstance(address, list) else None
    if first is not None and not isinstance(first, dict):
        found.append((invalid(_listed(first), "entry/0/resource/address/0"), f"{prefix}/address/0"))
    elif isinstance(first, dict) and absent(first.get("period")):
        found.append((missing("address/0/period"), f"{prefix}/address/0/period"))
    given = at(baby, "name", 0, "given")
    if given is None:
        found.append((missing("entry/0/resource/name/0/given"), f"{prefix}/name/0/given"))
    elif not isinstance(given, list):
        found.append((invalid(shown(given), "entry/0/resource/name/0/given"), f"{prefix}/name/0/given"))
    gender = baby.get("gender")
    if not absent(gender) and gender not in GENDERS:
        found.append((invalid(shown(gender), "gender"), f"{prefix}/gender"))
    if isinstance(born, str) and born and not DATE.match(born):
        found.append((invalid(born, "birthDate"), f"{prefix}/birthDate"))
    mother = birth.mother_number
    if absent(mother):
        found.append((missing(birth.mother_field), "/" + birth.mother_field))
    elif not (isinstance(mother, str) and is_valid_nhs_number(mother)):
        found.append((invalid(shown(mother), birth.mother_field), "/" + birth.mother_field))
    weight = _number(birth.weight)
    if not absent(birth.weight) and (weight is None or not 1000 <= weight <= 9999):
        found.append((invalid(shown(birth.weight), birth.weight_field), "/" + birth.weight_field))
    order = baby.get("multipleBirthInteger")
    if order is None:
        found.append((missing("entry/0/resource/multipleBirthInteger"), f"{prefix}/multipleBirthInteger"))
    elif isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 9:
        found.append((invalid(shown(order), "entry/0/resource/multipleBirthInteger"), f"{prefix}/multipleBirthInteger"))
    lines = at(first, "line") if isinstance(first, dict) else None
    if isinstance(first, dict) and lines is None:
        found.append((invalid_create(ADDRESS_LINES), f"{prefix}/address/0/line"))
    elif isinstance(first, dict) and not isinstance(lines, list):
        found.append((invalid(shown(lines), "entry/0/resource/address/0/line"), f"{prefix}/address/0/line"))
    return found


def registration_problems(birth: Birth, today: date) -> list[tuple[SpineError, str]]:
    """Live PDS's further rules for registering a birth (a synthetic mother's baby)."""
    baby, prefix = birth.baby, f"/entry/{birth.baby_at}/resource"
    found: list[tuple[SpineError, str]] = []
    kinds = {kind for e in birth.entries if isinstance(kind := at(e, "resource", "resourceType"), str)}
    if birth.weight_at is None or birth.mother_at is None or not set(MANDATORY) <= kinds:
        found.append((SpineError(400, "TOO_FEW_VALUES_SUBMITTED", f"Too few values submitted - {TOO_LONG} in field "
                                 "'entry'"), "/entry"))
    if not any(at(e, "url") == ETHNIC_CATEGORY for e in baby.get("extension") or [] if isinstance(e, dict)):
        found.append((SpineError(400, "TOO_FEW_VALUES_SUBMITTED", f"Too few values submitted - {TOO_LONG} in field "
                                 "'entry/0/resource/extension'"), f"{prefix}/extension"))
    family = at(baby, "name", 0, "family")
    if absent(family) or not isinstance(family, str):
        found.append((missing("entry/0/resource/name/0/family") if absent(family)
                      else invalid(shown(family), "entry/0/resource/name/0/family"), f"{prefix}/name/0/family"))
    given = at(baby, "name", 0, "given") or []
    if not all(isinstance(g, str) and g.strip() for g in given):
        found.append((invalid(shown(given), "entry/0/resource/name/0/given"), f"{prefix}/name/0/given"))
    lines = [line if isinstance(line, str) else "" for line in at(baby, "address", 0, "line") or []]
    filled = [i < len(lines) and bool(lines[i].strip()) for i in range(4)]
    if not (filled[3] and (filled[0] or filled[1])):
        found.append((invalid_create(ADDRESS_LINES), f"{prefix}/address/0/line"))
    if at(baby, "name", 0, "use") == "usual" and not absent(at(baby, "name", 0, "period", "end")):
        found.append((invalid_create("An end date can not be provided on usual name"), f"{prefix}/name/0/period/end"))
    born = _day(baby.get("birthDate"))
    if born is None:
        found.append((invalid(shown(baby.get("birthDate")), "birthDate"), f"{prefix}/birthDate"))
    elif born > today:
        found.append((invalid(baby["birthDate"], "birthDate"), f"{prefix}/birthDate"))
    elif (today - born).days > SIX_MONTHS_DAYS:
        found.append((SpineError(400, "INVALID_DOB_OVER_SIX_MONTHS", "You are trying to create a birth notification "
                                 "for a child over the age of 6 months. Please allocate an NHS Number instead",
                                 display="INVALID_DOB_OVER_SIX_MONTHS", issue_code="processing"),
                      f"{prefix}/birthDate"))
    died = not absent(baby.get("deceasedDateTime")) or any(
        at(e, "url") == DEATH_NOTICE for e in baby.get("extension") or [] if isinstance(e, dict))
    if died and birth.stillbirth_code() not in STILLBORN:
        found.append((SpineError(400, "INSERT_BIRTH_DEATH_STATUS_INCONSISTENT", "Insert Birth - Death Status "
                                 "Inconsistent"), f"{prefix}/deceasedDateTime"))
    return found


def _is_patient(entry: dict) -> bool:
    return isinstance(entry.get("resource"), dict) and entry["resource"].get("resourceType") == "Patient"


def _has_nhs_number(resource: dict) -> bool:
    identifiers = resource.get("identifier")
    return isinstance(identifiers, list) and any(at(i, "system") == NHS_NUMBER_SYSTEM for i in identifiers)


def _coded(resource: dict, code: str) -> bool:
    codings = at(resource, "code", "coding")
    return isinstance(codings, list) and any(at(c, "code") == code for c in codings)


def _number(value) -> float | None:
    """A weight as a number: JSON numbers, and numeric strings as the published sandbox reads them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value.strip() else None
    except ValueError:
        return None


def _listed(value) -> str:
    """A value that should have been an address, quoted back: a list as its items joined by commas."""
    if isinstance(value, list):
        return ",".join("" if item is None else shown(item) for item in value)
    return shown(value)


def _day(value) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and DATE.match(value) else None
    except ValueError:
        return None
