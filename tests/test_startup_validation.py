"""Operation ids are checked at start-up: a typo anywhere one is named stops the start with one line naming the file
and the service's known operations, instead of silently switching a scenario, a check or an answer off."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from flask import Blueprint

from sandbox.app import create_app
from sandbox.cli import main
from sandbox.conformance.checks import CheckSet
from sandbox.runtime import Sandbox, StartupError
from sandbox.services import discover
from sandbox.web.pipeline import operation
from tests.conftest import ROOT, TEST_POPULATION, free_port

TYPO = """- id: my-typo
  service: pds
  title: A scenario with a typo in its operation
  trigger: {operation: get-patinet}
  response: {status: 404}
"""
PDS_KNOWN = ("known: create-patient, get-patient, get-related-people, patch-patient, process-birth-details, "
             "search-coverage, search-patients, update-coverage")


def service(name: str):
    return next(s for s in discover() if s.name == name)


@pytest.fixture
def typo_folder(tmp_path):
    folder = tmp_path / "extra" / "pds"
    folder.mkdir(parents=True)
    (folder / "foo.yaml").write_text(TYPO)
    return tmp_path / "extra"


def expected_line(folder) -> str:
    return (f"{folder / 'pds' / 'foo.yaml'} (scenario 1, 'my-typo'): field 'trigger.operation': operation "
            f"'get-patinet' is not a pds operation; {PDS_KNOWN}")


def test_cli_scenarios_refuses_a_scenario_folder_with_a_typo(typo_folder):
    result = CliRunner().invoke(main, ["scenarios", "--scenarios", str(typo_folder)])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.endswith(expected_line(typo_folder))


def test_serve_refuses_to_start_naming_the_file(typo_folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), "--population", str(TEST_POPULATION), "--scenarios",
                           str(typo_folder)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert [line for line in lines if "get-patinet" in line] == [lines[-1]]
    assert lines[-1].endswith(expected_line(typo_folder))
    assert "Traceback" not in done.stderr and "ready" not in done.stderr.lower()


def test_a_check_registered_for_an_unknown_operation_stops_the_start(settings, monkeypatch):
    checks = CheckSet("pds")
    checks._checks = list(service("pds").checks)

    @checks.register("PDS-HDR-001", operations=("get-patient", "serch-patients"))
    def typo_check(request, context):
        return []

    monkeypatch.setattr(service("pds"), "checks", checks)
    with pytest.raises(StartupError) as error:
        Sandbox.build(settings)
    assert str(error.value) == (f"tests/test_startup_validation.py: check typo_check: operation 'serch-patients' is "
                                f"not a pds operation; {PDS_KNOWN}")


def test_an_hl7v3_interaction_missing_from_the_catalogue_stops_the_start(settings, monkeypatch):
    scr = service("scr")
    monkeypatch.setattr(scr, "hl7v3", {**scr.hl7v3, "QUPC_IN160101UK50": scr.hl7v3["QUPC_IN160101UK05"]})
    with pytest.raises(StartupError, match=r"^sandbox/services/scr/__init__.py: hl7v3: interaction "
                                           r"'QUPC_IN160101UK50' is not in the interaction catalogue"):
        Sandbox.build(settings)


def test_a_route_naming_an_unknown_operation_stops_the_start(settings, monkeypatch):
    routes = Blueprint("pds-typo", __name__)

    @routes.get("/Patient/<nhs_number>")
    @operation("get-patinet")
    def get_patient(ex, nhs_number):
        return {}

    monkeypatch.setattr(service("pds"), "blueprint", routes)
    with pytest.raises(StartupError) as error:
        create_app(settings)
    assert str(error.value) == (f"tests/test_startup_validation.py: route pds.get_patient: operation 'get-patinet' "
                                f"is not a pds operation; {PDS_KNOWN}")


def test_spine_operations_are_the_interaction_catalogue(settings, tmp_path):
    """Spine resolves its operation per message; scenarios name interaction ids, checked against the catalogue, and
    the line says how many there are rather than listing them all."""
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "typo.yaml").write_text("id: my-spine-typo\nservice: spine\ntitle: Typo in an interaction\n"
                                      "trigger: {operation: QUPA_IN000006UK20}\n")
    with pytest.raises(StartupError, match=r"typo.yaml: field 'trigger.operation': operation 'QUPA_IN000006UK20' is "
                                           r"not a spine operation; known: ACCESS_TO_SERVICE, .*, … \(\d+ in all\)$"):
        Sandbox.build(settings.replace(scenarios=(folder,)))


def test_every_built_in_reference_is_declared(settings):
    for each in discover():
        assert each.undeclared_operations() == [], each.name
    create_app(settings).extensions["sandbox"].close()  # routes too
