"""MESH over HTTP (in process): every endpoint, both API versions, the rules, and the findings they leave."""

from __future__ import annotations

import io

import pytest

from sandbox.services.mesh.auth import make_token
from tests.mesh_helpers import V2, Mesh, finding_outcomes, findings, gz


@pytest.fixture
def alice(client) -> Mesh:
    return Mesh(client, "X26ABC1")


@pytest.fixture
def bob(client) -> Mesh:
    return Mesh(client, "X26ABC2")


# --- handshake and authentication ------------------------------------------------------------------------------
def test_handshake_v1_and_v2(alice):
    assert alice.handshake().status_code == 200
    v1 = Mesh(alice.client, "X26ABC1", version=1).handshake()
    assert v1.status_code == 200 and v1.get_json() == {"mailboxId": "X26ABC1"}


def test_a_message_sent_chunked_without_a_length_arrives_whole(alice, bob):
    """Transfer-Encoding: chunked (a client streaming its upload) carries no Content-Length; the body is read all the
    same, as the server passes it on."""
    headers = {"Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW", "Content-Type": "text/plain",
               "Transfer-Encoding": "chunked"}
    sent = alice.call("POST", "/outbox", headers, input_stream=io.BytesIO(b"streamed"),
                      environ_overrides={"wsgi.input_terminated": True})
    assert sent.status_code == 202, sent.get_data(as_text=True)
    assert bob.download(sent.get_json()["message_id"]).data == b"streamed"


def test_handshake_without_client_headers_is_a_validation_error(client, alice):
    response = alice.call("POST", "", {"mex-ClientVersion": "x"})
    assert response.status_code == 400
    assert response.get_json() == {"detail": [{"loc": ["header", "mex-osname"], "msg": "field required",
                                               "type": "value_error.missing"}]}
    assert "fail" in finding_outcomes(client, response)["MESH-HSK-001"]


@pytest.mark.parametrize("token, requirement, words", [
    (None, "MESH-AUTH-001", "missing"),
    ("Bearer abc", "MESH-AUTH-001", "scheme"),
    ("NHSMESH X26ABC1:n:0:202001011200", "MESH-AUTH-001", "4 colon-separated fields"),
    (make_token("X26ABC2", "password", "TestKey"), "MESH-AUTH-002", "path names"),
    (make_token("x26abc1", "password", "TestKey"), "MESH-AUTH-002", "not upper case"),
    (make_token("X26ABC1", "wrong", "TestKey"), "MESH-AUTH-004", "HMAC-SHA256"),
    (make_token("X26ABC1", "password", "NotTheKey"), "MESH-AUTH-004", "shared key"),
])
def test_bad_tokens_are_refused_with_403(client, alice, token, requirement, words):
    headers = alice.headers()
    headers.pop("Authorization")
    if token:
        headers["Authorization"] = token
    response = client.get("/messageexchange/X26ABC1/inbox", headers=headers)
    assert response.status_code == 403
    failed = [f for f in findings(client, response, requirement) if f["outcome"] == "fail"]
    assert failed and words in failed[0]["message"]
    assert failed[0]["rejected_with"]["status"] == 403


def test_token_outside_the_two_hour_window_is_refused(client, alice):
    from datetime import UTC, datetime, timedelta

    stale = make_token("X26ABC1", "password", "TestKey", when=datetime.now(UTC) - timedelta(hours=3))
    response = alice.call("GET", "/inbox", token=stale)
    assert response.status_code == 403
    assert "hours behind" in findings(client, response, "MESH-AUTH-003")[0]["message"]


def test_a_replayed_token_is_refused(client, alice):
    token = make_token("X26ABC1", "password", "TestKey")
    assert alice.call("GET", "/inbox", token=token).status_code == 200
    replay = alice.call("GET", "/inbox", token=token)
    assert replay.status_code == 403
    assert "Duplicated Authentication Token" in replay.get_json()["detail"][0]["msg"]
    assert "fail" in finding_outcomes(client, replay)["MESH-AUTH-005"]


