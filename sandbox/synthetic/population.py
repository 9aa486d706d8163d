"""Synthetic people: patient i is made on its own in O(1); search indexes are built once, lazily."""

from __future__ import annotations

import random
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import jellyfish
from faker.providers.person.en_GB import Provider as _Names

from sandbox.synthetic.identifiers import (
    POPULATION_CAPACITY,
    patient_index,
    patient_number,
)
from sandbox.synthetic.places import (
    INWARD_LETTERS,
    LOCALITIES,
    LONG_FAMILY,
    LONG_GIVEN,
    POST_TOWNS,
    STREET_KINDS,
)

# Kinds of special patient and their share of every hundred consecutive patients.
KINDS: dict[str, int] = {
    "standard": 83,
    "restricted": 2,
    "deceased": 3,
    "superseded": 1,
    "invalidated": 1,
    "minimal": 2,
    "long-name": 1,
    "multi-address": 5,
    "no-gp": 2,
}
_SLOTS = tuple(kind for kind, share in KINDS.items() for _ in range(share))
assert len(_SLOTS) == 100

_FEMALE = tuple(_Names.first_names_female)
_MALE = tuple(_Names.first_names_male)
_FAMILY = tuple(_Names.last_names)
# The day the synthetic world stands still: ages and periods are relative to it, so output never drifts.
EPOCH = date(2025, 1, 1)


@dataclass(frozen=True)
class Address:
    id: str
    use: str  # home, temp, billing, work
    lines: tuple[str, ...]
    postcode: str
    start: date
    end: date | None = None
    text: str = ""


@dataclass(frozen=True)
class Name:
    id: str
    use: str  # usual, nickname, temp, old, maiden
    given: tuple[str, ...]
    family: str
    prefix: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Relation:
    id: str
    relationship: str  # v3-RoleCode / v2-0131 code: MTH, FTH, SPS, C (emergency contact), N (next of kin)
    name: Name | None = None
    phone: str = ""
    patient: int | None = None  # index of a population member this relation refers to


@dataclass(frozen=True)
class Person:
    index: int
    nhs_number: str
    kind: str
    version: int
    gender: str
    birth_date: date
    names: tuple[Name, ...]
    addresses: tuple[Address, ...] = ()
    phone: str = ""
    mobile: str = ""
    email: str = ""
    gp: str | None = None
    gp_since: date | None = None
    pharmacy: str | None = None
    death: datetime | None = None
    superseded_by: int | None = None  # index of the record that replaced this one
    relations: tuple[Relation, ...] = ()
    telecom_ids: tuple[str, str, str] = ("", "", "")

    @property
    def usual_name(self) -> Name:
        return next((n for n in self.names if n.use == "usual"), self.names[0])

    @property
    def family(self) -> str:
        return self.usual_name.family

    @property
    def given(self) -> tuple[str, ...]:
        return self.usual_name.given

    @property
    def home(self) -> Address | None:
        return next((a for a in self.addresses if a.use == "home" and a.end is None), None)

    @property
    def current_addresses(self) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.end is None)


@dataclass
class SearchIndex:
    """Keys -> patient indices. Names are keyed by every name a person has held (current and historic);
    searches narrow candidates here and then judge each candidate in full."""

    family: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    birth: dict[date, list[int]] = field(default_factory=lambda: defaultdict(list))
    postcode: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    phone: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    email: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    family_soundex: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    given_soundex: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    people: list[Person] = field(default_factory=list)
    families: list[str] = field(default_factory=list)  # sorted keys of `family`, for wildcard (prefix) scans
    birth_dates: list[date] = field(default_factory=list)  # sorted keys of `birth`, for date ranges


_SHARED: dict[tuple[int, int], Population] = {}
_SHARED_LOCK = threading.Lock()


