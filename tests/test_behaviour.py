"""Behavioural checks over a session's history: each with a passing and a failing traffic pattern.

Most patterns are written straight into the journal with exact timings (through the same record-time path the
server uses); a few run over HTTP end to end.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sandbox.conformance.history import HistoryCheckSet, crashed, judge
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from tests.conftest import PDS_BASE


@pytest.fixture
def settings(settings):
    return settings.replace(auth="off")  # these tests count behavioural findings; the token is not their subject

T0 = 1_700_000_000.0


class Traffic:
    """Writes a supplier's traffic pattern into one session's journal, as the server would record it."""

    def __init__(self, sandbox, session: str = "pattern"):
        self.sandbox = sandbox
        self.session = session

    def send(self, at: float, method: str, number: str, status: int, *, rid: str | None = None,
             request_headers: dict | None = None, response_headers: dict | None = None, body: dict | None = None,
             duration_ms: float = 10.0) -> Exchange:
        headers = {"X-Request-ID": rid or str(uuid.uuid4()), **(request_headers or {})}
        exchange = Exchange(
            id=new_exchange_id(T0 + at), session=self.session, service="pds", operation="get-patient",
            started_at=T0 + at, duration_ms=duration_ms,
            request=RecordedRequest(method, f"{PDS_BASE}/Patient/{number}", "", list(headers.items())),
            response=RecordedResponse(status, list((response_headers or {}).items()),
                                      json.dumps(body).encode() if body else b""))
        keys = judge(self.sandbox.services["pds"].history, self.sandbox.store, exchange)
        self.sandbox.store.journal.record(exchange, keys.deep, newest_only=keys.newest_only)
        return exchange


def outcomes(exchange: Exchange, requirement: str) -> list[tuple[str, str]]:
    return [(str(f.outcome), f.message) for f in exchange.findings if f.requirement == requirement]


def only(exchange: Exchange, requirement: str) -> list[str]:
    return [o for o, _ in outcomes(exchange, requirement)]


@pytest.fixture
def traffic(sandbox) -> Traffic:
    return Traffic(sandbox)


RID = "2f1c2a6e-8b7d-4e55-9c1e-3b1f0d4a7a10"


# --- 503 with Retry-After: retried no sooner than asked, with the same X-Request-ID, and not forever --------------
def test_retry_after_503_waits_and_reuses_the_request_id(traffic):
    traffic.send(0, "GET", "9999000010", 503, rid=RID, response_headers={"Retry-After": "2"})
    retry = traffic.send(2.3, "GET", "9999000010", 200, rid=RID)
    assert only(retry, "PDS-ERR-001") == ["pass", "pass"]
    assert "Waited 2.29 s" in outcomes(retry, "PDS-ERR-001")[0][1]
    assert only(retry, "PDS-HDR-008") == ["pass"]  # re-using the id for a retry is right


def test_retry_too_soon_with_a_new_request_id_fails_twice(traffic):
    first = traffic.send(0, "GET", "9999000010", 503, rid=RID, response_headers={"Retry-After": "2"})
    retry = traffic.send(0.5, "GET", "9999000010", 200)
    found = dict(zip(["timing", "request id"], outcomes(retry, "PDS-ERR-001"), strict=True))
    assert found["timing"][0] == "fail" and "Retry-After: 2; wait at least 2 s" in found["timing"][1]
    assert first.id in found["timing"][1]
    assert found["request id"][0] == "fail" and f"instead of re-sending {RID}" in found["request id"][1]


def test_retrying_forever_fails_and_a_bounded_retry_passes(traffic):
    for n in range(5):
        attempt = traffic.send(n * 1.5, "GET", "9999000045", 503, rid=RID, response_headers={"Retry-After": "1"})
    assert "fail" not in only(attempt, "PDS-ERR-001")  # attempt 5 is still within bounds
    sixth = traffic.send(7.5, "GET", "9999000045", 503, rid=RID, response_headers={"Retry-After": "1"})
    verdicts = outcomes(sixth, "PDS-ERR-001")
    assert ("fail", "Attempt 6 at GET /personal-demographics/FHIR/R4/Patient/9999000045 after 5 answers of 503 in "
                    "a row; give up after at most 5 attempts and tell the user.") in verdicts


def test_retry_after_as_an_http_date_is_understood(traffic):
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(T0 + 3))
    traffic.send(0, "GET", "9999000010", 503, rid=RID, response_headers={"Retry-After": when}, duration_ms=0)
    early = traffic.send(1, "GET", "9999000010", 503, rid=RID, response_headers={"Retry-After": when})
    assert only(early, "PDS-ERR-001")[0] == "fail"


def test_a_408_retry_is_judged_under_its_own_requirement(traffic):
    traffic.send(0, "GET", "9999000029", 408, rid=RID)
    good = traffic.send(1, "GET", "9999000029", 200, rid=RID)
    assert only(good, "PDS-ERR-003") == ["pass"] and not only(good, "PDS-ERR-001")
    traffic.send(2, "GET", "9999000029", 408, rid=RID)
    bad = traffic.send(3, "GET", "9999000029", 200)
    assert only(bad, "PDS-ERR-003") == ["fail"]


# --- 429: not hammered ------------------------------------------------------------------------------------------
def test_backing_off_after_429_passes(traffic):
    refused = traffic.send(0, "GET", "9999000002", 429)
    later = traffic.send(1.2, "GET", "9000000009", 200)
    assert outcomes(later, "PDS-ERR-002") == [("pass", f"Waited 1.19 s after the 429 of exchange {refused.id} "
                                                        "before sending again.")]


def test_hammering_after_429_fails_even_for_another_patient(traffic):
    traffic.send(0, "GET", "9999000002", 429)
    hammer = traffic.send(0.05, "GET", "9000000009", 200)
    assert only(hammer, "PDS-ERR-002") == ["fail"]
    assert "back off for at least 1 s" in outcomes(hammer, "PDS-ERR-002")[0][1]


def test_a_429_retry_after_is_the_back_off_to_respect(traffic):
    traffic.send(0, "GET", "9999000002", 429, response_headers={"Retry-After": "3"})
    assert only(traffic.send(2, "GET", "9999000002", 200), "PDS-ERR-002") == ["fail"]
    traffic.send(3, "GET", "9999000002", 429, response_headers={"Retry-After": "3"})
    assert only(traffic.send(6.5, "GET", "9999000002", 200), "PDS-ERR-002") == ["pass"]


# --- PATCH uses the latest ETag -----------------------------------------------------------------------------------
def test_patch_with_the_latest_etag_passes(traffic):
    read = traffic.send(0, "GET", "9990000107", 200, response_headers={"ETag": 'W/"2"'})
    patch = traffic.send(1, "PATCH", "9990000107", 200, request_headers={"If-Match": 'W/"2"'},
                         response_headers={"ETag": 'W/"3"'})
    assert outcomes(patch, "PDS-UPD-001") == [("pass", f'If-Match W/"2" is the ETag of the latest answer for '
                                                       f'9990000107 (exchange {read.id}).')]
    again = traffic.send(2, "PATCH", "9990000107", 200, request_headers={"If-Match": 'W/"3"'})
    assert only(again, "PDS-UPD-001") == ["pass"]  # the PATCH answer's ETag is the newest


def test_patch_with_a_stale_invented_or_missing_etag_fails(traffic):
    traffic.send(0, "GET", "9990000107", 200, response_headers={"ETag": 'W/"2"'})
    updated = traffic.send(1, "PATCH", "9990000107", 200, request_headers={"If-Match": 'W/"2"'},
                           response_headers={"ETag": 'W/"3"'})
    stale = traffic.send(2, "PATCH", "9990000107", 412, request_headers={"If-Match": 'W/"2"'})
    assert outcomes(stale, "PDS-UPD-001") == [("fail", f'If-Match W/"2" is not the latest ETag of 9990000107: '
                                                       f'exchange {updated.id} returned ETag W/"3". Use the ETag of '
                                                       "the newest retrieval or update.")]
    invented = traffic.send(3, "PATCH", "9990000190", 200, request_headers={"If-Match": 'W/"1"'})
    assert "has not retrieved 9990000190" in outcomes(invented, "PDS-UPD-001")[0][1]
    missing = traffic.send(4, "PATCH", "9990000107", 428)
    assert outcomes(missing, "PDS-UPD-001")[0][0] == "fail"
    assert 'no If-Match header' in outcomes(missing, "PDS-UPD-001")[0][1]


# --- superseded NHS numbers -----------------------------------------------------------------------------------------
def test_switching_to_the_superseding_number_passes_and_reusing_the_old_one_fails(traffic):
    merged = traffic.send(0, "GET", "9990000026", 200, body={"resourceType": "Patient", "id": "9990000018"})
    assert not only(merged, "PDS-GET-002")  # the merge is news: nothing to judge yet
    switched = traffic.send(1, "GET", "9990000018", 200, body={"resourceType": "Patient", "id": "9990000018"})
    assert only(switched, "PDS-GET-002") == ["pass"]
    stale = traffic.send(2, "GET", "9990000026", 200, body={"resourceType": "Patient", "id": "9990000018"})
    assert outcomes(stale, "PDS-GET-002") == [("fail", f"NHS number 9990000026 is superseded: exchange {merged.id} "
                                                       "returned the record 9990000018. Replace 9990000026 with "
                                                       "9990000018 and use that from then on.")]


# --- X-Request-ID unique per request, re-used only on a retry --------------------------------------------------------
def test_request_ids_are_unique_unless_retrying(traffic):
    first = traffic.send(0, "GET", "9000000009", 200, rid=RID)
    assert only(first, "PDS-HDR-008") == ["pass"]
    reused = traffic.send(1, "GET", "9000000017", 200, rid=RID)
    assert only(reused, "PDS-HDR-008") == ["fail"]
    assert f"already used by exchange {first.id}" in outcomes(reused, "PDS-HDR-008")[0][1]
    other = "5d0a3a4c-3f2e-4b9a-8d71-0c7e6f1b2a33"
    traffic.send(2, "GET", "9999000010", 503, rid=other, response_headers={"Retry-After": "1"})
    assert only(traffic.send(3.5, "GET", "9999000010", 200, rid=other), "PDS-HDR-008") == ["pass"]


def test_a_check_asking_for_more_than_the_newest_under_a_newest_only_key_is_a_sandbox_defect(sandbox, caplog):
    """The journal keeps only the newest exchange under a newest_only key (a request id): a check that asks for more
    would get less from one backend than from another, so it fails closed instead, naming the key."""
    checks = HistoryCheckSet("pds")
    checks.key(newest_only=True)(lambda ex: ["request-id:1"])

    @checks.register("PDS-HDR-008")
    def asks_too_much(ex, past):
        return past.related("request-id:1", limit=2)

    made = Exchange(id=new_exchange_id(T0), session="s", service="pds", operation="get-patient", started_at=T0,
                    duration_ms=1.0, request=RecordedRequest("GET", f"{PDS_BASE}/Patient/9000000009", "", []),
                    response=RecordedResponse(200, [], b""))
    keys = judge(checks, sandbox.store, made)
    assert keys == (set(), {"pds:request-id:1"})
    assert "asks_too_much crashed (ValueError)" in crashed(made.findings).message
    assert "'pds:request-id:1' is registered newest_only" in caplog.text  # the server log says why


def test_sessions_do_not_share_history(sandbox):
    Traffic(sandbox, "one").send(0, "GET", "9000000009", 200, rid=RID)
    assert only(Traffic(sandbox, "two").send(1, "GET", "9000000009", 200, rid=RID), "PDS-HDR-008") == ["pass"]


# --- end to end over HTTP: the findings land on the exchange and in its header ------------------------------------------
def test_over_http_an_early_retry_is_a_finding_on_the_retry(pds, client):
    rid = str(uuid.uuid4())
    first = pds.get("/Patient/9999000010", headers={"X-Request-ID": rid})
    assert first.status_code == 503
    retry = pds.get("/Patient/9999000010", headers={"X-Request-ID": rid})
    assert retry.status_code == 200
    assert retry.headers["X-Sandbox-Findings"].startswith("fail=1 ")
    record = client.get(f"/_sandbox/exchanges/{retry.headers['X-Sandbox-Exchange']}").get_json()
    failed = [f for f in record["findings"] if f["outcome"] == "fail"]
    assert [f["requirement"] for f in failed] == ["PDS-ERR-001"]
    assert failed[0]["location"] == "header:Retry-After"


def test_over_http_a_patient_retry_passes(settings, tmp_path):
    from sandbox.app import create_app
    from tests.conftest import PdsClient

    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "quick.yaml").write_text("""