def test_a_replayed_token_is_caught_when_the_request_commits_and_changes_nothing(client, alice, bob):
    token = make_token("X26ABC1", "password", "TestKey")
    assert alice.call("GET", "/inbox", token=token).status_code == 200
    replay = alice.call("POST", "/outbox", {"Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW"}, token=token,
                        data=b"sent twice?")
    assert replay.status_code == 403
    assert "Duplicated Authentication Token" in replay.get_json()["detail"][0]["msg"]
    assert finding_outcomes(client, replay)["MESH-AUTH-005"] == {"fail"}
    assert replay.headers["X-Sandbox-Findings"].startswith("fail=1 ")
    assert bob.inbox().get_json()["messages"] == []  # the refused send delivered nothing


def test_a_replayed_token_is_the_answer_before_what_later_checks_refuse_and_before_a_scenario(alice):
    token = make_token("X26ABC1", "password", "TestKey")
    assert alice.call("GET", "/inbox", token=token).status_code == 200
    no_recipient = alice.call("POST", "/outbox", {"Mex-WorkflowID": "TEST_WORKFLOW"}, token=token, data=b"x")
    scripted = alice.call("GET", "/inbox", {"X-Sandbox-Scenario": "mesh-unavailable"}, token=token)
    for replay in (no_recipient, scripted):
        assert replay.status_code == 403
        assert "Duplicated Authentication Token" in replay.get_json()["detail"][0]["msg"]


def test_a_scripted_fault_leaves_the_token_unused(alice):
    token = make_token("X26ABC1", "password", "TestKey")
    assert alice.call("GET", "/inbox", {"X-Sandbox-Scenario": "mesh-unavailable"}, token=token).status_code == 503
    assert alice.call("GET", "/inbox", token=token).status_code == 200  # (too soon after Retry-After: a finding)


def test_same_nonce_with_the_next_count_is_a_new_token(alice):
    first = make_token("X26ABC1", "password", "TestKey", nonce="4b4f1b5e-9e0e-4f59-9d5c-6d0e4f1d1a11", nonce_count=1)
    second = make_token("X26ABC1", "password", "TestKey", nonce="4b4f1b5e-9e0e-4f59-9d5c-6d0e4f1d1a11", nonce_count=2)
    assert alice.call("GET", "/inbox", token=first).status_code == 200
    assert alice.call("GET", "/inbox", token=second).status_code == 200


def test_unknown_mailbox_is_refused(client):
    response = Mesh(client, "X26NOPE").inbox()
    assert response.status_code == 403
    assert "No mailbox matched" in response.get_json()["detail"][0]["msg"]


def test_bad_accept_is_a_validation_error(alice):
    response = alice.call("GET", "/inbox", {"Accept": "application/vnd.mesh.vX+json"})
    assert response.status_code == 400 and response.get_json()["detail"][0]["loc"] == ["header", "accept"]


# --- the full cycle ---------------------------------------------------------------------------------------------
def test_send_list_download_acknowledge_track(client, alice, bob):
    sent = alice.send(data=b"Hi Bob", **{"Mex-LocalID": "ref-1", "Mex-FileName": "greeting.txt",
                                         "Mex-Subject": "Hello", "Mex-Content-Checksum": "md5:abc"})
    assert sent.status_code == 202 and sent.headers["Content-Type"] == "application/vnd.mesh.v2+json"
    message_id = sent.get_json()["message_id"]
    listing = bob.inbox().get_json()
    assert listing["messages"] == [message_id] and listing["approx_inbox_count"] == 1
    assert listing["links"] == {"self": "/messageexchange/X26ABC2/inbox"}
    got = bob.download(message_id)
    assert got.status_code == 200 and got.data == b"Hi Bob" and got.headers["Content-Type"].startswith("text/plain")
    expected = {"Mex-From": "X26ABC1", "Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW",
                "Mex-LocalID": "ref-1", "Mex-FileName": "greeting.txt", "Mex-Subject": "Hello",
                "Mex-MessageType": "DATA", "Mex-MessageID": message_id, "Mex-Chunk-Range": "1:1",
                "Mex-StatusCode": "00", "Mex-StatusSuccess": "SUCCESS", "Mex-StatusEvent": "TRANSFER",
                "Mex-Content-Checksum": "md5:abc"}
    assert {k: got.headers.get(k) for k in expected} == expected
    tracked = alice.track(message_id).get_json()
    assert tracked["status"] == "accepted" and tracked["recipient"] == "X26ABC2" and tracked["local_id"] == "ref-1"
    ack = bob.ack(message_id)
    assert ack.status_code == 200 and ack.data == b""
    assert "pass" in finding_outcomes(client, ack)["MESH-RCV-002"]
    assert bob.inbox().get_json()["messages"] == []
    assert alice.track(message_id).get_json()["status"] == "acknowledged"
    again = bob.download(message_id)
    assert again.status_code == 410 and again.headers["X-Sandbox-Scenario"] == "mesh-download-acknowledged"
    assert "fail" in finding_outcomes(client, again)["MESH-RCV-006"]


