"""Short-form prescription ids: the MOD 37-2 check character as live computes it, over the specification's own ids
(an outside reference) and ids altered one character at a time; the errors name what is wrong."""

from __future__ import annotations

import json
import re

import pytest

from sandbox.services.eps.prescription_ids import (
    CHECK_CHARACTERS,
    check_character,
    is_valid_short_form,
    long_form_problem,
    new_short_form,
    short_form_problem,
)
from tests.conftest import spec_path

ORDER_NUMBER = "https://fhir.nhs.uk/Id/prescription-order-number"


def published_ids() -> list[str]:
    """Every short-form id the specification's examples carry."""
    folder = spec_path("eps-fhir", "examples")
    found: set[str] = set()
    pattern = re.compile(r'"system":\s*"' + re.escape(ORDER_NUMBER) + r'",\s*"value":\s*"([^"]+)"')
    for path in folder.rglob("*.json"):
        found.update(pattern.findall(path.read_text()))
    return sorted(found)


def test_the_specifications_ids_are_valid():
    ids = published_ids()
    assert len(ids) >= 15
    for value in ids:
        assert short_form_problem(value) is None, value


def test_a_plus_check_character_is_valid():
    # the value 36 is '+' (ISO 7064's '*'), as one published id shows
    assert check_character("507FE8-A83008-4A859") == "+"
    assert is_valid_short_form("507FE8-A83008-4A859+")


def test_a_wrong_check_character_names_the_expected_one():
    problem = short_form_problem("24F5DA-A83008-7EFE6Y")
    assert problem == ("Prescription id 24F5DA-A83008-7EFE6Y has check character 'Y'; for 24F5DA-A83008-7EFE6 "
                       "it must be 'Z'.")


@pytest.mark.parametrize("value", ["24F5DA-A83008-7EFE6Z", "76787C-C81007-00001G", "A0548B-A99968-451485"])
def test_every_other_check_character_is_refused(value):
    for wrong in CHECK_CHARACTERS.replace(value[-1], ""):
        problem = short_form_problem(value[:-1] + wrong)
        assert problem is not None and f"it must be '{value[-1]}'" in problem


@pytest.mark.parametrize("position", [0, 3, 5, 7, 12, 14, 18])
def test_changing_any_character_of_the_body_breaks_the_check(position):
    value = "24F5DA-A83008-7EFE6Z"
    for replacement in "0123456789ABCDEF":
        altered = value[:position] + replacement + value[position + 1:]
        if altered != value:
            # MOD 37-2 catches every single-character substitution
            assert short_form_problem(altered) is not None, altered


def test_swapping_adjacent_characters_breaks_the_check():
    value = "24F5DA-A83008-7EFE6Z"
    body = value.replace("-", "")[:-1]
    for i in range(len(body) - 1):
        if body[i] == body[i + 1]:
            continue
        swapped = body[:i] + body[i + 1] + body[i] + body[i + 2:]
        candidate = f"{swapped[:6]}-{swapped[6:12]}-{swapped[12:]}Z"
        assert short_form_problem(candidate) is not None, candidate


def test_lower_case_is_refused_with_the_upper_case_form():
    assert short_form_problem("24f5da-a83008-7efe6z") == (
        "Prescription id 24f5da-a83008-7efe6z must be in upper case: 24F5DA-A83008-7EFE6Z.")


@pytest.mark.parametrize("value", ["24F5DA-A83008-7EFE6", "24F5DA-A83008-7EFE6ZZ", "24F5DAA83008-7EFE6Z",
                                   "24F5DAA830087EFE6Z", "24F5DA_A83008_7EFE6Z", "24F5DA-A83008-7E+E6Z",
                                   "24F5DA-A830é8-7EFE6Z", " 24F5DA-A83008-7EFE6Z", "24F5DA-A83008-7EFE6Z\n"])
def test_wrong_shapes_are_refused_with_the_expected_shape(value):
    problem = short_form_problem(value)
    assert problem is not None and "three blocks of six characters" in problem


@pytest.mark.parametrize("value", [None, "", 12345, ["24F5DA-A83008-7EFE6Z"], {"value": "x"}])
def test_anything_not_a_string_is_refused(value):
    assert "such as 24F5DA-A83008-7EFE6Z" in short_form_problem(value)


def test_check_character_refuses_what_is_not_an_id_body():
    with pytest.raises(ValueError, match="17 characters"):
        check_character("24F5DA-A83008")


def test_new_ids_are_valid_and_carry_the_ods_code_and_sequence():
    for sequence in (0, 1, 0xABCDE, 0xFFFFF, 0x100000):
        value = new_short_form("A83008", sequence)
        assert short_form_problem(value) is None, value
        assert value[7:13] == "A83008"
        assert value[14:19] == f"{sequence % 0x100000:05X}"
        assert re.fullmatch(r"[0-9A-F]{6}", value[:6])


def test_short_ods_codes_are_zero_padded():
    value = new_short_form("Y1234", 7)
    assert value[7:13] == "0Y1234" and is_valid_short_form(value)


def test_many_new_ids_are_all_valid_and_distinct():
    ids = {new_short_form("FX123") for _ in range(500)}
    assert len(ids) > 490
    assert all(is_valid_short_form(value) for value in ids)


def test_long_form_ids_are_uuids():
    example = json.loads(spec_path("eps-fhir", "examples", "primary-care", "acute", "nominated-pharmacy",
                                   "medical-prescriber", "1-Process-Request-Send-200_OK.json").read_text())
    uuids = re.findall(r'"system":\s*"https://fhir.nhs.uk/Id/prescription",\s*"value":\s*"([^"]+)"',
                       json.dumps(example, indent=1))
    assert uuids and all(long_form_problem(value) is None for value in uuids)
    assert "not a long-form prescription id" in long_form_problem("24F5DA-A83008-7EFE6Z")
    assert long_form_problem(None) is not None
