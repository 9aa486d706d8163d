"""The pytest plugin, as a supplier's suite meets it: installed through its entry point, run in a fresh pytest."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from sandbox.cli import main
from tests.conftest import ROOT

pytest_plugins = ["pytester"]

HELPERS = '''
import json
import urllib.request
import uuid

import pytest
import requests

PATIENT = "/personal-demographics/FHIR/R4/Patient/9000000009"


def headers(spine, **extra):
    return {"X-Request-ID": str(uuid.uuid4()), **spine.auth_headers, **extra}


def read_over_a_socket(url, extra):
    request = urllib.request.Request(url + PATIENT, headers={"X-Request-ID": str(uuid.uuid4()), **extra})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)
'''

# Tests that hold with and without a plan: evidence is always the test's own.
SUPPLIER_TESTS = HELPERS + '''

def test_good_read(spine):
    response = requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=headers(spine))
    assert response.json()["id"] == "9000000009"
    assert spine.failures == [] and {f.requirement for f in spine.findings} >= {"PDS-HDR-005", "PDS-GET-001"}


def test_bad_request_id(spine):
    response = requests.get(spine.url + PATIENT, headers=headers(spine, **{"X-Request-ID": "abc"}))
    assert response.status_code == 400
    assert [f.requirement for f in spine.failures] == ["PDS-HDR-002"]


def test_evidence_is_the_tests_own(spine):
    assert spine.exchanges == []


@pytest.mark.spine(base_urls=["http://pds.gateway.test/api"])
def test_marker_options(spine):
    assert requests.get("http://pds.gateway.test/api" + PATIENT, headers=headers(spine)).ok


def test_real_server_for_clients_without_requests(spine_server):
    assert read_over_a_socket(spine_server.url, spine_server.auth_headers)["id"] == "9000000009"
    assert read_over_a_socket(spine_server.url, spine_server.headers)["id"] == "9000000009"
    assert len(spine_server.exchanges) == 2
    assert [f.requirement for f in spine_server.failures] == ["PDS-HDR-005"]  # X-Sandbox-Session is no access token
'''


@pytest.fixture
def supplier(pytester):
    pytester.makepyfile(test_supplier=SUPPLIER_TESTS)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")


def test_without_a_plan_each_test_has_a_session_of_its_own(pytester):
    pytester.makepyfile(test_own=HELPERS + '''
import re

def test_named_after_the_test(spine, spine_server):
    assert re.fullmatch(r"t0001-[0-9a-f]{6}-test_own.py-test_named_after_the_test", spine.session)
    assert spine_server.session == spine.session and spine_server.token == spine.token
    assert spine.token.startswith("sst_") and spine.plan is None
    requests.get(spine.url + PATIENT, headers=headers(spine))
    read_over_a_socket(spine_server.url, spine_server.auth_headers)
    assert len(spine.exchanges) == len(spine_server.exchanges) == 2 and spine.failures == []

def test_state_does_not_leak(spine):
    assert spine.session.startswith("t0002-") and spine.exchanges == []

def test_no_report_without_a_plan(spine):
    with pytest.raises(ValueError, match=r"not bound to an assurance plan.*mock_spine\\(plan=…\\).*pds-healthcare-worker"):
        spine.report()
''')
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert "Spine Sandbox" not in result.stdout.str()  # an ordinary run is not told about plans


def test_a_plan_makes_the_run_one_session_and_judges_it(supplier, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the plugin in the pytest subprocess is this checkout's
    result = run(supplier, "--spine-plan", "pds-application-restricted", "--spine-report", "reports",
                 "--spine-supplier", "Acme Health", "--spine-system", "Acme PAS 1.2")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([
        "*= Spine Sandbox =*",
        "verdict fail: plan pds-application-restricted, session sess-* (Acme Health, Acme PAS 1.2)",
        "  failed: PDS-HDR-002, PDS-HDR-005",
        "  no passing evidence yet: *",
        "  awaiting attestation: PDS-GET-003",
        "  steps not exercised: pds-get-sensitive-patient, *",
        "5 exchanges; findings: fail 2, *",
        "report: reports*report.json", "report: reports*report.html", "report: reports*junit.xml",
        "report: reports*summary.md", "report: reports*report.manifest.json"])
    assert result.ret == pytest.ExitCode.OK  # the verdict does not fail the run unless asked to
    # Signed with this machine's sandbox key (pytester's HOME), so `verify` checks it with no options.
    verified = CliRunner().invoke(main, ["verify", str(supplier.path / "reports")])
    assert verified.exit_code == 0 and "Signed by: ed25519:SHA256:" in verified.output, verified.output
    report = json.loads((supplier.path / "reports" / "report.json").read_text())
    meta = report["metadata"]
    assert (meta["supplier"], meta["system"], meta["plan"]["id"]) == ("Acme Health", "Acme PAS 1.2",
                                                                       "pds-application-restricted")
    assert meta["span"]["exchanges"] == 5  # the in-process and the server's traffic, in one session
    assert re.fullmatch(r"sess-[0-9a-f]{12}", meta["session"])
    assert "<testsuite" in (supplier.path / "reports" / "junit.xml").read_text()
    assert (supplier.path / "reports" / "summary.md").read_text().startswith("## Spine Sandbox assurance")


def test_fail_on_verdict_gates_the_run(supplier):
    failing = run(supplier, "--spine-plan", "pds-application-restricted", "--spine-fail-on-verdict", "fail",
                  "-k", "bad_request_id")
    failing.assert_outcomes(passed=1, deselected=4)
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(["verdict fail: *", "no report files written: add --spine-report DIR",
                                  "--spine-fail-on-verdict fail: the run fails because the verdict is fail"])
    incomplete = ("--spine-plan", "pds-application-restricted", "-k", "good_read")
    assert run(supplier, *incomplete, "--spine-fail-on-verdict", "fail").ret == pytest.ExitCode.OK
    strict = run(supplier, *incomplete, "--spine-fail-on-verdict", "incomplete")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*the run fails because the verdict is incomplete"])


def test_a_plan_file_and_the_configuration_file(supplier):
    supplier.path.joinpath("plans-of-ours").mkdir()
    supplier.path.joinpath("plans-of-ours", "read-only.yaml").write_text(
        "id: read-only\ntitle: Reads one patient\nservices: [pds]\nscenarios: [pds-get-patient-exists]\n"
        "requirements: [PDS-HDR-001, PDS-GET-001]\n")
    supplier.makeini("[pytest]\nspine_plan = plans-of-ours/read-only.yaml\nspine_supplier = Acme Health\n")
    result = run(supplier, "--spine-report", "out", "--spine-fail-on-verdict", "incomplete", "-k", "good_read")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["verdict pass: plan read-only, session sess-* (Acme Health, test_a_plan_file_and_the_configuration_file0)",
                                 "  every plan requirement has passing evidence*"])
    assert json.loads((supplier.path / "out" / "report.json").read_text())["verdict"] == "pass"
    # The command line wins over the configuration file; an empty --spine-plan means no plan at all.
    assert "Spine Sandbox" not in run(supplier, "--spine-plan", "", "-k", "good_read").stdout.str()


def test_a_bad_plan_file_is_named_as_the_user_wrote_it(supplier):
    supplier.path.joinpath("mine.yaml").write_text(
        "id: mine\ntitle: Mine\nservices: [pds]\nscenarios: [pds-nope]\nrequirements: [PDS-HDR-001]\n")
    result = run(supplier, "--spine-plan", "mine.yaml", "-k", "good_read")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("no verdict: Spine Sandbox cannot start: mine.yaml: field 'scenarios[0]': unknown scenario 'pds-nope'"
            in result.stdout.str())
    missing = run(supplier, "--spine-plan", "gone.yaml", "-k", "good_read")
    missing.stdout.fnmatch_lines(["*--spine-plan: gone.yaml: no such plan file*"])


def test_an_unknown_plan_stops_the_run_with_a_clear_error(supplier):
    result = run(supplier, "--spine-plan", "nope", "--spine-report", "out", "-k", "good_read")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*--spine-plan: no assurance plan 'nope'; plans: eps-dispenser, eps-prescriber, "
                                 "ers-provider, ers-referrer, mesh-receiving, mesh-sending, pds-application-restricted, pds-healthcare-worker, "
                                 "*spine-pds-hl7v3 (`spine-sandbox plans`)*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (supplier.path / "out").exists()


@pytest.mark.parametrize("options", [("--spine-report", "out"), ("--spine-fail-on-verdict", "fail")])
def test_report_options_without_a_plan_are_a_usage_error(pytester, options):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = run(pytester, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {options[0]} needs an assurance plan to judge the run against: add "
                                 "--spine-plan PLAN (or spine_plan in the pytest configuration). Plans: eps-dispenser, "
                                 "eps-prescriber, ers-provider, ers-referrer, mesh-receiving, mesh-sending, pds-application-restricted, "
                                 "pds-healthcare-worker, *spine-pds-hl7v3 (`spine-sandbox plans`)*"])
    assert "Traceback" not in result.stderr.str()


def test_a_plan_without_any_fixture_use_has_no_verdict(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = run(pytester, "--spine-plan", "pds-healthcare-worker", "--spine-report", "out",
                 "--spine-fail-on-verdict", "fail")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["no verdict: no test used the spine or spine_server fixture, so the plan has no "
                                 "session", "--spine-fail-on-verdict fail: the run fails because there is no verdict"])
    assert not (pytester.path / "out").exists()


def test_server_traffic_without_the_sessions_credentials_is_pointed_out(pytester):
    pytester.makepyfile(test_stray=HELPERS + '''
def test_forgot_the_headers(spine_server):
    read_over_a_socket(spine_server.url, spine_server.auth_headers)
    read_over_a_socket(spine_server.url, {"Authorization": "Bearer mine"})
    assert len(spine_server.exchanges) == 1
''')
    result = run(pytester, "--spine-plan", "pds-application-restricted")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 exchange; *", "not in this report: 1 exchange that reached spine_server without "
                                 "the session's credentials (they went to the default session); send *"])


@pytest.mark.parametrize(("marker", "message"), [
    ('plan="pds-healthcare-worker"', "it takes only the keyword options base_urls, pass_through, production, access, "
                                     "nhs_number, not plan"),
    ('access="doctor"', "access 'doctor' is not an access mode; use one of 'application', 'healthcare-worker', "
                        "'patient'"),
    ('access="patient", nhs_number="123"', "nhs_number '123' is not a valid NHS number (10 digits, the last a "
                                           "Modulus 11 check digit), e.g. '9000000009'"),
])
def test_marker_mistakes_are_a_usage_error_naming_the_test(pytester, marker, message):
    pytester.makepyfile(test_marker=f'''
import pytest

def test_fine(spine):
    pass

@pytest.mark.spine({marker})
def test_wrong(spine_server):
    pass
''')
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: @pytest.mark.spine on test_marker.py::test_wrong: {message}"
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_fine" not in result.stdout.str()  # stopped before any test ran


ACCESS_TESTS = HELPERS + '''
PDS = "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4"
EMAIL = {"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": "jo@example.com", "use": "home"}}


def patch(spine, number="9000000009"):
    etag = requests.get(f"{PDS}/Patient/{number}", headers=headers(spine)).headers.get("ETag", 'W/"1"')
    return requests.patch(f"{PDS}/Patient/{number}", json={"patches": [EMAIL]},
                          headers=headers(spine, **{"If-Match": etag, "Content-Type": "application/json-patch+json"}))


def code(response):
    return response.status_code, response.json()["issue"][0]["details"]["coding"][0]["code"]


@pytest.mark.spine(access="healthcare-worker")
def test_a_worker_updates(spine, spine_server):
    assert patch(spine).status_code == 200
    assert spine_server.token == spine.token != None  # one token for the test, in both fixtures
    read_over_a_socket(spine_server.url, spine_server.auth_headers)
    assert "standing in for a healthcare-worker access token" in spine_server.findings[0].message


def test_unmarked_keeps_the_default(spine):
    assert code(patch(spine)) == (403, "INVALID_METHOD")


@pytest.mark.spine(access="patient", nhs_number="9000000017")
def test_a_patient_reads_their_own_record_only(spine):
    assert requests.get(f"{PDS}/Patient/9000000017", headers=headers(spine)).status_code == 200
    assert code(requests.get(f"{PDS}/Patient/9000000009", headers=headers(spine))) == (403, "ACCESS_DENIED")
'''


def test_a_test_chooses_its_access_mode_and_the_next_test_does_not_inherit_it(pytester):
    pytester.makepyfile(test_access=ACCESS_TESTS)
    run(pytester).assert_outcomes(passed=3)


def test_with_a_plan_a_test_may_choose_the_mode_the_plan_certifies_only(pytester):
    pytester.makepyfile(test_access=ACCESS_TESTS + '''

@pytest.mark.spine(access="healthcare-worker")
def test_in_the_runs_session(spine):
    assert spine.session.startswith("sess-") and spine.plan == "pds-healthcare-worker"
''')
    result = run(pytester, "--spine-plan", "pds-application-restricted")
    result.assert_outcomes(passed=1, errors=3)  # the unmarked test; the marked ones would be another mode's evidence
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_a_worker_updates*",
        "@pytest.mark.spine(access='healthcare-worker') in a --spine-plan run: plan pds-application-restricted "
        "certifies 'application' access, so its session takes no 'healthcare-worker' token: that traffic would count "
        "as evidence for 'application' access (plans for 'healthcare-worker' access: *pds-healthcare-worker*). Run "
        "this test without --spine-plan (deselect it with -k or -m), or under a plan for that mode",
        "verdict fail: plan pds-application-restricted, *", "  failed: PDS-ACC-001",  # the unmarked test's PATCH
        "2 exchanges; *"])  # nothing of the refused tests is in the report
    assert "Traceback" not in result.stdout.str()
    # Under a plan for the mode, the marked tests run in the run's session; a plan naming no mode takes any mode.
    run(pytester, "--spine-plan", "pds-healthcare-worker", "-k", "worker or runs_session").assert_outcomes(passed=2)
    pytester.path.joinpath("any-mode.yaml").write_text(
        "id: any-mode\ntitle: Reads\nservices: [pds]\nscenarios: []\nrequirements: [PDS-HDR-001]\n")
    run(pytester, "--spine-plan", "any-mode.yaml", "-k", "not runs_session").assert_outcomes(passed=3)


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
    run(pytester).assert_outcomes(passed=1)


def test_the_light_constants_match_the_servers():
    from sandbox.evidence import SESSION_HEADER
    from sandbox.web.sessions import SESSION_HEADER as READ

    assert SESSION_HEADER == READ
