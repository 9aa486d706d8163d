"""MESH under hostile input (in process): whatever arrives in a header, query parameter, path or body is answered in
MESH's own error shape and journaled, never with a 500; and the amplification attacks (a gzip bomb, an absurd chunk
range, an absurd clock change) are refused at once."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
import zlib
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.services.mesh import compression
from sandbox.services.mesh.auth import make_token
from sandbox.services.mesh.session import SESSION_NS
from tests.mesh_helpers import BASE, V2, Mesh, finding_outcomes, findings

FUZZ = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
MIB = 1 << 20


@pytest.fixture
def alice(client) -> Mesh:
    return Mesh(client, "X26ABC1")


@pytest.fixture
def bob(client) -> Mesh:
    return Mesh(client, "X26ABC2")


# --- what every answer must be ----------------------------------------------------------------------------------
def assert_mesh_answer(client, response) -> None:
    """Not a 5xx; an error is MESH's JSON (the validation shape, v1 or v2); the exchange is in the journal."""
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400 and response.request.method != "HEAD":  # HEAD: the status and headers only
        body = response.get_json()
        assert isinstance(body, dict), response.get_data(as_text=True)[:200]
        if "errorEvent" in body:
            assert {"errorEvent", "errorCode", "errorDescription"} <= body.keys()
        else:
            detail = body["detail"]
            assert isinstance(detail, list) and detail
            assert {"loc", "msg", "type"} <= detail[0].keys() or {"event", "code", "msg"} <= detail[0].keys()
    exchange = response.headers["X-Sandbox-Exchange"]
    assert client.get(f"/_sandbox/exchanges/{exchange}").status_code == 200


# Header values as they arrive: any byte but CR, LF and NUL, read as Latin-1 (so UTF-8 arrives as its bytes).
_latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
_utf8_as_latin1 = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12).map(
    lambda t: t.encode().decode("latin-1"))
NASTY = ["²", "١٠", "٣:٥", "1e999", "9" * 400, "-1", "0", "NaN", "1:0", "0:0", "2:1", "1:10000000", "1 : 3",
         "10000000:10000000", "1:99999999999999999999999", " ", "", "１:２"]
header_value = st.one_of(st.sampled_from(NASTY), st.text(_latin1, max_size=40), _utf8_as_latin1,
                         st.integers(-10**30, 10**30).map(str))
query_value = st.one_of(st.sampled_from(NASTY), st.text(max_size=30).filter(lambda t: "\x00" not in t),
                        st.integers(-10**30, 10**30).map(str))
body = st.one_of(st.binary(max_size=64), st.just(gzip.compress(b"x" * 100)), st.just(gzip.compress(b"x")[:-3]),
                 st.just(b"\x1f\x8b" + b"\x00" * 20))


@FUZZ
@given(chunk_range=header_value, encoding=st.one_of(st.none(), st.sampled_from(["gzip", "GZIP", "identity", "br"]),
                                                    header_value),
       to=header_value, workflow=header_value, accept=st.one_of(header_value, st.sampled_from(
           ["application/vnd.mesh.v2+json", "application/vnd.mesh.v١+json", "application/vnd.mesh.v" + "9" * 5000
            + "+json"])), data=body)
def test_send_headers_never_reach_a_500(client, alice, chunk_range, encoding, to, workflow, accept, data):
    headers = {"Mex-Chunk-Range": chunk_range, "Content-Encoding": encoding, "Mex-To": to, "Mex-WorkflowID": workflow,
               "Accept": accept}
    response = alice.call("POST", "/outbox", headers, data=data)
    assert_mesh_answer(client, response)


@FUZZ
@given(number=st.one_of(st.sampled_from(NASTY), st.integers(-5, 10**25).map(str)), chunk_range=header_value,
       encoding=st.one_of(st.none(), st.just("gzip"), header_value), data=body)
def test_chunk_uploads_never_reach_a_500(client, alice, number, chunk_range, encoding, data):
    started = alice.send(data=b"first", **{"Mex-Chunk-Range": "1:3"})
    message_id = started.get_json()["message_id"]
    path = f"/outbox/{message_id}/{quote(number, safe='')}"
    response = alice.call("POST", path, {"Mex-Chunk-Range": chunk_range, "Content-Encoding": encoding}, data=data)
    assert_mesh_answer(client, response)


@FUZZ
@given(max_results=st.one_of(st.none(), query_value), continue_from=st.one_of(st.none(), query_value, st.sampled_from(
    ["eyJ0IjogMWU5OTksICJpZCI6ICJ4In0", "eyJ0IjogW10sICJpZCI6IDF9", "W10", "bnVsbA", "!!!!"])),
       workflow_filter=st.one_of(st.none(), query_value), version=st.sampled_from([1, 2]))
