"""A population of millions: NHS numbers beyond 400,000, the search index built once per seed and size into a
cache folder and memory-mapped, rebuilt when stale, and searches narrowed by it before any person is made."""

from __future__ import annotations

import json
import subprocess
import sys

import nhs_number
import pytest
from click.testing import CliRunner

from sandbox.cli import main
from sandbox.services.pds import fixtures, published_data
from sandbox.services.pds.matching import candidates, search_population
from sandbox.services.pds.search_params import parse_search
from sandbox.synthetic import index_build
from sandbox.synthetic.identifiers import (
    ALLOCATION_START,
    FIRST_BLOCK_PATIENTS,
    POPULATION_CAPACITY,
    patient_index,
    patient_number,
)
from sandbox.synthetic.index_build import index_path, made_keys
from sandbox.synthetic.key_generator import generated_keys
from sandbox.synthetic.population import KINDS, Population
from sandbox.synthetic.search_keys import KEY_TABLES, fold
from tests.conftest import ROOT

SIZE = 2_000


# --- NHS numbers beyond 400,000 ----------------------------------------------------------------------------------
def _high_indices() -> list[int]:
    """Both ends of the second block and a stride through it (every number would take seconds, not milliseconds)."""
    return sorted({*range(FIRST_BLOCK_PATIENTS, FIRST_BLOCK_PATIENTS + 2_000), *range(FIRST_BLOCK_PATIENTS,
                   POPULATION_CAPACITY, 997), *range(POPULATION_CAPACITY - 2_000, POPULATION_CAPACITY)})


def test_numbers_past_400000_are_valid_test_numbers_that_round_trip_and_collide_with_nothing():
    published = {*published_data.patient_numbers(), *fixtures.CLIENT_EXAMPLE_NUMBERS}
    numbers = {}
    for index in _high_indices():
        number = patient_number(index)
        assert nhs_number.is_valid(number, for_region=nhs_number.REGION_SYNTHETIC), number  # never issued
        assert patient_index(number) == index
        assert number not in published
        assert int(number[:9]) < ALLOCATION_START  # clear of the allocation and scenario ranges (999 8xx, 999 9xx)
        numbers[number] = index
    assert len(numbers) == len(_high_indices())  # unique
    assert not set(numbers) & {patient_number(i) for i in range(0, FIRST_BLOCK_PATIENTS, 7)}
    assert all(published_number[:3] not in {f"99{d}" for d in range(2, 9)} for published_number in published)


def test_the_first_400000_numbers_are_the_ones_they_always_were():
    assert [patient_number(i) for i in (0, 1, 7, 17, 399_999)] == [
        "9990000018", "9990000026", "9990000158", "9990000344", "9997999983"]
    assert patient_index("9998000009") is None  # the first allocated number is nobody in the population
    with pytest.raises(ValueError):
        patient_number(POPULATION_CAPACITY)


def test_a_patient_past_400000_is_made_on_its_own_with_its_number():
    people = Population(42, 1_000_000)
    person = people.person(654_321)
    assert person.index == 654_321 and person.nhs_number == patient_number(654_321)
    assert people.by_nhs_number(person.nhs_number) == person


@pytest.mark.parametrize("args", [["patients", "list", "--population", str(POPULATION_CAPACITY + 1)],
                                  ["serve", "--population", "5000000", "--port", "1"]])
def test_a_population_beyond_the_cap_is_one_line_naming_the_cap(args, tmp_path):
    result = CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spine-sandbox: population "), result.output
    assert f"it must be 1..{POPULATION_CAPACITY}" in lines[0] and "Traceback" not in result.output


# --- the fast key generator --------------------------------------------------------------------------------------
def test_the_key_generator_gives_exactly_the_keys_of_the_person_made():
    people = Population(7, 1_000_000)
    indices = [*range(3_000), *range(FIRST_BLOCK_PATIENTS, FIRST_BLOCK_PATIENTS + 1_000)]
    assert {people.kind(i) for i in indices} == set(KINDS)
    for index in indices:
        assert generated_keys(people, index) == made_keys(people, index), (index, people.kind(index))


# --- the index file ----------------------------------------------------------------------------------------------
def test_the_index_holds_every_key_of_every_patient(tmp_path):
    people = Population(3, SIZE, cache_dir=tmp_path)
    index = people.index()
    for i in range(0, SIZE, 7):
        keys, birth, gender = made_keys(people, i)
        for name, table_keys in zip(KEY_TABLES, keys, strict=True):
            assert all(i in index.tables[name].get(key) for key in table_keys), (i, name)
        assert index.birth_of[i] == birth and index.gender_of[i] == gender
        assert i in index.birth.get(people.person(i).birth_date)
    assert sum(len(index.birth.get(people.person(i).birth_date)) > 0 for i in range(SIZE)) == SIZE
    assert list(index.family) == sorted(index.family)


