"""The searches the PDS specification documents for its sandbox, answered exactly as published.

How they live beside the population: a search aimed at the published example patients - family Smith, Smyth,
Smythe or Sm*, with a date of birth of theirs (2010-10-22, 2005-06-16 or the documented range) - is answered
from the documented table: the example bundle when the parameters are a documented row, otherwise the
published sandbox's 200 warning that it has no example response. Every other search runs over the synthetic
population and the session's own patients.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.services.pds import fixtures
from sandbox.services.pds.records import for_search

PUBLISHED_SCORE = 0.75  # every published search example carries this score
EXAMPLE_FAMILIES = frozenset({"smith", "smyth", "smythe", "sm*"})
EXAMPLE_BIRTHDATES = frozenset({"2010-10-22", "2005-06-16", "ge2010-10-21", "le2010-10-23"})
NO_EXAMPLE = "This mock endpoint has no example response for this combination of search parameters"
JANE, JAYNE, JANET, JOHN_PAUL = "9000000009", "9000000017", "9000000025", fixtures.COMPOUND_NAME
_JANE_TELECOM = {"email": "jane.smith@example.com", "phone": "01632960587"}
_TRY_THIS_API = {"_fuzzy-match": "false", "_exact-match": "false", "_history": "true", "family": "smith",
                 "given": "jane", "gender": "female", "birthdate": "2010-10-22", "death-date": "2010-10-22",
                 "address-postcode": "ls1 6ae", "general-practitioner": "y12345"}


@dataclass(frozen=True)
class PublishedSearch:
    scenario: str  # the documented scenario: the fact scenarios trigger on (published_search)
    params: dict[str, tuple[str, ...]]
    patients: tuple[str, ...]


def _row(scenario: str, patients: tuple[str, ...], **params: str | tuple[str, ...]) -> PublishedSearch:
    return PublishedSearch(scenario, {k: _tuple(v) for k, v in params.items()}, patients)


def _tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(value)) if isinstance(value, tuple) else (value,)


def _with_telecom(scenario: str, patients: tuple[str, ...], email: str, phone: str, **params) -> list[PublishedSearch]:
    """A documented row and its variants with only the phone, only the e-mail, or neither (as published)."""
    return [_row(scenario, patients, **params, **extra)
            for extra in ({"email": email, "phone": phone}, {"phone": phone}, {"email": email}, {})]


ROWS: tuple[PublishedSearch, ...] = (
    *_with_telecom("basic", (JANE,), **_JANE_TELECOM, family="smith", gender="female", birthdate="2010-10-22"),
    *_with_telecom("basic", (JANE,), **_JANE_TELECOM, family="smith", birthdate="2010-10-22"),
    _row("basic-negative", (), family="smith", gender="female", birthdate="2010-10-22",
         email="deb.trotter@example.com", phone="0121111111"),
    _row("wildcard", (JANE, JAYNE), family="sm*", gender="female", birthdate="2010-10-22"),
    *_with_telecom("wildcard-telecom", (JANE,), **_JANE_TELECOM, family="sm*", gender="female",
                   birthdate="2010-10-22")[:3],
    *_with_telecom("date-range", (JANE,), **_JANE_TELECOM, family="smith", gender="female",
                   birthdate=("ge2010-10-21", "le2010-10-23")),
    _row("fuzzy-telecom", (JANE,), **_JANE_TELECOM, family="smith", given="jane", gender="female",
         birthdate="2010-10-22", **{"_fuzzy-match": "true"}),
    _row("fuzzy", (JAYNE,), family="smith", given="jane", gender="female", birthdate="2010-10-22",
         **{"_fuzzy-match": "true"}),
    *_with_telecom("restricted", (JANET,), "janet.smythe@example.com", "01632960587", family="smythe",
                   given="janet", gender="female", birthdate="2005-06-16"),
    *_with_telecom("compound-name", (JOHN_PAUL,), "johnp.smith@example.com", "01632960587", family="smith",
                   given=("john paul", "james"), gender="male", birthdate="2010-10-22"),
    _row("compound-name", (JOHN_PAUL,), family="smith", given=("john paul", "james"), gender="male",
         birthdate="2010-10-22", **{"_fuzzy-match": "false", "_exact-match": "false", "_history": "true"}),
    *_with_telecom("try-this-api", (JANE,), **_JANE_TELECOM, **_TRY_THIS_API),
)


def normalise(query: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """As the published sandbox compares: case-insensitive, 'eq' optional on dates, _max-results aside."""
    out = {}
    for name, values in query.items():
        if name == "_max-results":
            continue
        if name in ("birthdate", "death-date"):
            values = [v[2:] if v.lower().startswith("eq") else v for v in values]
        out[name] = tuple(sorted(v.lower() for v in values))
    return out


def aimed_at_examples(query: dict[str, list[str]]) -> bool:
    params = normalise(query)
    family, births = params.get("family", ()), params.get("birthdate", ())
    return len(family) == 1 and family[0] in EXAMPLE_FAMILIES and bool(births) and set(births) <= EXAMPLE_BIRTHDATES


def published_row(query: dict[str, list[str]]) -> PublishedSearch | None:
    params = normalise(query)
    return next((row for row in ROWS if row.params == params), None)


def published_fact(query: dict[str, list[str]]) -> str | None:
    """What scenarios trigger on: the documented scenario, 'no-example', or None for a population search."""
    if not aimed_at_examples(query):
        return None
    row = published_row(query)
    if row is None:
        return "no-example"
    return "limited-results" if row.scenario.startswith("wildcard") and "_max-results" in query else row.scenario


def example_resource(number: str) -> dict:
    return for_search(fixtures.search_record(number))
