"""Identifiers that look real and are never real: NHS numbers from the range never issued to people."""

from __future__ import annotations

import re

import nhs_number

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

# 999 000 000 0 - 999 999 999 9 is reserved by NHS England for test patients and never issued to a person.
SYNTHETIC_PREFIX = 999_000_000
POPULATION_CAPACITY = 400_000  # stems 999 000 000 .. 999 799 999 (two per patient)
ALLOCATION_START = 999_800_000  # numbers allocated by create-patient: 999 800 000 .. 999 899 999
SCENARIO_START = 999_900_000  # numbers dedicated to scenarios: 999 900 000 .. 999 999 999

_TEN_DIGITS = re.compile(r"^[0-9]{10}$")


def is_valid_nhs_number(value: str) -> bool:
    return bool(_TEN_DIGITS.match(value or "")) and nhs_number.is_valid(value)


def with_check_digit(stem: int) -> str | None:
    """The NHS number for a nine-digit stem, or None where Modulus 11 gives no valid check digit (10)."""
    digits = f"{stem:09d}"
    check = nhs_number.calculate_checksum(digits)
    return None if check == 10 else digits + str(check)


def patient_number(index: int) -> str:
    """Patient i's NHS number, in O(1): stem 2i, or 2i+1 when 2i has no check digit (they never both fail,
    because the last stem digit carries weight 2 and so moves the remainder)."""
    if not 0 <= index < POPULATION_CAPACITY:
        raise ValueError(f"patient index {index} is outside 0..{POPULATION_CAPACITY - 1}")
    stem = SYNTHETIC_PREFIX + 2 * index
    return with_check_digit(stem) or with_check_digit(stem + 1)  # type: ignore[return-value]


def patient_index(number: str) -> int | None:
    """The inverse of patient_number: the index whose number this is, or None."""
    if not is_valid_nhs_number(number):
        return None
    index = (int(number[:9]) - SYNTHETIC_PREFIX) // 2
    if 0 <= index < POPULATION_CAPACITY and patient_number(index) == number:
        return index
    return None


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
