"""The prescription tracker (GET Task) answers from the session's prescriptions: each state as it changes, who
holds the prescription, dispensing and repeat information; its query errors are live's."""

from __future__ import annotations

import pytest

from tests.eps_helpers import ADMIN, Tokens
from tests.eps_life import ALL_DISPENSED, PARTIAL, Pharmacy, Prescriber

QUERY_ERROR = "Query parameter must be one of: identifier, focus:identifier."


@pytest.fixture
def actors(client, sandbox):
    tokens = Tokens(client)
    return Prescriber(client, sandbox, tokens), Pharmacy(client, tokens)


def only_task(response) -> dict:
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    assert body["total"] == len(body["entry"]) == 1
    return body["entry"][0]["resource"]


def dispensing_information(task: dict) -> dict:
    extension = task["input"][0]["extension"][0]
    assert extension["url"].endswith("Extension-EPS-DispensingInformation")
    return {x["url"]: x.get("valueCoding", x.get("valueDateTime")) for x in extension["extension"]}


def test_the_tracker_follows_the_prescription_through_its_life(actors):
    prescriber, pharmacy = actors
    prescription = prescriber.order()
    task = only_task(pharmacy.track(prescription))
    assert task["resourceType"] == "Task"
    assert task["focus"]["identifier"]["value"] == prescription.id
    assert task["for"]["identifier"]["value"] == prescription.nhs_number
    assert task["requester"]["identifier"]["value"] == "A83008"
    assert task["businessStatus"]["coding"][0] == {
        "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status", "code": "0001",
        "display": "To be Dispensed"}
    assert "owner" not in task
    steps = [(lambda: pharmacy.release(prescription), "0002", "With Dispenser"),
             (lambda: pharmacy.dispense(prescription, PARTIAL), "0003", "With Dispenser - Active"),
             (lambda: pharmacy.dispense(prescription, ALL_DISPENSED), "0006", "Dispensed"),
             (lambda: pharmacy.claim(prescription), "0008", "Claimed")]
    for send, code, display in steps:
        assert send().status_code == 200
        task = only_task(pharmacy.track(prescription))
        assert task["businessStatus"]["coding"][0]["code"] == code
        assert task["businessStatus"]["coding"][0]["display"] == display
        assert task["owner"]["identifier"]["value"] == pharmacy.ods
        assert dispensing_information(task)["dispenseStatus"]["code"] == code
    assert "dateLastDispensed" in dispensing_information(task)
    assert task["output"][0]["type"]["coding"][0]["code"] == "373784005"


def test_the_tracker_finds_by_identifier_too(actors):
    prescriber, pharmacy = actors
    prescription = prescriber.order()
    by_short_form = only_task(pharmacy.track(query=f"identifier={prescription.id.replace('+', '%2B')}"))
    by_long_form = only_task(pharmacy.track(query=f"identifier={prescription.uuid}"))
    assert by_short_form["focus"] == by_long_form["focus"]


def test_a_prescription_the_session_does_not_hold_is_an_empty_searchset(actors):
    prescriber, pharmacy = actors
    response = pharmacy.track(prescriber.new_order())
    assert response.status_code == 200
    assert response.get_json()["total"] == 0 and response.get_json()["entry"] == []


@pytest.mark.parametrize("query", ["", "status=active", "identifier=A&focus:identifier=B", "identifier=A&identifier=B",
                                   "focus:identifier=A&patient=9449304130"])
def test_query_errors_are_lives(actors, query):
    _, pharmacy = actors
    response = pharmacy.track(query=query)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue == {"severity": "error", "code": "invalid", "diagnostics": QUERY_ERROR}


def test_the_tracker_shows_another_pharmacy_holding_it_and_repeat_information(client, actors):
    prescriber, pharmacy = actors
    other = Pharmacy(client, prescriber.tokens, ods="FA565", user=ADMIN)
    prescription = prescriber.order(erd=True, repeats=5)
    assert other.release(prescription).status_code == 200
    task = only_task(pharmacy.track(prescription))
    assert task["owner"]["identifier"]["value"] == "FA565"
    course = task["extension"][0]["extension"][0]["valueCoding"]["code"]
    assert course == "continuous-repeat-dispensing"
    repeat = next(x for x in task["extension"] if x["url"].endswith("RepeatInformation"))
    assert {x["url"]: x["valueUnsignedInt"] for x in repeat["extension"]} == {
        "numberOfRepeatsAllowed": 5, "numberOfRepeatsIssued": 0}


def test_expiry_shows_in_the_tracker(client, actors):
    prescriber, pharmacy = actors
    prescription = prescriber.order(validity_end="2021-01-01")
    task = only_task(pharmacy.track(prescription))
    assert task["businessStatus"]["coding"][0]["code"] == "0004"
    assert task["status"] == "failed"
