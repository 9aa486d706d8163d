"""GET /Patient parameters: parsed into a SearchQuery, every problem a finding, in the order live PDS refuses them.

Order (as live PDS answers): no parameters (UNSUPPORTED_SERVICE), unknown parameters (ADDITIONAL_PROPERTIES),
badly formed values (INVALID_VALUE), no date of birth (MISSING_VALUE), then combinations that cannot be searched
(INVALID_SEARCH_DATA). Every problem is recorded; the first one is the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sandbox.conformance.findings import Finding, SpineError
from sandbox.conformance.parsing import is_ascii_digits

PARAMETERS = ("_fuzzy-match", "_exact-match", "_history", "_max-results", "family", "given", "gender", "birthdate",
              "death-date", "address-postalcode", "address-postcode", "general-practitioner", "email", "phone")
GENDERS = ("male", "female", "other", "unknown")
BOOLEANS = {"true": True, "false": False}
MAX_RESULTS = 50
MAX_NAME = 35
MAX_GIVEN = 5
WILDCARD = "*"
FUZZY_COMBINATIONS = ({"given", "family", "birthdate"}, {"family", "birthdate", "gender", "postcode"},
                      {"given", "birthdate", "gender", "postcode"})
_DATE = re.compile(r"^(eq|ge|le)?([0-9]{4}-[0-9]{2}-[0-9]{2})$")
TOO_FEW = "No searches were performed as the search criteria did not meet the minimum requirements"
# Which requirement each kind of parameter check verifies (passes are recorded for the ones that hold).
REQ_PRESENT, REQ_KNOWN, REQ_DATES, REQ_GENDER, REQ_LIMIT = ("PDS-SRCH-001", "PDS-SRCH-002", "PDS-SRCH-003",
                                                          "PDS-SRCH-004", "PDS-SRCH-005")
REQ_MINIMUM, REQ_WILDCARD, REQ_POSTCODE, REQ_FLAGS, REQ_NAMES, REQ_SINGLE = (
    "PDS-SRCH-006", "PDS-SRCH-007", "PDS-SRCH-008", "PDS-SRCH-009", "PDS-SRCH-010", "PDS-SRCH-011")
REQ_EXACT = "PDS-SRCH-012"
REQUIREMENTS = (REQ_PRESENT, REQ_KNOWN, REQ_DATES, REQ_GENDER, REQ_LIMIT, REQ_MINIMUM, REQ_WILDCARD, REQ_POSTCODE,
                REQ_FLAGS, REQ_NAMES, REQ_SINGLE, REQ_EXACT)


@dataclass(frozen=True)
class DateRange:
    """An inclusive range; `eq` gives low == high. Open ends are None."""

    low: date | None
    high: date | None

    @property
    def exact(self) -> bool:
        return self.low is not None and self.low == self.high

    def contains(self, value: date | None) -> bool:
        if value is None:
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class SearchQuery:
    family: str | None = None
    given: tuple[str, ...] = ()
    gender: str | None = None
    birthdate: DateRange | None = None
    death: DateRange | None = None
    postcode: str | None = None
    gp: str | None = None
    email: str | None = None
    phone: str | None = None
    fuzzy: bool = False
    exact: bool = False
    history: bool = False
    max_results: int = MAX_RESULTS

    @property
    def by_location(self) -> bool:
        """Restricted patients are never returned when the search names a postcode or a GP practice."""
        return self.postcode is not None or self.gp is not None

    @property
    def with_history(self) -> bool:
        return self.history or self.fuzzy


@dataclass
class _Judgement:
    findings: list[Finding] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    checked: dict[str, str] = field(default_factory=dict)  # requirement -> what held, for the pass finding

    def fail(self, requirement: str, message: str, location: str, error: SpineError) -> None:
        self.failed.add(requirement)
        self.findings.append(Finding.failed(requirement, message, location, reject=error))

    def warn(self, requirement: str, message: str, location: str) -> None:
        self.failed.add(requirement)
        self.findings.append(Finding.warning(requirement, message, location))

    def held(self, requirement: str, message: str) -> None:
        self.checked.setdefault(requirement, message)

    def passes(self) -> list[Finding]:
        return [Finding.passed(r, m, "query") for r, m in self.checked.items() if r not in self.failed]


def invalid_value(value: str, name: str) -> SpineError:
    return SpineError(400, "INVALID_VALUE", f"Invalid value - '{value}' in field '{name}'")


def invalid_search(reason: str) -> SpineError:
    return SpineError(400, "INVALID_SEARCH_DATA", f"Invalid search data provided - '{reason}'")


def parse_search(query: dict[str, list[str]]) -> tuple[SearchQuery | None, list[Finding]]:
    """The query, or None when PDS would refuse it; and every finding about the parameters, in live order."""
    j = _Judgement()
    if not query:
        j.fail(REQ_PRESENT, "The search has no parameters; PDS needs at least a family name and a date of birth "
               "(400 UNSUPPORTED_SERVICE).", "query", SpineError(400, "UNSUPPORTED_SERVICE"))
        return None, j.findings
    j.held(REQ_PRESENT, "The search has parameters.")
    _known(j, query)
    values = _values(j, query)
    _minimum(j, values)
    _combinations(j, values)
    j.findings.extend(j.passes())
    if any(f.reject for f in j.findings):
        return None, j.findings
    return _query(values), j.findings


def _known(j: _Judgement, query: dict[str, list[str]]) -> None:
    unknown = [name for name in query if name not in PARAMETERS]
    if not unknown:
        j.held(REQ_KNOWN, "Every parameter is one PDS documents.")
        return
    listed = ", ".join(f"'{u}'" for u in unknown)
    verb = "was" if len(unknown) == 1 else "were"
    j.fail(REQ_KNOWN, f"Unknown search parameter{'s' if len(unknown) > 1 else ''} {listed}; PDS accepts only "
           f"{', '.join(PARAMETERS)}.", "query:" + unknown[0], SpineError(
               400, "ADDITIONAL_PROPERTIES",
               f"Invalid request with error - Additional properties are not allowed ({listed} {verb} unexpected)"))


def _values(j: _Judgement, query: dict[str, list[str]]) -> dict:
    """Well-formed values by name; INVALID_VALUE for each malformed one."""
    out: dict = {}
    for name in ("birthdate", "death-date"):
        if name in query:
            out[name] = _dates(j, name, query[name])
    if "gender" in query:
        gender = query["gender"][0]
        if gender in GENDERS:
            out["gender"] = gender
            j.held(REQ_GENDER, f"gender {gender!r} is one of {', '.join(GENDERS)}.")
        else:
            j.fail(REQ_GENDER, f"gender {gender[:40]!r} is not one of {', '.join(GENDERS)} (lower case).",
                   "query:gender", invalid_value(gender, "gender"))
    for name in ("_fuzzy-match", "_exact-match", "_history"):
        if name in query:
            raw = query[name][0]
            if raw in BOOLEANS:
                out[name] = BOOLEANS[raw]
                j.held(REQ_FLAGS, f"{name} is 'true' or 'false'.")
            else:
                j.fail(REQ_FLAGS, f"{name} {raw[:40]!r} is not 'true' or 'false'.", f"query:{name}",
                       invalid_value(raw, name))
    if "_max-results" in query:
        raw = query["_max-results"][0]
        limit = _max_results(raw)
        if limit is not None:
            out["_max-results"] = limit
            j.held(REQ_LIMIT, f"_max-results {raw} is within 1..{MAX_RESULTS}.")
        else:
            j.fail(REQ_LIMIT, f"_max-results {raw[:40]!r} is not a whole number from 1 to {MAX_RESULTS}.",
                   "query:_max-results", invalid_value(raw, "_max-results"))
    for name in ("family", "given"):
        for value in query.get(name, []):
            if not value.strip() or len(value) > MAX_NAME:
                why = "is empty" if not value.strip() else f"is longer than {MAX_NAME} characters"
                j.fail(REQ_NAMES, f"{name} {value[:40]!r} {why}.", f"query:{name}", invalid_value(value, name))
            else:
                j.held(REQ_NAMES, "Names are 1 to 35 characters.")
        if name in query and not any(f.location == f"query:{name}" and f.reject for f in j.findings):
            out[name] = query[name]
    for name in ("address-postalcode", "address-postcode", "general-practitioner", "email", "phone"):
        if name in query:
            value = query[name][0]
            if value.strip():
                out[name] = query[name]
            else:
                j.fail(REQ_KNOWN, f"{name} is empty.", f"query:{name}", invalid_value(value, name))
    return out


def _max_results(raw: str) -> int | None:
    """A whole number in ASCII digits from 1 to MAX_RESULTS ('²', '1e3', '+5' and 400 digits are not)."""
    if not is_ascii_digits(raw):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_RESULTS else None


def _dates(j: _Judgement, name: str, raw_values: list[str]) -> DateRange | None:
    parsed: list[tuple[str, date]] = []
    for raw in raw_values:
        match = _DATE.match(raw)
        when = _calendar_date(match.group(2)) if match else None
        if when is None:
            j.fail(REQ_DATES, f"{name} {raw[:40]!r} is not [eq|ge|le]yyyy-mm-dd (a real calendar date, e.g. "
                   "eq2010-10-22).", f"query:{name}", invalid_value(raw, name))
            return None
        parsed.append((match.group(1) or "eq", when))
    prefixes = sorted(p for p, _ in parsed)
    if len(parsed) == 1:
        prefix, when = parsed[0]
        j.held(REQ_DATES, f"{name} is a valid date criterion.")
        return DateRange(when if prefix in ("eq", "ge") else None, when if prefix in ("eq", "le") else None)
    if prefixes == ["ge", "le"]:
        low = next(d for p, d in parsed if p == "ge")
        high = next(d for p, d in parsed if p == "le")
        if low <= high:
            j.held(REQ_DATES, f"{name} is a valid date range.")
            return DateRange(low, high)
        reason = f"{name} range starts after it ends"
    else:
        reason = f"{name} may be given once, or twice as a range: one 'ge' and one 'le' value"
    j.fail(REQ_DATES, f"{name} values {', '.join(raw_values)[:80]!r}: {reason}.", f"query:{name}",
           invalid_search(reason))
    return None


def _calendar_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _minimum(j: _Judgement, values: dict) -> None:
    """MISSING_VALUE when no date of birth was given (every documented combination needs one)."""
    if "birthdate" in values or any(f.location == "query:birthdate" for f in j.findings):
        return
    j.fail(REQ_MINIMUM, "No birthdate: every PDS search needs a date of birth (or range) with the family name "
           "(fuzzy searches: one of the documented combinations).", "query:birthdate", SpineError(
               400, "MISSING_VALUE", "Missing value - 'birth_date/birth_date_range_start/birth_date_range_end'"))


def _combinations(j: _Judgement, values: dict) -> None:
    fuzzy = values.get("_fuzzy-match", False)
    supplied = {k for k in values if not k.startswith("_")}
    if "address-postalcode" in supplied or "address-postcode" in supplied:
        supplied.add("postcode")
    if "birthdate" in supplied:
        if fuzzy and not any(c <= supplied for c in FUZZY_COMBINATIONS):
            j.fail(REQ_MINIMUM, "A fuzzy search needs one of: given + family + birthdate; family + birthdate + "
                   "gender + postcode; given + birthdate + gender + postcode.", "query", invalid_search(TOO_FEW))
        elif not fuzzy and "family" not in supplied:
            j.fail(REQ_MINIMUM, "A non-fuzzy search needs the family name (wildcards allowed) and the date of "
                   "birth.", "query:family", invalid_search(TOO_FEW))
        else:
            j.held(REQ_MINIMUM, "The parameters form a combination PDS can search.")
    _single_values(j, values)
    _postcode_parameters(j, values)
    _wildcards(j, values, fuzzy)
    if values.get("_exact-match") and (fuzzy or any(WILDCARD in v for k in ("family", "given", "address-postalcode",
                                                                             "address-postcode")
                                                     for v in values.get(k, []))):
        j.warn(REQ_EXACT, "_exact-match=true with a fuzzy or wildcard search is unlikely to match anything: only "
               "scores of 1.0 are returned.", "query:_exact-match")


def _single_values(j: _Judgement, values: dict) -> None:
    for name, items in values.items():
        if name in ("birthdate", "death-date") or not isinstance(items, list):
            continue
        limit = MAX_GIVEN if name == "given" else 1
        if len(items) > limit:
            reason = (f"given may be repeated at most {MAX_GIVEN} times" if name == "given"
                      else f"{name} may be given only once")
            j.fail(REQ_SINGLE, f"{name} appears {len(items)} times: {reason}.", f"query:{name}", invalid_search(reason))
        else:
            j.held(REQ_SINGLE, "No parameter is repeated beyond what PDS allows.")


def _postcode_parameters(j: _Judgement, values: dict) -> None:
    if "address-postalcode" in values and "address-postcode" in values:
        reason = "address-postalcode and address-postcode cannot both be supplied"
        j.fail(REQ_POSTCODE, f"Both address-postalcode and address-postcode were sent: {reason}.",
               "query:address-postcode", invalid_search(reason))
    elif "address-postcode" in values:
        j.warn(REQ_POSTCODE, "address-postcode is deprecated and will be withdrawn: use address-postalcode.",
               "query:address-postcode")
    elif "address-postalcode" in values:
        j.held(REQ_POSTCODE, "The postcode is sent as address-postalcode.")


def _wildcards(j: _Judgement, values: dict, fuzzy: bool) -> None:
    for name in ("family", "given", "address-postalcode", "address-postcode"):
        for value in values.get(name, []):
            if WILDCARD not in value:
                continue
            if fuzzy:
                reason = f"wildcards cannot be used in a fuzzy search ({name})"
            elif WILDCARD in value[:2]:
                reason = f"a wildcard cannot be in the first two characters of {name}"
            else:
                j.held(REQ_WILDCARD, "Wildcards are used only after the first two characters, in a non-fuzzy search.")
                continue
            j.fail(REQ_WILDCARD, f"{name} {value!r}: {reason}.", f"query:{name}", invalid_search(reason))
    for name in ("email", "phone", "general-practitioner"):
        for value in values.get(name, []):
            if WILDCARD in value:
                j.warn(REQ_WILDCARD, f"{name} {value!r} contains '*': PDS does not support wildcards in {name}, "
                       "so it only matches the literal value.", f"query:{name}")


def _query(values: dict) -> SearchQuery:
    first = lambda name: values[name][0] if name in values else None  # noqa: E731
    postcode = first("address-postalcode") or first("address-postcode")
    return SearchQuery(
        family=first("family"), given=tuple(values.get("given", ())), gender=values.get("gender"),
        birthdate=values.get("birthdate"), death=values.get("death-date"), postcode=postcode,
        gp=first("general-practitioner"), email=first("email"), phone=first("phone"),
        fuzzy=values.get("_fuzzy-match", False), exact=values.get("_exact-match", False),
        history=values.get("_history", False), max_results=values.get("_max-results", MAX_RESULTS))
