"""The keys PDS search narrows candidates by, as the population index stores them and queries look them up."""

from __future__ import annotations

import functools
import unicodedata

import jellyfish

# The key families of the index, in the order person_keys() returns them.
KEY_TABLES = ("family", "family_soundex", "given_soundex", "postcode", "phone", "email")
# Gender as one byte per patient; 0 for a minimal record, whose gender search never sees (it matches no gender).
GENDER_CODES = {"female": 1, "male": 2, "other": 3, "unknown": 4}


def fold(text: str) -> str:
    """Case- and accent-insensitive form for name comparison (Kociński ~ KOCINSKI, Attsön ~ ATTSON)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).upper()


def soundex(name: str) -> str:
    """The Soundex key PDS's fuzzy search uses for homophones (Smith, Smyth, Smythe: S530)."""
    letters = "".join(c for c in fold(name) if "A" <= c <= "Z")
    return jellyfish.soundex(letters) if letters else ""


def normalise_postcode(value: str) -> str:
    return value.replace(" ", "").upper()


def phone_key(value: str) -> str:
    return "".join(c for c in value if c.isdigit() or c == "+")


# The population's names come from fixed lists, so their folded and Soundex forms are worth remembering while an
# index is built (a bounded cache: queries never go through these).
_folded_name = functools.lru_cache(maxsize=1 << 15)(fold)
_soundex_name = functools.lru_cache(maxsize=1 << 15)(soundex)


def person_keys(person) -> tuple[set[str], ...]:
    """A person's keys for each of KEY_TABLES: every name they have held (current and historic), every address,
    phone and e-mail. A superset of what any search can match them by, so narrowing by them loses no match."""
    families, family_sounds, given_sounds = set(), set(), set()
    for name in person.names:
        families.add(_folded_name(name.family))
        family_sounds.add(_soundex_name(name.family))
        if name.given:
            given_sounds.add(_soundex_name(name.given[0]))
    postcodes = {normalise_postcode(a.postcode) for a in person.addresses}
    phones = {phone_key(p) for p in (person.phone, person.mobile) if p}
    emails = {person.email.lower()} if person.email else set()
    return families, family_sounds, given_sounds, postcodes, phones, emails


def gender_code(person) -> int:
    return 0 if person.kind == "minimal" else GENDER_CODES.get(person.gender, 0)
