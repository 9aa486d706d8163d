"""mock_spine(): requests' calls to the NHS environment hosts answered in-process by the same app as the server."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from sandbox.assurance.plans import PlanError
from sandbox.assurance.sessions import SessionError
from sandbox.inprocess import MockSpine, mock_spine
from sandbox.runtime import StartupError
from sandbox.settings import Settings
from tests.conftest import PDS_BASE, TEST_POPULATION, pds_headers

PATIENT = PDS_BASE + "/Patient/9000000009"


@pytest.fixture
def spine(settings):
    with mock_spine(settings=settings) as mock:
        yield mock


def _outcomes(findings):
    return sorted((f.requirement, str(f.outcome), f.message) for f in findings)


@pytest.mark.parametrize("origin", [
    "https://sandbox.api.service.nhs.uk", "https://int.api.service.nhs.uk", "https://dep.api.service.nhs.uk",
    "https://internal-dev.api.service.nhs.uk", "https://internal-qa-sandbox.api.service.nhs.uk",
    "https://INT.api.service.nhs.uk:443", "http://localhost:8700", "https://msg.int.spine2.ncrs.nhs.uk",
])
def test_every_test_environment_host_is_answered_in_process(spine, origin):
    response = requests.get(origin + PATIENT, headers=pds_headers())
    assert response.status_code == 200
    assert response.json()["id"] == "9000000009"
    exchange = spine.exchanges[-1]
    assert exchange.id == response.headers["X-Sandbox-Exchange"]
    assert dict(exchange.request.headers)["Host"] == origin.split("://")[1].lower()


def test_a_host_without_that_service_gets_the_sandbox_404_and_is_journaled(spine):
    response = requests.post("https://msg.intspineservices.nhs.uk/nothing-here/inbox", data=b"hello")
    assert response.status_code == 404
    assert "No Spine service is mounted at /nothing-here/inbox" in response.text
    assert spine.exchanges[-1].request.body == b"hello"


def test_answers_and_findings_are_the_servers(live_server, settings):
    """The same request to the real server and to the mock: same status, body, headers and findings."""
    bad = pds_headers(**{"X-Request-ID": "not-a-uuid"})
    good = pds_headers(**{"X-Correlation-ID": "a.b"})
    with mock_spine(settings=settings.replace(population=TEST_POPULATION)) as spine:
        mocked = [requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=h) for h in (bad, good)]
    served = [requests.get(live_server.url + PATIENT, headers=h) for h in (bad, good)]
    volatile = {"x-sandbox-exchange", "x-sandbox-findings", "date", "server"}
    for m, s in zip(mocked, served, strict=True):
        assert m.status_code == s.status_code
        assert m.json() == s.json()
        assert {k.lower(): v for k, v in m.headers.items() if k.lower() not in volatile} == \
               {k.lower(): v for k, v in s.headers.items() if k.lower() not in volatile}
    server_findings = []
    for response in served:
        detail = requests.get(f"{live_server.url}/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").json()
        server_findings += [(f["requirement"], f["outcome"], f["message"]) for f in detail["findings"]]
    assert _outcomes(spine.findings) == sorted(server_findings)
    assert ("PDS-HDR-002", "fail") in {(f.requirement, str(f.outcome)) for f in spine.failures}


def test_traffic_lands_in_the_mocks_own_session_unless_the_client_names_one(settings):
    with mock_spine(settings=settings, session="supplier-a") as spine:
        requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers())
        requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers(**{"X-Sandbox-Session": "other"}))
    assert [ex.session for ex in spine.exchanges] == ["supplier-a"]
    assert [ex.session for ex in spine.sandbox.store.journal.iter_exchanges("other")] == ["other"]
    second = MockSpine(app=spine.app)
    assert second.session != spine.session and second.exchanges == []


def test_live_hosts_are_refused_unless_asked_for(settings):
    url = "https://api.service.nhs.uk" + PATIENT
    with mock_spine(settings=settings, pass_through=True) as spine, \
            pytest.raises(requests.ConnectionError, match="does not answer the live service at api.service.nhs.uk"):
        requests.get(url, headers=pds_headers())
    with pytest.raises(requests.ConnectionError, match="mesh-sync.spineservices.nhs.uk"), spine:
        requests.get("https://mesh-sync.spineservices.nhs.uk/messageexchange/X26HC005", timeout=5)
    assert spine.exchanges == []
    with mock_spine(settings=settings, production=True) as live:
        assert requests.get(url, headers=pds_headers()).status_code == 200
    assert len(live.exchanges) == 1


def test_other_hosts_fail_clearly_or_pass_through(settings, live_server):
    with mock_spine(settings=settings) as spine, pytest.raises(requests.ConnectionError) as refused:
        requests.get(live_server.url + "/_sandbox/health")
    assert "answers the NHS environment hosts only" in str(refused.value)
    assert "pass_through=True" in str(refused.value)
    with mock_spine(settings=settings, pass_through=True) as spine:
        assert requests.get(live_server.url + "/_sandbox/health").json()["status"] == "ok"
        assert requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers()).ok
    assert len(spine.exchanges) == 1  # only the routed call is in the mock's journal


def test_extra_base_urls_have_their_path_prefix_removed(settings):
    with mock_spine(settings=settings, base_urls=["http://gateway.test:8080/spine/"]) as spine:
        assert spine.url == "http://gateway.test:8080/spine/"
        response = requests.get("http://gateway.test:8080/spine" + PATIENT, headers=pds_headers())
        assert response.status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.get("http://gateway.test:8080/spinex" + PATIENT)  # not under the prefix
    assert spine.exchanges[0].request.path == PATIENT
    with pytest.raises(ValueError, match="not an http"):
        mock_spine(settings=settings, base_urls=["gateway.test"])


def test_a_client_timeout_is_a_read_timeout_and_the_exchange_is_still_journaled(settings):
    with mock_spine(settings=settings) as spine:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout, match="read timeout=0.3"):
            requests.get("https://int.api.service.nhs.uk" + PDS_BASE + "/Patient/9999000037", headers=pds_headers(),
                         timeout=(5, 0.3))
        assert time.monotonic() - started < 2  # the scenario answers after 3 s; the client did not wait for it
    [exchange] = spine.exchanges  # waits for the answer to be journaled
    assert exchange.response.status == 200 and exchange.scenario


def test_request_bodies_reach_the_journal_as_sent(spine):
    url = "https://int.api.service.nhs.uk" + PDS_BASE + "/Patient"
    requests.post(url, data="naïve", headers=pds_headers(**{"Content-Type": "text/plain"}))
    requests.post(url, data=(chunk for chunk in [b"{", b'"a": 1', b"}"]), headers=pds_headers())
    requests.post(url, json={"resourceType": "Patient"}, headers=pds_headers())
    with pytest.raises(UnicodeEncodeError):  # as http.client refuses a str body it cannot send as Latin-1
        requests.post(url, data="snowman ☃", headers=pds_headers())
    assert [ex.request.body for ex in spine.exchanges] == [
        "naïve".encode("latin-1"), b'{"a": 1}', json.dumps({"resourceType": "Patient"}).encode()]


def test_head_and_control_api_through_a_routed_host(spine):
    assert requests.head("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers()).status_code == 200
    health = requests.get("https://int.api.service.nhs.uk/_sandbox/health").json()
    assert health["status"] == "ok"


def test_seed_chooses_the_synthetic_population(tmp_path):
    names = []
    for seed in (1, 2, 1):
        with mock_spine(seed=seed, settings=Settings.load(environ={}, data_dir=tmp_path / str(seed))):
            names.append(requests.get("https://int.api.service.nhs.uk/_sandbox/patients?limit=1").json()
                         ["patients"][0]["name"])
    assert names[0] == names[2] != names[1]


def test_decorator_form(settings):
    calls = []

    @mock_spine(settings=settings)
    def supplier_test():
        calls.append(requests.get("https://sandbox.api.service.nhs.uk" + PATIENT, headers=pds_headers()).status_code)

    supplier_test()
    supplier_test()
    assert calls == [200, 200]
    with pytest.raises(requests.ConnectionError):  # routing ends with the function
        requests.get("https://sandbox.api.service.nhs.uk" + PATIENT, timeout=1)


def test_without_a_plan_the_session_has_a_token_and_no_report(spine):
    assert spine.token.startswith("sst_") and spine.plan is None
    response = requests.get("https://int.api.service.nhs.uk" + PATIENT,
                            headers={"X-Request-ID": str(uuid.uuid4()), **spine.auth_headers})
    assert response.ok and spine.failures == []  # the token stands in for an application-restricted access token
    assert "PDS-HDR-005" in {f.requirement for f in spine.findings}
    with pytest.raises(SessionError, match=r"is not bound to an assurance plan.*mock_spine\(plan=…\), one of .*"
                                           r"pds-application-restricted, pds-healthcare-worker, .*spine-pds-hl7v3 \(`spine-sandbox plans`\)"):
        spine.report()


def test_a_plan_binds_the_session_and_reports_in_every_format(settings, tmp_path):
    with mock_spine(settings=settings, plan="pds-application-restricted", supplier="Acme Health",
                    system="Acme PAS 1.2") as spine:
        for request_id in (str(uuid.uuid4()), "x"):
            requests.get("https://int.api.service.nhs.uk" + PATIENT,
                         headers={"X-Request-ID": request_id, **spine.auth_headers})
    record = spine.sandbox.store.sessions.get(spine.session)
    assert (record.plan, record.supplier, record.system) == ("pds-application-restricted", "Acme Health",
                                                             "Acme PAS 1.2")
    assert spine.plan == "pds-application-restricted"
    report = spine.report(tmp_path / "out")
    assert report["verdict"] == "fail" and report["verdict_reasons"][0] == "failed: PDS-HDR-002"
    assert report["metadata"]["session"] == spine.session and report["metadata"]["span"]["exchanges"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "report.html", "report.json",
                                                                     "report.manifest.json", "summary.md"]
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["integrity"] == report["integrity"]


def test_a_plan_by_file_goes_through_the_plan_loader(settings, tmp_path):
    plan = tmp_path / "gp-system.yaml"
    plan.write_text("id: gp-system\ntitle: GP system reads\nservices: [pds]\n"
                    "scenarios: [pds-get-patient-exists, pds-get-patient-not-found]\n"
                    "requirements: [PDS-HDR-001, PDS-GET-001]\n")
    with mock_spine(settings=settings, plan=str(plan)) as spine:
        requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers())
    assert spine.plan == "gp-system"
    report = spine.report()
    assert report["verdict"] == "incomplete"
    assert report["verdict_reasons"] == ["steps not exercised: pds-get-patient-not-found"]
    plan.write_text("id: gp-system\ntitle: GP system reads\nservices: [pds]\nscenarios: []\n"
                    "requirements: [PDS-NOPE-001]\n")
    with pytest.raises(StartupError, match=rf"^{plan}: field 'requirements\[0\]': unknown requirement 'PDS-NOPE-001'"):
        mock_spine(settings=settings.replace(data_dir=tmp_path / "other"), plan=str(plan))
    with pytest.raises(PlanError, match="missing.yaml: no such plan file"):
        mock_spine(settings=settings, plan=str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="is a file, which an existing app has not loaded"):
        mock_spine(app=spine.app, plan=str(plan))


def test_an_unknown_plan_is_refused_when_the_mock_is_made(app):
    with pytest.raises(SessionError, match=r"no assurance plan 'missing'; plans: eps-dispenser, eps-prescriber, ers-provider, "
                                           r"ers-referrer, mesh-receiving, mesh-sending, pds-application-restricted, pds-healthcare-worker, .*spine-pds-hl7v3 \(`spine-sandbox plans`\)"):
        mock_spine(app=app, plan="missing")
    with pytest.raises(ValueError, match="not both"):
        mock_spine(app=app, plan="pds-healthcare-worker", session="mine")


@pytest.mark.parametrize("page", [1, 500])
def test_joining_a_session_views_it_from_then_on(app, monkeypatch, page):
    monkeypatch.setattr("sandbox.evidence.PAGE", page)  # the view reads the journal newest first, page by page
    with mock_spine(app=app, plan="pds-healthcare-worker") as first:
        requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers())
    with mock_spine(app=app, session=first.session, token=first.token) as second:
        for _ in range(3):
            requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers())
    assert second.plan == "pds-healthcare-worker" and second.auth_headers == first.auth_headers
    assert [ex.seq for ex in second.exchanges] == [ex.seq for ex in first.exchanges][1:]
    assert len(second.exchanges) == 3 and len(first.exchanges) == 4
    assert second.report()["metadata"]["span"]["exchanges"] == 4  # the report is the whole session's


def test_a_session_token_chooses_the_session_itself(app):
    other = MockSpine(app=app)
    with mock_spine(app=app) as spine:
        requests.get("https://int.api.service.nhs.uk" + PATIENT,
                     headers={"X-Request-ID": str(uuid.uuid4()), **other.auth_headers})
    assert spine.exchanges == [] and len(other.exchanges) == 1


def test_options_are_checked(settings, app):
    with pytest.raises(ValueError, match="not a session id"):
        mock_spine(settings=settings, session="bad id")
    with pytest.raises(ValueError, match="not both"):
        mock_spine(app=app, seed=3)
    mock = mock_spine(app=app)
    with mock, pytest.raises(RuntimeError, match="already active"), mock:
        pass


def test_default_mock_has_its_own_data_directory():
    with mock_spine() as spine:
        requests.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers(**{"X-Request-ID": str(uuid.uuid4())}))
    data_dir = spine.sandbox.settings.data_dir
    assert "spine-sandbox-" in data_dir.name and (data_dir / "journal.sqlite3").exists()
    assert len(spine.exchanges) == 1


def test_concurrent_clients_each_get_their_answer(spine):
    from concurrent.futures import ThreadPoolExecutor

    def read(_):
        with requests.Session() as http:
            return [http.get("https://int.api.service.nhs.uk" + PATIENT, headers=pds_headers()).status_code
                    for _ in range(5)]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(read, range(8)) for s in batch]
    assert statuses == [200] * 40
    assert len({ex.id for ex in spine.exchanges}) == 40


# --- access modes: mock_spine(access=…) ------------------------------------------------------------------------
EMAIL = {"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": "jo@example.com", "use": "home"}}
GENDER = {"op": "replace", "path": "/gender", "value": "unknown"}


def _read(spine, number: str) -> requests.Response:
    return requests.get(f"https://int.api.service.nhs.uk{PDS_BASE}/Patient/{number}",
                        headers={"X-Request-ID": str(uuid.uuid4()), **spine.auth_headers})


def _patch(spine, number: str, *patches: dict) -> requests.Response:
    etag = _read(spine, number).headers.get("ETag", 'W/"1"')
    return requests.patch(f"https://int.api.service.nhs.uk{PDS_BASE}/Patient/{number}", json={"patches": list(patches)},
                          headers={"X-Request-ID": str(uuid.uuid4()), "If-Match": etag,
                                   "Content-Type": "application/json-patch+json", **spine.auth_headers})


def _code(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_access_chooses_the_mode_the_blocks_token_stands_in_for(settings):
    with mock_spine(settings=settings, access="healthcare-worker") as worker:
        assert worker.token.startswith("sst_")
        assert _patch(worker, "9000000009", EMAIL).status_code == 200
        create = requests.post(f"https://int.api.service.nhs.uk{PDS_BASE}/Patient", json={},
                               headers={"X-Request-ID": str(uuid.uuid4()), **worker.auth_headers})
        assert create.status_code != 403  # judged as a create, not refused for the access mode
    assert "standing in for a healthcare-worker access token" in worker.findings[0].message
    with mock_spine(settings=settings) as default:  # the default stays application-restricted
        assert _code(_patch(default, "9000000009", EMAIL)) == (403, "INVALID_METHOD")
    with mock_spine(settings=settings, access="application") as application:
        assert _code(_patch(application, "9000000009", EMAIL)) == (403, "INVALID_METHOD")


def test_patient_access_reaches_only_the_patients_own_record(settings):
    with mock_spine(settings=settings, access="patient", nhs_number="9000000017") as patient:
        assert _read(patient, "9000000017").status_code == 200
        assert _code(_read(patient, "9000000009")) == (403, "ACCESS_DENIED")
        assert _patch(patient, "9000000017", EMAIL).status_code == 200
        assert _code(_patch(patient, "9000000017", GENDER)) == (400, "INVALID_UPDATE")  # not a patient's field
    own = [(f.outcome, f.message) for f in patient.findings if f.requirement == "PDS-ACC-003"]
    assert ("fail", "NHS number '9000000009' is not the signed-in patient's own (9000000017): in patient access a "
            "patient reaches only their own record (live: 403 ACCESS_DENIED).") in own
    with mock_spine(settings=settings, access="patient") as default_patient:  # 9000000009 unless told
        assert _read(default_patient, "9000000009").status_code == 200
        assert _code(_read(default_patient, "9000000017")) == (403, "ACCESS_DENIED")


def test_access_in_a_plan_bound_session_must_be_the_plans(app):
    with mock_spine(app=app, plan="pds-healthcare-worker", access="healthcare-worker") as spine:
        assert _patch(spine, "9000000009", EMAIL).status_code == 200
    with pytest.raises(SessionError, match=r"^plan pds-healthcare-worker certifies 'healthcare-worker' access, so its "
                                           r"session takes no 'application' token: that traffic would count as "
                                           r"evidence for 'healthcare-worker' access \(plans for 'application' "
                                           r"access: .*pds-application-restricted.*\)$"):
        mock_spine(app=app, plan="pds-healthcare-worker", access="application")
    assert [s.plan for s in app.extensions["sandbox"].store.sessions.all()] == ["pds-healthcare-worker"]
    with pytest.raises(SessionError, match="certifies 'healthcare-worker' access"):  # joining: the same rule
        mock_spine(app=app, session=spine.session, access="patient")
    with mock_spine(app=app, session=spine.session, access="healthcare-worker") as joined:
        assert joined.token != spine.token and _read(joined, "9000000009").ok
    assert joined.exchanges[0].session == spine.session


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"access": "doctor"}, ValueError,
     "access 'doctor' is not an access mode; use one of 'application', 'healthcare-worker', 'patient'"),
    ({"access": 5}, TypeError, "access must be one of 'application', 'healthcare-worker', 'patient', not int 5"),
    ({"nhs_number": "9000000009"}, ValueError,
     "nhs_number names the patient of access='patient': add access='patient'"),
    ({"access": "healthcare-worker", "nhs_number": "9000000009"}, ValueError,
     "nhs_number names the patient of access='patient'; access='healthcare-worker' acts for no patient"),
    ({"access": "patient", "nhs_number": "9000000001"}, ValueError,
     "nhs_number '9000000001' is not a valid NHS number (10 digits, the last a Modulus 11 check digit), e.g. "
     "'9000000009'"),
    ({"access": "patient", "nhs_number": 9000000009}, TypeError,
     "nhs_number must be a string of 10 digits, e.g. '9000000009', not int 9000000009"),
    ({"access": "patient", "session": "mine", "token": "sst_x"}, ValueError,
     "give token= (the joined session's own token) or access= (a token issued for that access mode), not both"),
])
def test_a_wrong_access_choice_is_refused_before_anything_is_built(options, error, message, tmp_path):
    with pytest.raises(error) as refused:
        mock_spine(settings=Settings.load(environ={}, data_dir=tmp_path / "data"), **options)
    assert str(refused.value) == message
    assert not (tmp_path / "data").exists()
