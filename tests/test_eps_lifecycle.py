"""A prescription's whole life in one session over HTTP, as a prescribing system and dispensing systems see it:
a GP prescribes (prepare, sign with a sandbox test-CA certificate, order), pharmacists release, dispense, claim,
return and withdraw; every transition live refuses is refused with live's code; cancellation answers in every
state; expiry follows the session clock; repeat dispensing issues one issue at a time; two racing releases cannot
both win."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.app import create_app
from sandbox.conformance.findings import SpineError
from sandbox.services.eps import certificates, context, dispensing, prescribing, tracker
from sandbox.web.pipeline import ExchangeContext
from tests.eps_helpers import ADMIN, NURSE, Tokens
from tests.eps_life import (
    ALL_DISPENSED,
    ITEMS,
    NONE_DISPENSED,
    PARTIAL,
    Pharmacy,
    Prescriber,
    message_id,
    session_of,
)
from tests.eps_spec import assert_valid

OTHER_PHARMACY = "FA565"
HL7V3_HEADER = "X-Sandbox-HL7v3"


@pytest.fixture
def actors(client, sandbox):
    tokens = Tokens(client)
    return (Prescriber(client, sandbox, tokens), Pharmacy(client, tokens),
            Pharmacy(client, tokens, ods=OTHER_PHARMACY, user=ADMIN))


def code_of(response) -> str:
    body = response.get_json()
    if body["resourceType"] == "OperationOutcome":
        return body["issue"][0]["details"]["coding"][0]["code"]
    request = next(e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
    status = next(x for x in request["extension"] if x["url"].endswith("PrescriptionStatusHistory"))
    return status["extension"][0]["valueCoding"]["code"]


def released(response) -> list[str]:
    passed = next(p for p in response.get_json()["parameter"] if p["name"] == "passedPrescriptions")["resource"]
    return [next(r["resource"]["groupIdentifier"]["value"] for r in entry["resource"]["entry"]
                 if r["resource"]["resourceType"] == "MedicationRequest") for entry in passed["entry"]]


def reach(state: str, prescriber: Prescriber, pharmacy: Pharmacy):
    """A new prescription in `state`, through the messages that lead there."""
    if state == "0004":
        return prescriber.order(validity_end="2021-01-01")
    prescription = prescriber.order()
    if state == "0005":
        assert prescriber.cancel(prescription).status_code == 200
    if state in ("0002", "0003", "0006", "0007", "0008", "0009"):
        assert pharmacy.release(prescription).status_code == 200
    codes = {"0003": PARTIAL, "0006": ALL_DISPENSED, "0008": ALL_DISPENSED, "0007": NONE_DISPENSED,
             "0009": NONE_DISPENSED}.get(state)
    if codes:
        assert pharmacy.dispense(prescription, codes).status_code == 200
    if state in ("0008", "0009"):
        assert pharmacy.claim(prescription).status_code == 200
    assert pharmacy.status(prescription) == state
    return prescription


# --- the whole life -------------------------------------------------------------------------------------------
def test_a_prescription_is_ordered_released_dispensed_and_claimed_by_different_users(client, actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.new_order()
    ordered = prescriber.send(prescriber.sign(prescription.order))
    assert ordered.status_code == 200
    assert ordered.get_json()["issue"][0]["code"] == "informational"
    assert ordered.headers.get(HL7V3_HEADER), "the order's HL7v3 translation is journaled beside it"
    assert pharmacy.status(prescription) == "0001"

    release = pharmacy.release(prescription)
    assert release.status_code == 200
    assert released(release) == [prescription.id]
    assert_valid("release", 200, release.get_json())
    assert pharmacy.status(prescription) == "0002"

    partial = pharmacy.dispense(prescription, PARTIAL)
    assert partial.status_code == 200 and partial.headers.get(HL7V3_HEADER)
    assert pharmacy.status(prescription) == "0003"
    assert pharmacy.dispense(prescription, ALL_DISPENSED).status_code == 200
    assert pharmacy.status(prescription) == "0006"

    claim = pharmacy.claim(prescription)
    assert claim.status_code == 200
    assert_valid("send-dispense-claim-message", 200, claim.get_json())
    assert pharmacy.status(prescription) == "0008"

    session = session_of(client, claim)
    listing = client.get(f"/_sandbox/eps/prescriptions?session={session}").get_json()
    mine = next(p for p in listing["prescriptions"] if p["id"] == prescription.id)
    assert [h["status"] for h in mine["history"]] == ["0001", "0002", "0003", "0006", "0008"]
    assert mine["owner"] == pharmacy.ods and mine["prescriber"] == "A83008"
    claimed = client.get(f"/_sandbox/eps/prescriptions?session={session}&status=0008").get_json()
    assert [p["id"] for p in claimed["prescriptions"]] == [prescription.id]
    assert client.get(f"/_sandbox/eps/prescriptions?session={session}&status=0001").get_json()["count"] == 0


def test_a_nurse_prescriber_orders_too(client, sandbox):
    tokens = Tokens(client)
    nurse = Prescriber(client, sandbox, tokens, user=NURSE)
    prescription = nurse.order()
    assert Pharmacy(client, tokens).status(prescription) == "0001"


def test_nominated_release_gives_the_pharmacy_what_is_nominated_to_it_then_no_more(actors):
    prescriber, pharmacy, other = actors
    mine = [prescriber.order(), prescriber.order()]
    theirs = prescriber.order(performer=OTHER_PHARMACY)
    first = pharmacy.release()
    assert first.status_code == 200
    assert sorted(released(first)) == sorted(p.id for p in mine)
    assert all(pharmacy.status(p) == "0002" for p in mine)
    assert pharmacy.status(theirs) == "0001"
    again = pharmacy.release()
    assert again.status_code == 200
    assert again.get_json()["issue"][0]["severity"] == "information"
    assert code_of(again) == "NO_MORE_PRESCRIPTIONS"
    assert released(other.release()) == [theirs.id]


def test_a_nominated_release_takes_at_most_25(actors):
    prescriber, pharmacy, _ = actors
    made = [prescriber.new_order() for _ in range(26)]
    for prescription in made:
        assert prescriber.send(prescriber.sign(prescription.order)).status_code == 200
    assert len(released(pharmacy.release())) == 25
    assert len(released(pharmacy.release())) == 1


# --- every refused transition ---------------------------------------------------------------------------------
STATES = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
INVALID = "PRESCRIPTION_INVALID_STATE_TRANSITION"
TASK_INVALID = "INVALID_STATE_TRANSITION"
# (state, operation) -> None (accepted) or the live code of the refusal.
EXPECTED = {
    "release": {"0001": None, "0002": INVALID, "0003": INVALID, "0004": "PRESCRIPTION_EXPIRED",
                "0005": "PRESCRIPTION_CANCELLED", "0006": "PRESCRIPTION_DISPENSED", "0007": INVALID,
                "0008": "PRESCRIPTION_DISPENSED", "0009": INVALID},
    "dispense": {state: None if state in ("0002", "0003") else INVALID for state in STATES},
    "claim": {state: None if state in ("0006", "0007") else INVALID for state in STATES},
    "return": {state: None if state == "0002" else TASK_INVALID for state in STATES},
    "withdraw": {state: None if state in ("0003", "0006", "0007") else TASK_INVALID for state in STATES},
}
AFTER = {("release", "0001"): "0002", ("dispense", "0002"): "0006", ("dispense", "0003"): "0006",
         ("claim", "0006"): "0008", ("claim", "0007"): "0009", ("return", "0002"): "0001",
         ("withdraw", "0003"): "0002", ("withdraw", "0006"): "0002", ("withdraw", "0007"): "0002"}


OPERATION_IDS = {"release": "release", "dispense": "send-dispense-notification-message",
                 "claim": "send-dispense-claim-message", "return": "return", "withdraw": "withdraw"}


def _operate(operation: str, pharmacy: Pharmacy, prescription):
    return {"release": lambda: pharmacy.release(prescription),
            "dispense": lambda: pharmacy.dispense(prescription, ALL_DISPENSED),
            "claim": lambda: pharmacy.claim(prescription),
            "return": lambda: pharmacy.return_(prescription),
            "withdraw": lambda: pharmacy.withdraw(prescription)}[operation]()


@pytest.mark.parametrize("state", STATES)
def test_each_operation_in_each_state_is_accepted_or_refused_as_live(actors, state):
    prescriber, pharmacy, _ = actors
    for operation, by_state in EXPECTED.items():
        prescription = reach(state, prescriber, pharmacy)
        response = _operate(operation, pharmacy, prescription)
        expected = by_state[state]
        assert_valid(OPERATION_IDS[operation], response.status_code, response.get_json())
        if expected is None:
            assert response.status_code == 200, (operation, state, response.get_json())
            assert pharmacy.status(prescription) == AFTER[(operation, state)], (operation, state)
        else:
            assert response.status_code == 400, (operation, state, response.get_json())
            assert code_of(response) == expected, (operation, state)
            assert response.get_json()["issue"][0]["code"] == "business-rule"
            assert pharmacy.status(prescription) == state, f"a refused {operation} changed nothing"


def test_unknown_prescriptions_are_not_found(actors):
    prescriber, pharmacy, _ = actors
    never = prescriber.new_order()  # made, never sent
    release = pharmacy.release(never)
    assert release.status_code == 400 and code_of(release) == "RESOURCE_NOT_FOUND"
    assert release.get_json()["issue"][0]["code"] == "not-found"
    for response in (pharmacy.dispense(never), pharmacy.claim(never), pharmacy.return_(never),
                     pharmacy.withdraw(never)):
        assert response.status_code == 400 and code_of(response) == "PRESCRIPTION_NOT_FOUND"


def test_another_dispenser_is_refused_with_the_holder_contained(actors):
    prescriber, pharmacy, other = actors
    prescription = reach("0002", prescriber, pharmacy)
    for response in (other.release(prescription), other.dispense(prescription), other.return_(prescription)):
        assert response.status_code == 400
        body = response.get_json()
        assert code_of(response) == "PRESCRIPTION_WITH_ANOTHER_DISPENSER"
        organization = body["contained"][0]
        assert organization["resourceType"] == "Organization"
        assert organization["identifier"][0]["value"] == pharmacy.ods
        assert body["extension"][0]["valueReference"]["reference"] == f"#{organization['id']}"
    assert_valid("release", 400, other.release(prescription).get_json())
    assert pharmacy.status(prescription) == "0002"


def test_a_returned_prescription_is_available_to_another_dispenser(actors):
    prescriber, pharmacy, other = actors
    prescription = reach("0002", prescriber, pharmacy)
    returned = pharmacy.return_(prescription)
    assert returned.status_code == 200 and returned.headers.get(HL7V3_HEADER)
    assert pharmacy.status(prescription) == "0001"
    assert other.release(prescription).status_code == 200
    assert other.track(prescription).get_json()["entry"][0]["resource"]["owner"]["identifier"]["value"] == \
        OTHER_PHARMACY


def test_duplicate_order_is_refused(actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.new_order()
    signed = prescriber.sign(prescription.order)
    assert prescriber.send(signed).status_code == 200
    again = prescriber.send(signed)
    assert again.status_code == 400
    assert code_of(again) == "DUPLICATE_PRESCRIPTION_ID"
    assert again.get_json()["issue"][0]["code"] == "duplicate"


def test_an_unknown_item_is_refused(actors):
    prescriber, pharmacy, _ = actors
    prescription = reach("0002", prescriber, pharmacy)
    body = pharmacy.notification(prescription, ALL_DISPENSED)
    body = json.loads(json.dumps(body).replace(ITEMS[0], "0c0ffee0-0000-4000-8000-000000000000"))
    response = pharmacy.dispense(prescription, body=body)
    assert response.status_code == 400 and code_of(response) == "ITEM_NOT_FOUND"
    assert pharmacy.status(prescription) == "0002"


# --- withdraw and amend ---------------------------------------------------------------------------------------
def test_withdraw_undoes_only_the_latest_dispense_notification(actors):
    prescriber, pharmacy, _ = actors
    prescription = reach("0002", prescriber, pharmacy)
    assert pharmacy.dispense(prescription, PARTIAL).status_code == 200
    assert pharmacy.dispense(prescription, ALL_DISPENSED).status_code == 200
    withdrawn = pharmacy.withdraw(prescription)
    assert withdrawn.status_code == 200 and withdrawn.headers.get(HL7V3_HEADER)
    assert pharmacy.status(prescription) == "0003"
    assert pharmacy.withdraw(prescription).status_code == 200
    assert pharmacy.status(prescription) == "0002"
    nothing_left = pharmacy.withdraw(prescription)
    assert nothing_left.status_code == 400 and code_of(nothing_left) == "INVALID_STATE_TRANSITION"


def test_amend_replaces_only_the_most_recent_dispense_notification(actors):
    prescriber, pharmacy, _ = actors
    prescription = reach("0002", prescriber, pharmacy)
    assert pharmacy.dispense(prescription, PARTIAL).status_code == 200
    first = pharmacy.last_dispense
    assert pharmacy.dispense(prescription, PARTIAL).status_code == 200
    wrong = pharmacy.dispense(prescription, ALL_DISPENSED, replaces=first)
    assert wrong.status_code == 400 and code_of(wrong) == "DISPENSE_AMEND_IDENTIFIER_MISMATCH"
    amended = pharmacy.dispense(prescription, ALL_DISPENSED, replaces=pharmacy.last_dispense)
    assert amended.status_code == 200
    assert pharmacy.status(prescription) == "0006"


def test_amend_a_claim(actors):
    prescriber, pharmacy, _ = actors
    prescription = reach("0008", prescriber, pharmacy)
    wrong = pharmacy.claim(prescription, replaces="11111111-2222-4333-8444-555555555555")
    assert wrong.status_code == 400 and code_of(wrong) == "DISPENSE_AMEND_IDENTIFIER_MISMATCH"
    assert pharmacy.claim(prescription, replaces=pharmacy.last_claim).status_code == 200
    assert pharmacy.status(prescription) == "0008"


# --- cancellation -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "code"), [
    ("0002", "R-0002"), ("0003", "R-0003"), ("0004", "R-0005"), ("0005", "R-0006"), ("0006", "R-0004"),
    ("0007", "R-0010"), ("0008", "R-0004"), ("0009", "R-0010")])
def test_cancellation_answers_by_state(actors, state, code):
    prescriber, pharmacy, _ = actors
    prescription = reach(state, prescriber, pharmacy)
    response = prescriber.cancel(prescription)
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "Bundle"
    assert code_of(response) == code
    assert_valid("send-prescription-order-update-message", 400, response.get_json())
    assert pharmacy.status(prescription) == state


def test_cancellation_of_a_prescription_to_be_dispensed(actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.order()
    response = prescriber.cancel(prescription)
    assert response.status_code == 200 and code_of(response) == "R-0001"
    assert response.headers.get(HL7V3_HEADER)
    request = next(e["resource"] for e in response.get_json()["entry"]
                   if e["resource"]["resourceType"] == "MedicationRequest")
    assert request["status"] == "cancelled"
    assert request["groupIdentifier"]["value"] == prescription.id
    assert_valid("send-prescription-order-update-message", 200, response.get_json())
    assert pharmacy.status(prescription) == "0005"


def test_cancellation_refusals_in_an_operation_outcome(actors):
    prescriber, pharmacy, _ = actors
    unknown = prescriber.cancel(prescriber.new_order())
    assert unknown.status_code == 400 and code_of(unknown) == "R-0008"
    assert unknown.get_json()["issue"][0]["code"] == "not-found"
    prescription = prescriber.order()
    mismatch = prescriber.cancel(prescription, nhs_number="9449304130")
    assert mismatch.status_code == 400 and code_of(mismatch) == "R-5000"
    assert mismatch.get_json()["issue"][0]["code"] == "processing"
    wrong_item = prescriber.cancel(prescription, item="0c0ffee0-0000-4000-8000-000000000000")
    assert wrong_item.status_code == 400 and code_of(wrong_item) == "R-0008"
    assert pharmacy.status(prescription) == "0001"


def test_pending_cancellation_is_made_when_the_dispenser_returns_it(client, sandbox, actors):
    prescriber, pharmacy, _ = actors
    prescription = reach("0002", prescriber, pharmacy)
    assert code_of(prescriber.cancel(prescription)) == "R-0002"
    assert code_of(prescriber.cancel(prescription)) == "R-0002", "the same prescriber asking again"
    nurse = Prescriber(client, sandbox, prescriber.tokens, user=NURSE)
    assert code_of(nurse.cancel(prescription)) == "R-0007"
    session = session_of(client, pharmacy.release(prescription))
    listing = client.get(f"/_sandbox/eps/prescriptions?session={session}").get_json()["prescriptions"]
    assert next(p for p in listing if p["id"] == prescription.id)["pendingCancellation"] is True
    assert pharmacy.return_(prescription).status_code == 200
    assert pharmacy.status(prescription) == "0005"
    refused = pharmacy.release(prescription)
    assert refused.status_code == 400 and code_of(refused) == "PRESCRIPTION_CANCELLED"


# --- expiry and the clock ------------------------------------------------------------------------------------------
def test_prescriptions_expire_by_the_session_clock(client, actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.order()
    held = reach("0002", prescriber, pharmacy)
    dispensed = reach("0006", prescriber, pharmacy)
    clock = f"/_sandbox/eps/clock?session={session_of(client, pharmacy.track(prescription))}"
    assert client.get(clock).get_json()["offset_seconds"] == 0
    moved = client.post(clock, json={"advance": "200d"})
    assert moved.status_code == 200 and moved.get_json()["offset_seconds"] == 200 * 86400
    assert pharmacy.status(prescription) == "0004"
    assert pharmacy.status(held) == "0004"
    assert pharmacy.status(dispensed) == "0006", "a dispensed prescription does not expire"
    refused = pharmacy.release(prescription)
    assert refused.status_code == 400 and code_of(refused) == "PRESCRIPTION_EXPIRED"
    assert code_of(prescriber.cancel(prescription)) == "R-0005"


def test_the_clock_refuses_what_is_not_a_forward_duration(client):
    for body in ({"advance": "-1d"}, {"advance": "soon"}, {"advance": "5000d"}):
        response = client.post("/_sandbox/eps/clock", json=body)
        assert response.status_code == 400
        assert response.get_json()["error"] == "bad_request"
    assert client.get("/_sandbox/eps/prescriptions?status=9999").status_code == 400


def test_a_controlled_drug_expires_after_28_days(client, actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.new_order()
    for entry in prescription.order["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"].setdefault("extension", []).append({
                "url": "https://fhir.nhs.uk/StructureDefinition/Extension-DM-ControlledDrug",
                "extension": [{"url": "schedule", "valueCoding": {
                    "system": "https://fhir.nhs.uk/CodeSystem/medicationrequest-controlled-drug", "code": "CD2",
                    "display": "Schedule 2"}}]})
    ordered = prescriber.send(prescriber.sign(prescription.order))
    assert ordered.status_code == 200
    clock = f"/_sandbox/eps/clock?session={session_of(client, ordered)}"
    assert client.post(clock, json={"advance": "27d"}).status_code == 200
    assert pharmacy.status(prescription) == "0001"
    assert client.post(clock, json={"advance": "2d"}).status_code == 200
    assert pharmacy.status(prescription) == "0004"


# --- repeat dispensing ------------------------------------------------------------------------------------------
def test_repeat_dispensing_issues_one_issue_at_a_time(actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.order(erd=True, repeats=1)  # two issues
    for issue in (1, 2):
        assert pharmacy.release(prescription).status_code == 200, issue
        task = pharmacy.track(prescription).get_json()["entry"][0]["resource"]
        repeat = next(x for x in task["extension"] if x["url"].endswith("RepeatInformation"))["extension"]
        assert {x["url"]: x["valueUnsignedInt"] for x in repeat} == {"numberOfRepeatsAllowed": 1,
                                                                     "numberOfRepeatsIssued": issue - 1}
        not_yet = pharmacy.release(prescription)
        assert not_yet.status_code == 400 and code_of(not_yet) == INVALID, "the next issue waits for this one"
        assert pharmacy.dispense(prescription, ALL_DISPENSED).status_code == 200
        if issue == 1:
            assert pharmacy.claim(prescription).status_code == 200
    finished = pharmacy.release(prescription)
    assert finished.status_code == 400 and code_of(finished) == "PRESCRIPTION_DISPENSED"


def test_repeat_dispensing_counts_must_match(actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.order(erd=True, repeats=2)
    assert pharmacy.release(prescription).status_code == 200
    body = pharmacy.notification(prescription, ALL_DISPENSED)
    for entry in body["entry"]:
        for contained in entry["resource"].get("contained", []):
            if contained["resourceType"] == "MedicationRequest":
                contained.setdefault("dispenseRequest", {})["numberOfRepeatsAllowed"] = 5
    response = pharmacy.dispense(prescription, body=body)
    assert response.status_code == 400 and code_of(response) == "MISMATCH_AUTHORISED_REPEAT_COUNTS"


# --- concurrency ----------------------------------------------------------------------------------------------------
def test_two_racing_releases_cannot_both_win(app, actors):
    prescriber, pharmacy, other = actors
    for _ in range(3):
        prescription = prescriber.order()
        bodies = [(pharmacy, pharmacy.release_body(prescription)), (other, other.release_body(prescription))]

        def attempt(pair):
            who, body = pair
            return app.test_client().post(who.base + "/Task/$release", json=body, headers=who.headers())

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(attempt, bodies))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 400], [r.get_json() for r in results]
        loser = next(r for r in results if r.status_code == 400)
        assert code_of(loser) == "PRESCRIPTION_WITH_ANOTHER_DISPENSER"
        assert pharmacy.status(prescription) == "0002"


def test_message_ids_of_the_helpers_are_fresh(actors):
    """The messages the tests send each carry their own identifier (a resent message is not what is tested)."""
    prescriber, pharmacy, _ = actors
    prescription = prescriber.new_order()
    assert message_id(pharmacy.notification(prescription, ALL_DISPENSED)) != \
        message_id(pharmacy.notification(prescription, ALL_DISPENSED))


# --- refused orders and hostile bodies -----------------------------------------------------------------------------
def test_an_order_whose_signature_fails_is_refused_and_not_stored(sandbox, actors):
    prescriber, pharmacy, _ = actors
    prescription = prescriber.new_order()
    untrusted = certificates.issue(sandbox.store, subject="Mallory", kind="untrusted")
    refused = prescriber.send(prescriber.sign(prescription.order, issued=untrusted))
    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json()["issue"][0]["severity"] == "error"
    assert not refused.headers.get(HL7V3_HEADER)
    assert pharmacy.track(prescription).get_json()["total"] == 0, "a refused order is not kept"
    assert prescriber.send(prescriber.sign(prescription.order)).status_code == 200, "the id is still free"


HOSTILE = [{"resourceType": "Bundle"}, {"resourceType": "Bundle", "entry": "x"},
           {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": {
               "code": "dispense-notification"}}}, {"resource": {"resourceType": "MedicationDispense",
                                                                  "contained": "x", "type": [1]}}]},
           {"resourceType": "Parameters", "parameter": [{"name": "owner", "resource": []},
                                                         {"name": "group-identifier", "valueIdentifier": 7}]},
           {"resourceType": "Task", "status": "rejected", "owner": "x", "contained": {"a": 1}},
           {"resourceType": "Task", "status": "in-progress", "groupIdentifier": {
               "system": "https://fhir.nhs.uk/Id/prescription-order-number", "value": "AAAAAA-A83008-000000"}},
           {"resourceType": "Claim", "item": {"detail": 1}, "extension": "replacementOf"}, [], "text", None]


@pytest.mark.parametrize("auth", ["off", "lenient"])
def test_hostile_bodies_never_get_a_500(settings, auth):
    app = create_app(settings.replace(auth=auth))
    try:
        client = app.test_client()
        tokens = Tokens(client)
        pharmacy = Pharmacy(client, tokens)
        for body in HOSTILE:
            for path in ("/$process-message", "/Task/$release", "/Task", "/Claim"):
                response = pharmacy.post(path, body)
                assert response.status_code < 500, (path, body, response.get_data()[:300])
            prescribing = client.post("/fhir-prescribing/FHIR/R4/$process-message", json=body,
                                      headers=pharmacy.headers())
            assert prescribing.status_code < 500, (body, prescribing.get_data()[:300])
    finally:
        app.extensions["sandbox"].close()


def test_the_handlers_are_total_over_what_the_checks_would_refuse(app):
    """With the front-door checks out of the way (as SANDBOX_AUTH=off and a lenient profile may let through), each
    handler still answers any JSON with a 4xx, never an exception."""
    handlers = {context.ORDER: prescribing.order, context.CANCEL: prescribing.cancel,
                context.RELEASE: dispensing.release, context.DISPENSE: dispensing.dispense,
                context.CLAIM: dispensing.claim, context.RETURN: dispensing.return_,
                context.WITHDRAW: dispensing.withdraw}
    bodies = [*HOSTILE, {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest",
                                                                           "groupIdentifier": {"system": (
                                                                               context.PRESCRIPTION_ID_SYSTEM),
                                                                               "value": "AAAAAA-A83008-000000"}}}]}]
    with app.app_context():
        for operation, handler in handlers.items():
            for body in bodies:
                call = context.EpsCall(operation=operation, session="hostile", api=context.LEGACY, headers={},
                                       query={}, body=body, raw=b"")
                ex = ExchangeContext(id="x", started=0.0, clock=0.0, service=None)
                try:
                    answer = handler(call, ex)
                except SpineError as error:
                    assert 400 <= error.status < 500, (operation, body, error)
                else:
                    assert 400 <= answer.status < 500, (operation, body, answer.body)
                assert not ex.writes, "a refused message writes nothing"
        for query in ({}, {"identifier": ["A"]}, {"focus:identifier": ["x", "y"]}):
            call = context.EpsCall(operation=context.TRACKER, session="hostile", api=context.LEGACY, headers={},
                                   query=query, body=None, raw=b"")
            try:
                assert tracker.track(call, ExchangeContext(id="x", started=0.0, clock=0.0, service=None)).status == 200
            except SpineError as error:
                assert error.status == 400