def test_v1_bodies(client):
    alice, bob = Mesh(client, "X26ABC1", version=1), Mesh(client, "X26ABC2", version=1)
    sent = alice.send(**{"Mex-LocalID": "v1-ref"})
    assert sent.status_code == 202 and sent.headers["Content-Type"] == "application/json"
    message_id = sent.get_json()["messageID"]
    assert bob.inbox().get_json() == {"messages": [message_id]}
    assert bob.ack(message_id).get_json() == {"messageId": message_id}
    tracked = alice.track(message_id).get_json()
    assert tracked["messageId"] == tracked["dtsId"] == message_id and tracked["status"] == "Acknowledged"
    assert tracked["fileSize"] == 5 and tracked["downloadTimestamp"]
    by_local = alice.call("GET", "/outbox/tracking/v1-ref")
    assert by_local.status_code == 200 and by_local.get_json()["messageId"] == message_id
    assert "warning" in finding_outcomes(client, by_local)["MESH-TRK-001"]


def test_tracking_by_a_local_id_used_twice_is_300(alice):
    alice.send_id(**{"Mex-LocalID": "dup"})
    alice.send_id(**{"Mex-LocalID": "dup"})
    response = alice.call("GET", "/outbox/tracking/dup")
    assert response.status_code == 300 and len(response.get_json()["messageIDs"]) == 2
    assert alice.call("GET", "/outbox/tracking/none-such").status_code == 404


def test_only_the_sender_tracks_and_only_the_recipient_downloads(alice, bob):
    message_id = alice.send_id()
    assert bob.track(message_id).status_code == 404
    assert alice.download(message_id).status_code == 403
    assert alice.call("GET", "/outbox/tracking").status_code == 400


def test_head_gives_headers_without_a_body_or_a_download(client, alice, bob):
    message_id = alice.send_id(data=b"payload")
    head = bob.call("HEAD", f"/inbox/{message_id}")
    assert head.status_code == 200 and head.data == b"" and head.headers["Mex-MessageID"] == message_id
    ack = bob.ack(message_id)
    assert "fail" in finding_outcomes(client, ack)["MESH-RCV-002"]  # HEAD is not a download


def test_count_is_deprecated_but_answers(client, alice, bob):
    alice.send_id()
    response = bob.call("GET", "/count")
    assert response.get_json() == {"count": 1}
    assert "warning" in finding_outcomes(client, response)["MESH-TRK-001"]
    v1 = Mesh(client, "X26ABC2", version=1).call("GET", "/count").get_json()
    assert v1["count"] == 1 and v1["allResultsIncluded"] is True and v1["internalID"]


# --- inbox paging and filters ----------------------------------------------------------------------------------
def test_inbox_pages_with_links_next(client, alice, bob):
    sent = [alice.send_id(workflow="PAGED") for _ in range(25)]
    first = bob.inbox(max_results=10).get_json()
    assert first["messages"] == sent[:10] and first["approx_inbox_count"] == 25
    seen = list(first["messages"])
    link = first["links"]["next"]
    while link:
        page = client.get(link, headers=bob.headers()).get_json()
        seen += page["messages"]
        link = page["links"].get("next")
    assert seen == sent
    v1 = Mesh(client, "X26ABC2", version=1)
    assert v1.inbox(continue_from=sent[19]).get_json()["messages"] == sent[20:]
    assert bob.inbox(max_results=5).status_code == 400
    assert bob.inbox(continue_from="garbage-that-is-not-ours").status_code == 400


@pytest.mark.parametrize("flt, expected", [
    ("WF_A", ["WF_A"]), ("!WF_A", ["WF_B", "OTHER_ACK"]), ("WF_*", ["WF_A", "WF_B"]),
    ("!WF_*", ["OTHER_ACK"]), ("*_ACK*", ["OTHER_ACK"]), ("!*_ACK*", ["WF_A", "WF_B"]),
])
def test_workflow_filter(alice, bob, flt, expected):
    ids = {wf: alice.send_id(workflow=wf) for wf in ("WF_A", "WF_B", "OTHER_ACK")}
    assert bob.inbox(workflow_filter=flt).get_json()["messages"] == [ids[wf] for wf in expected]


