"""The pytest plugin, as a supplier's suite meets it: installed through its entry point, run in a fresh pytest."""

from __future__ import annotations

import json
import re

import pytest

pytest_plugins = ["pytester"]

SUPPLIER_TESTS = '''
import json
import re
import urllib.request
import uuid

import pytest
import requests

PATIENT = "/personal-demographics/FHIR/R4/Patient/9000000009"


def headers(**extra):
    return {"X-Request-ID": str(uuid.uuid4()), "Authorization": "Bearer t", **extra}


def test_good_read(spine):
    response = requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=headers())
    assert response.json()["id"] == "9000000009"
    assert spine.failures == [] and spine.findings


def test_bad_request_id(spine):
    assert requests.get(spine.url + PATIENT, headers=headers(**{"X-Request-ID": "abc"})).status_code == 400
    assert [f.requirement for f in spine.failures] == ["PDS-HDR-002"]


def test_each_test_has_its_own_session(spine):
    assert re.fullmatch(r"t0003-[0-9a-f]{6}-test_supplier.py-test_each_test_has_its_own_session", spine.session)
    assert spine.exchanges == []


@pytest.mark.spine(base_urls=["http://pds.gateway.test/api"])
def test_marker_options(spine):
    assert requests.get("http://pds.gateway.test/api" + PATIENT, headers=headers()).ok


def test_real_server_for_clients_without_requests(spine_server):
    request = urllib.request.Request(spine_server.url + PATIENT, headers=headers(**spine_server.headers))
    with urllib.request.urlopen(request) as answer:
        assert json.load(answer)["id"] == "9000000009"
    assert len(spine_server.exchanges) == 1 and spine_server.failures == []
    urllib.request.urlopen(urllib.request.Request(spine_server.url + PATIENT, headers=headers()))  # no session
'''


@pytest.fixture
def supplier(pytester):
    pytester.makepyfile(test_supplier=SUPPLIER_TESTS)
    return pytester


def _report(path) -> dict:
    return json.loads((path / "spine-sandbox-report.json").read_text())


def test_fixtures_and_the_run_report(supplier):
    result = supplier.runpytest_subprocess("--spine-report", "reports", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*= Spine Sandbox =*", "verdict fail: 5 exchanges in 6 sessions, findings fail=1*",
                                 "report: *spine-sandbox-report.json"])
    report = _report(supplier.path / "reports")
    assert re.fullmatch(r"t0001-[0-9a-f]{6}-test_supplier.py-test_good_read", report["sessions"][0])
    assert report["sessions"][-1] == "default"  # the server's traffic that named no session
    assert report["totals"]["exchanges"] == 5
    [failure] = report["failures"]
    assert failure["requirement"] == "PDS-HDR-002" and failure["session"].endswith("test_supplier.py-test_bad_request_id")


def test_a_plan_judges_the_run(supplier):
    supplier.path.joinpath("plan.yaml").write_text("id: read-only\nscenarios: [pds-get-patient-exists]\n"
                                                   "requirements: [PDS-HDR-001, PDS-GET-001]\n")
    result = supplier.runpytest_subprocess("--spine-plan", "plan.yaml", "--spine-report", "out",
                                           "-k", "good_read", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["verdict pass: 1 exchanges in 1 sessions*, plan read-only"])
    assert _report(supplier.path / "out")["plan"]["id"] == "read-only"


def test_an_unknown_plan_stops_the_run_with_a_clear_error(supplier):
    result = supplier.runpytest_subprocess("--spine-plan", "nope", "--spine-report", "out", "-k", "good_read")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*--spine-plan: no assurance plan 'nope'*"])
    assert not (supplier.path / "out").exists()


def test_no_report_without_the_option_and_no_cost_without_the_fixtures(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("--spine-report", "out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no report written to out: no test used the spine or spine_server fixture"])
    assert not (pytester.path / "out").exists()


def test_settings_can_be_overridden_in_a_conftest(pytester):
    pytester.makeconftest('''
import pytest
from sandbox.settings import Settings

@pytest.fixture(scope="session")
def spine_settings(tmp_path_factory):
    return Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("mine"), seed=7, population=500)
''')
    pytester.makepyfile(test_seed='''
import requests

def test_seed(spine):
    health = requests.get(spine.url + "/_sandbox/health").json()
    assert health["population"] == {"seed": 7, "size": 500, "indexed": False}
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
