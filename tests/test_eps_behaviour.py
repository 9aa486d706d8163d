"""EPS behaviour over a session's history, over HTTP: X-Request-ID is new for every new request and kept only to
re-send a failed request unchanged (EPS-BEH-001); a 504 is retried with an identical payload and the same
X-Request-ID (EPS-BEH-002). The 504 is the published fault scenario eps-gateway-timeout."""

from __future__ import annotations

import json

import pytest

from tests.eps_helpers import PRESCRIBER, PRESCRIBING, Tokens, eps_headers, example_json

PREPARE = f"{PRESCRIBING}/$prepare"
TIMEOUT = {"X-Sandbox-Scenario": "eps-gateway-timeout"}


def prepare_body() -> dict:
    return example_json("primary-care", "acute", "nominated-pharmacy", "medical-prescriber",
                        "1-Prepare-Request-200_OK.json")


@pytest.fixture
def headers(client):
    token = Tokens(client).worker(PRESCRIBER)

    def make(**extra: str) -> dict[str, str]:
        return eps_headers(token, PRESCRIBER, **extra)
    return make


def finding(client, response, requirement: str) -> list[dict]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return [f for f in exchange["findings"] if f["requirement"] == requirement]


def post(client, headers: dict, body: dict | None = None):
    return client.post(PREPARE, data=json.dumps(body or prepare_body()), headers=headers)


def test_a_new_request_id_for_each_request_passes(client, headers):
    first, second = post(client, headers()), post(client, headers())
    for response in (first, second):
        assert [f["outcome"] for f in finding(client, response, "EPS-BEH-001")] == ["pass"]


def test_a_request_id_used_again_for_a_new_request_fails(client, headers):
    sent = headers()
    first = post(client, sent)
    assert first.status_code < 500
    again = post(client, sent)
    found = finding(client, again, "EPS-BEH-001")
    assert [f["outcome"] for f in found] == ["fail"]
    assert first.headers["X-Sandbox-Exchange"] in found[0]["message"]


def test_a_timed_out_request_retried_identically_passes_both_rules(client, headers):
    sent = headers()
    timed_out = post(client, {**sent, **TIMEOUT})
    assert timed_out.status_code == 504
    retry = post(client, sent)
    assert [f["outcome"] for f in finding(client, retry, "EPS-BEH-001")] == ["pass"]
    assert [f["outcome"] for f in finding(client, retry, "EPS-BEH-002")] == ["pass"]


def test_a_timed_out_request_retried_with_another_payload_fails(client, headers):
    sent = headers()
    assert post(client, {**sent, **TIMEOUT}).status_code == 504
    changed = prepare_body()
    changed["identifier"]["value"] = "11111111-2222-4333-8444-555555555555"
    retry = post(client, sent, changed)
    assert [f["outcome"] for f in finding(client, retry, "EPS-BEH-002")] == ["fail"]
    assert [f["outcome"] for f in finding(client, retry, "EPS-BEH-001")] == ["fail"]


def test_a_timed_out_request_retried_with_a_new_request_id_is_a_warning(client, headers):
    assert post(client, headers(**TIMEOUT)).status_code == 504
    retry = post(client, headers())
    found = finding(client, retry, "EPS-BEH-002")
    assert [f["outcome"] for f in found] == ["warning"] and "new X-Request-ID" in found[0]["message"]