id: quick-outage
service: pds
title: One short outage
trigger: {operation: get-patient, headers: {X-Test: outage}}
response: {status: 503, times: 1, headers: {Retry-After: "1"}, error: {code: SERVICE_UNAVAILABLE}}
requirements: [PDS-ERR-001]
""")
    app = create_app(settings.replace(scenarios=(folder,)))
    number = next(app.extensions["sandbox"].population.of_kind("standard")).nhs_number
    pds = PdsClient(app.test_client())
    headers = {"X-Request-ID": str(uuid.uuid4()), "X-Test": "outage"}
    assert pds.get(f"/Patient/{number}", headers=headers).status_code == 503
    time.sleep(1.05)
    retry = pds.get(f"/Patient/{number}", headers=headers)
    assert retry.status_code == 200 and retry.headers["X-Sandbox-Findings"].startswith("fail=0 ")


def test_over_http_a_superseded_number_is_followed(pds, sandbox):
    person = next(sandbox.population.of_kind("superseded"))
    survivor = pds.get(f"/Patient/{person.nhs_number}").get_json()["id"]
    stale = pds.get(f"/Patient/{person.nhs_number}")
    assert stale.headers["X-Sandbox-Findings"].startswith("fail=1 ")
    assert pds.get(f"/Patient/{survivor}").headers["X-Sandbox-Findings"].startswith("fail=0 ")
    assert {f.requirement for f in sandbox.store.journal.exchange(stale.headers["X-Sandbox-Exchange"]).findings
            if f.outcome == "fail"} == {"PDS-GET-002"}


def test_over_http_a_429_hammered(pds):
    assert pds.get("/Patient/9999000002").status_code == 429
    hammered = pds.get("/Patient/9999000002")
    assert hammered.headers["X-Sandbox-Findings"].startswith("fail=1 ")
