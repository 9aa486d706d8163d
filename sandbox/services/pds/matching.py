"""Patient search over the whole synthetic population and the session's own patients, scored as PDS scores.

Candidates come from the population's memory-mapped index: every posting list that applies to the search (family
name or its prefix, date of birth or range, Soundex keys, postcode, phone, e-mail) is intersected, and gender,
restriction and invalidation are filtered from per-patient data, before any candidate is made as a person and
judged in full. A non-fuzzy search filters on every criterion (wildcards and history allowed);
a fuzzy search matches homophones (Soundex), transposed names and history, and uses date of death and GP
practice only in the score. Scores are 1.0 for an exact match on current data, less for partial matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import jellyfish

from sandbox.services.pds.search_params import WILDCARD, DateRange, SearchQuery
from sandbox.synthetic.identifiers import patient_number
from sandbox.synthetic.index_file import PopulationIndex
from sandbox.synthetic.population import Person, Population
from sandbox.synthetic.postings import Posting, UnionPosting, intersection
from sandbox.synthetic.search_keys import fold, normalise_postcode, phone_key, soundex

CURRENT_NAME_USES = ("usual", "nickname", "temp")
FUZZY_THRESHOLD = 0.6
# Fuzzy score weights: names identify a person most, then the date of birth and postcode.
WEIGHTS = {"family": 3.0, "given": 2.0, "birthdate": 2.0, "gender": 1.0, "postcode": 2.0, "death": 1.0, "gp": 1.0,
           "email": 1.0, "phone": 1.0}
PARTIAL = {"wildcard": 0.9, "history": 0.9, "range": 0.95}


@dataclass
class Subject:
    """A patient as search sees it: folded names and keys, each marked current or historic."""

    nhs_number: str
    names: list[tuple[tuple[str, ...], str, bool]] = field(default_factory=list)  # (given, family, historic)
    gender: str | None = None
    birth: date | None = None
    death: date | None = None
    postcodes: list[tuple[str, bool]] = field(default_factory=list)
    gp: str | None = None
    emails: list[tuple[str, bool]] = field(default_factory=list)
    phones: list[tuple[str, bool]] = field(default_factory=list)
    restricted: bool = False


def subject_of_person(person: Person) -> Subject:
    names = [(tuple(fold(g) for g in n.given), fold(n.family), n.use not in CURRENT_NAME_USES or n.end is not None)
             for n in person.names]
    return Subject(
        person.nhs_number, names, person.gender if person.kind != "minimal" else None, person.birth_date,
        person.death.date() if person.death else None,
        [(normalise_postcode(a.postcode), a.end is not None) for a in person.addresses] if person.kind != "minimal"
        else [],
        person.gp.upper() if person.gp and person.kind != "minimal" else None,
        [(person.email.lower(), False)] if person.email and person.kind != "minimal" else [],
        [(digits(p), False) for p in (person.phone, person.mobile) if p and person.kind != "minimal"],
        person.kind == "restricted")


def subject_of_resource(resource: dict, today: date) -> Subject:
    """A session's own (edited or created) patient, from its FHIR resource."""
    def ended(item: dict) -> bool:
        end = (item.get("period") or {}).get("end")
        return bool(end) and _date(end) is not None and _date(end) < today

    names = [(tuple(fold(g) for g in n.get("given", [])), fold(n.get("family", "")),
              n.get("use") not in CURRENT_NAME_USES or ended(n)) for n in resource.get("name", [])]
    telecom = resource.get("telecom", [])
    gp = (resource.get("generalPractitioner") or [{}])[0].get("identifier", {}).get("value")
    death = resource.get("deceasedDateTime")
    return Subject(
        resource["id"], names, resource.get("gender"), _date(resource.get("birthDate", "")),
        _date(death[:10]) if death else None,
        [(normalise_postcode(a["postalCode"]), ended(a)) for a in resource.get("address", []) if a.get("postalCode")],
        gp.upper() if gp else None,
        [(t["value"].lower(), ended(t)) for t in telecom if t.get("system") == "email" and t.get("value")],
        [(digits(t["value"]), ended(t)) for t in telecom if t.get("system") == "phone" and t.get("value")],
        any(s.get("code") == "R" for s in resource.get("meta", {}).get("security", [])))


def digits(phone: str) -> str:
    return phone_key(phone)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except (ValueError, TypeError):
        return None


# --- judging one subject ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _pattern(value: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(part) for part in value.split(WILDCARD)) + "$")


def _text_match(query: str, value: str) -> float:
    """1.0 for an exact match, PARTIAL['wildcard'] for a wildcard match, 0 otherwise (both already folded)."""
    if WILDCARD not in query:
        return 1.0 if query == value else 0.0
    return PARTIAL["wildcard"] if _pattern(query).match(value) else 0.0


