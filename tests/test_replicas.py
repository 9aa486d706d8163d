"""Several `spine-sandbox serve` replicas on one PostgreSQL database behave as one sandbox: what one replica changes
the next request through another sees, single-use credentials are single-use everywhere, and a replica killed under
load loses nothing it answered while the others carry on. Real server processes, real PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox.services.mesh.auth import make_token
from sandbox.synthetic.population import Population
from tests.conftest import PDS_BASE, TEST_POPULATION, LiveServer, free_port, pds_headers
from tests.oauth_helpers import FORM, KeyPair, assertion, cc_form, jwks
from tests.postgres_db import fresh_database
from tests.test_crash_restart import Load

pytestmark = pytest.mark.replicas

PUBLIC_URL = "http://sandbox.replicas.test"  # one address for all replicas, as behind a load balancer
# A synthetic patient (the published examples answer every update but keep none of them)
CHANGED = next(Population.shared(42, TEST_POPULATION).of_kind("standard")).nhs_number
MESH = "/messageexchange"


@pytest.fixture
def replicas(tmp_path):
    url = fresh_database()
    env = {"SANDBOX_DATABASE_URL": url, "SANDBOX_PUBLIC_URL": PUBLIC_URL, "SANDBOX_WORKERS": "2"}
    servers = [LiveServer(tmp_path / f"replica-{n}", free_port(), extra_env=env) for n in range(2)]
    try:
        yield [server.wait(timeout=60) for server in servers]
    finally:
        for server in servers:
            server.stop()


def mesh_headers(mailbox: str, **extra) -> dict:
    return {"Authorization": make_token(mailbox, "password", "TestKey"), "Accept": "application/vnd.mesh.v2+json",
            **extra}


def test_a_patch_through_one_replica_is_seen_through_the_other(replicas):
    a, b = replicas
    read = requests.get(f"{a.url}{PDS_BASE}/Patient/{CHANGED}", headers=pds_headers(), timeout=10)
    assert read.status_code == 200
    etag = read.headers["ETag"]
    patched = requests.patch(f"{a.url}{PDS_BASE}/Patient/{CHANGED}",
                             json={"patches": [{"op": "replace", "path": "/gender", "value": "unknown"}]},
                             headers=pds_headers(**{"If-Match": etag, "Content-Type": "application/json-patch+json"}),
                             timeout=10)
    assert patched.status_code == 200, patched.text
    seen = requests.get(f"{b.url}{PDS_BASE}/Patient/{CHANGED}", headers=pds_headers(), timeout=10)
    assert seen.json()["gender"] == "unknown"
    assert seen.headers["ETag"] == patched.headers["ETag"] != etag
    stale = requests.patch(f"{b.url}{PDS_BASE}/Patient/{CHANGED}",
                           json={"patches": [{"op": "replace", "path": "/gender", "value": "male"}]},
                           headers=pds_headers(**{"If-Match": etag, "Content-Type": "application/json-patch+json"}),
                           timeout=10)
    assert stale.status_code == 409  # the version A wrote is the one B compares against


def test_a_mesh_message_sent_through_one_replica_is_downloaded_and_acknowledged_through_the_other(replicas):
    a, b = replicas
    sent = requests.post(f"{a.url}{MESH}/X26ABC1/outbox", data=b"across replicas",
                         headers=mesh_headers("X26ABC1", **{"Mex-To": "X26ABC2", "Mex-WorkflowID": "TEST_WORKFLOW",
                                                            "Content-Type": "text/plain"}), timeout=10)
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]
    inbox = requests.get(f"{b.url}{MESH}/X26ABC2/inbox", headers=mesh_headers("X26ABC2"), timeout=10)
    assert message_id in inbox.json()["messages"]
    body = requests.get(f"{b.url}{MESH}/X26ABC2/inbox/{message_id}", headers=mesh_headers("X26ABC2"), timeout=10)
    assert body.content == b"across replicas"
    acked = requests.put(f"{b.url}{MESH}/X26ABC2/inbox/{message_id}/status/acknowledged",
                         headers=mesh_headers("X26ABC2"), timeout=10)
    assert acked.status_code == 200, acked.text
    inbox = requests.get(f"{a.url}{MESH}/X26ABC2/inbox", headers=mesh_headers("X26ABC2"), timeout=10)
    assert message_id not in inbox.json()["messages"]


def test_an_nhsmesh_token_used_on_one_replica_is_refused_on_the_other(replicas):
    a, b = replicas
    token = make_token("X26ABC1", "password", "TestKey")
    headers = {"Authorization": token, "Accept": "application/vnd.mesh.v2+json"}
    assert requests.get(f"{a.url}{MESH}/X26ABC1/inbox", headers=headers, timeout=10).status_code == 200
    assert requests.get(f"{b.url}{MESH}/X26ABC1/inbox", headers=headers, timeout=10).status_code == 403


def test_a_client_assertion_jti_is_used_once_across_replicas_even_at_the_same_moment(replicas):
    a, b = replicas
    pair = KeyPair("replicas")
    app = requests.post(f"{a.url}/_sandbox/oauth/apps", json={"name": "Replicated", "jwks": jwks(pair)}, timeout=10)
    assert app.status_code == 201, app.text
    api_key = app.json()["api_key"]
    for _ in range(5):
        form = cc_form(assertion(pair, api_key, aud=f"{PUBLIC_URL}/oauth2/token", jti=str(uuid.uuid4())))
        start = threading.Barrier(4)

        def post(server, form=form, start=start):
            start.wait()
            return requests.post(f"{server.url}/oauth2/token", data=form, headers=FORM, timeout=10).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(post, [a, b, a, b]))
        assert sorted(statuses) == [200, 400, 400, 400], statuses  # exactly one replica grants it


def test_a_replica_killed_under_load_loses_nothing_it_answered_and_the_other_carries_on(replicas):
    a, b = replicas
    with Load(a.url) as on_a, Load(b.url) as on_b:
        on_a.wait_for(200)
        on_b.wait_for(200)
        os.killpg(a.process.pid, signal.SIGKILL)  # the replica and its workers, mid-request
        a.process.wait(timeout=10)
        before = len(on_b.answered)
        on_b.wait_for(before + 200)  # the other replica carries on
    answered = on_a.answered + on_b.answered
    missing = [exchange_id for exchange_id in answered
               if requests.get(f"{b.url}/_sandbox/exchanges/{exchange_id}", timeout=10).status_code != 200]
    assert not missing, f"{len(missing)} of {len(answered)} answered exchanges are not in the journal"


def test_a_times_scenario_used_up_through_one_replica_is_used_up_on_the_other(replicas):
    a, b = replicas
    once = f"{PDS_BASE}/Patient/9999000010"  # pds-service-unavailable-once: 503 the first time in a session
    assert requests.get(a.url + once, headers=pds_headers(), timeout=10).status_code == 503
    assert requests.get(b.url + once, headers=pds_headers(), timeout=10).status_code != 503