def test_the_index_is_built_once_per_seed_and_size_and_then_reused(tmp_path, monkeypatch):
    builds = []
    build = index_build.build_sections
    monkeypatch.setattr(index_build, "build_sections", lambda *a, **k: builds.append(a) or build(*a, **k))
    Population(5, SIZE, cache_dir=tmp_path).index()
    path = index_path(tmp_path, 5, SIZE)
    first = path.stat()
    again = Population(5, SIZE, cache_dir=tmp_path)
    assert again.index_cached
    progress = []
    again.index(lambda done, total: progress.append((done, total)))
    assert len(builds) == 1 and progress == [(SIZE, SIZE)]
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (first.st_mtime_ns, first.st_ino)
    Population(6, SIZE, cache_dir=tmp_path).index()  # another seed is another file
    assert len(builds) == 2 and index_path(tmp_path, 6, SIZE).is_file()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "another-population", "flipped-byte"])
def test_a_stale_or_damaged_index_file_is_rebuilt_not_trusted(tmp_path, damage):
    path = index_path(tmp_path, 5, SIZE)
    Population(5, SIZE, cache_dir=tmp_path).index()
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an index at all" * 100)
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "another-population":
        Population(9, SIZE, cache_dir=tmp_path).index()
        path.write_bytes(index_path(tmp_path, 9, SIZE).read_bytes())
    else:
        middle = len(good) // 2
        path.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1:])
    people = Population(5, SIZE, cache_dir=tmp_path)
    person = people.person(SIZE // 2)
    assert SIZE // 2 in people.index().birth.get(person.birth_date)
    assert path.read_bytes() == good  # rebuilt, byte for byte the same


def test_processes_building_the_same_index_at_once_all_end_up_with_a_valid_file(tmp_path):
    build = ("import sys; from pathlib import Path; from sandbox.synthetic.population import Population; "
             f"i = Population(11, {SIZE}, cache_dir=Path(sys.argv[1])).index(); print(i.size)")
    racers = [subprocess.Popen([sys.executable, "-c", build, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True) for _ in range(3)]
    assert [r.communicate(timeout=120)[0].strip() for r in racers] == [str(SIZE)] * 3
    assert Population(11, SIZE, cache_dir=tmp_path).index().size == SIZE
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_without_a_writable_cache_folder_the_index_is_held_in_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    people = Population(5, SIZE, cache_dir=blocker / "cache")
    assert people.index().path is None and people.index().size == SIZE


# --- searching through the index ---------------------------------------------------------------------------------
def _query(**params):
    query, findings = parse_search({k: v if isinstance(v, list) else [v] for k, v in params.items()})
    assert query is not None, [f.message for f in findings]
    return query


def test_a_search_makes_only_the_patients_every_key_it_names_allows(tmp_path):
    people = Population(42, SIZE, cache_dir=tmp_path)
    index = people.index()
    person = next(people.of_kind("standard"))
    q = _query(family=person.family, birthdate=f"eq{person.birth_date}", gender=person.gender)
    found = list(candidates(index, q))
    family = index.family.get(fold(person.family))
    assert person.index in found and len(found) <= min(len(family), len(index.birth.get(person.birth_date)))
    assert all(i in family and index.birth_of[i] == person.birth_date.toordinal() for i in found)
    made = people._person.cache_info().misses
    assert [m.nhs_number for m in search_population(people, q, set())] == [person.nhs_number]
    assert people._person.cache_info().misses - made <= len(found)


def test_wildcard_and_range_searches_scan_neighbouring_keys(tmp_path):
    people = Population(42, SIZE, cache_dir=tmp_path)
    index = people.index()
    person = next(people.of_kind("standard"))
    q = _query(family=person.family[:3] + "*", birthdate=[f"ge{person.birth_date.year}-01-01",
                                                          f"le{person.birth_date.year}-12-31"])
    found = set(candidates(index, q))
    expected = {i for i in range(SIZE) if people.person(i).birth_date.year == person.birth_date.year
                and any(fold(n.family).startswith(fold(person.family[:3])) for n in people.person(i).names)}
    assert found == expected


def test_the_cli_shows_a_patient_past_400000(tmp_path):
    number = patient_number(450_000)
    result = CliRunner().invoke(main, ["patients", "show", number, "--json", "--population", "500000",
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == number


@pytest.mark.slow
def test_a_million_patients_are_indexed_and_searchable_past_400000(tmp_path):
    people = Population(42, 1_000_000, cache_dir=tmp_path)
    index = people.index()
    assert index.path is not None and index.path.stat().st_size < 120 * 1024 * 1024
    person = next(people.person(i) for i in range(999_000, 1_000_000) if people.kind(i) == "standard")
    q = _query(family=person.family, birthdate=f"eq{person.birth_date}")
    assert person.nhs_number in {m.nhs_number for m in search_population(people, q, set())}
    assert len(list(candidates(index, q))) < 100