def _date_score(criterion: DateRange, value: date | None) -> float:
    if not criterion.contains(value):
        return 0.0
    return 1.0 if criterion.exact else PARTIAL["range"]


def _best(options: Iterable[tuple[float, bool]], history: bool) -> float:
    """The best score among current values, or historic ones when history is searched."""
    best = 0.0
    for points, historic in options:
        if historic and not history:
            continue
        best = max(best, points * (PARTIAL["history"] if historic else 1.0))
    return best


def _given_match(query: tuple[str, ...], given: tuple[str, ...]) -> float:
    """The first given name searched matches the first given name (wildcards allowed); any further given names
    searched must be among the patient's other given names."""
    if not given:
        return 0.0
    first = _text_match(query[0], given[0])
    if not first:
        return 0.0
    rest = set(given[1:])
    return first if all(g in rest for g in query[1:]) else 0.0


def exact_score(s: Subject, q: SearchQuery, keys: dict) -> float | None:
    """A non-fuzzy match: every criterion must hold; None when one does not."""
    parts: list[float] = []
    name = 0.0
    for given, family, historic in s.names:
        if historic and not q.history:
            continue
        points = _text_match(keys["family"], family)
        if points and keys["given"]:
            points = min(points, _given_match(keys["given"], given))
        name = max(name, points * (PARTIAL["history"] if historic else 1.0))
    if not name:
        return None
    parts.append(name)
    for check in (_gender_part, _birth_part, _death_part, _postcode_part, _gp_part, _email_part, _phone_part):
        part = check(s, q, keys)
        if part is None:
            continue
        if not part:
            return None
        parts.append(part)
    return round(sum(parts) / len(parts), 4)


def _gender_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.gender is None else float(s.gender == q.gender)


def _birth_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.birthdate is None else _date_score(q.birthdate, s.birth)


def _death_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.death is None else _date_score(q.death, s.death)


def _postcode_part(s: Subject, q: SearchQuery, f) -> float | None:
    if q.postcode is None:
        return None
    return _best(((_text_match(f["postcode"], p), h) for p, h in s.postcodes), q.history)


def _gp_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.gp is None else float(s.gp == q.gp.upper())


def _email_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.email is None else _best(((float(e == q.email.lower()), h) for e, h in s.emails),
                                                q.with_history)


def _phone_part(s: Subject, q: SearchQuery, _f) -> float | None:
    return None if q.phone is None else _best(((float(p == digits(q.phone)), h) for p, h in s.phones),
                                                q.with_history)


def similarity(query: str, value: str) -> float:
    """How alike two folded names are, as fuzzy search sees them: exact 1.0, homophones (same Soundex) and
    near-spellings a little less, unrelated names 0."""
    if not query or not value:
        return 0.0
    if query == value:
        return 1.0
    close = jellyfish.jaro_winkler_similarity(query, value)
    if soundex(query) == soundex(value):
        return round(max(0.85, min(close, 0.95)), 4)
    return round(close * 0.9, 4) if close >= 0.9 else 0.0


def fuzzy_score(s: Subject, q: SearchQuery, keys: dict) -> float | None:
    """A fuzzy match: names by sound and transposition, always with history; date of death and GP only score."""
    family_q, given_q = keys["family"], keys["given"][0] if keys["given"] else None
    best_names: tuple[float, float] = (0.0, 0.0)
    for given, family, historic in s.names:
        first = given[0] if given else ""
        straight = (similarity(family_q, family) if family_q else 1.0,
                    similarity(given_q, first) if given_q else 1.0)
        swapped = (similarity(family_q, first) * 0.9 if family_q else 1.0,
                   similarity(given_q, family) * 0.9 if given_q else 1.0)
        for fam, giv in (straight, swapped):
            if fam and giv:
                factor = PARTIAL["history"] if historic else 1.0
                if (fam + giv) * factor > sum(best_names):
                    best_names = (fam * factor, giv * factor)
    if not any(best_names):
        return None
    if q.birthdate is not None and not q.birthdate.contains(s.birth):
        return None
    if q.gender is not None and s.gender != q.gender:
        return None
    for part in (_email_part(s, q, keys), _phone_part(s, q, keys)):
        if part is not None and not part:
            return None
    weighted = []
    if family_q:
        weighted.append(("family", best_names[0]))
    if given_q:
        weighted.append(("given", best_names[1]))
    weighted.append(("birthdate", _date_score(q.birthdate, s.birth) if q.birthdate else 1.0))
    if q.gender is not None:
        weighted.append(("gender", 1.0))
    if q.postcode is not None:
        weighted.append(("postcode", _postcode_similarity(keys["postcode"], s.postcodes)))
    if q.death is not None:
        weighted.append(("death", 1.0 if q.death.contains(s.death) else 0.5))
    if q.gp is not None:
        weighted.append(("gp", 1.0 if s.gp == q.gp.upper() else 0.5))
    for name, part in (("email", _email_part(s, q, keys)), ("phone", _phone_part(s, q, keys))):
        if part is not None:
            weighted.append((name, part))
    total = sum(WEIGHTS[n] for n, _ in weighted)
    points = round(sum(WEIGHTS[n] * v for n, v in weighted) / total, 4)
    return points if points >= FUZZY_THRESHOLD else None


