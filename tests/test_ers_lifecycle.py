"""The e-RS referral lifecycle per session, over HTTP at /referrals/FHIR/STU3: a referring client (its GP practice's
ODS code) creates, books and cancels; a provider client (the ODS code of the service's trust) accepts, rejects and
triages. Reads between the steps show the versions and worklists changing; refused transitions answer as live e-RS."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.services.ers.world import DBS, IBS, RAS, current_world

BASE = "/referrals/FHIR/STU3"
RC = "REFERRING_CLINICIAN"
SPC = "SERVICE_PROVIDER_CLINICIAN"
CS = "https://fhir.nhs.uk/STU3/CodeSystem/"
PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/"


class Actor:
    """One e-RS client of the session: a business function at an organisation."""

    def __init__(self, client, session: str, business_function: str, ods: str):
        self.client, self.session, self.business_function, self.ods = client, session, business_function, ods

    def headers(self, extra: dict | None = None) -> dict:
        return {"Authorization": "Bearer sandbox-test-token", "X-Sandbox-Session": self.session,
                "NHSD-eRS-Business-Function": self.business_function, "NHSD-End-User-Organisation-ODS": self.ods,
                "X-Correlation-ID": str(uuid.uuid4()), "Content-Type": "application/fhir+json", **(extra or {})}

    def get(self, path: str, **kwargs):
        return self.client.get(BASE + path, headers=self.headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path: str, body=None, version: int | None = None, **kwargs):
        extra = {"If-Match": f'W/"{version}"'} if version is not None else {}
        return self.client.post(BASE + path, json=body, headers=self.headers(extra), **kwargs)

    def put(self, path: str, body, version: int | None = None):
        extra = {"If-Match": f'W/"{version}"'} if version is not None else {}
        return self.client.put(BASE + path, json=body, headers=self.headers(extra))


def coding(system: str, code: str) -> dict:
    return {"system": system, "code": code}


def shortlist(*service_ids: str, priority: str = "ROUTINE") -> dict:
    return {"resourceType": "List", "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/"
                                                          "eRS-Shortlist-List-1"]},
            "status": "current", "mode": "snapshot",
            "contained": [{"resourceType": "Parameters", "id": "ServiceSearchCriteria-1", "meta": {"profile": [
                "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-ServiceSearchCriteria-Parameters-1"]},
                "parameter": [{"name": "priority", "valueCoding": coding(CS + "eRS-Priority-1", priority)},
                              {"name": "ageAndGenderAppropriate", "valueBoolean": False}]}],
            "entry": [{"item": {"identifier": {"system": "http://fhir.nhs.net/Id/ers-service", "value": s}}}
                      for s in service_ids],
            "extension": [{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-Shortlist-SearchCriteria-1",
                           "valueReference": {"reference": "#ServiceSearchCriteria-1"}}]}


def create_body(nhs_number: str, *service_ids: str, profile: str = "eRS-CreateReferral-Parameters-1") -> dict:
    return {"resourceType": "Parameters", "meta": {"profile": [f"https://fhir.nhs.uk/STU3/StructureDefinition/{profile}"]},
            "parameter": [
        {"name": "patient", "valueIdentifier": {"system": "http://fhir.nhs.net/Id/nhs-number", "value": nhs_number}},
        {"name": "intentionToAddReferralLetter",
         "valueCoding": coding(CS + "eRS-ReferralLetterIntention-1", "NEED_TO_ADD_LATER")},
        {"name": "firstReminderLetterFollowUpDays", "valueUnsignedInt": 0},
        {"name": "shortlist", "resource": shortlist(*service_ids)}]}


def worklist_body(list_type: str) -> dict:
    return {"resourceType": "Parameters", "meta": {"profile": [PROFILE + "eRS-FetchWorklist-Parameters-1"]},
            "parameter": [
        {"name": "listType", "valueCodeableConcept": {"coding": [coding(CS + "eRS-ReferralListSelector-1",
                                                                         list_type)]}}]}


def booking(ubrn: str, version: int, service_id: str, slot_id: str, patient: str) -> dict:
    return {"id": "appointment", "meta": {"profile": [PROFILE + "eRS-Appointment-1"]}, "language": "en",
            "resourceType": "Appointment", "status": "booked", "description": "e-Referral Appointment",
            "slot": [{"reference": f"Slot/{slot_id}"}],
            "incomingReferral": [{"reference": f"ReferralRequest/{ubrn}/_history/{version}"}],
            "participant": [
                {"actor": {"identifier": {"system": "http://fhir.nhs.net/Id/ers-service", "value": service_id}},
                 "status": "accepted"},
                {"actor": {"identifier": {"system": "http://fhir.nhs.net/Id/nhs-number", "value": patient}},
                 "status": "accepted"}]}


def cancel_body(code: str, comments: str | None = None) -> dict:
    parameter = [{"name": "cancellationReason",
                  "valueCoding": coding("_baseurl_/STU3/CodeSystem/REFERRAL-CANCELLATION-REASON", code)}]
    if comments:
        parameter.append({"name": "cancellationComments", "valueString": comments})
    return {"resourceType": "Parameters", "parameter": parameter}


def state_of(referral: dict) -> str:
    ext = next(e for e in referral["extension"] if e["url"].endswith("Extension-eRS-ReferralState-1"))
    return next(e["valueCoding"]["code"] for e in ext["extension"] if e["url"] == "state")


def error_code(response) -> str:
    return response.get_json()["issue"][0]["details"]["coding"][0]["code"]


def worklist_ubrns(actor: Actor, list_type: str) -> list[str]:
    response = actor.post("/ReferralRequest/$ers.fetchworklist", worklist_body(list_type))
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["item"]["reference"].split("/")[1] for e in response.get_json()["entry"]]


def failing(client, response, requirement: str) -> list[dict]:
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return [f for f in exchange["findings"] if f["requirement"] == requirement and f["outcome"] == "fail"]


@pytest.fixture
def world(app):
    with app.app_context():
        return current_world()


@pytest.fixture
def people(sandbox):
    """Two patients of the population and the GP practice of the first."""
    first, second = sandbox.population.person(10), sandbox.population.person(11)
    return first, second


@pytest.fixture
def session() -> str:
    return f"ers-{uuid.uuid4().hex[:8]}"


def service_of(world, kind: str, specialty: str = "CARDIOLOGY"):
    return next(s for s in world.services.values() if s.kind == kind and s.specialty == specialty)


@pytest.fixture
def referrer(client, session, people, world) -> Actor:
    practice = people[0].gp or world.practices[0].ods
    return Actor(client, session, RC, practice)


def create(referrer: Actor, nhs_number: str, *service_ids: str) -> dict:
    response = referrer.post("/ReferralRequest/$ers.createReferral", create_body(nhs_number, *service_ids))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["ETag"] == 'W/"1"'
    return response.get_json()


def first_free_slot(referrer: Actor, service_id: str) -> str:
    response = referrer.get("/Slot", query_string={"schedule.actor:HealthcareService": service_id, "status": "free",
                                                   "appointmentType": "ROUTINE", "_count": "5", "page": "1"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return next(e["resource"]["id"] for e in response.get_json()["entry"] if e["resource"]["resourceType"] == "Slot")


# --- the whole journey -----------------------------------------------------------------------------------------------
def test_referral_created_booked_and_accepted_across_two_clients(client, referrer, people, world, session):
    dbs = service_of(world, DBS)
    provider = Actor(client, session, SPC, dbs.ods)
    patient = people[0].nhs_number
    created = create(referrer, patient, dbs.id)
    ubrn = created["id"]
    assert len(ubrn) == 12 and not ubrn.startswith("0000000700")
    assert state_of(created) == "NOT_BOOKED" and created["meta"]["versionId"] == "1"
    assert ubrn in worklist_ubrns(referrer, "AWAITING_BOOKING")
    assert ubrn not in worklist_ubrns(provider, "REFERRALS_FOR_REVIEW")

    slot = first_free_slot(referrer, dbs.id)
    booked = referrer.post("/Appointment", booking(ubrn, 1, dbs.id, slot, patient))
    assert booked.status_code == 201, booked.get_data(as_text=True)
    appointment = booked.get_json()
    assert appointment["status"] == "booked" and appointment["slot"] == [{"reference": f"Slot/{slot}"}]
    assert appointment["incomingReferral"][0]["reference"] == f"ReferralRequest/{ubrn}/_history/2"

    read = referrer.get(f"/ReferralRequest/{ubrn}")
    assert read.status_code == 200 and read.headers["ETag"] == 'W/"2"'
    assert state_of(read.get_json()) == "BOOKED"
    assert ubrn not in worklist_ubrns(referrer, "AWAITING_BOOKING")
    assert ubrn in worklist_ubrns(provider, "REFERRALS_FOR_REVIEW")
    assert slot not in [first_free_slot(referrer, dbs.id)]  # the booked slot is no longer offered

    accepted = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2)
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert accepted.headers["ETag"] == 'W/"3"' and accepted.get_json()["meta"]["versionId"] == "3"
    assert ubrn not in worklist_ubrns(provider, "REFERRALS_FOR_REVIEW")

    # Every version stays readable; the first is the unbooked referral.
    first = referrer.get(f"/ReferralRequest/{ubrn}/_history/1")
    assert first.status_code == 200 and state_of(first.get_json()) == "NOT_BOOKED"
    assert first.headers["ETag"] == 'W/"1"'
    assert referrer.get(f"/ReferralRequest/{ubrn}/_history/9").status_code == 404
    read_appointment = provider.get(f"/Appointment/{appointment['id']}")
    assert read_appointment.status_code == 200 and read_appointment.get_json()["status"] == "booked"


def test_triage_path(client, referrer, people, world, session):
    ras = service_of(world, RAS)
    triager = Actor(client, session, SPC, ras.ods)
    response = referrer.post("/ReferralRequest/$ers.createReferralAndSendForTriage",
                             create_body(people[0].nhs_number, ras.id,
                                         profile="eRS-CreateReferralAndSendForTriage-Parameters-1"))
    assert response.status_code == 201, response.get_data(as_text=True)
    ubrn = response.get_json()["id"]
    assert state_of(response.get_json()) == "AWAITING_TRIAGE"
    assert ubrn in worklist_ubrns(triager, "REFERRALS_FOR_REVIEW")
    tasks = triager.get("/Task", query_string={"focus": f"ReferralRequest/{ubrn}/_history/1", "intent": "proposal",
                                               "status": "ready"})
    assert [e["resource"]["code"]["coding"][0]["code"] for e in tasks.get_json()["entry"]] == [
        "RECORD_REVIEW_OUTCOME", "CANCEL_REFERRAL"]

    outcome = {"resourceType": "Parameters", "parameter": [
        {"name": "reviewOutcome", "valueCoding": coding(CS + "eRS-ReviewOutcome-1", "RETURN_TO_REFERRER_WITH_ADVICE")},
        {"name": "reviewComments", "valueString": "Manage in primary care; advice attached in comments"}]}
    returned = triager.post(f"/ReferralRequest/{ubrn}/$ers.recordReviewOutcome", outcome, version=1)
    assert returned.status_code == 200, returned.get_data(as_text=True)
    assert state_of(returned.get_json()) == "TRIAGE_RESPONSE" and returned.headers["ETag"] == 'W/"2"'
    assert ubrn in worklist_ubrns(referrer, "REJECTED_TRIAGE_RESPONSE")
    assert ubrn not in worklist_ubrns(triager, "REFERRALS_FOR_REVIEW")
    # Recording an outcome again: the referral is no longer awaiting triage.
    again = triager.post(f"/ReferralRequest/{ubrn}/$ers.recordReviewOutcome", outcome, version=2)
    assert again.status_code == 422 and error_code(again) == "INVALID_REQUEST_STATE"
    # The referrer may now change the shortlist (and is offered to).
    tasks = referrer.get("/Task", query_string={"focus": f"ReferralRequest/{ubrn}/_history/2", "intent": "proposal",
                                                "status": "ready"})
    assert "CHANGE_SHORTLIST" in [e["resource"]["code"]["coding"][0]["code"] for e in tasks.get_json()["entry"]]


# --- refusals ---------------------------------------------------------------------------------------------------
@pytest.fixture
def booked(client, referrer, people, world, session):
    """A referral booked into a directly bookable service: (ubrn, provider actor, appointment)."""
    dbs = service_of(world, DBS)
    created = create(referrer, people[0].nhs_number, dbs.id)
    slot = first_free_slot(referrer, dbs.id)
    response = referrer.post("/Appointment", booking(created["id"], 1, dbs.id, slot, people[0].nhs_number))
    assert response.status_code == 201
    return created["id"], Actor(client, session, SPC, dbs.ods), response.get_json()


def test_accept_twice_is_refused(client, booked):
    ubrn, provider, _ = booked
    assert provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2).status_code == 200
    again = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=3)
    assert again.status_code == 422 and error_code(again) == "INVALID_REQUEST_STATE"
    assert failing(client, again, "ERS-REF-005")


def test_accepting_with_the_version_the_booking_named_respects_versions(client, booked):
    """A booking answers with the Appointment, whose incomingReferral names the referral's new version: a provider
    that accepts with that version (without reading the referral again) sends the current version."""
    ubrn, provider, appointment = booked
    assert appointment["incomingReferral"][0]["reference"] == f"ReferralRequest/{ubrn}/_history/2"
    accepted = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2)
    assert accepted.status_code == 200
    exchange = client.get(f"/_sandbox/exchanges/{accepted.headers['X-Sandbox-Exchange']}").get_json()
    assert [f["outcome"] for f in exchange["findings"] if f["requirement"] == "ERS-VER-001"] == ["pass"]


def test_concurrent_accepts_of_one_referral_give_one_acceptance_and_no_server_error(app, booked):
    """Providers accepting the same referral at once: one succeeds; the others are refused as the live service
    refuses (409 when the other change landed between their read and their write, else 422), never a 500."""
    ubrn, provider, _ = booked

    def accept(_: int) -> int:
        actor = Actor(app.test_client(), provider.session, provider.business_function, provider.ods)
        return actor.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(accept, range(8)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409, 422}, statuses


def test_cancelled_referral_cannot_be_accepted_or_booked(client, referrer, booked, people, world):
    ubrn, provider, appointment = booked
    cancelled = referrer.post(f"/ReferralRequest/{ubrn}/$ers.cancelReferral",
                              cancel_body("PATIENT_REQUEST_CANCELLATION_OTHER", "Moving abroad"), version=2)
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    names = [p["name"] for p in cancelled.get_json()["parameter"]]
    assert names == ["updatedReferralRequest", "updatedAppointment"]
    referral = cancelled.get_json()["parameter"][0]["resource"]
    assert state_of(referral) == "CANCELLED_REFERRAL" and referral["status"] == "cancelled"
    assert cancelled.get_json()["parameter"][1]["resource"]["status"] == "cancelled"

    accept = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=3)
    assert accept.status_code == 422 and error_code(accept) == "INVALID_REQUEST_STATE"
    dbs = service_of(world, DBS)
    slot = first_free_slot(referrer, dbs.id)
    book = referrer.post("/Appointment", booking(ubrn, 3, dbs.id, slot, people[0].nhs_number))
    assert book.status_code == 422 and error_code(book) == "INVALID_REQUEST_STATE"
    # The cancelled appointment's slot is free again.
    assert appointment["slot"][0]["reference"] == f"Slot/{slot}"


def test_provider_of_another_organisation_has_no_relationship(client, booked, world, session):
    ubrn, provider, _ = booked
    other = next(p.ods for p in world.providers if p.ods != provider.ods)
    stranger = Actor(client, session, SPC, other)
    response = stranger.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2)
    assert response.status_code == 422 and error_code(response) == "NO_RELATIONSHIP"
    assert failing(client, response, "ERS-REF-004")
    assert stranger.get(f"/ReferralRequest/{ubrn}").status_code == 422
    assert ubrn not in worklist_ubrns(stranger, "REFERRALS_FOR_REVIEW")


def test_unknown_patient_is_a_patient_error(client, referrer, world):
    dbs = service_of(world, DBS)
    response = referrer.post("/ReferralRequest/$ers.createReferral", create_body("9999999999", dbs.id))
    assert response.status_code == 422 and error_code(response) == "PATIENT_ERROR"
    assert failing(client, response, "ERS-REF-001")


def test_stale_or_missing_if_match(client, booked):
    ubrn, provider, _ = booked
    stale = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=1)
    assert stale.status_code == 409 and failing(client, stale, "ERS-REF-006")
    missing = provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral")
    assert missing.status_code == 412
    # Neither changed anything: the referral is still version 2.
    assert provider.get(f"/ReferralRequest/{ubrn}").headers["ETag"] == 'W/"2"'


def test_unknown_ubrn_is_not_found(referrer):
    response = referrer.get("/ReferralRequest/299999999999")
    assert response.status_code == 404


def test_rejected_referral_returns_to_the_referrer(client, referrer, world, people, session):
    ibs = service_of(world, IBS)
    created = create(referrer, people[1].nhs_number, ibs.id)
    slot = first_free_slot(referrer, ibs.id)
    assert referrer.post("/Appointment", booking(created["id"], 1, ibs.id, slot,
                                                 people[1].nhs_number)).status_code == 201
    provider = Actor(client, session, SPC, ibs.ods)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "rejectionReason", "valueCoding": coding("_baseurl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON",
                                                          "SERVICE_INAPPROPRIATE")},
        {"name": "rejectionComments", "valueString": "Please refer to the lipid clinic instead"}]}
    rejected = provider.post(f"/ReferralRequest/{created['id']}/$ers.rejectReferral", body, version=2)
    assert rejected.status_code == 200 and state_of(rejected.get_json()) == "REJECTED"
    assert created["id"] in worklist_ubrns(referrer, "REJECTED_TRIAGE_RESPONSE")


def test_patient_cancels_appointment_and_the_slot_is_freed(client, referrer, booked):
    ubrn, _, appointment = booked
    body = {"resourceType": "Appointment", "status": "cancelled",
            "reason": [{"coding": [coding("_baseUrl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON", "PATIENT_ILL")]}],
            "incomingReferral": [{"reference": f"ReferralRequest/{ubrn}/_history/2"}]}
    stale = referrer.put(f"/Appointment/{appointment['id']}", body, version=7)
    assert stale.status_code == 409
    response = referrer.put(f"/Appointment/{appointment['id']}", body, version=1)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "cancelled" and response.headers["ETag"] == 'W/"2"'
    assert referrer.get(f"/Appointment/{appointment['id']}/_history/1").get_json()["status"] == "booked"
    assert state_of(referrer.get(f"/ReferralRequest/{ubrn}").get_json()) == "APP_CANCELLED_BY_PATIENT"
    assert ubrn in worklist_ubrns(referrer, "AWAITING_BOOKING")
    service_id = appointment["participant"][0]["actor"]["identifier"]["value"]
    assert first_free_slot(referrer, service_id) == appointment["slot"][0]["reference"].removeprefix("Slot/")


def test_patient_letter_clears_letters_outstanding(client, referrer, people, world):
    created = create(referrer, people[0].nhs_number, service_of(world, DBS).id)
    assert created["id"] in worklist_ubrns(referrer, "LETTERS_OUTSTANDING")
    letter = referrer.post(f"/ReferralRequest/{created['id']}/$ers.generatePatientLetter")
    assert letter.status_code == 200 and letter.data.startswith(b"%PDF-")
    assert created["id"] not in worklist_ubrns(referrer, "LETTERS_OUTSTANDING")


def test_provider_cancels_appointment_to_action_later(client, booked):
    ubrn, provider, appointment = booked
    body = {"resourceType": "Parameters", "parameter": [{"name": "comments", "valueString": "Clinic closed"}]}
    response = provider.post(f"/ReferralRequest/{ubrn}/$ers.cancelAppointmentActionLater", body, version=2)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert state_of(response.get_json()) == "TRIAGED_PROVIDER_TO_ACTION"
    assert ubrn in worklist_ubrns(provider, "APPOINTMENT_SLOT_ISSUES")
    assert provider.get(f"/Appointment/{appointment['id']}").get_json()["status"] == "cancelled"


def test_change_shortlist_then_send_for_triage(client, referrer, people, world, session):
    dbs, ras = service_of(world, DBS), service_of(world, RAS)
    created = create(referrer, people[0].nhs_number, dbs.id)
    ubrn = created["id"]
    change = {"resourceType": "Parameters", "parameter": [{"name": "shortlist", "resource": shortlist(dbs.id, ras.id)}]}
    stale = referrer.post(f"/ReferralRequest/{ubrn}/$ers.changeShortlist", change, version=5)
    assert stale.status_code == 409
    changed = referrer.post(f"/ReferralRequest/{ubrn}/$ers.changeShortlist", change, version=1)
    assert changed.status_code == 200 and changed.headers["ETag"] == 'W/"2"'
    shortlisted = next(c for c in changed.get_json()["contained"] if c["id"] == "shortlist")
    assert [e["item"]["identifier"]["value"] for e in shortlisted["entry"]] == [dbs.id, ras.id]
    # Sending a two-service shortlist for triage is refused; one triage service is accepted.
    two = referrer.post(f"/ReferralRequest/{ubrn}/$ers.changeShortlistAndSendForTriage", change, version=2)
    assert two.status_code == 422 and error_code(two) == "INAPPROPRIATE_VALUE"
    triage = {"resourceType": "Parameters", "parameter": [{"name": "shortlist", "resource": shortlist(ras.id)}]}
    sent = referrer.post(f"/ReferralRequest/{ubrn}/$ers.changeShortlistAndSendForTriage", triage, version=2)
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert state_of(sent.get_json()["parameter"][0]["resource"]) == "AWAITING_TRIAGE"
    assert ubrn in worklist_ubrns(Actor(client, session, SPC, ras.ods), "REFERRALS_FOR_REVIEW")


def test_a_referrer_of_another_practice_cannot_read_or_cancel(client, referrer, people, world, session):
    created = create(referrer, people[0].nhs_number, service_of(world, DBS).id)
    other = next(p.ods for p in world.practices if p.ods != referrer.ods)
    stranger = Actor(client, session, RC, other)
    assert error_code(stranger.get(f"/ReferralRequest/{created['id']}")) == "NO_RELATIONSHIP"
    refused = stranger.post(f"/ReferralRequest/{created['id']}/$ers.cancelReferral",
                            cancel_body("RAISED_IN_ERROR"), version=1)
    assert refused.status_code == 422 and error_code(refused) == "NO_RELATIONSHIP"
    assert created["id"] not in worklist_ubrns(stranger, "AWAITING_BOOKING")


def test_cancellation_reason_must_suit_the_caller(client, referrer, people, world):
    created = create(referrer, people[0].nhs_number, service_of(world, DBS).id)
    provider_only = referrer.post(f"/ReferralRequest/{created['id']}/$ers.cancelReferral",
                                  cancel_body("TRIAGE_ENDED"), version=1)
    assert provider_only.status_code == 422 and error_code(provider_only) == "INAPPROPRIATE_VALUE"
    no_comment = referrer.post(f"/ReferralRequest/{created['id']}/$ers.cancelReferral",
                               cancel_body("PATIENT_REQUEST_CANCELLATION_OTHER"), version=1)
    assert no_comment.status_code == 422 and error_code(no_comment) == "MISSING_VALUE"
    done = referrer.post(f"/ReferralRequest/{created['id']}/$ers.cancelReferral", cancel_body("RAISED_IN_ERROR"),
                         version=1)
    assert done.status_code == 200
    twice = referrer.post(f"/ReferralRequest/{created['id']}/$ers.cancelReferral", cancel_body("RAISED_IN_ERROR"),
                          version=2)
    assert twice.status_code == 422 and error_code(twice) == "INVALID_REQUEST_STATE"


def test_slots_are_paged_and_a_booked_slot_cannot_be_booked_twice(client, referrer, people, world):
    dbs = service_of(world, DBS)
    page = referrer.get("/Slot", query_string={"schedule.actor:HealthcareService": dbs.id, "status": "free",
                                               "appointmentType": "ROUTINE", "_count": "5", "page": "2"})
    assert page.status_code == 200
    bundle = page.get_json()
    assert bundle["total"] == 24 and len([e for e in bundle["entry"] if e["search"]["mode"] == "match"]) == 5
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    beyond = referrer.get("/Slot", query_string={"schedule.actor:HealthcareService": dbs.id, "status": "free",
                                                 "appointmentType": "ROUTINE", "_count": "5", "page": "6"})
    assert beyond.status_code == 400 and error_code(beyond) == "INVALID_VALUE"
    first = create(referrer, people[0].nhs_number, dbs.id)
    second = create(referrer, people[1].nhs_number, dbs.id)
    slot = first_free_slot(referrer, dbs.id)
    assert referrer.post("/Appointment", booking(first["id"], 1, dbs.id, slot, people[0].nhs_number)).status_code == 201
    taken = referrer.post("/Appointment", booking(second["id"], 1, dbs.id, slot, people[1].nhs_number))
    assert taken.status_code == 422 and error_code(taken) == "SLOT_NOT_AVAILABLE"


HOSTILE_BODIES = [
    None, [], 1, "x", {}, {"resourceType": "Parameters", "parameter": 5},
    {"resourceType": "Parameters", "parameter": [1, "a", None, {"name": 3}]},
    {"resourceType": "Parameters", "parameter": [{"name": "shortlist", "resource": {"entry": [1, {"item": 5}]}},
                                                 {"name": "patient", "valueIdentifier": "x"}]},
    {"resourceType": "Parameters", "parameter": [{"name": "listType", "valueCodeableConcept": {"coding": "x"}},
                                                 {"name": "searchCriteria", "resource": {"parameter": [[]]}}]},
    {"resourceType": "Appointment", "participant": [1, {"actor": 3}], "slot": [{"reference": 7}], "status": "booked",
     "reason": [[1]], "incomingReferral": [{"reference": "ReferralRequest/{ubrn}/_history/1"}]},
    {"resourceType": "Appointment", "status": "cancelled", "reason": "x", "comment": 5},
]


def test_hostile_bodies_are_refused_in_the_service_shape(client, referrer, booked):
    ubrn, provider, appointment = booked
    calls = [(referrer, "/ReferralRequest/$ers.createReferral"), (referrer, f"/ReferralRequest/{ubrn}/$ers.changeShortlist"),
             (referrer, f"/ReferralRequest/{ubrn}/$ers.cancelReferral"), (referrer, "/ReferralRequest/$ers.fetchworklist"),
             (referrer, "/HealthcareService/$ers.searchHealthcareServicesForPatient"), (referrer, "/Appointment"),
             (provider, f"/ReferralRequest/{ubrn}/$ers.rejectReferral"),
             (provider, f"/ReferralRequest/{ubrn}/$ers.recordReviewOutcome"),
             (provider, f"/ReferralRequest/{ubrn}/$ers.cancelAppointmentActionLater")]
    for actor, path in calls:
        for body in HOSTILE_BODIES:
            if isinstance(body, dict) and "incomingReferral" in body:
                body = {**body, "incomingReferral": [{"reference": f"ReferralRequest/{ubrn}/_history/2"}]}
            response = actor.post(path, body, version=2)
            assert response.status_code < 500, (path, body, response.get_data(as_text=True))
    for body in HOSTILE_BODIES:
        response = referrer.put(f"/Appointment/{appointment['id']}", body, version=1)
        assert response.status_code in (400, 415, 422), (body, response.get_data(as_text=True))
    # None of it changed the referral.
    assert referrer.get(f"/ReferralRequest/{ubrn}").headers["ETag"] == 'W/"2"'


def search_body(nhs_number: str, specialty: str) -> dict:
    criteria = {"resourceType": "Parameters", "id": "ServiceSearchCriteria-1",
                "meta": {"profile": [PROFILE + "eRS-ServiceSearchCriteria-Parameters-1"]}, "parameter": [
                    {"name": "priority", "valueCoding": coding(CS + "eRS-Priority-1", "ROUTINE")},
                    {"name": "specialty", "valueCoding": coding("_baseUrl_/STU3/CodeSystem/SPECIALTY", specialty)},
                    {"name": "ageAndGenderAppropriate", "valueBoolean": True}]}
    return {"resourceType": "Parameters", "meta": {"profile": [PROFILE + "eRS-PatientServiceSearch-Parameters-1"]},
            "parameter": [
                {"name": "requestType", "valueCoding": coding(CS + "eRS-RequestType-1", "APPOINTMENT_REQUEST")},
                {"name": "sortBy", "valueCoding": coding(CS + "eRS-SortBy-1", "DISTANCE")},
                {"name": "patient", "valueIdentifier": {"system": "http://fhir.nhs.net/Id/nhs-number",
                                                        "value": nhs_number}},
                {"name": "searchCriteria", "resource": criteria}]}


def test_every_answer_of_a_referrals_life_meets_the_specification(client, referrer, people, world, session):
    """Each lifecycle answer validates against the schema the specification documents for it (skipped without the
    specification beside the repository)."""
    from tests.test_ers_spec_schemas import SpecChecker

    spec = SpecChecker()
    patient = people[0].nhs_number
    found = referrer.post("/HealthcareService/$ers.searchHealthcareServicesForPatient",
                          search_body(patient, "CARDIOLOGY"))
    spec.check("a010-patient-service-search", found)
    listed = [e["item"]["identifier"]["value"] for e in found.get_json()["entry"]]
    dbs, ibs, ras = (service_of(world, kind) for kind in (DBS, IBS, RAS))
    assert {dbs.id, ibs.id, ras.id} <= set(listed)
    created = referrer.post("/ReferralRequest/$ers.createReferral", create_body(patient, dbs.id, ras.id))
    spec.check("a011-create-referral", created)
    ubrn = created.get_json()["id"]
    slots = referrer.get("/Slot", query_string={"schedule.actor:HealthcareService": dbs.id, "status": "free",
                                                "appointmentType": "ROUTINE", "_count": "5", "page": "1"})
    spec.check("a015-retrieve-appointment-slots", slots)
    slot = slots.get_json()["entry"][0]["resource"]["id"]
    booked = referrer.post("/Appointment", booking(ubrn, 1, dbs.id, slot, patient))
    spec.check("a016-book-or-defer-appointment", booked)
    appointment = booked.get_json()["id"]
    spec.check("a005-retrieve-referral-request", referrer.get(f"/ReferralRequest/{ubrn}"))
    spec.check("a005-retrieve-referral-request-versioned", referrer.get(f"/ReferralRequest/{ubrn}/_history/1"))
    spec.check("a038-retrieve-appointment", referrer.get(f"/Appointment/{appointment}"))
    spec.check("a038-retrieve-appointment-versioned", referrer.get(f"/Appointment/{appointment}/_history/1"))
    provider = Actor(client, session, SPC, dbs.ods)
    spec.check("a008-retrieve-worklist", provider.post("/ReferralRequest/$ers.fetchworklist",
                                                       worklist_body("REFERRALS_FOR_REVIEW")))
    spec.check("a029-available-actions-for-user-list", referrer.get("/Task", query_string={
        "focus": f"ReferralRequest/{ubrn}/_history/2", "intent": "proposal", "status": "ready"}))
    spec.check("a013-accept-referral", provider.post(f"/ReferralRequest/{ubrn}/$ers.acceptReferral", version=2))
    caal = {"resourceType": "Parameters", "meta": {"profile": [
        PROFILE + "eRS-cancelAppointmentActionLater-Parameters-1"]},
        "parameter": [{"name": "comments", "valueString": "Clinic cancelled"}]}
    spec.check("a022-cancel-appointment-action-later",
               provider.post(f"/ReferralRequest/{ubrn}/$ers.cancelAppointmentActionLater", caal, version=3))
    spec.check("a008-retrieve-worklist", provider.post("/ReferralRequest/$ers.fetchworklist",
                                                       worklist_body("APPOINTMENT_SLOT_ISSUES")))
    spec.check("a036-cancel-referral", referrer.post(f"/ReferralRequest/{ubrn}/$ers.cancelReferral",
                                                     cancel_body("RAISED_IN_ERROR"), version=4))
    # A second referral: shortlist changed, sent for triage, returned; a third booked then cancelled by the patient.
    second = referrer.post("/ReferralRequest/$ers.createReferral", create_body(patient, ibs.id)).get_json()["id"]
    change = {"resourceType": "Parameters", "meta": {"profile": [PROFILE + "eRS-ChangeShortlist-Parameters-1"]},
              "parameter": [{"name": "shortlist", "resource": shortlist(ibs.id, dbs.id)}]}
    spec.check("a031-change-shortlist",
               referrer.post(f"/ReferralRequest/{second}/$ers.changeShortlist", change, version=1))
    triage = {"resourceType": "Parameters", "meta": {"profile": [
        PROFILE + "eRS-ChangeShortlistAndSendForTriage-Request-Parameters-1"]},
        "parameter": [{"name": "shortlist", "resource": shortlist(ras.id)}]}
    spec.check("a032-change-shortlist-and-send-for-triage",
               referrer.post(f"/ReferralRequest/{second}/$ers.changeShortlistAndSendForTriage", triage, version=2))
    outcome = {"resourceType": "Parameters", "meta": {"profile": [PROFILE + "eRS-RecordReviewOutcome-Parameters-1"]},
               "parameter": [
                   {"name": "reviewOutcome", "valueCoding": coding(CS + "eRS-ReviewOutcome-1",
                                                                   "ACCEPT_REFER_BOOK_LATER")},
                   {"name": "reviewPriority", "valueCoding": coding(CS + "eRS-Priority-1", "URGENT")},
                   {"name": "reviewComments", "valueString": "See within two weeks"}]}
    spec.check("a028-record-triage-outcome", Actor(client, session, SPC, ras.ods).post(
        f"/ReferralRequest/{second}/$ers.recordReviewOutcome", outcome, version=3))
    third = referrer.post("/ReferralRequest/$ers.createReferral", create_body(patient, ibs.id)).get_json()["id"]
    slot = first_free_slot(referrer, ibs.id)
    booked = referrer.post("/Appointment", booking(third, 1, ibs.id, slot, patient))
    reject = {"resourceType": "Parameters", "meta": {"profile": [PROFILE + "eRS-RejectReferral-Parameters-1"]},
              "parameter": [{"name": "rejectionReason", "valueCoding": coding(
                  "_baseurl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON", "OTHER")},
                  {"name": "rejectionComments", "valueString": "Wrong clinic"}]}
    spec.check("a014-reject-referral", Actor(client, session, SPC, ibs.ods).post(
        f"/ReferralRequest/{third}/$ers.rejectReferral", reject, version=2))
    spec.check("a008-retrieve-worklist", referrer.post("/ReferralRequest/$ers.fetchworklist",
                                                       worklist_body("REJECTED_TRIAGE_RESPONSE")))
    fourth = referrer.post("/ReferralRequest/$ers.createReferral", create_body(patient, dbs.id)).get_json()["id"]
    slot = first_free_slot(referrer, dbs.id)
    booked = referrer.post("/Appointment", booking(fourth, 1, dbs.id, slot, patient)).get_json()
    cancel = {**{k: v for k, v in booked.items() if k not in ("created", "start", "end", "slot", "participant")},
              "status": "cancelled", "participant": booked["participant"][:2],
              "reason": [{"coding": [coding("_baseUrl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON",
                                            "PATIENT_HOLIDAY")]}]}
    spec.check("a034-update-appointment", referrer.put(f"/Appointment/{booked['id']}", cancel, version=1))
    for list_type in ("AWAITING_BOOKING", "ASSESSMENT_RETURNED_CANCELLED_DNA", "LETTERS_OUTSTANDING"):
        spec.check("a008-retrieve-worklist", referrer.post("/ReferralRequest/$ers.fetchworklist",
                                                           worklist_body(list_type)))
    statuses = {entry.split()[0]: entry.split()[1] for entry in spec.checked}
    assert len(statuses) >= 18, spec.checked
    assert all(code.startswith("2") for code in statuses.values()), spec.checked


def test_deferral_to_the_provider(client, referrer, people, world, session):
    dbs = service_of(world, DBS)
    created = create(referrer, people[0].nhs_number, dbs.id)
    deferral = {**booking(created["id"], 1, dbs.id, "unused", people[0].nhs_number), "status": "proposed",
                "reason": [{"coding": [coding(CS + "eRS-ReviewReason-1", "NO_SLOTS_AT_SERVICE")]}]}
    del deferral["slot"]
    free_slots = referrer.post("/Appointment", deferral)
    assert free_slots.status_code == 422 and error_code(free_slots) == "SLOTS_CURRENTLY_AVAILABLE"
    deferral["reason"] = [{"coding": [coding(CS + "eRS-ReviewReason-1", "BOOKING_ATTEMPT_PROBLEM")]}]
    deferred = referrer.post("/Appointment", deferral)
    assert deferred.status_code == 201, deferred.get_data(as_text=True)
    assert deferred.get_json()["status"] == "proposed" and "slot" not in deferred.get_json()
    assert state_of(referrer.get(f"/ReferralRequest/{created['id']}").get_json()) == "DEFERRED_TO_PROVIDER"
    assert created["id"] in worklist_ubrns(Actor(client, session, SPC, dbs.ods), "APPOINTMENT_SLOT_ISSUES")


def test_triage_outcome_with_a_provider_file(client, referrer, people, world, session):
    ras = service_of(world, RAS)
    triager = Actor(client, session, SPC, ras.ods)
    created = referrer.post("/ReferralRequest/$ers.createReferralAndSendForTriage",
                            create_body(people[0].nhs_number, ras.id,
                                        profile="eRS-CreateReferralAndSendForTriage-Parameters-1")).get_json()
    upload = client.post(f"{BASE}/Binary", data=b"Advice for the GP", headers={
        **triager.headers(), "Content-Type": "text/plain", "NHSD-eRS-File-Name": "advice.txt",
        "NHSD-eRS-Referral-ID": created["id"]})
    assert upload.status_code == 201, upload.get_data(as_text=True)
    document = {"resourceType": "DocumentReference", "status": "current", "indexed": "2026-01-01T00:00:00Z",
                "type": {"coding": [coding(CS + "eRS-AttachmentType-1", "PROVIDER")]},
                "content": [{"attachment": {"url": upload.headers["Location"]}}]}
    outcome = {"resourceType": "Parameters", "parameter": [
        {"name": "reviewOutcome", "valueCoding": coding(CS + "eRS-ReviewOutcome-1", "RETURN_TO_REFERRER_WITH_ADVICE")},
        {"name": "reviewComments", "valueString": "See the attached advice"},
        {"name": "reviewAttachmentFile", "resource": document}]}
    response = triager.post(f"/ReferralRequest/{created['id']}/$ers.recordReviewOutcome", outcome, version=1)
    assert response.status_code == 200, response.get_data(as_text=True)
    referral = response.get_json()
    documents = [c for c in referral["contained"] if c["resourceType"] == "DocumentReference"]
    assert [d["content"][0]["attachment"]["title"] for d in documents] == ["advice.txt"]
    assert referral["supportingInfo"] == [{"reference": f"#{documents[0]['id']}"}]