def test_inbox_parameters_never_reach_a_500(client, max_results, continue_from, workflow_filter, version):
    bob = Mesh(client, "X26ABC2", version=version)
    params = {k: v for k, v in (("max_results", max_results), ("continue_from", continue_from),
                                ("workflow_filter", workflow_filter)) if v is not None}
    assert_mesh_answer(client, bob.inbox(**params))


@FUZZ
@given(message_id=query_value.filter(bool), number=query_value.filter(bool), tracking=query_value,
       encoding=header_value)
def test_paths_and_tracking_never_reach_a_500(client, bob, message_id, number, tracking, encoding):
    quoted = quote(message_id, safe="")
    for method, path, extra in (("GET", f"/inbox/{quoted}", {"Accept-Encoding": encoding}),
                                ("GET", f"/inbox/{quoted}/{quote(number, safe='')}", {}),
                                ("HEAD", f"/inbox/{quoted}", {}),
                                ("PUT", f"/inbox/{quoted}/status/acknowledged", {}),
                                ("GET", f"/outbox/tracking/{quoted}", {})):
        assert_mesh_answer(client, bob.call(method, path, extra))
    assert_mesh_answer(client, bob.call("GET", "/outbox/tracking", query_string={"messageID": tracking}))


@FUZZ
@given(scheme=st.sampled_from(["NHSMESH ", "nhsmesh ", "NhsMesh ", "NHSMESH  ", "Bearer ", "NHSMESH", "ſſ "]),
       fields=st.lists(header_value, min_size=0, max_size=7))
def test_authorization_never_reaches_a_500(client, scheme, fields):
    response = client.get(f"{BASE}/X26ABC1/inbox", headers={"Authorization": scheme + ":".join(fields)})
    assert_mesh_answer(client, response)


# --- explicit regressions ---------------------------------------------------------------------------------------
def test_max_results_with_anything_but_a_number_from_10_to_5000_is_a_validation_error(client):
    for version in (1, 2):  # v1 ignores max_results, but the parameter is still checked (it crashed the check)
        for value in ("²", "١٠", "1e999", "9" * 400, "4"):
            response = Mesh(client, "X26ABC2", version=version).inbox(max_results=value)
            assert response.status_code == 400, (version, value)
            assert response.get_json()["detail"][0]["loc"] == ["query", "max_results"]
            assert "fail" in finding_outcomes(client, response)["MESH-API-002"]


def test_a_continue_from_of_the_wrong_shape_is_a_validation_error(client, bob):
    for token in ("eyJ0IjogMWU5OTksICJpZCI6ICJ4In0", "eyJ0IjogW10sICJpZCI6IDF9", "W10"):  # 1e999; wrong types; []
        response = bob.inbox(continue_from=token)
        assert response.status_code == 400
        assert response.get_json()["detail"][0]["loc"] == ["query", "continue_from"]


def test_the_nhsmesh_scheme_is_case_insensitive(alice):
    token = make_token("X26ABC1", "password", "TestKey")
    assert alice.call("GET", "/inbox", token="nhsmesh " + token[len("NHSMESH "):]).status_code == 200


def test_a_token_with_non_ascii_digits_is_refused_as_malformed(client, alice):
    # Superscripts pass str.isdigit(); other scripts' digits arrive as their UTF-8 bytes.
    for field, value in ((3, "²" * 12), (2, "²"), (3, "٢٠٢٦٠١٠١١٢٠٠".encode().decode("latin-1"))):
        token = make_token("X26ABC1", "password", "TestKey").split(":")
        token[field] = value
        response = alice.call("GET", "/inbox", token=":".join(token))
        assert response.status_code == 403
        message = findings(client, response, "MESH-AUTH-001")[0]["message"]
        assert ("yyyyMMddHHmm" if field == 3 else "nonce_count") in message


def test_an_absurd_chunk_range_is_refused_at_the_first_chunk(client, alice, bob):
    response = alice.send(data=b"first", **{"Mex-Chunk-Range": "1:10000000"})
    assert response.status_code == 417
    body = response.get_json()
    assert body["detail"][0]["code"] == "InvalidHeaderChunks" and "at most 10000" in body["detail"][0]["msg"]
    assert "fail" in finding_outcomes(client, response)["MESH-CHK-001"]
    assert client.get("/_sandbox/mesh/messages").get_json()["count"] == 0  # nothing was started


def test_a_chunk_range_that_is_not_ascii_n_m_is_refused(alice):
    for chunk_range in ("١:٣", "²:³", "1:3x", "1:1:3", "0:3", "3:1"):
        response = alice.send(data=b"first", **{"Mex-Chunk-Range": chunk_range.encode().decode("latin-1")})
        assert response.status_code == 417 and response.get_json()["detail"][0]["code"] == "InvalidHeaderChunks"