class Population:
    """Deterministic per seed. `person(i)` costs the same whatever the size; `index` is built once, on demand."""

    def __init__(self, seed: int = 42, size: int = 10_000):
        if not 1 <= size <= POPULATION_CAPACITY:
            raise ValueError(f"population size must be 1..{POPULATION_CAPACITY}, not {size}")
        self.seed = seed
        self.size = size
        self._index: SearchIndex | None = None
        self._lock = threading.Lock()
        self._practices = _practice_codes(seed)

    @classmethod
    def shared(cls, seed: int, size: int) -> Population:
        """One population per seed and size in this process. Built once, it is inherited by forked worker
        processes (copy-on-write), so `serve` builds the search index once, not once per worker."""
        key = (seed, size)
        with _SHARED_LOCK:
            if key not in _SHARED:
                _SHARED[key] = cls(seed, size)
            return _SHARED[key]

    # --- one person ------------------------------------------------------------------------------------------
    def kind(self, index: int) -> str:
        return _SLOTS[(index * 61 + self.seed) % 100]

    def contains(self, index: int) -> bool:
        return 0 <= index < self.size

    def by_nhs_number(self, number: str) -> Person | None:
        index = patient_index(number)
        return self.person(index) if index is not None and self.contains(index) else None

    def person(self, index: int) -> Person:
        if not self.contains(index):
            raise IndexError(f"patient {index} is outside this population of {self.size}")
        if self._index is not None:
            return self._index.people[index]
        return _make_person(self, index)

    def __iter__(self) -> Iterator[Person]:
        return (self.person(i) for i in range(self.size))

    def of_kind(self, kind: str) -> Iterator[Person]:
        return (self.person(i) for i in range(self.size) if self.kind(i) == kind)

    # --- searching -------------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._index is not None

    def index(self, progress: Callable[[int, int], None] | None = None) -> SearchIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = _build_index(self, progress)
        return self._index


def _practice_codes(seed: int) -> tuple[str, ...]:
    rng = random.Random(f"practices:{seed}")
    letters = "ABCDEFGHJKLMNPY"
    return tuple(f"{rng.choice(letters)}{rng.randint(81, 89)}{rng.randint(0, 999):03d}" for _ in range(300))


def _make_person(pop: Population, index: int) -> Person:
    rng = random.Random(f"{pop.seed}:{index}")
    kind = pop.kind(index)
    number = patient_number(index)
    gender = rng.choices(("female", "male", "other", "unknown"), (49, 49, 1, 1))[0]
    first_names = _FEMALE if gender == "female" else _MALE if gender == "male" else _FEMALE + _MALE
    age_days = rng.randint(0, 100 * 365)
    birth = EPOCH - timedelta(days=age_days)
    adult = age_days >= 18 * 365
    family = rng.choice(_FAMILY)
    given = (rng.choice(first_names),) + ((rng.choice(first_names),) if rng.random() < 0.4 else ())
    if kind == "long-name":
        given = (rng.choice(LONG_GIVEN), rng.choice(LONG_GIVEN), rng.choice(LONG_GIVEN))
        family = rng.choice(LONG_FAMILY)
    prefix = () if not adult else (rng.choice(("Mrs", "Ms", "Miss")) if gender == "female" else "Mr",)
    since = _date_between(rng, birth, EPOCH)
    names = [Name(_hex(rng), "usual", given, family, prefix, since)]
    if kind == "minimal":
        return Person(index, number, kind, rng.randint(1, 3), gender, birth, (names[0],))
    if adult and gender == "female" and rng.random() < 0.25:
        names.append(Name(_hex(rng), "old", given, rng.choice(_FAMILY), (), birth, since))
    if rng.random() < 0.05:
        names.append(Name(_hex(rng), "nickname", (given[0][:3],), family, (), since))

    addresses = [_address(rng, "home", since)]
    if rng.random() < 0.3:
        addresses.append(_address(rng, "home", birth, end=since - timedelta(days=1)))
    if kind == "multi-address":
        addresses.append(_address(rng, "temp", _date_between(rng, since, EPOCH), text="Temporary Residence Address"))
        addresses.append(_address(rng, "billing", since))
    phone = f"01632 960{rng.randint(0, 999):03d}"  # Ofcom drama numbers: never a real line
    mobile = f"07700 900{rng.randint(0, 999):03d}"
    email = f"{given[0].lower()}.{family.lower().replace(' ', '')}{rng.randint(1, 99)}@example.com"
    gp = None if kind == "no-gp" else rng.choice(pop._practices)
    death = None
    if kind == "deceased":
        died = _date_between(rng, birth, EPOCH - timedelta(days=1))
        death = datetime(died.year, died.month, died.day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=UTC)
    superseded_by = _superseding(pop, index) if kind == "superseded" else None
    relations = _relations(rng, pop, index, adult) if kind not in ("restricted", "invalidated") else ()
    return Person(
        index, number, kind, rng.randint(1, 5), gender, birth, tuple(names), tuple(addresses),
        phone, mobile if rng.random() < 0.7 else "", email if rng.random() < 0.6 else "", gp,
        _date_between(rng, since, EPOCH) if gp else None,
        f"F{rng.choice('ABCDEFGHJ')}{rng.randint(100, 999)}" if rng.random() < 0.5 else None,
        death, superseded_by, relations, (_hex(rng), _hex(rng), _hex(rng)),
    )


