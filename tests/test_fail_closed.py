"""Fail closed: a check that crashes refuses the request with the service's own 500, journaled with a sandbox-defect
finding naming the check, and neither a scenario nor the handler answers it."""

from __future__ import annotations

import pytest

from sandbox.conformance.checks import Check
from sandbox.conformance.findings import SANDBOX_DEFECT
from sandbox.conformance.history import HistoryCheck
from sandbox.services.mesh import routes as mesh_routes
from sandbox.services.pds import routes as pds_routes
from tests.conftest import PDS_BASE, pds_headers
from tests.mesh_helpers import Mesh


class Boom(RuntimeError):
    pass


def crashing_check_instead_of(monkeypatch, checkset, name: str) -> None:
    """Replace the registered check `name` with one that raises (same requirements and operations)."""
    index, check = next((i, c) for i, c in enumerate(checkset._checks) if c.name == name)

    def crashing(req, ctx):
        raise Boom("secret-token-value")

    crashing.__name__ = name
    replaced = list(checkset._checks)
    replaced[index] = Check(crashing, check.requirements, check.operations)
    monkeypatch.setattr(checkset, "_checks", replaced)


class Calls:
    """Stands in for something a handler uses, counting the calls."""

    def __init__(self):
        self.count = 0

    def __call__(self, *args, **kwargs):
        self.count += 1
        raise AssertionError("the handler ran")


def journaled(client, response) -> dict:
    exchange_id = response.headers["X-Sandbox-Exchange"]
    record = client.get(f"/_sandbox/exchanges/{exchange_id}")
    assert record.status_code == 200
    return record.get_json()


def defect_of(record: dict) -> dict:
    found = [f for f in record["findings"] if f["requirement"] == SANDBOX_DEFECT]
    assert len(found) == 1, record["findings"]
    return found[0]


def test_a_crashing_pds_check_refuses_the_request_with_pds_500(client, sandbox, monkeypatch):
    crashing_check_instead_of(monkeypatch, sandbox.services["pds"].checks, "x_correlation_id")
    handler = Calls()
    monkeypatch.setattr(pds_routes, "PatientRecords", handler)

    response = client.get(f"{PDS_BASE}/Patient/9000000009", headers=pds_headers())

    assert response.status_code == 500
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["code"] == "INTERNAL_SERVER_ERROR"
    assert "x_correlation_id" in body["issue"][0]["diagnostics"]
    assert handler.count == 0
    record = journaled(client, response)
    assert record["response"]["status"] == 500
    defect = defect_of(record)
    assert defect["outcome"] == "fail"
    assert "x_correlation_id" in defect["message"] and "Boom" in defect["message"]
    assert "secret-token-value" not in defect["message"]  # the exception's text is never shown
    assert defect["rejected_with"]["status"] == 500
    assert "fail=" in response.headers["X-Sandbox-Findings"]


def test_a_crashing_check_comes_before_a_scenario(client, sandbox, monkeypatch):
    """A forced scenario does not answer a request whose checks crashed (nor is it used up)."""
    crashing_check_instead_of(monkeypatch, sandbox.services["pds"].checks, "x_correlation_id")
    scenario = next(s for s in sandbox.scenarios.for_service("pds") if "get-patient" in s.trigger.operations)

    response = client.get(f"{PDS_BASE}/Patient/9000000009",
                          headers=pds_headers(**{"X-Sandbox-Scenario": scenario.id}))

    assert response.status_code == 500
    assert "X-Sandbox-Scenario" not in response.headers
    assert journaled(client, response)["scenario"] is None


def test_a_crashing_mesh_check_refuses_the_request_with_mesh_500(client, sandbox, monkeypatch):
    crashing_check_instead_of(monkeypatch, sandbox.services["mesh"].checks, "handshake_headers")
    handler = Calls()
    monkeypatch.setattr(mesh_routes, "request_version", handler)

    response = Mesh(client, "X26ABC1").handshake()

    assert response.status_code == 500
    assert response.is_json and "handshake_headers" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert handler.count == 0
    record = journaled(client, response)
    assert record["service"] == "mesh" and record["response"]["status"] == 500
    assert "handshake_headers" in defect_of(record)["message"]


def test_a_crashing_oauth_check_answers_server_error(client, sandbox, monkeypatch):
    crashing_check_instead_of(monkeypatch, sandbox.services["oauth"].checks, "token_request")

    response = client.post("/oauth2/token", data={"grant_type": "client_credentials"})

    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "server_error" and "token_request" in body["error_description"]
    assert body["message_id"] == response.headers["X-Sandbox-Exchange"]
    assert "token_request" in defect_of(journaled(client, response))["message"]


def test_a_crashing_behavioural_check_refuses_with_500_and_stores_nothing(client, sandbox, monkeypatch):
    history = sandbox.services["pds"].history
    index, check = next((i, c) for i, c in enumerate(history._checks) if c.name == "patch_uses_latest_etag")

    def patch_uses_latest_etag(exchange, past):
        if exchange.request.method == "PATCH":
            raise Boom("secret")
        return []

    replaced = list(history._checks)
    replaced[index] = HistoryCheck(patch_uses_latest_etag, check.requirements)
    monkeypatch.setattr(history, "_checks", replaced)
    number = next(sandbox.population.of_kind("standard")).nhs_number
    retrieved = client.get(f"{PDS_BASE}/Patient/{number}", headers=pds_headers())
    assert retrieved.status_code == 200, retrieved.get_json()

    response = client.patch(f"{PDS_BASE}/Patient/{number}", json={"patches": [
        {"op": "replace", "path": "/gender", "value": "other"}]}, headers=pds_headers(**{
            "Content-Type": "application/json-patch+json", "If-Match": retrieved.headers["ETag"]}))

    assert response.status_code == 500
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert "patch_uses_latest_etag" in defect_of(journaled(client, response))["message"]
    again = client.get(f"{PDS_BASE}/Patient/{number}", headers=pds_headers())
    assert again.headers["ETag"] == retrieved.headers["ETag"]  # the update was not stored
    assert again.get_json()["gender"] == retrieved.get_json()["gender"]


@pytest.mark.parametrize("service", ["pds", "oauth", "mesh", "spine", "sds"])
def test_sandbox_defect_is_a_declared_requirement(sandbox, service, client):
    requirement = sandbox.requirements.get(SANDBOX_DEFECT)
    assert requirement is not None and requirement.level == "MUST"
    listed = client.get("/_sandbox/requirements").get_json()["requirements"]
    assert SANDBOX_DEFECT in {r["id"] for r in listed}
    assert service in sandbox.services


def test_a_crashing_facts_step_fails_closed_too(client, sandbox, monkeypatch):
    """A step that prepares the checks (here PDS's scenario facts for a patient) is judged like a check."""
    handler = Calls()
    monkeypatch.setattr(pds_routes, "PatientRecords", handler)

    def patient_facts(sandbox, number):
        raise Boom("secret")

    monkeypatch.setattr(pds_routes, "patient_facts", patient_facts)

    response = client.get(f"{PDS_BASE}/Patient/9000000009", headers=pds_headers())

    assert response.status_code == 500 and response.get_json()["resourceType"] == "OperationOutcome"
    assert handler.count == 0
    message = defect_of(journaled(client, response))["message"]
    assert "sandbox.services.pds.routes._facts" in message and "(Boom)" in message