def test_a_chunk_far_beyond_the_total_is_refused_without_walking_the_range(client, alice):
    message_id = alice.send_id(data=b"first", **{"Mex-Chunk-Range": "1:3"})
    for chunk_range in ("10000000:10000000", "3:10000000"):
        number = chunk_range.split(":")[0]
        response = alice.call("POST", f"/outbox/{message_id}/{number}", {"Mex-Chunk-Range": chunk_range},
                              data=b"late")
        assert response.status_code == 417
        assert response.get_json()["detail"][0]["code"] == "InvalidHeaderChunks"
    assert alice.chunk(message_id, 3, 3).status_code == 202  # out of order, but within the message: a finding
    stored = client.get("/_sandbox/mesh/messages").get_json()["messages"][0]
    assert stored["chunks"] == "2/3"


def test_a_session_may_lower_the_chunk_limit(client):
    config = client.get("/_sandbox/mesh/config").get_json()["config"]
    config["limits"] = {"max_chunks": 4}
    assert client.put("/_sandbox/mesh/config", json=config).status_code == 200
    alice = Mesh(client, "X26ABC1")
    assert alice.send(**{"Mex-Chunk-Range": "1:4"}).status_code == 202
    assert alice.send(**{"Mex-Chunk-Range": "1:5"}).status_code == 417


def gzip_bomb(mib: int) -> bytes:
    """A valid gzip stream of `mib` MiB of zeros, about 1 KB per MiB, made without ever holding the zeros: one
    fully flushed deflate block of a MiB, repeated (each block starts afresh, so the copies are valid in sequence)."""
    zeros = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty last block
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + block * mib + final
            + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF))


def test_the_bomb_is_what_it_claims():
    bomb = gzip_bomb(3)
    assert zlib.decompress(bomb, 31) == bytes(3 * MIB)