def _superseding(pop: Population, index: int) -> int:
    # The nearest standard record after this one: a merge keeps the surviving record.
    for step in range(1, 100):
        candidate = (index + step) % pop.size
        if pop.kind(candidate) == "standard":
            return candidate
    return index


def _relations(rng: random.Random, pop: Population, index: int, adult: bool) -> tuple[Relation, ...]:
    roll = rng.random()
    if roll < 0.5:
        return ()
    if not adult:
        other = (index + 7) % pop.size
        return (Relation(_hex(rng), "MTH", patient=other if pop.kind(other) == "standard" else None,
                         name=Name(_hex(rng), "usual", (rng.choice(_FEMALE),), rng.choice(_FAMILY)),
                         phone=f"01632 960{rng.randint(0, 999):03d}"),)
    relations = [Relation(_hex(rng), rng.choice(("SPS", "N", "C")),
                          name=Name(_hex(rng), "usual", (rng.choice(_FEMALE + _MALE),), rng.choice(_FAMILY)),
                          phone=f"07700 900{rng.randint(0, 999):03d}")]
    if roll > 0.85:
        relations.append(Relation(_hex(rng), "C", name=Name(_hex(rng), "usual", (rng.choice(_MALE),),
                                                           rng.choice(_FAMILY)),
                                  phone=f"01632 960{rng.randint(0, 999):03d}"))
    return tuple(relations)


def _address(rng: random.Random, use: str, start: date, end: date | None = None, text: str = "") -> Address:
    town, county, area, districts = rng.choice(POST_TOWNS)
    street = f"{rng.choice(_FAMILY)} {rng.choice(STREET_KINDS)}"
    lines = [f"{rng.randint(1, 220)} {street}"]
    if rng.random() < 0.2:
        lines.insert(0, f"Flat {rng.randint(1, 40)}")
    if rng.random() < 0.3:
        lines.append(rng.choice(LOCALITIES))
    lines += [town, county]
    postcode = f"{area}{rng.randint(1, districts)} {rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}" \
               f"{rng.choice(INWARD_LETTERS)}"
    return Address(_hex(rng), use, tuple(lines), postcode, start, end, text)


def _date_between(rng: random.Random, start: date, end: date) -> date:
    span = (end - start).days
    return start + timedelta(days=rng.randint(0, span)) if span > 0 else start


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08X}"


def normalise_postcode(value: str) -> str:
    return value.replace(" ", "").upper()


def _build_index(pop: Population, progress: Callable[[int, int], None] | None) -> SearchIndex:
    index = SearchIndex()
    step = max(1, pop.size // 20)
    for i in range(pop.size):
        person = _make_person(pop, i)
        index.people.append(person)
        for name in person.names:
            _add_once(index.family, fold(name.family), i)
            _add_once(index.family_soundex, soundex(name.family), i)
            if name.given:
                _add_once(index.given_soundex, soundex(name.given[0]), i)
        index.birth[person.birth_date].append(i)
        for address in person.addresses:
            _add_once(index.postcode, normalise_postcode(address.postcode), i)
        for phone in (person.phone, person.mobile):
            if phone:
                index.phone[phone.replace(" ", "")].append(i)
        if person.email:
            index.email[person.email.lower()].append(i)
        if progress and (i + 1) % step == 0:
            progress(i + 1, pop.size)
    index.families = sorted(index.family)
    index.birth_dates = sorted(index.birth)
    return index


def _add_once(keyed: dict[str, list[int]], key: str, i: int) -> None:
    entries = keyed[key]
    if not entries or entries[-1] != i:  # a person's names often share a family name: list each person once
        entries.append(i)


def fold(text: str) -> str:
    """Case- and accent-insensitive form for name comparison (Kociński ~ KOCINSKI, Attsön ~ ATTSON)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).upper()


def soundex(name: str) -> str:
    """The Soundex key PDS's fuzzy search uses for homophones (Smith, Smyth, Smythe: S530)."""
    letters = "".join(c for c in fold(name) if "A" <= c <= "Z")
    return jellyfish.soundex(letters) if letters else ""
