"""What each MESH worker keeps between requests (a session's items, an inbox's count and its downloaded messages, the
last token and Accept value parsed, passing findings) never hides a change: a change made through another worker on
the same store (here a second app, as a second worker process or a replica would be) is seen on the next request.
And the message ids keep the time to the microsecond as before."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from sandbox.app import create_app
from sandbox.services.mesh.post_office import new_message_id
from tests.mesh_helpers import Mesh, finding_outcomes


@pytest.fixture
def other(settings):
    """A second app on the same store: another worker process, or a replica on the same database."""
    app = create_app(settings)
    yield app.test_client()
    app.extensions["sandbox"].close()


def test_a_session_configuration_changed_through_another_worker_is_seen_on_the_next_request(client, other):
    alice = Mesh(client, "X26ABC1")
    assert alice.send(data=b"x" * 200).status_code == 202  # this worker has read the session now
    config = other.get("/_sandbox/mesh/config").get_json()["config"]
    config["limits"]["max_request_bytes"] = 100
    assert other.put("/_sandbox/mesh/config", json=config).status_code == 200
    refused = alice.send(data=b"x" * 200)
    assert refused.status_code == 413
    assert other.delete("/_sandbox/mesh/config").status_code == 200
    assert alice.send(data=b"x" * 200).status_code == 202


def test_a_clock_moved_through_another_worker_expires_messages_on_the_next_request(client, other):
    alice, bob = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2")
    message_id = alice.send_id()
    assert bob.call("GET", "/count").get_json() == {"count": 1}
    assert other.post("/_sandbox/mesh/clock", json={"advance": "6d"}).status_code == 200
    assert bob.call("GET", "/count").get_json() == {"count": 0}
    assert bob.download(message_id).status_code == 410


def test_the_count_follows_every_send_acknowledgement_and_expiry(client, other):
    alice, bob, bob_elsewhere = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2"), Mesh(other, "X26ABC2")
    assert bob.call("GET", "/count").get_json() == {"count": 0}
    first, second = alice.send_id(), alice.send_id()
    assert bob.call("GET", "/count").get_json() == {"count": 2}
    assert bob.call("GET", "/count").get_json() == {"count": 2}  # counted once, answered again
    assert bob_elsewhere.ack(first).status_code == 200
    assert bob.call("GET", "/count").get_json() == {"count": 1}
    client.post("/_sandbox/mesh/clock", json={"advance": "4d"})
    third = alice.send_id()
    assert bob.call("GET", "/count").get_json() == {"count": 2}
    client.post("/_sandbox/mesh/clock", json={"advance": "1d"})  # the second has waited 5 days, the third 1
    assert bob.call("GET", "/count").get_json() == {"count": 1}
    assert bob.inbox().get_json()["messages"] == [third] and second != third


def test_a_download_through_another_worker_is_a_finding_on_the_next_poll(client, other):
    alice, bob, bob_elsewhere = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2"), Mesh(other, "X26ABC2")
    message_id = alice.send_id()
    assert "MESH-RCV-003" not in finding_outcomes(client, bob.inbox())
    assert "MESH-RCV-003" not in finding_outcomes(client, bob.inbox())  # the inbox as read, kept
    assert bob_elsewhere.download(message_id).status_code == 200
    assert finding_outcomes(client, bob.inbox())["MESH-RCV-003"] == {"fail"}
    assert bob_elsewhere.ack(message_id).status_code == 200
    assert "MESH-RCV-003" not in finding_outcomes(client, bob.inbox())


def test_a_binding_made_released_or_moved_through_another_worker_is_seen_on_the_next_request(client, other):
    def lands_in() -> str:
        answered = Mesh(client, "X26ABC1").handshake()
        assert answered.status_code == 200
        return client.get(f"/_sandbox/exchanges/{answered.headers['X-Sandbox-Exchange']}").get_json()["session"]

    def bind() -> str:
        made = other.post("/_sandbox/sessions", json={"plan": "mesh-sending", "supplier": "Acme", "system": "S",
                                                      "mailboxes": ["X26ABC1"]})
        assert made.status_code == 201, made.get_data(as_text=True)
        return made.get_json()["session"]

    assert lands_in() == "default"
    first = bind()
    assert lands_in() == first
    assert other.delete(f"/_sandbox/sessions/{first}/mailboxes").get_json()["released"] == ["X26ABC1"]
    assert lands_in() == "default"
    second = bind()
    assert lands_in() == second != first


def test_the_same_token_parsed_twice_is_still_used_once(client):
    alice = Mesh(client, "X26ABC1")
    token = alice.headers()["Authorization"]
    assert alice.handshake(Authorization=token).status_code == 200
    replayed = alice.handshake(Authorization=token)
    assert replayed.status_code == 403 and "already used" in replayed.get_json()["detail"][0]["msg"]


def test_message_ids_keep_the_time_to_the_microsecond_as_datetime_gives_it():
    rounding = [1_700_000_000.9999995, 1_700_000_000.9999994, 1_700_000_000.0000005, 1_700_000_059.9999999, 0.5e-6]
    for now in rounding + [random.uniform(0, 4e9) for _ in range(2000)]:
        made = new_message_id(now)
        assert made[:20] == f"{datetime.fromtimestamp(now, UTC):%Y%m%d%H%M%S%f}", now
        assert made[20] == "_" and len(made) == 27 and made[21:] == made[21:].upper()
        int(made[21:], 16)


def test_a_filtered_inbox_pages_through_every_match_in_order(client):
    alice, bob = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2")
    sent = [(alice.send_id(workflow=f"WF_{'A' if n % 3 else 'B'}"), n) for n in range(40)]
    wanted = [message_id for message_id, n in sent if n % 3]
    seen, page = [], bob.inbox(max_results=10, workflow_filter="WF_A").get_json()
    while True:
        seen += page["messages"]
        if "next" not in page["links"]:
            break
        page = client.get(page["links"]["next"], headers=bob.headers()).get_json()
    assert seen == wanted and page["approx_inbox_count"] == 40
