"""Synthetic people: patient i is made on its own in O(1); the search index is built once per seed and size, kept
in a cache folder and memory-mapped (sandbox/synthetic/index_build.py)."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

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
from sandbox.synthetic.search_keys import fold, normalise_postcode, soundex  # noqa: F401 - importers use these

if TYPE_CHECKING:
    from sandbox.synthetic.index_file import PopulationIndex

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


_SHARED: dict[tuple[int, int], Population] = {}
_SHARED_LOCK = threading.Lock()
# Persons made recently, per population: a search judges the same few candidates again as a client pages or
# retries, and a Person is ~2 KB, so a few thousand cost a few MB.
PERSON_CACHE = 4096


class Population:
    """Deterministic per seed. `person(i)` costs the same whatever the size; `index` is opened (or built) once, on
    demand, from `cache_dir` (default: $XDG_CACHE_HOME/spine-sandbox/population)."""

    def __init__(self, seed: int = 42, size: int = 10_000, cache_dir: Path | None = None):
        if not 1 <= size <= POPULATION_CAPACITY:
            raise ValueError(f"population size must be 1..{POPULATION_CAPACITY}, not {size}")
        self.seed = seed
        self.size = size
        self.cache_dir = cache_dir
        self._index: PopulationIndex | None = None
        self._lock = threading.Lock()
        self._practices = _practice_codes(seed)
        self._person = functools.lru_cache(maxsize=PERSON_CACHE)(functools.partial(make_person, self))

    @classmethod
    def shared(cls, seed: int, size: int) -> Population:
        """One population per seed and size in this process. Its index is a memory-mapped file, so forked worker
        processes share the parent's mapping, and any other process maps the same file."""
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
        return self._person(index)

    def __iter__(self) -> Iterator[Person]:
        return (self.person(i) for i in range(self.size))

    def of_kind(self, kind: str) -> Iterator[Person]:
        return (self.person(i) for i in range(self.size) if self.kind(i) == kind)

    # --- searching -------------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._index is not None

    @property
    def index_cached(self) -> bool:
        """Whether the index file is already in the cache folder (so index() opens rather than builds it)."""
        from sandbox.synthetic.index_build import is_cached

        return self._index is not None or is_cached(self.seed, self.size, self._cache_folder())

    def index(self, progress: Callable[[int, int], None] | None = None) -> PopulationIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    from sandbox.synthetic.index_build import load_or_build

                    self._index = load_or_build(self.seed, self.size, self._cache_folder(), progress)
        return self._index

    def _cache_folder(self) -> Path:
        from sandbox.synthetic.index_build import cache_folder

        return self.cache_dir if self.cache_dir is not None else cache_folder()


def _practice_codes(seed: int) -> tuple[str, ...]:
    rng = random.Random(f"practices:{seed}")
    letters = "ABCDEFGHJKLMNPY"
    return tuple(f"{rng.choice(letters)}{rng.randint(81, 89)}{rng.randint(0, 999):03d}" for _ in range(300))


def make_person(pop: Population, index: int) -> Person:
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


_make_person = make_person  # the name tests and tools have used


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