def test_a_gzip_bomb_is_refused_at_download_without_being_expanded(client, alice, bob):
    bomb = gzip_bomb(1000)  # about 1 MB that expands to 1000 MiB
    assert len(bomb) < 2 * MIB
    sent = alice.send(data=bomb, **{"Content-Encoding": "gzip"})
    assert sent.status_code == 202  # MESH takes compressed data as sent (its 100 MB limit is on what is sent)
    warned = findings(client, sent, "MESH-SND-009")
    assert [f["outcome"] for f in warned] == ["warning"] and "expands to more than" in warned[0]["message"]
    message_id = sent.get_json()["message_id"]
    tracemalloc.start()
    try:
        refused = bob.download(message_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.status_code == 406
    error = refused.get_json()["detail"][0]
    assert error["code"] == "EncodingRequired" and "Accept-Encoding: gzip" in error["msg"]
    assert peak < 32 * MIB  # nothing near the 1000 MiB it would expand to
    taken = bob.download(message_id, **{"Accept-Encoding": "gzip"})  # as sent, for a client that takes gzip
    assert taken.status_code == 200 and taken.headers["Content-Encoding"] == "gzip" and taken.data == bomb


def test_gzip_is_read_as_gzip_reads_it():
    data = os.urandom(300_000) + bytes(200_000)
    members = gzip.compress(data) + gzip.compress(b"second") + bytes(8)  # two members, then zero padding
    assert compression.expand(members, 10 * MIB) == data + b"second"
    for bad, why in ((gzip.compress(data)[:-10], "truncated"), (gzip.compress(data) + b"junk", "after the end"),
                     (b"\x1f\x8b\x08\x00garbage", "truncated"), (b"\x1f\x8bxxxxxxxxxx", "not valid gzip"),
                     (b"plain", "magic bytes")):
        state, text = compression.inspect(bad, 10 * MIB)
        assert state == compression.NOT_GZIP and why in text
    assert compression.inspect(gzip_bomb(50), 10 * MIB) == (compression.TOO_LARGE,
                                                             f"expands to more than {10 * MIB} bytes")


def test_expanding_a_bomb_stops_at_the_limit_in_small_steps():
    """A chunk stored before uploads were inspected is expanded at download with the same bound."""
    tracemalloc.start()
    try:
        with pytest.raises(compression.TooLarge):
            compression.expand(gzip_bomb(200), 20 * MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * MIB + 4 * MIB  # what it kept up to the limit, never the 200 MiB


def test_gzip_within_the_bound_is_expanded_and_bad_gzip_passed_on(client, alice, bob):
    data = b"line of text\n" * 1000
    message_id = alice.send_id(data=gzip.compress(data), **{"Content-Encoding": "gzip"})
    assert bob.download(message_id).data == data
    truncated = gzip.compress(data)[:-10]
    sent = alice.send(data=truncated, **{"Content-Encoding": "gzip"})
    assert sent.status_code == 202
    assert "truncated" in findings(client, sent, "MESH-SND-009")[0]["message"]
    passed_on = bob.download(sent.get_json()["message_id"])
    assert passed_on.status_code == 200 and passed_on.data == truncated
    assert passed_on.headers["Content-Encoding"] == "gzip"


# --- the clock --------------------------------------------------------------------------------------------------
def test_an_absurd_clock_change_is_refused_and_stores_nothing(client, alice):
    for advance in ("99999999999d", 1e308, "١d", True, [], {"d": 1}, "-5d", -1, "5 days", "3661d"):
        response = client.post("/_sandbox/mesh/clock", json={"advance": advance})
        assert response.status_code == 400, advance
        body = response.get_json()
        assert body["error"] == "bad_request" and "advance" in body["message"]
        assert client.get("/_sandbox/mesh/clock").get_json()["offset_seconds"] == 0
    assert alice.send().status_code == 202


def test_clock_changes_add_up_to_at_most_ten_years(client):
    assert client.post("/_sandbox/mesh/clock", json={"advance": "3000d"}).status_code == 200
    refused = client.post("/_sandbox/mesh/clock", json={"advance": "700d"})
    assert refused.status_code == 400 and "at most 3660 days" in refused.get_json()["message"]


def test_a_malformed_control_body_is_a_control_api_error(client):
    for body in (b"[" * 100_000, b'{"advance": 1e999}', b'{"advance": "\\ud800"}', b"\xff", b"null"):
        for method, path in (("POST", "/_sandbox/mesh/clock"), ("PUT", "/_sandbox/mesh/config")):
            response = client.open(path, method=method, data=body, content_type="application/json")
            assert response.status_code == 400 and response.get_json()["error"] == "bad_request", (path, body)


def test_an_absurd_offset_stored_before_the_bound_does_not_break_the_session(client, sandbox, alice, bob):
    sandbox.store.state.put("default", SESSION_NS, "clock", {"offset": 99999999999 * 86400.0})
    message_id = alice.send_id()
    assert bob.download(message_id).status_code == 200
    assert client.get("/_sandbox/mesh/clock").get_json()["offset_seconds"] == 0
    assert client.post("/_sandbox/mesh/clock", json={"advance": "1d"}).get_json()["offset_seconds"] == 86400


def test_a_stored_configuration_beyond_the_bounds_falls_back_to_the_default(client, sandbox, alice):
    config = client.get("/_sandbox/mesh/config").get_json()["config"]
    config["limits"] = {"inbox_days": 1e300}
    assert client.put("/_sandbox/mesh/config", json=config).status_code == 400  # refused now
    sandbox.store.state.put("default", SESSION_NS, "config", config)  # as an older version would have stored it
    assert alice.send().status_code == 202


@FUZZ
@given(advance=st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers(-10**30, 10**30),
                         st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
def test_clock_bodies_never_reach_a_500(client, advance):
    response = client.post("/_sandbox/mesh/clock?session=fuzz", json={"advance": advance})
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    if response.status_code == 400:
        assert response.get_json()["error"] == "bad_request"
    client.post("/_sandbox/mesh/reset?session=fuzz")


_number = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0, 1, 366, 3660, 10**11, 2**63, 1e300]))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limits=st.dictionaries(st.sampled_from(["max_request_bytes", "max_message_bytes", "max_chunks",
                                                "max_expanded_bytes", "inbox_days", "purge_days",
                                                "poll_interval_seconds", "token_window_seconds", "other"]),
                              st.one_of(_number, st.text(max_size=5), st.none(), st.booleans()), max_size=4))
def test_session_limits_are_bounded_and_never_break_the_session(client, limits):
    config = client.get("/_sandbox/mesh/config?session=limits").get_json()["config"]
    config["limits"] = limits
    response = client.put("/_sandbox/mesh/config?session=limits", json=config)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    alice = Mesh(client, "X26ABC1", session="limits")
    sent = alice.send(data=b"hello", **{"Mex-Chunk-Range": "1:2"})
    assert_mesh_answer(client, sent)
    if sent.status_code == 202:
        assert_mesh_answer(client, alice.chunk(sent.get_json()["message_id"], 2, 2, data=b"more"))
    assert client.post("/_sandbox/mesh/clock?session=limits", json={"advance": "3000d"}).status_code == 200
    assert_mesh_answer(client, Mesh(client, "X26ABC2", session="limits").inbox())
    client.post("/_sandbox/mesh/reset?session=limits")


def test_v2_accept_with_a_huge_version_number_is_a_validation_error(alice):
    response = alice.call("GET", "/inbox", {"Accept": "application/vnd.mesh.v" + "9" * 5000 + "+json"})
    assert response.status_code == 400 and response.get_json()["detail"][0]["loc"] == ["header", "accept"]
    assert alice.call("GET", "/inbox", {"Accept": V2}).status_code == 200