def test_a_polled_inbox_answers_every_change_at_once(client, alice, bob):
    # Listings of an unchanged inbox are kept between polls: each must still see every arrival, acknowledgement,
    # filter, API version and expiry.
    first = alice.send_id(workflow="WF_A")
    assert bob.inbox().get_json()["messages"] == [first]
    assert bob.inbox().get_json()["messages"] == [first]
    second = alice.send_id(workflow="WF_B")
    assert bob.inbox().get_json()["messages"] == [first, second]
    assert bob.inbox(workflow_filter="WF_B").get_json()["messages"] == [second]
    assert Mesh(client, "X26ABC2", version=1).inbox().get_json() == {"messages": [first, second]}
    assert bob.ack(first).status_code == 200
    assert bob.inbox().get_json()["messages"] == [second]
    assert bob.inbox().get_json()["approx_inbox_count"] == 1
    client.post("/_sandbox/mesh/clock", json={"advance": "5d"})
    assert bob.inbox().get_json()["messages"] == []


# --- routing rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sender, to, workflow, status, code, scenario", [
    ("X26ABC1", "X26XYZ9", "ANY", 417, "12", "mesh-unknown-recipient"),
    ("X26ABC2", "X26ABC1", "TEST_WORKFLOW", 417, "16", "mesh-workflow-not-permitted"),
    ("X26ABC1", "X26ABC3", "TEST_WORKFLOW", 417, "17", "mesh-workflow-not-permitted"),
])
def test_routing_refusals(client, sender, to, workflow, status, code, scenario):
    v2 = Mesh(client, sender).send(to=to, workflow=workflow)
    assert v2.status_code == status and v2.headers["X-Sandbox-Scenario"] == scenario
    body = v2.get_json()
    assert body["detail"][0]["code"] == code and body["detail"][0]["event"] == "SEND" and body["internal_id"]
    v1 = Mesh(client, sender, version=1).send(to=to, workflow=workflow).get_json()
    assert v1["errorCode"] == code and v1["errorEvent"] == "SEND" and v1["errorDescription"]


def test_unrestricted_workflows_go_anywhere(alice):
    assert alice.send(to="X26ABC3", workflow="SOMETHING_ELSE").status_code == 202


@pytest.mark.parametrize("headers, status, code", [
    ({"Mex-To": None}, 400, "08"),
    ({"Mex-From": "X26ABC3"}, 417, "07"),
    ({"Content-Encoding": "br"}, 417, "UnsupportedContentEncoding"),
    ({"Mex-Chunk-Range": "2:3"}, 417, "InvalidHeaderChunks"),
])
def test_send_header_refusals(alice, headers, status, code):
    response = alice.send(**headers)
    assert response.status_code == status and response.get_json()["detail"][0]["code"] == code


def test_missing_workflow_and_long_headers_are_validation_errors(alice):
    response = alice.send(workflow=None)
    assert response.status_code == 400 and response.get_json()["detail"][0]["loc"] == ["header", "mex-workflowid"]
    response = alice.send(**{"Mex-LocalID": "x" * 301})
    assert response.status_code == 400 and response.get_json()["detail"][0]["loc"] == ["header", "mex-localid"]


def test_empty_body_is_refused(alice):
    response = alice.send(data=b"")
    assert response.status_code == 417 and response.get_json()["detail"][0]["code"] == "02"