def _postcode_similarity(query: str, postcodes: list[tuple[str, bool]]) -> float:
    """Fuzzy search compares postcodes by unit, then sector, then district."""
    best = 0.0
    for postcode, historic in postcodes:
        if postcode == query:
            points = 1.0
        elif postcode[:-2] == query[:-2]:
            points = 0.8
        elif postcode[:-3] == query[:-3]:
            points = 0.6
        else:
            points = 0.0
        best = max(best, points * (PARTIAL["history"] if historic else 1.0))
    return best


def folded(q: SearchQuery) -> dict:
    """The query's names and postcode in the form subjects hold them (fold once per search, not per patient)."""
    return {"family": fold(q.family) if q.family else "", "given": tuple(fold(g) for g in q.given),
            "postcode": normalise_postcode(q.postcode) if q.postcode else ""}


def score(s: Subject, q: SearchQuery, keys: dict) -> float | None:
    """The subject's score for the search (keys: folded(q)), or None when it does not match."""
    if s.restricted and q.by_location:
        return None
    return fuzzy_score(s, q, keys) if q.fuzzy else exact_score(s, q, keys)


# --- candidates from the population index ------------------------------------------------------------------------
def candidates(index: PopulationIndex, q: SearchQuery) -> Iterable[int]:
    """A superset of the population patients that can match: the intersection of every index lookup that applies
    (each a superset on its own), less those whose gender differs from the one searched."""
    options: list[Posting] = []
    if q.birthdate is not None:
        options.append(_by_birth(index, q.birthdate))
    if q.fuzzy:
        keys = {soundex(n) for n in (q.family, *q.given[:1]) if n}
        options.append(UnionPosting(table.get(k) for k in keys for table in (index.family_soundex,
                                                                               index.given_soundex)))
    else:
        if q.family:
            options.append(_by_key(index.family, fold(q.family)))
        if q.postcode:  # only the fuzzy search lets a different postcode score
            options.append(_by_key(index.postcode, normalise_postcode(q.postcode)))
    if q.phone:
        options.append(index.phone.get(digits(q.phone)))
    if q.email:
        options.append(index.email.get(q.email.lower()))
    found = intersection(options) if options else range(index.size)
    if q.gender is None:
        return found
    return [i for i in found if index.has_gender(i, q.gender)]


def _by_birth(index: PopulationIndex, criterion: DateRange) -> Posting:
    if criterion.exact:
        return index.birth.get(criterion.low)
    return index.birth.between(criterion.low, criterion.high)


def _by_key(table, value: str) -> Posting:
    """Exact keys by lookup; a wildcard value by its prefix (the part before the first *), a bisect and one run."""
    if WILDCARD not in value:
        return table.get(value)
    return table.with_prefix(value.split(WILDCARD, 1)[0])


@dataclass(frozen=True)
class Match:
    score: float
    nhs_number: str  # the record returned: the superseding one when a superseded record matched


def search_population(population: Population, q: SearchQuery, skip: set[str]) -> list[Match]:
    """Matches among the population, following merges; records in `skip` (edited in this session) are judged from
    the session's own copy instead. Only candidates that pass the index are made as persons."""
    index = population.index()
    keys = folded(q)
    found: dict[str, float] = {}
    for i in candidates(index, q):
        kind = population.kind(i)
        if kind == "invalidated" or (kind == "restricted" and q.by_location):
            continue
        number = patient_number(i)
        if number in skip:
            continue
        person = population.person(i)
        value = score(subject_of_person(person), q, keys)
        if value is None:
            continue
        returned = number if person.superseded_by is None else patient_number(person.superseded_by)
        found[returned] = max(value, found.get(returned, 0.0))
    return [Match(v, n) for n, v in found.items()]


def ranked(matches: Iterable[Match]) -> list[Match]:
    """Best first; equal scores in NHS number order, so the same search always lists patients the same way."""
    return sorted(matches, key=lambda m: (-m.score, m.nhs_number))
