"""A patient's search keys without making the patient: the same draws from the same generator as make_person,
in the same order, keeping only what the index files them by. About twice as fast as making the person, which
is what a million-patient index build spends its time on.

It must stay in step with make_person (sandbox/synthetic/population.py): tests compare the two over thousands of
patients of every kind, and every index build compares them on the first hundred patients of each chunk (every
kind, since kinds cycle through each hundred) and falls back to making people if they ever differ.

random.Random's choice(seq) is seq[_randbelow(len(seq))], randint(a, b) is a + _randbelow(b - a + 1) and
choices(population, weights) bisects random() * total over the running weights; calling _randbelow directly
draws exactly what they draw.
"""

from __future__ import annotations

import bisect
import random

from sandbox.synthetic.places import (
    INWARD_LETTERS,
    LOCALITIES,
    LONG_FAMILY,
    LONG_GIVEN,
    POST_TOWNS,
    STREET_KINDS,
)
from sandbox.synthetic.population import _FAMILY, _FEMALE, _MALE, EPOCH, Population
from sandbox.synthetic.search_keys import GENDER_CODES, fold, normalise_postcode, soundex

_GENDERS = ("female", "male", "other", "unknown")
_GENDER_TOTALS = (49, 98, 99, 100)  # running totals of make_person's weights (49, 49, 1, 1)
_EVERYONE = _FEMALE + _MALE
_EPOCH = EPOCH.toordinal()
_ADULT_DAYS = 18 * 365
_folds: dict[str, str] = {}
_sounds: dict[str, str] = {}

Keys = tuple[tuple[set[str], ...], int, int]  # (person_keys(person), birth ordinal, gender_code(person))


def _fold(name: str) -> str:
    found = _folds.get(name)
    if found is None:
        found = _folds[name] = fold(name)
    return found


def _soundex(name: str) -> str:
    found = _sounds.get(name)
    if found is None:
        found = _sounds[name] = soundex(name)
    return found


def generated_keys(population: Population, index: int) -> Keys:
    """What person_keys, the birth ordinal and gender_code give for make_person(population, index)."""
    rng = random.Random(f"{population.seed}:{index}")
    below, uniform, bits = rng._randbelow, rng.random, rng.getrandbits
    kind = population.kind(index)
    gender = _GENDERS[bisect.bisect(_GENDER_TOTALS, uniform() * 100.0, 0, 3)]
    first_names = _FEMALE if gender == "female" else _MALE if gender == "male" else _EVERYONE
    age_days = below(100 * 365 + 1)
    adult = age_days >= _ADULT_DAYS
    family = _FAMILY[below(len(_FAMILY))]
    given = first_names[below(len(first_names))]
    if uniform() < 0.4:
        below(len(first_names))  # a second given name
    if kind == "long-name":
        given = LONG_GIVEN[below(len(LONG_GIVEN))]
        below(len(LONG_GIVEN))
        below(len(LONG_GIVEN))
        family = LONG_FAMILY[below(len(LONG_FAMILY))]
    if adult and gender == "female":
        below(3)  # Mrs, Ms or Miss
    since_days = below(age_days + 1) if age_days > 0 else 0  # days from birth to the usual name
    bits(32)
    families, givens = [family], [given]
    if kind == "minimal":
        return _keys(families, givens, (), (), ()), _EPOCH - age_days, 0
    if adult and gender == "female" and uniform() < 0.25:
        bits(32)
        families.append(_FAMILY[below(len(_FAMILY))])  # a maiden name
    if uniform() < 0.05:
        bits(32)
        givens.append(given[:3])  # a nickname
    to_epoch = age_days - since_days  # days from the usual name to the epoch
    postcodes = [_postcode(below, uniform, bits)]
    if uniform() < 0.3:
        postcodes.append(_postcode(below, uniform, bits))
    if kind == "multi-address":
        if to_epoch > 0:
            below(to_epoch + 1)  # the temporary address's start
        postcodes.append(_postcode(below, uniform, bits))
        postcodes.append(_postcode(below, uniform, bits))
    phones = [f"01632960{below(1000):03d}"]
    mobile = f"07700900{below(1000):03d}"
    email = f"{given.lower()}.{family.lower().replace(' ', '')}{1 + below(99)}@example.com"
    if kind != "no-gp":
        below(len(population._practices))
    if kind == "deceased":
        if age_days - 1 > 0:
            below(age_days)  # the day of death
        below(24)
        below(60)
    if kind not in ("restricted", "invalidated"):
        _relations(below, uniform, bits, adult)
    below(5)  # the record's version
    if uniform() < 0.7:
        phones.append(mobile)
    emails = (email.lower(),) if uniform() < 0.6 else ()
    return _keys(families, givens, postcodes, phones, emails), _EPOCH - age_days, GENDER_CODES[gender]


def _keys(families, givens, postcodes, phones, emails) -> tuple[set[str], ...]:
    return ({_fold(f) for f in families}, {_soundex(f) for f in families}, {_soundex(g) for g in givens},
            set(postcodes), set(phones), set(emails))


def _postcode(below, uniform, bits) -> str:
    """The draws of population._address; its postcode, normalised."""
    _, _, area, districts = POST_TOWNS[below(len(POST_TOWNS))]
    below(len(_FAMILY))
    below(len(STREET_KINDS))
    below(220)  # the house number
    if uniform() < 0.2:
        below(40)  # a flat
    if uniform() < 0.3:
        below(len(LOCALITIES))
    postcode = f"{area}{1 + below(districts)} {1 + below(9)}{INWARD_LETTERS[below(len(INWARD_LETTERS))]}" \
               f"{INWARD_LETTERS[below(len(INWARD_LETTERS))]}"
    bits(32)
    return normalise_postcode(postcode)


def _relations(below, uniform, bits, adult: bool) -> None:
    """The draws of population._relations."""
    roll = uniform()
    if roll < 0.5:
        return
    if not adult:
        bits(32), bits(32), below(len(_FEMALE)), below(len(_FAMILY)), below(1000)
        return
    bits(32), below(3), bits(32), below(len(_EVERYONE)), below(len(_FAMILY)), below(1000)
    if roll > 0.85:
        bits(32), bits(32), below(len(_MALE)), below(len(_FAMILY)), below(1000)
