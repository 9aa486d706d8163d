"""Identifiers that look real and are never real: NHS numbers from ranges never issued to people."""

from __future__ import annotations

import functools
import re

import nhs_number

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

# No NHS number starting with 9 is issued to a person: NHS England's NHS Number identifier profile (after the NHS
# Data Dictionary's NHS NUMBER) gives the issued ranges as 400 000 000-499 999 999 and 600 000 000-799 999 999
# (England also uses 3xx), and the nhs-number package we depend on marks 9 000 000 000-9 999 999 999 "Not to be
# issued (Synthetic/test patients PDS)" (nhs_number.REGION_SYNTHETIC). NHS England's own test patients live there
# too (the PDS sandbox's 900 000 0009 ... 973 316 2868, the EPS and MHS examples' 944... and 969...), so we keep
# clear of the blocks they use.
#
# Patients 0..399,999 have the numbers they always had, in the well-known 999 test range:
FIRST_BLOCK_START = 999_000_000  # stems 999 000 000 .. 999 799 999 (two per patient)
FIRST_BLOCK_PATIENTS = 400_000
ALLOCATION_START = 999_800_000  # numbers allocated by create-patient: 999 800 000 .. 999 899 999
SCENARIO_START = 999_900_000  # numbers dedicated to scenarios: 999 900 000 .. 999 999 999
# Patients 400,000 and on: stems from 992 000 000 up (at most 998 199 999 at the cap). No published PDS sandbox
# patient (900..., 911..., 969..., 973..., 5...), client example (944..., 945..., 946..., 968..., 969..., 991...),
# allocation or scenario number is in 992 000 000 .. 998 999 999.
SECOND_BLOCK_START = 992_000_000
POPULATION_CAPACITY = 3_500_000
SECOND_BLOCK_END = SECOND_BLOCK_START + 2 * (POPULATION_CAPACITY - FIRST_BLOCK_PATIENTS)  # exclusive
SYNTHETIC_PREFIX = FIRST_BLOCK_START  # the stem of patient 0 (kept for callers that name it)

_TEN_DIGITS = re.compile(r"^[0-9]{10}$")


@functools.lru_cache(maxsize=65536)  # asked of every number in every request; the library's check is slow
def is_valid_nhs_number(value: str) -> bool:
    return bool(_TEN_DIGITS.match(value or "")) and nhs_number.is_valid(value)


def with_check_digit(stem: int) -> str | None:
    """The NHS number for a nine-digit stem, or None where Modulus 11 gives no valid check digit (10)."""
    digits = f"{stem:09d}"
    check = nhs_number.calculate_checksum(digits)
    return None if check == 10 else digits + str(check)


def _first_stem(index: int) -> int:
    if index < FIRST_BLOCK_PATIENTS:
        return FIRST_BLOCK_START + 2 * index
    return SECOND_BLOCK_START + 2 * (index - FIRST_BLOCK_PATIENTS)


def patient_number(index: int) -> str:
    """Patient i's NHS number, in O(1): the block's stem for 2i, or the next stem when 2i has no check digit (they
    never both fail, because the last stem digit carries weight 2 and so moves the remainder)."""
    if not 0 <= index < POPULATION_CAPACITY:
        raise ValueError(f"patient index {index} is outside 0..{POPULATION_CAPACITY - 1}")
    stem = _first_stem(index)
    return with_check_digit(stem) or with_check_digit(stem + 1)  # type: ignore[return-value]


def patient_index(number: str) -> int | None:
    """The inverse of patient_number: the index whose number this is, or None."""
    if not is_valid_nhs_number(number):
        return None
    stem = int(number[:9])
    if FIRST_BLOCK_START <= stem < FIRST_BLOCK_START + 2 * FIRST_BLOCK_PATIENTS:
        index = (stem - FIRST_BLOCK_START) // 2
    elif SECOND_BLOCK_START <= stem < SECOND_BLOCK_END:
        index = FIRST_BLOCK_PATIENTS + (stem - SECOND_BLOCK_START) // 2
    else:
        return None
    return index if patient_number(index) == number else None


def nth_valid_number(start: int, n: int) -> str:
    """The n-th valid NHS number at or after the stem `start` (for allocations and dedicated scenario numbers)."""
    stem, found = start, -1
    while True:
        number = with_check_digit(stem)
        if number is not None:
            found += 1
            if found == n:
                return number
        stem += 1