def test_content_findings_are_recorded_without_refusing(client, alice):
    response = alice.send(**{"Mex-LocalID": "patient 943 476 5919", "Content-Type": None})
    assert response.status_code == 202
    outcomes = finding_outcomes(client, response)
    assert outcomes["MESH-SND-012"] == {"warning"} and outcomes["MESH-SND-013"] == {"warning"}
    bad_gzip = alice.send(data=b"not gzip", **{"Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 202 and "fail" in finding_outcomes(client, bad_gzip)["MESH-SND-009"]


# --- chunking and compression ----------------------------------------------------------------------------------
def test_chunked_message_in_order(client, alice, bob):
    first = alice.send(data=b"part one, ", **{"Mex-Chunk-Range": "1:3"})
    message_id = first.get_json()["message_id"]
    assert bob.inbox().get_json()["messages"] == []  # not delivered until every chunk is in
    assert alice.track(message_id).get_json()["status"] == "uploading"
    assert alice.chunk(message_id, 2, 3, b"part two, ").status_code == 202
    third = alice.chunk(message_id, 3, 3, b"part three")
    assert third.status_code == 202 and "pass" in finding_outcomes(client, third)["MESH-CHK-004"]
    assert bob.inbox().get_json()["messages"] == [message_id]
    parts = [bob.download(message_id, n) for n in (1, 2, 3)]
    assert [p.status_code for p in parts] == [206, 206, 200]
    assert [p.headers["Mex-Chunk-Range"] for p in parts] == ["1:3", "2:3", "3:3"]
    assert b"".join(p.data for p in parts) == b"part one, part two, part three"
    assert bob.download(message_id, 4).status_code == 404
    late = alice.chunk(message_id, 3, 3, b"again")
    assert late.status_code == 423 and late.headers["X-Sandbox-Scenario"] == "mesh-chunk-after-final"


def test_chunk_rules(client, alice):
    message_id = alice.send(data=gz(b"one"), **{"Mex-Chunk-Range": "1:4", "Content-Encoding": "gzip"}) \
        .get_json()["message_id"]
    out_of_order = alice.chunk(message_id, 3, 4, gz(b"three"), **{"Content-Encoding": "gzip"})
    assert out_of_order.status_code == 202 and out_of_order.headers["X-Sandbox-Scenario"] == "mesh-chunk-out-of-order"
    assert "fail" in finding_outcomes(client, out_of_order)["MESH-CHK-004"]
    duplicate = alice.chunk(message_id, 3, 4, gz(b"three"), **{"Content-Encoding": "gzip"})
    assert duplicate.status_code == 202 and finding_outcomes(client, duplicate)["MESH-CHK-006"] == {"warning"}
    for number, total, status in ((5, 4, 417), (1, 4, 417), (2, 5, 417)):
        response = alice.chunk(message_id, number, total, gz(b"x"), **{"Content-Encoding": "gzip"})
        assert response.status_code == status, (number, total)
    mismatch = alice.call("POST", f"/outbox/{message_id}/2", {"Mex-Chunk-Range": "3:4",
                                                              "Content-Encoding": "gzip"}, data=gz(b"x"))
    assert mismatch.status_code == 417 and "fail" in finding_outcomes(client, mismatch)["MESH-CHK-002"]
    plain = alice.chunk(message_id, 2, 4, b"two")
    assert plain.status_code == 417 and "fail" in finding_outcomes(client, plain)["MESH-CHK-007"]
    other = Mesh(client, "X26ABC2").chunk(message_id, 2, 4, gz(b"two"), **{"Content-Encoding": "gzip"})
    assert other.status_code == 403
    assert alice.chunk("20200101000000000000_ABCDEF", 2, 2).status_code == 404
    nxt = alice.send()
    assert nxt.status_code == 202 and finding_outcomes(client, nxt)["MESH-CHK-008"] == {"warning"}


def test_gzip_is_passed_through_or_decoded_as_the_client_accepts(alice, bob):
    message_id = alice.send_id(data=gz(b"compressed text"), **{"Content-Encoding": "gzip"})
    raw = bob.download(message_id, **{"Accept-Encoding": "gzip"})
    assert raw.headers["Content-Encoding"] == "gzip" and raw.data == gz(b"compressed text")
    plain = bob.download(message_id, **{"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.data == b"compressed text"


def test_size_limits_come_from_the_session_configuration(client):
    config = client.get("/_sandbox/mesh/config").get_json()["config"]
    config["limits"] = {"max_request_bytes": 100, "max_message_bytes": 150}
    assert client.put("/_sandbox/mesh/config?session=small", json=config).status_code == 200
    alice = Mesh(client, "X26ABC1", session="small")
    large = alice.send(data=b"x" * 101)
    assert large.status_code == 413 and large.headers["X-Sandbox-Scenario"] == "mesh-message-too-large"
    message_id = alice.send(data=b"x" * 100, **{"Mex-Chunk-Range": "1:2"}).get_json()["message_id"]
    assert alice.chunk(message_id, 2, 2, b"y" * 51).status_code == 413
    assert alice.chunk(message_id, 2, 2, b"y" * 50).status_code == 202


# --- time: expiry, undelivered reports, purge ------------------------------------------------------------------
def test_expiry_sends_an_undelivered_report_to_the_sender(client, alice, bob):
    message_id = alice.send_id(**{"Mex-LocalID": "will-expire", "Mex-Subject": "Results"})
    advanced = client.post("/_sandbox/mesh/clock", json={"advance": "5d"}).get_json()
    assert advanced["expired"] == 1 and advanced["reports"] == 1
    assert bob.inbox().get_json()["messages"] == []
    gone = bob.download(message_id)
    assert gone.status_code == 410 and gone.headers["X-Sandbox-Scenario"] == "mesh-download-expired"
    reports = alice.inbox().get_json()["messages"]
    assert len(reports) == 1
    report = alice.download(reports[0])
    assert report.status_code == 200 and report.data == b""
    assert report.headers["X-Sandbox-Scenario"] == "mesh-undelivered-report"
    expected = {"Mex-MessageType": "REPORT", "Mex-StatusCode": "14", "Mex-StatusSuccess": "ERROR",
                "Mex-StatusEvent": "SEND", "Mex-LinkedMsgID": message_id, "Mex-To": "X26ABC2",
                "Mex-WorkflowID": "TEST_WORKFLOW", "Mex-LocalID": "will-expire", "Mex-Subject": "Results"}
    assert {k: report.headers.get(k) for k in expected} == expected
    assert "not collected" in report.headers["Mex-StatusDescription"]
    tracked = alice.track(message_id).get_json()
    assert tracked["status"] == "undeliverable" and tracked["status_success"] is False
    assert tracked["status_code"] == "14"
    client.post("/_sandbox/mesh/clock", json={"advance": "31d"})
    assert alice.track(message_id).status_code == 404  # purged 30 days after upload


def test_clock_is_per_session_and_validated(client):
    assert client.post("/_sandbox/mesh/clock?session=a", json={"advance": "2h"}).status_code == 200
    assert client.get("/_sandbox/mesh/clock?session=a").get_json()["offset_seconds"] == 7200
    assert client.get("/_sandbox/mesh/clock?session=b").get_json()["offset_seconds"] == 0
    bad = client.post("/_sandbox/mesh/clock", json={"advance": "soon"})
    assert bad.status_code == 400 and "not a duration" in bad.get_json()["message"]


# --- client behaviour ------------------------------------------------------------------------------------------
def test_polling_too_often_and_not_acknowledging_are_findings(client, alice, bob):
    message_id = alice.send_id()
    first = bob.inbox()
    assert "MESH-RCV-001" not in finding_outcomes(client, first)
    bob.download(message_id)
    second = bob.inbox()
    outcomes = finding_outcomes(client, second)
    assert outcomes["MESH-RCV-001"] == {"warning"} and outcomes["MESH-RCV-003"] == {"fail"}
    client.post("/_sandbox/mesh/clock", json={"advance": "6m"})
    bob.ack(message_id)
    third = bob.inbox()
    assert finding_outcomes(client, third).get("MESH-RCV-001") == {"pass"}
    assert "MESH-RCV-003" not in finding_outcomes(client, third)


def test_retrying_before_retry_after_is_a_finding(client, bob):
    refused = bob.call("GET", "/inbox", {"X-Sandbox-Scenario": "mesh-throttled"})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert refused.get_json()["detail"][0]["code"] == "TOO_MANY_REQUESTS"
    too_soon = bob.inbox()
    assert too_soon.status_code == 200
    failed = findings(client, too_soon, "MESH-ERR-001")
    assert failed[0]["outcome"] == "fail" and "Retry-After" in failed[0]["message"]


def test_acknowledging_an_unknown_message_is_404(bob):
    response = bob.ack("20200101000000000000_ABCDEF")
    assert response.status_code == 404 and response.get_json()["detail"][0]["code"] == "20"


# --- sessions, configuration, lookup ---------------------------------------------------------------------------
def test_sessions_never_see_each_other(client):
    message_id = Mesh(client, "X26ABC1", session="one").send_id()
    assert Mesh(client, "X26ABC2", session="two").inbox().get_json()["messages"] == []
    assert Mesh(client, "X26ABC2", session="one").inbox().get_json()["messages"] == [message_id]
    assert Mesh(client, "X26ABC2", session="two").download(message_id).status_code == 404


def test_session_configuration(client):
    body = {"shared_key": "Other", "mailboxes": [{"id": "AAA111", "password": "pw", "ods_code": "A1"},
                                                {"id": "BBB222", "password": "pw"}],
            "workflows": [{"id": "NEEDS_NAME", "senders": ["AAA111"], "receivers": ["BBB222"],
                           "required_headers": ["Mex-FileName"]}]}
    assert client.put("/_sandbox/mesh/config?session=custom", json=body).status_code == 200
    a = Mesh(client, "AAA111", session="custom", password="pw", key="Other")
    response = a.send(to="BBB222", workflow="NEEDS_NAME")
    assert response.status_code == 202 and finding_outcomes(client, response)["MESH-SND-011"] == {"fail"}
    assert Mesh(client, "X26ABC1", session="custom").inbox().status_code == 403
    lookup = client.get("/messageexchange/endpointlookup/A1/NEEDS_NAME", headers={"X-Sandbox-Session": "custom"})
    assert lookup.get_json() == {"query_id": lookup.get_json()["query_id"], "results": []}
    bad = client.put("/_sandbox/mesh/config", json={"mailboxes": [{"id": "lower", "password": ""}]})
    assert bad.status_code == 400 and "/mailboxes/0/id" in bad.get_json()["message"]
    assert client.delete("/_sandbox/mesh/config?session=custom").get_json()["config"]["shared_key"] == "TestKey"
    # A configuration set again after a reset is the one used (not the first, parsed and kept by a worker).
    body["shared_key"] = "Third"
    assert client.put("/_sandbox/mesh/config?session=custom", json=body).status_code == 200
    assert Mesh(client, "AAA111", session="custom", password="pw", key="Other").inbox().status_code == 403
    assert Mesh(client, "AAA111", session="custom", password="pw", key="Third").inbox().status_code == 200


def test_endpoint_lookup_and_workflow_search(client):
    v2 = client.get("/messageexchange/endpointlookup/X26/TEST_WORKFLOW_ACK", headers={"Accept": V2})
    assert v2.get_json() == {"results": [{"mailbox_id": "X26ABC1", "mailbox_name": "TESTMB1"}]}
    v1 = client.get("/messageexchange/endpointlookup/X27/TEST_WORKFLOW_ACK").get_json()
    assert v1["results"] == [{"endpoint_type": "MESH", "description": "TESTMB3", "address": "X26ABC3"}]
    search = client.get("/messageexchange/workflowsearch/TEST_WORKFLOW2").get_json()
    assert [r["mailbox_id"] for r in search["results"]] == ["X26ABC1", "X26ABC2", "X26ABC3"]


def test_reset_forgets_messages_and_keeps_configuration(client, alice, bob):
    alice.send_id()
    assert client.get("/_sandbox/mesh/messages").get_json()["count"] == 1
    client.post("/_sandbox/mesh/reset")
    assert client.get("/_sandbox/mesh/messages").get_json()["count"] == 0
    assert bob.inbox().get_json()["messages"] == []


def test_control_token_and_ping(client):
    token = client.get("/_sandbox/mesh/token/X26ABC1").get_json()["authorization"]
    assert Mesh(client, "X26ABC1").call("GET", "/inbox", token=token).status_code == 200
    assert client.get("/messageexchange/_ping").get_json()["status"] == "ok"


def test_journal_keeps_what_was_sent_and_answered(client, sandbox, alice, bob):
    payload = bytes(range(256)) * 4
    sent = alice.send(data=payload, **{"Content-Type": "application/octet-stream"})
    exchange = sandbox.store.journal.exchange(sent.headers["X-Sandbox-Exchange"])
    assert exchange.request.body == payload
    got = bob.download(sent.get_json()["message_id"])
    assert sandbox.store.journal.exchange(got.headers["X-Sandbox-Exchange"]).response.body == payload


def test_paging_continues_after_the_last_message_of_a_page_is_acknowledged(client, alice, bob):
    sent = [alice.send_id(workflow="PAGED") for _ in range(12)]
    first = bob.inbox(max_results=10).get_json()
    bob.download(sent[9])
    bob.ack(sent[9])
    rest = client.get(first["links"]["next"], headers=bob.headers()).get_json()
    assert rest["messages"] == sent[10:]
