"""The synthetic population: deterministic, valid, never-issued NHS numbers, special kinds in known shares."""

from __future__ import annotations

import json
from collections import Counter

import nhs_number
import pytest

from sandbox.synthetic import KINDS, Population
from sandbox.synthetic.fhir import patient_resource
from sandbox.synthetic.identifiers import patient_index, patient_number


def dump(pop: Population, count: int) -> str:
    return json.dumps([patient_resource(pop.person(i)) for i in range(count)], sort_keys=True)


def test_same_seed_gives_identical_records_and_another_seed_does_not():
    assert dump(Population(7, 500), 500) == dump(Population(7, 500), 500)
    assert dump(Population(7, 500), 500) != dump(Population(8, 500), 500)


def test_patient_i_on_its_own_equals_patient_i_from_the_index():
    pop = Population(3, 1500)
    alone = [pop.person(i) for i in (0, 777, 1499)]
    pop.index()
    assert alone == [pop.person(i) for i in (0, 777, 1499)]


def test_nhs_numbers_are_valid_unique_and_from_the_range_never_issued():
    numbers = [patient_number(i) for i in range(20_000)]
    assert len(set(numbers)) == len(numbers)
    assert all(n.startswith("999") and nhs_number.is_valid(n) for n in numbers)
    assert all(patient_index(n) == i for i, n in enumerate(numbers))
    assert patient_index("9000000009") is None


def test_special_kinds_come_in_their_stated_shares():
    pop = Population(42, 10_000)
    counts = Counter(pop.kind(i) for i in range(pop.size))
    assert counts == {kind: share * 100 for kind, share in KINDS.items()}


@pytest.mark.parametrize("kind", ["restricted", "deceased", "superseded", "minimal", "long-name",
                                  "multi-address", "no-gp"])
def test_each_special_kind_looks_the_part(kind):
    pop = Population(42, 2000)
    person = next(pop.of_kind(kind))
    resource = patient_resource(person)
    if kind == "restricted":
        assert resource["meta"]["security"][0]["code"] == "R"
    elif kind == "deceased":
        assert person.death and resource["deceasedDateTime"]
    elif kind == "superseded":
        assert pop.kind(person.superseded_by) == "standard"
    elif kind == "minimal":
        assert set(resource) == {"resourceType", "id", "identifier", "meta", "name", "birthDate"}
    elif kind == "long-name":
        assert len(" ".join(person.given)) > 25 or len(person.family) > 20
    elif kind == "multi-address":
        assert {a["use"] for a in resource["address"]} >= {"home", "temp", "billing"}
    elif kind == "no-gp":
        assert "generalPractitioner" not in resource


def test_contact_details_are_from_reserved_ranges():
    pop = Population(42, 300)
    for person in pop:
        assert not person.phone or person.phone.startswith("01632 960")
        assert not person.mobile or person.mobile.startswith("07700 900")
        assert not person.email or person.email.endswith("@example.com")
