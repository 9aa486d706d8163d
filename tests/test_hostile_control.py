"""The control API under /_sandbox/ is total: every endpoint the app serves there answers any body, query and path
segment with a 2xx, or a 4xx in the control JSON error shape {"error": …, "message": …}; never a 5xx. Endpoints are
found from the app's own URL map, so a new one is covered without a change here."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.app import create_app
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION

CONTROL = "/_sandbox"
SEGMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

# Every field name a control body reads, so generated objects reach the typed readers rather than stopping early.
FIELDS = ["plan", "supplier", "system", "requirement", "verdict", "by", "note", "name", "jwks", "keys",
          "redirect_uris", "session", "user_id", "role_id", "aal", "audience", "nhs_number", "vot", "ods", "asid",
          "party_key", "endpoint", "interactions", "retries", "retry_interval", "persist_duration", "ca_file", "wait",
          "advance", "mailboxes", "workflows", "limits", "max_chunk_size", "chunk_size", "retention"]
PARAMS = ["limit", "offset", "before", "since", "status", "evidence", "format", "session", "kind", "wait", "plan",
          "pattern", "nhs_number", "service", "outcome", "requirement", "max_results", "continue_from"]

# Values that broke parsers before: non-ASCII digits, huge and non-finite numbers, lone surrogates, odd text.
HOSTILE_TEXT = ["²", "١٢", "٣d", "1_000", "9" * 400, "-1", "1e999", "nan", "inf", "0x10", " 7 ", "", "\x00",
                "../../etc/passwd", "99999999999d", "1" * 21, "9223372036854775808", "%ff", "ü" * 300, "a" * 5000]
HOSTILE_BODIES = [
    b"", b"null", b"[]", b"0", b'"text"', b"true", b"1e999", b"9" * 400, b"-" + b"9" * 400, b"NaN", b"Infinity",
    b"[" * 100_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'"\\ud800"', b'{"\\udfff": 1}', b"\xff\xfe\x00",
    b"\xc3\x28", b"{", b'{"a": 1,}', "{\"advance\": \"٣d\"}".encode(), b'{"advance": "99999999999d"}',
    b'{"advance": 1e308}', b'{"wait": 1e308}', b'{"advance": -5}', b'{"retries": "\xc2\xb2"}',
    b'{"plan": {}, "supplier": [], "system": 7}', b'{"name": 1, "jwks": [], "redirect_uris": "x", "session": 5}',
    b'{"user_id": [], "role_id": {}, "aal": 3, "audience": {"a": 1}}', b'{"nhs_number": {}, "vot": []}',
    b'{"requirement": [], "verdict": {}, "by": 1, "note": 2}', b'{"interactions": [{}], "endpoint": "http://[::1"}',
    b'{"ods": "ABC12", "asid": "200000009999", "party_key": "ABC12-1", "endpoint": "http://[::1", '
    b'"interactions": ["REPC_IN150016UK05"], "retries": "\xc2\xb2", "ca_file": "' + b"a" * 300 + b'"}',
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("hostile-control") / "data",
                             population=TEST_POPULATION)
    return create_app(settings)


def control_routes(app) -> list[tuple[str, str]]:
    routes = [(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith(CONTROL + "/")
              for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(routes)


def fill(rule: str, segment: str) -> str:
    """The rule with every variable part replaced by `segment` (an <any(...)> converter gets its first choice)."""
    rule = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m.group(1).strip("'\" "), rule)
    return SEGMENT.sub(quote(segment, safe=""), rule)


def assert_total(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str), \
            f"{what}: {response.status_code} not in the control error shape: {response.get_data(as_text=True)[:300]}"


def test_the_control_api_is_found_from_the_url_map(app):
    routes = control_routes(app)
    assert len(routes) >= 40
    assert ("/_sandbox/spine/clock", "POST") in routes and ("/_sandbox/sessions", "POST") in routes


def test_every_control_endpoint_answers_every_hostile_body_and_query_without_a_5xx(app):
    client = app.test_client()
    for rule, method in control_routes(app):
        for segment in ("ü", "%00", "9" * 400):
            path = fill(rule, segment)
            if method in ("POST", "PUT"):
                for body in HOSTILE_BODIES:
                    answer = client.open(path, method=method, data=body, content_type="application/json")
                    assert_total(answer, f"{method} {path[:80]} {body[:60]!r}")
            for value in HOSTILE_TEXT:
                query = {name: value for name in PARAMS}
                answer = client.open(path, method=method, query_string=query)
                assert_total(answer, f"{method} {path[:80]} ?…={value[:20]!r}")
            if "<" not in rule:
                break  # one path is enough where nothing varies


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(HOSTILE_TEXT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                                                inner, max_size=5),
    max_leaves=12)
bodies = (st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8).map(lambda v: json.dumps(v).encode())
          | json_values.map(lambda v: json.dumps(v).encode()) | st.sampled_from(HOSTILE_BODIES)
          | st.binary(max_size=64))
queries = st.dictionaries(st.sampled_from(PARAMS), st.sampled_from(HOSTILE_TEXT) | st.text(max_size=12), max_size=4)
segments = st.sampled_from(["x", "default", "cis2", "X26ABC1", "9000000009", "sess-0"]) | st.text(min_size=1,
                                                                                                  max_size=40)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), body=bodies, query=queries, segment=segments,
       content_type=st.sampled_from(["application/json", "text/plain", None]))
def test_generated_requests_to_control_endpoints_never_answer_5xx(app, data, body, query, segment, content_type):
    rule, method = data.draw(st.sampled_from(control_routes(app)), label="route")
    path = fill(rule, segment)
    answer = app.test_client().open(path, method=method, query_string=query, content_type=content_type,
                                    data=body if method in ("POST", "PUT", "PATCH") else None)
    assert_total(answer, f"{method} {path[:80]} ?{query} {body[:60]!r}")


def test_a_wrong_field_type_is_named_with_the_type_expected(app):
    client = app.test_client()
    answer = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": 12, "system": "B"})
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "Bad Request", "field": "supplier",
                                 "message": "field 'supplier' must be a string, not a whole number"}
    flush = client.post("/_sandbox/spine/flush", json={"wait": True})
    assert flush.status_code == 400 and flush.get_json()["field"] == "wait"
    assert "must be a string or a number, not true or false" in flush.get_json()["message"]


def test_bodies_that_are_not_json_objects_are_refused_saying_why(app):
    client = app.test_client()
    for body, why in ((b"[" * 100_000, "nested deeper than 64 levels"), (b'{"advance": 1e999}', "too large"),
                      (b'"\\ud800"', "lone surrogate"), (b"\xff", "not UTF-8"), (b"[1]", "must be a JSON object")):
        answer = client.post("/_sandbox/oauth/apps", data=body, content_type="application/json")
        assert answer.status_code == 400 and why in answer.get_json()["message"], (body[:20], answer.get_json())
    too_large = client.post("/_sandbox/sessions", data=b"[" * (11 * 1024 * 1024), content_type="application/json")
    assert too_large.status_code == 413 and "SANDBOX_MAX_BODY_BYTES" in too_large.get_json()["message"]


def test_query_numbers_take_ascii_digits_within_bounds(app):
    client = app.test_client()
    for query, why in (({"limit": "²"}, "'²' is not a whole number"), ({"limit": "١٠"}, "is not a whole number"),
                       ({"before": "9" * 20}, "is more than 9223372036854775807"),
                       ({"since": "1e999"}, "is not a Unix time in seconds"), ({"limit": "5000"}, "more than 1000")):
        answer = client.get("/_sandbox/exchanges", query_string=query)
        assert answer.status_code == 400 and why in answer.get_json()["message"], (query, answer.get_json())
    report = client.get("/_sandbox/sessions/default/report", query_string={"evidence": "²"})
    assert report.status_code == 400 and report.get_json()["field"] == "evidence"
    beyond = client.get("/_sandbox/patients", query_string={"offset": str(10**12)})
    assert beyond.status_code == 400 and f"more than {TEST_POPULATION}" in beyond.get_json()["message"]


def test_an_absurd_spine_clock_change_is_refused_and_stores_nothing(app):
    client = app.test_client()
    session = {"session": "hostile-clock"}
    for advance in ("99999999999d", "٣d", 1e300, -5, "400d"):
        answer = client.post("/_sandbox/spine/clock", query_string=session, json={"advance": advance})
        assert answer.status_code == 400 and answer.get_json()["field"] == "advance", (advance, answer.get_json())
    assert client.get("/_sandbox/spine/clock", query_string=session).get_json()["offset_seconds"] == 0
    for _ in range(10):
        client.post("/_sandbox/spine/clock", query_string=session, json={"advance": "366d"})
    too_far = client.post("/_sandbox/spine/clock", query_string=session, json={"advance": "366d"})
    assert too_far.status_code == 400 and "beyond" in too_far.get_json()["message"]
    assert client.get("/_sandbox/spine/clock", query_string=session).get_json()["offset_seconds"] == 10 * 366 * 86400


def test_an_unknown_control_path_and_a_wrong_method_say_what_there_is(client):
    missing = client.get(f"{CONTROL}/nothing-here")
    assert missing.status_code == 404
    assert "No control API endpoint at /_sandbox/nothing-here" in missing.get_json()["message"]
    wrong = client.delete(f"{CONTROL}/health")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert wrong.get_json() == {"error": "METHOD_NOT_ALLOWED",
                                "message": "DELETE is not supported on /_sandbox/health; use GET."}
