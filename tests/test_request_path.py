"""The request path's one journal transaction: a request's state changes commit with its exchange, or not at all."""

from __future__ import annotations

from sandbox.services.mesh.auth import make_token
from tests.mesh_helpers import Mesh


def test_state_changes_that_cannot_be_made_leave_a_journaled_500_and_nothing_half_done(client, sandbox, monkeypatch):
    alice, bob = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2")
    token = make_token("X26ABC1", "password", "TestKey")

    def disk_full(*args):
        raise OSError("disk full")

    monkeypatch.setattr(sandbox.store.state, "put_blob", disk_full)
    failed = alice.call("POST", "/outbox", {"Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW"}, token=token,
                        data=b"lost?")
    monkeypatch.undo()
    assert failed.status_code == 500
    assert "could not store the changes this request makes" in failed.get_json()["detail"][0]["msg"]
    record = client.get(f"/_sandbox/exchanges/{failed.headers['X-Sandbox-Exchange']}").get_json()
    assert record["response"]["status"] == 500 and record["request"]["body"] == "lost?"
    assert bob.inbox().get_json()["messages"] == []  # no message half-delivered
    # The token's use was part of what failed: the client's retry with the same token goes through.
    retried = alice.call("POST", "/outbox", {"Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW"}, token=token,
                         data=b"lost?")
    assert retried.status_code == 202
    assert bob.inbox().get_json()["messages"] == [retried.get_json()["message_id"]]


def test_an_inbox_listing_sees_every_change_made_since_it_was_last_read(client):
    alice, bob = Mesh(client, "X26ABC1"), Mesh(client, "X26ABC2")
    assert bob.inbox().get_json()["messages"] == []
    first = alice.send_id()
    assert bob.inbox().get_json()["messages"] == [first]
    second = alice.send_id()
    assert bob.inbox().get_json()["messages"] == [first, second]
    bob.download(first)
    bob.ack(first)
    assert bob.inbox().get_json()["messages"] == [second]
