"""MESH response bodies against the published MESH API specification's own schemas (an outside reference)."""

from __future__ import annotations

import pytest
import yaml
from jsonschema import Draft4Validator

from tests.conftest import spec_path
from tests.mesh_helpers import V2, Mesh


@pytest.fixture(scope="module")
def paths():
    return yaml.safe_load(spec_path("mesh", "specification", "mesh-api.yaml").read_text(encoding="utf-8"))["paths"]


def schema(paths, path: str, method: str, status: str, media: str) -> dict:
    return paths[f"/messageexchange{path}"][method]["responses"][status]["content"][media]["schema"]


def check(paths, response, path, method, status, media):
    problems = [e.message for e in Draft4Validator(schema(paths, path, method, status, media))
                .iter_errors(response.get_json())]
    assert not problems, problems


@pytest.mark.parametrize("version, media", [(2, V2), (1, "application/json")])
def test_bodies_match_the_specification(client, paths, version, media):
    alice, bob = Mesh(client, "X26ABC1", version=version), Mesh(client, "X26ABC2", version=version)
    sent = alice.send(**{"Mex-LocalID": "spec"})
    check(paths, sent, "/{mailbox_id}/outbox", "post", "202", media)
    message_id = sent.get_json()["message_id" if version == 2 else "messageID"]
    check(paths, bob.inbox(), "/{mailbox_id}/inbox", "get", "200", media)
    check(paths, bob.call("GET", "/count"), "/{mailbox_id}/count", "get", "200", media)
    check(paths, alice.track(message_id), "/{mailbox_id}/outbox/tracking", "get", "200", media)
    check(paths, client.get("/messageexchange/endpointlookup/X26/TEST_WORKFLOW", headers={"Accept": media}),
          "/endpointlookup/{ods_code}/{workflow_id}", "get", "200", media)
    check(paths, client.get("/messageexchange/workflowsearch/TEST_WORKFLOW", headers={"Accept": media}),
          "/workflowsearch/{workflow_id}", "get", "200", media)
    refused = alice.send(to="X26NOBODY")
    check(paths, refused, "/{mailbox_id}/outbox", "post", "417", media)
    if version == 1:
        check(paths, alice.call("GET", "/outbox/tracking/spec"), "/{mailbox_id}/outbox/tracking/{local_id}", "get",
              "200", media)


def test_validation_errors_match_the_specification(client, paths):
    response = Mesh(client, "X26ABC2").inbox(max_results=1)
    assert response.status_code == 400
    check(paths, response, "/{mailbox_id}/inbox", "get", "400", "application/json")
