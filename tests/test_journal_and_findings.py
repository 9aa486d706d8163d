"""Every exchange is journaled with its findings before the response leaves; sessions never see each other."""

from __future__ import annotations

from sandbox.journal.store import VersionConflict


def test_every_exchange_is_recorded_with_all_findings(client, pds):
    response = pds.get("/Patient/9000000009", headers={"X-Request-ID": "1234", "Authorization": None,
                                                       "NHSD-End-User-Organisation-ODS": "not an ods"})
    exchange_id = response.headers["X-Sandbox-Exchange"]
    assert response.headers["X-Sandbox-Findings"].startswith("fail=3 ")
    record = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
    assert record["request"]["path"] == "/personal-demographics/FHIR/R4/Patient/9000000009"
    assert record["response"]["status"] == 400
    assert record["response"]["body"] == response.get_data(as_text=True)
    failed = {f["requirement"]: f for f in record["findings"] if f["outcome"] == "fail"}
    assert set(failed) == {"PDS-HDR-002", "PDS-HDR-005", "PDS-HDR-006"}  # every problem at once, not the first
    assert failed["PDS-HDR-002"]["location"] == "header:X-Request-ID"
    assert "'1234' is not a UUID" in failed["PDS-HDR-002"]["message"]
    assert failed["PDS-HDR-002"]["rejected_with"] == {"status": 400, "code": "INVALID_VALUE"}


def test_passes_are_recorded_as_positive_evidence(client, pds):
    exchange_id = pds.get("/Patient/9000000009").headers["X-Sandbox-Exchange"]
    findings = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()["findings"]
    assert {"PDS-HDR-001", "PDS-HDR-002", "PDS-HDR-003", "PDS-GET-001"} <= {
        f["requirement"] for f in findings if f["outcome"] == "pass"}  # PDS-HDR-005 needs a real token: test_access


def test_exchange_listing_filters_and_pages(client, pds, sandbox):
    sandbox.settings = sandbox.settings.replace(auth="off")  # only PDS-GET-001 fails below, not the test token
    for _ in range(3):
        pds.get("/Patient/9000000009")
    pds.get("/Patient/9000000009", headers={"X-Sandbox-Session": "other"})
    pds.get("/Patient/9000000000")
    page = client.get("/_sandbox/exchanges?session=default&limit=2").get_json()
    assert page["count"] == 2 and "next" in page
    rest = client.get(page["next"]).get_json()
    assert {e["session"] for e in page["exchanges"] + rest["exchanges"]} == {"default"}
    assert len(page["exchanges"] + rest["exchanges"]) == 4
    assert client.get("/_sandbox/exchanges?status=400").get_json()["count"] == 1
    assert client.get("/_sandbox/exchanges?session=other").get_json()["count"] == 1
    by_requirement = client.get("/_sandbox/exchanges?requirement=PDS-GET-001&outcome=fail").get_json()
    assert by_requirement["count"] == 1
    assert client.get("/_sandbox/exchanges?outcome=bogus").status_code == 400


def test_invalid_session_header_gets_a_clear_error(pds):
    response = pds.get("/Patient/9000000009", headers={"X-Sandbox-Session": "no spaces allowed"})
    assert response.status_code == 400
    assert "X-Sandbox-Session" in response.get_json()["issue"][0]["diagnostics"]


def test_state_is_per_session_with_compare_and_set(sandbox):
    store = sandbox.store
    assert store.state.put("a", "ns", "k", {"v": 1}, create_only=True) == 1
    assert store.state.get("b", "ns", "k") is None
    assert store.state.put("a", "ns", "k", {"v": 2}, expect_version=1) == 2
    try:
        store.state.put("a", "ns", "k", {"v": 3}, expect_version=1)
    except VersionConflict as exc:
        assert (exc.expected, exc.actual) == (1, 2)
    else:
        raise AssertionError("a stale write must conflict")
    assert store.state.get("a", "ns", "k").value == {"v": 2}
    assert [store.state.next_counter("a", "c") for _ in range(3)] == [0, 1, 2]
    assert store.state.next_counter("b", "c") == 0


def test_bodies_are_kept_byte_for_byte(sandbox, client):
    raw = b"\xff\x00not json"
    response = client.post("/personal-demographics/FHIR/R4/Patient/9000000009", data=raw,
                           headers={"Content-Type": "application/octet-stream"})
    stored = sandbox.store.journal.exchange(response.headers["X-Sandbox-Exchange"])
    assert stored.request.body == raw
    assert client.get(f"/_sandbox/exchanges/{stored.id}").get_json()["request"]["body_encoding"] == "base64"


def test_the_response_headers_are_journaled_as_sent_with_the_sandbox_headers(sandbox, client, pds):
    for response in (pds.get("/Patient/9000000009"),  # answered by the service
                     pds.get("/Patient/9000000009", headers={"X-Sandbox-Scenario": "pds-get-patient-exists"})):
        stored = sandbox.store.journal.exchange(response.headers["X-Sandbox-Exchange"])
        assert stored.response.headers == list(response.headers.items())
        assert [n for n, _ in stored.response.headers].count("X-Sandbox-Findings") == 1
