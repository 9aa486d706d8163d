"""The engine copes with services that have no HTTP routes of their own (SCR and GP2GP answer only over Spine core
messaging): they start, are listed with their interactions, carry their requirements and scenarios, and every
interaction they answer is one the messaging catalogue and the official schemas know."""

from __future__ import annotations

import pytest

from sandbox.messaging.interactions import find
from tests.conftest import spec_path

CLINICAL = {"scr": {"REPC_IN150016UK05", "QUPC_IN160101UK05"},
            "gp2gp": {"RCMR_IN010000UK05", "MCCI_IN010000UK13"}}


def test_the_clinical_services_are_listed_with_no_base_paths_and_their_interactions(client):
    listed = {s["name"]: s for s in client.get("/_sandbox/services").get_json()["services"]}
    for name, interactions in CLINICAL.items():
        service = listed[name]
        assert service["base_paths"] == []
        assert {op["id"] for op in service["operations"]} == interactions
        assert service["requirements"] >= 6 and service["scenarios"] >= 4
    health = client.get("/_sandbox/health").get_json()
    assert health["services"]["scr"] == [] and health["services"]["gp2gp"] == []


def test_a_path_no_service_owns_is_still_a_clear_404(client):
    response = client.get("/summary-care-record/nothing-here")
    assert response.status_code == 404
    assert "/_sandbox/services" in response.get_json()["message"]


def test_the_scenario_catalogue_says_which_patients_have_a_large_record(client):
    scenarios = {s["id"]: s for s in client.get("/_sandbox/scenarios?service=gp2gp").get_json()["scenarios"]}
    large = scenarios["gp2gp-large-record"]
    assert "gp2gp_large_record=true" in large["trigger"] and "9990000158" in large["description"]


def test_the_services_declare_their_handlers_for_interactions_spine_knows(sandbox):
    for name, interactions in CLINICAL.items():
        service = sandbox.services[name]
        assert set(service.hl7v3) == interactions
        for interaction in interactions:
            known = find(interaction)
            assert known is not None, interaction
            assert known.service.rsplit(":", 1)[-1] in {"psis", "psisquery", "gp2gp"}


@pytest.mark.parametrize("interaction", ["REPC_IN150016UK05", "QUPC_IN160101UK05", "QUPC_IN160102UK05",
                                         "RCMR_IN010000UK05", "RCMR_IN030000UK06", "COPC_IN000001UK01",
                                         "MCCI_IN010000UK13"])
def test_every_interaction_sent_or_received_has_its_official_schema(interaction):
    from sandbox.messaging.schemas import schema_set

    assert schema_set(spec_path("spine-hl7v3-xsd", "omvt")).available(interaction)


def test_the_gp2gp_control_api_names_the_sending_practice_and_large_record_patients(client, sandbox):
    body = client.get("/_sandbox/gp2gp/practice").get_json()
    assert (body["ods"], body["party_key"], body["asid"]) == ("X99901", "X99901-9990001", "999000000201")
    examples = body["large_record_examples"]
    assert examples and all(e["registered_practice"] for e in examples)
    from sandbox.services.gp2gp.records import is_large_record

    assert all(is_large_record(sandbox.population.by_nhs_number(e["nhs_number"])) for e in examples)
    assert client.get("/_sandbox/gp2gp/transfers").get_json() == {"session": "default", "transfers": [], "count": 0}


def test_the_scr_control_api_lists_the_sessions_summaries(client, sandbox):
    from sandbox.services.scr.summaries import StoredSummary, Summaries

    Summaries(sandbox, "s1").add(StoredSummary("D0C-1", "9000000009", "M-1", "20260101120000", "20260101115500",
                                               "200000000001", "100000000001", "Sandbox", 1234, False))
    listed = client.get("/_sandbox/scr/summaries?nhs_number=9000000009", headers={"X-Sandbox-Session": "s1"})
    assert listed.get_json()["count"] == 1
    assert listed.get_json()["summaries"]["9000000009"][0]["document_id"] == "D0C-1"
    assert client.get("/_sandbox/scr/summaries").get_json()["count"] == 0  # the default session has none
    assert client.get("/_sandbox/scr/summaries?session=bad%20id").status_code == 400
