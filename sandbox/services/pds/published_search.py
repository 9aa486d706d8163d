"""The searches the published PDS sandbox scripts, answered as it answers them (its match table, read top down).

Each row names the exact values the published sandbox compares (case-sensitive, as it is) and the bundle it answers
with; the first row whose conditions all hold answers. How the table lives beside the population:

* a row that names its values answers wherever it matches;
* the published sandbox's catch-all for fuzzy searches without phone or e-mail (Jayne Smyth), and its 200 warning
  that it has no example response, answer only a search aimed at its example patients - family Smith, Smyth, Smythe
  or Sm* with one of their dates of birth (2010-10-22, 2005-06-16 or the documented range);
* every other search runs over the synthetic population and the session's own patients.

Where the published sandbox contradicts the specification the live rule holds instead (requirements.yaml says
where): `_history=false` and `_exact-match=false` are not flags, and a bundle larger than `_max-results` is 200
TOO_MANY_MATCHES.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.services.pds import published_data
from sandbox.services.pds.bundles import LIVE_BASE

NO_EXAMPLE = "This mock endpoint has no example response for this combination of search parameters"
EXAMPLE_FAMILIES = frozenset({"smith", "smyth", "smythe", "sm*"})
EXAMPLE_BIRTHDATES = frozenset({"2010-10-22", "2005-06-16", "ge2010-10-21", "le2010-10-23"})
JANE_PHONE, JANE_EMAIL = "01632960587", "jane.smith@example.com"
_LEADING_INTEGER = re.compile(r"^\s*([+-]?[0-9]+)")


@dataclass(frozen=True)
class Terms:
    """What the published match table reads from a query (absent and empty are the same)."""

    family: str = ""
    given: tuple[str, ...] = ()
    gender: str = ""
    birthdate: str = ""  # the first value, a leading 'eq' removed
    second_birthdate: str = ""  # the second value, as sent
    postcode: str = ""
    fuzzy: bool = False
    history: bool = False
    exact: bool = False
    phone: str = ""
    email: str = ""
    max_results: str = ""
    practice: str = ""
    death_date: str = ""

    @property
    def first_given(self) -> str:
        return self.given[0] if self.given else ""

    @property
    def second_given(self) -> str:
        return self.given[1] if len(self.given) > 1 else ""

    @property
    def fewer_than_two(self) -> bool:
        """_max-results below 2, read as the published sandbox reads it (a leading whole number)."""
        number = _LEADING_INTEGER.match(self.max_results)
        return number is not None and int(number.group(1)) < 2


def terms(query: dict[str, list[str]]) -> Terms:
    def first(name: str) -> str:
        values = query.get(name) or [""]
        return values[0]

    births = query.get("birthdate") or []
    birthdate = births[0] if births else ""
    return Terms(
        family=first("family"), given=tuple(query.get("given") or ()), gender=first("gender"),
        birthdate=birthdate[2:] if birthdate.startswith("eq") else birthdate,
        second_birthdate=births[1] if len(births) > 1 else "",
        postcode=first("address-postalcode") or first("address-postcode"),
        fuzzy=first("_fuzzy-match").lower() == "true", history=first("_history") == "true",
        exact=first("_exact-match") == "true", phone=first("phone"), email=first("email"),
        max_results=first("_max-results"), practice=first("general-practitioner"), death_date=first("death-date"))


@dataclass(frozen=True)
class Row:
    row: str  # its place in the published table (S1..S48; "none" when no row holds)
    scenario: str  # the fact scenarios trigger on (published_search)
    holds: Callable[[Terms], bool]
    answer: str  # a bundle of published/search.yaml or a built-in bundle (BUILT_IN)
    examples_only: bool = False  # answers only a search aimed at the published example patients
    too_many: bool = False  # answers 200 TOO_MANY_MATCHES: the bundle has more patients than _max-results allows


SMITH, MALE, FEMALE = ("Smith", "smith"), ("Male", "male"), ("Female", "female")
WILDCARD_SMITH = ("Sm*", "sm*")


def _wildcard(t: Terms) -> bool:
    return t.family in WILDCARD_SMITH


def _simple(t: Terms) -> bool:
    return (t.family in SMITH and t.gender in FEMALE and t.phone in ("", JANE_PHONE)
            and t.email in ("", JANE_EMAIL))


def _smith_male_2000(t: Terms) -> bool:
    return t.family in SMITH and t.gender in MALE and t.birthdate == "2000-05-05"


def _smythe_mat(t: Terms) -> bool:
    return (t.fuzzy and t.family == "Smythe" and t.first_given == "Mat" and t.birthdate == "ge2000-05-03"
            and t.gender == "male" and t.postcode == "DN17 4AA")


ROWS: tuple[Row, ...] = (
    Row("S1", "fuzzy-homophone", lambda t: t.fuzzy and t.family == "Blogs" and t.first_given == "Joe"
        and t.birthdate == "1955-11-05", "bill_garton"),
    Row("S2", "fuzzy-unicode", lambda t: t.fuzzy and t.family == "ATTS\u00d6N" and t.first_given == "P\u00c0ULIN\u00c9"
        and t.birthdate == "1960-07-14", "pauline_attison"),
    Row("S3", "fuzzy-telecom-single", lambda t: t.fuzzy and t.phone == "01222111111" and t.email == "test@test.com",
        "fuzzy_single"),
    Row("S4", "fuzzy-multiple", lambda t: _smythe_mat(t) and t.email != "rubbish@work.com", "fuzzy_multimatch"),
    Row("S5", "fuzzy-no-match", lambda t: _smythe_mat(t) and t.email == "rubbish@work.com", "empty"),
    Row("S6", "fuzzy-previous-name", lambda t: t.fuzzy and t.family in ("MED", "HUME") and t.first_given == "Casey"
        and t.birthdate == "1999-09-09", "med_rowenad"),
    Row("S7", "fuzzy-no-match", lambda t: t.fuzzy and t.family == "MED" and t.first_given == "Casey"
        and t.birthdate == "2024-01-12", "empty"),
    Row("S8", "fuzzy-no-match", lambda t: t.fuzzy and t.family == "LEEKE" and t.first_given == "Horace"
        and t.birthdate == "1956-05-02" and t.postcode == "DN16", "empty"),
    Row("S9", "fuzzy", lambda t: t.fuzzy and not t.phone and not t.email, "jayne_smyth", examples_only=True),
    Row("S10", "fuzzy-telecom", lambda t: t.fuzzy and t.phone == JANE_PHONE and not t.email, "jane_fuzzy"),
    Row("S11", "fuzzy-telecom", lambda t: t.fuzzy and t.email == JANE_EMAIL and not t.phone, "jane_fuzzy"),
    Row("S12", "fuzzy-telecom", lambda t: t.fuzzy and t.phone == JANE_PHONE and t.email == JANE_EMAIL,
        "jane_fuzzy_telecom"),
    Row("S13", "history", lambda t: t.history and _smith_male_2000(t) and t.email == "Historic@historic.com",
        "historic_email"),
    Row("S14", "history-needed", lambda t: _smith_male_2000(t) and t.email == "Historic@historic.com", "empty"),
    Row("S15", "telecom-no-match", lambda t: (t.family in SMITH or _wildcard(t)) and t.gender in MALE
        and t.birthdate == "2000-05-05" and t.email == "rubbish@test.com" and t.phone == "01234123123", "empty"),
    Row("S16", "history", lambda t: t.history and t.family == "HUME" and t.birthdate == "1999-09-09", "med_rowenad"),
    Row("S17", "no-match", lambda t: t.family in ("MED", "HUME") and t.birthdate in ("2024-01-12", "1999-09-09")
        and t.gender in ("male", "female"), "empty"),
    Row("S18", "wildcard", lambda t: _wildcard(t) and not t.phone and not t.email and not t.max_results, "wildcard"),
    Row("S19", "limited-results", lambda t: _wildcard(t) and not t.phone and not t.email and t.fewer_than_two,
        "wildcard", too_many=True),
    Row("S20", "wildcard-telecom", lambda t: _wildcard(t) and bool(t.phone) and not t.email and t.fewer_than_two,
        "jane"),
    Row("S21", "wildcard-telecom", lambda t: _wildcard(t) and not t.phone and bool(t.email) and t.fewer_than_two,
        "jane"),
    Row("S22", "wildcard-telecom", lambda t: _wildcard(t) and t.phone == JANE_PHONE and not t.email, "jane"),
    Row("S23", "wildcard-telecom", lambda t: _wildcard(t) and t.email == JANE_EMAIL and not t.phone, "jane"),
    Row("S24", "wildcard-telecom", lambda t: _wildcard(t) and t.email == JANE_EMAIL and t.phone == JANE_PHONE,
        "jane"),
    Row("S25", "wildcard-telecom", lambda t: _wildcard(t) and t.email == "janet.smythe@example.com", "jane"),
    Row("S26", "multiple-telecom", lambda t: _wildcard(t) and t.email == "test@test.com" and t.phone == "01234123123"
        and t.birthdate == "2000-05-05", "multimatch_phone_and_email"),
    Row("S27", "restricted", lambda t: t.family in ("Smythe", "smythe"), "janet_smythe_restricted"),
    Row("S28", "basic", lambda t: _simple(t) and t.birthdate == "2010-10-22", "jane"),
    Row("S28", "date-range", lambda t: _simple(t) and t.birthdate == "ge2010-10-21"
        and t.second_birthdate == "le2010-10-23", "jane"),
    Row("S29", "compound-name", lambda t: t.family in SMITH and t.gender in MALE and t.first_given == "John Paul"
        and t.second_given == "James", "john_paul_smith"),
    Row("S30", "superseded", lambda t: t.family in ("CUFF", "Cuff") and t.gender in FEMALE
        and t.birthdate == "1926-01-07", "cuff_superseded"),
    Row("S31", "other-given-name", lambda t: _smith_male_2000(t) and t.first_given == "Sam" and t.second_given == "Bob",
        "other_given_name"),
    Row("S32", "multiple-telecom", lambda t: _smith_male_2000(t) and t.phone == "01234123123"
        and t.email == "test@test.com", "multimatch_phone_and_email"),
    Row("S33", "country-code-phone", lambda t: t.family == "Muir" and t.gender in MALE and t.birthdate == "2017-09-06"
        and t.phone == "00917855986859", "country_code_mobile"),
    Row("S34", "postcode-wildcard", lambda t: t.postcode == "DN17*" and _smith_male_2000(t), "postalcode_wildcard"),
    Row("S35", "general-practitioner", lambda t: t.practice == "A20047" and t.family == "Me*"
        and t.birthdate == "2015-10-22", "general_practitioner"),
    Row("S36", "date-of-death", lambda t: t.death_date == "le2019-02-28" and t.family == "TUNNEY"
        and t.birthdate == "ge1980-01-01", "date_of_death"),
    Row("S37", "single-match", lambda t: t.family == "McMatch-Single" and t.postcode == "BAP 4WG"
        and t.gender == "male", "mock_single"),
    Row("S38", "multiple-matches", lambda t: t.family == "McMatch-Multiple" and t.postcode == "DN19 7UD",
        "mock_multiple"),
    Row("S39", "parameters", lambda t: t.family == "Jones" and t.gender == "male" and t.birthdate == "ge1992-01-01",
        "jackie_jones"),
    Row("S40", "restricted", lambda t: t.family == "Godsoe" and t.gender == "male" and t.birthdate == "1936-02-24",
        "rodney_godsoe"),
    Row("S41", "without-gender", lambda t: t.family == "Massam" and t.birthdate in ("1920-08-11", "le1920-08-11"),
        "martha_massam"),
    Row("S42", "limited-results", lambda t: t.family == "YOUDS" and t.max_results == "1", "youds", too_many=True),
    Row("S43", "multiple-results", lambda t: t.family == "YOUDS", "youds"),
    # S44 (the specification's documentation example) can never match in the published sandbox: S28 answers it.
    Row("S45", "basic-negative", lambda t: t.family == "Smith" and t.gender == "female" and t.birthdate == "2010-10-22"
        and t.email == "deb.trotter@example.com" and t.phone == "0121111111", "empty"),
    Row("S46", "no-match", lambda t: t.family in ("Spiderman", "Bingham") and t.birthdate in ("1962-07-31",
                                                                                              "1934-12-18"), "empty"),
    Row("S47", "exact-match", lambda t: t.exact and t.family in ("KNAPP", "Knapp", "knapp") and t.gender in FEMALE
        and t.birthdate == "1943-07-03", "kathy_knapp_exact_match"),
    Row("S48", "exact-match-needed", lambda t: t.family in ("KNAPP", "Knapp", "knap") and t.gender in FEMALE
        and t.birthdate == "1943-07-03", "empty"),
)
NO_EXAMPLE_ROW = Row("none", "no-example", lambda t: True, "no-example", examples_only=True)


def _jane(score: float) -> list[dict]:
    return [_entry("9000000009", score)]


def _entry(number: str, score: float) -> dict:
    return {"fullUrl": f"{LIVE_BASE}/Patient/{number}", "search": {"score": score},
            "resource": published_data.search_record(number)}


# The bundles the published sandbox builds in its code rather than reading from a file (its EMPTY, JANE(s), FUZZY17
# and WILDCARD).
BUILT_IN: dict[str, Callable[[], list[dict]]] = {
    "empty": list,
    "jane": lambda: _jane(1),
    "jane_fuzzy": lambda: _jane(0.9124),
    "jane_fuzzy_telecom": lambda: _jane(0.9542),
    "jayne_smyth": lambda: [_entry("9000000017", 0.8976)],
    "wildcard": lambda: [_entry("9000000009", 0.8343), _entry("9000000017", 0.8343)],
}


def aimed_at_examples(query: dict[str, list[str]]) -> bool:
    """Family Smith, Smyth, Smythe or Sm* (any case) with only the example patients' dates of birth."""
    families = [v.lower() for v in query.get("family", [])]
    births = {v[2:] if v.lower().startswith("eq") else v for v in query.get("birthdate", [])}
    return (len(families) == 1 and families[0] in EXAMPLE_FAMILIES and bool(births)
            and {b.lower() for b in births} <= EXAMPLE_BIRTHDATES)


def published_row(query: dict[str, list[str]]) -> Row | None:
    """The row of the published table that answers this search, or None for a search of the population."""
    found = terms(query)
    examples = aimed_at_examples(query)
    for row in ROWS:
        if row.holds(found):
            # A catch-all row answers only the examples' searches; any other search it catches goes to the
            # population, never to a later row the published sandbox would not reach.
            return row if examples or not row.examples_only else None
    return NO_EXAMPLE_ROW if examples else None


def published_fact(query: dict[str, list[str]]) -> str | None:
    """What scenarios trigger on: the published scenario, 'no-example', or None for a population search."""
    row = published_row(query)
    return row.scenario if row else None


def entries(row: Row) -> list[dict]:
    """The searchset entries a row answers with (fresh copies)."""
    maker = BUILT_IN.get(row.answer)
    return maker() if maker else published_data.bundle_entries(row.answer)
