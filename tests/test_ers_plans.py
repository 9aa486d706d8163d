"""Certifying e-RS systems against the plans `ers-referrer` and `ers-provider`, as an assessor would: a session bound
to the plan, well-behaved clients walking every step over HTTP (a referring GP system and a providing hospital
system: different business functions, organisations and users, one session), then the verdict: incomplete until the
manual requirements are attested, then pass. A badly behaved client fails with the requirement named, and the CLI's
`spine-sandbox run` runs a plan against a real server.

The clients below are written as a supplier would write them (no sandbox internals): they learn services from the
service search (A010), users from A040, versions from ETags, and handle each forced fault as the specification says.
They run over the Flask test client or, for `spine-sandbox run`, over HTTP with `requests` (`python -m
tests.test_ers_plans referrer|provider <patient> <practice>`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, TEST_POPULATION
from tests.plan_helpers import assert_certified, attest_all, failed

STU3, R4 = "/FHIR/STU3", "/FHIR/R4"
RC, RCA = "REFERRING_CLINICIAN", "REFERRING_CLINICIAN_ADMIN"
SPC, SPCA = "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_CLINICIAN_ADMIN"
CS = "https://fhir.nhs.uk/STU3/CodeSystem/"
PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
NHS_NUMBER = "http://fhir.nhs.net/Id/nhs-number"
ERS_SERVICE = "http://fhir.nhs.net/Id/ers-service"
SCENARIO = "X-Sandbox-Scenario"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% referral letter\n%%EOF\n"


# ---- HTTP, over the Flask test client or requests -----------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def version(self) -> int:
        return int(self.header("ETag").removeprefix('W/"').rstrip('"'))

    @property
    def error(self) -> str:
        return self.json()["issue"][0]["details"]["coding"][0]["code"]


class Http:
    """`/referrals` and below, through the Flask test client (in process) or `requests` (a real server)."""

    def __init__(self, client=None, base_url: str | None = None):
        self.client, self.base_url = client, base_url
        if client is None:
            import requests

            self.requests = requests.Session()

    def send(self, method: str, path: str, headers: dict[str, str], json_body=None, data: bytes | None = None,
             params: dict | None = None) -> Reply:
        if self.client is not None:
            answer = self.client.open("/referrals" + path, method=method, headers=headers, json=json_body, data=data,
                                      query_string=params)
            return Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.get_data())
        answer = self.requests.request(method, self.base_url + path, headers=headers, json=json_body, data=data,
                                       params=params, allow_redirects=False, timeout=60)
        return Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.content)


class Unrecoverable(Exception):
    """A refusal the client tells its user about rather than retrying (PATIENT_ERROR, a PAS error)."""

    def __init__(self, reply: Reply):
        super().__init__(f"{reply.status} {reply.body[:200]!r}")
        self.reply = reply


# ---- one user of a supplier's system --------------------------------------------------------------------------------
@dataclass
class Actor:
    """One e-RS user of a system: a business function at an organisation, authenticated with the session's token
    (which stands in for an NHS CIS2 access token of the plan's access mode)."""

    http: Http
    token: str
    business_function: str
    ods: str
    on_behalf_of: str | None = None
    versions: dict[str, int] = field(default_factory=dict)  # resource path -> the latest version seen
    log: list[str] = field(default_factory=list)  # what the system told its user

    def headers(self, extra: dict | None = None) -> dict[str, str]:
        sent = {"Authorization": f"Bearer {self.token}", "NHSD-eRS-Business-Function": self.business_function,
                "NHSD-End-User-Organisation-ODS": self.ods, "X-Correlation-ID": str(uuid.uuid4()),
                "Accept": "application/fhir+json"}
        if self.on_behalf_of:
            sent["NHSD-eRS-On-Behalf-Of-User-ID"] = self.on_behalf_of
        sent.update(extra or {})
        return sent

    def reauthenticate(self) -> None:
        """A new access token from the identity service; in the sandbox the session token stands in for it."""
        self.log.append("re-authenticated")

    def call(self, method: str, path: str, body=None, *, data: bytes | None = None, headers: dict | None = None,
             params: dict | None = None, fault: str | None = None, reread: str | None = None) -> Reply:
        """One request as a careful client sends it: it backs off exponentially after a 429, waits Retry-After after
        a 503, re-authenticates after a 401, and after a 423 reads the resource again (`reread`) and retries with its
        version. `fault` forces a scenario on the first attempt only (the retries are ordinary requests)."""
        backoff = 1.0
        for _ in range(5):
            extra = dict(headers or {})
            if reread and reread in self.versions and "If-Match" in extra:
                extra["If-Match"] = f'W/"{self.versions[reread]}"'
            if fault:
                extra[SCENARIO] = fault
                fault = None
            if body is not None:
                extra.setdefault("Content-Type", "application/fhir+json")
            reply = self.http.send(method, path, self.headers(extra), json_body=body, data=data, params=params)
            if reply.status == 429:
                self.log.append(f"throttled: waiting {backoff:g} s")
                time.sleep(backoff)
                backoff *= 2
            elif reply.status == 503:
                wait = float(reply.header("Retry-After") or "1")
                self.log.append(f"unavailable: retrying after {wait:g} s")
                time.sleep(wait)
            elif reply.status == 401:
                self.reauthenticate()
            elif reply.status == 423 and reread:
                self.log.append("locked: reading again before retrying")
                self.read(reread)
            else:
                self.remember(path, reply)
                return reply
        raise AssertionError(f"{method} {path} still failing after 5 attempts: {reply.status}")

    def remember(self, path: str, reply: Reply) -> None:
        """The version an answer tells: reads and changes of a referral, advice request or appointment."""
        if reply.status >= 300 or not reply.header("ETag") or "/_history/" in path:
            return
        resource = reply.json() if reply.body.startswith(b"{") else {}
        if resource.get("resourceType") in ("ReferralRequest", "CommunicationRequest", "Appointment"):
            self.versions[f"{resource['resourceType']}/{resource['id']}"] = reply.version

    def read(self, resource: str, fault: str | None = None) -> dict:
        reply = self.call("GET", f"{STU3}/{resource}", fault=fault)
        assert reply.status == 200, reply.body
        return reply.json()

    def change(self, resource: str, operation: str, body=None, fault: str | None = None) -> Reply:
        """A change to a referral or advice request: with If-Match of the version this user last read."""
        if resource not in self.versions:
            self.read(resource)
        return self.call("POST", f"{STU3}/{resource}/$ers.{operation}", body, fault=fault, reread=resource,
                         headers={"If-Match": f'W/"{self.versions[resource]}"'})


# ---- request bodies, as the specification's request profiles define them -----------------------------------------------
def coding(system: str, code: str) -> dict:
    return {"system": system, "code": code}


def parameters(profile: str | None, *items: dict) -> dict:
    body: dict = {"resourceType": "Parameters", "parameter": list(items)}
    if profile:
        body["meta"] = {"profile": [PROFILE + profile]}
    return body


def patient_param(nhs_number: str) -> dict:
    return {"name": "patient", "valueIdentifier": {"system": NHS_NUMBER, "value": nhs_number}}


def shortlist(*service_ids: str) -> dict:
    return {"name": "shortlist", "resource": {
        "resourceType": "List", "meta": {"profile": [PROFILE + "eRS-Shortlist-List-1"]}, "status": "current",
        "mode": "snapshot",
        "contained": [{"resourceType": "Parameters", "id": "ServiceSearchCriteria-1", "meta": {"profile": [
            PROFILE + "eRS-ServiceSearchCriteria-Parameters-1"]}, "parameter": [
            {"name": "priority", "valueCoding": coding(CS + "eRS-Priority-1", "ROUTINE")},
            {"name": "ageAndGenderAppropriate", "valueBoolean": True}]}],
        "extension": [{"url": PROFILE + "Extension-eRS-Shortlist-SearchCriteria-1",
                       "valueReference": {"reference": "#ServiceSearchCriteria-1"}}],
        "entry": [{"item": {"identifier": {"system": ERS_SERVICE, "value": s}}} for s in service_ids]}}


def letter_intention() -> dict:
    return {"name": "intentionToAddReferralLetter",
            "valueCoding": coding(CS + "eRS-ReferralLetterIntention-1", "NEED_TO_ADD_LATER")}


def reminder() -> dict:
    return {"name": "firstReminderLetterFollowUpDays", "valueUnsignedInt": 7}


def search_body(nhs_number: str, request_type: str = "APPOINTMENT_REQUEST", specialty: str = "CARDIOLOGY") -> dict:
    return parameters("eRS-PatientServiceSearch-Parameters-1",
                      {"name": "requestType", "valueCoding": coding(CS + "eRS-RequestType-1", request_type)},
                      {"name": "sortBy", "valueCoding": coding(CS + "eRS-SortBy-1", "DISTANCE")},
                      patient_param(nhs_number),
                      {"name": "searchCriteria", "resource": {
                          "resourceType": "Parameters", "id": "ServiceSearchCriteria-1", "meta": {"profile": [
                              PROFILE + "eRS-ServiceSearchCriteria-Parameters-1"]}, "parameter": [
                              {"name": "priority", "valueCoding": coding(CS + "eRS-Priority-1", "ROUTINE")},
                              {"name": "ageAndGenderAppropriate", "valueBoolean": True},
                              {"name": "specialty", "valueCoding": coding("_baseUrl_/STU3/CodeSystem/SPECIALTY",
                                                                          specialty)}]}})


def appointment(ubrn: str, version: int, service_id: str, nhs_number: str, slot: str | None = None,
                reason: str | None = None) -> dict:
    body = {"id": "appointment", "meta": {"profile": [PROFILE + "eRS-Appointment-1"]}, "language": "en",
            "resourceType": "Appointment", "status": "booked" if slot else "proposed",
            "description": "e-Referral Appointment",
            "incomingReferral": [{"reference": f"ReferralRequest/{ubrn}/_history/{version}"}],
            "participant": [
                {"actor": {"identifier": {"system": ERS_SERVICE, "value": service_id}}, "status": "accepted"},
                {"actor": {"identifier": {"system": NHS_NUMBER, "value": nhs_number}}, "status": "accepted"}]}
    if slot:
        body["slot"] = [{"reference": f"Slot/{slot}"}]
    if reason:
        body["reason"] = [{"coding": [coding(CS + "eRS-ReviewReason-1", reason)]}]
        body["comment"] = "The provider's system did not confirm the booking"
    return body


def document(location: str, kind: str) -> dict:
    return {"resourceType": "DocumentReference", "meta": {"profile": [PROFILE + "eRS-DocumentReference-1"]},
            "status": "current", "indexed": "2026-12-04T10:00:00.000000+00:00",
            "type": {"coding": [coding(CS + "eRS-AttachmentType-1", kind)]},
            "content": [{"attachment": {"url": location}}]}


# ---- the referring system ---------------------------------------------------------------------------------------------
@dataclass
class Services:
    bookable: str  # directly bookable
    indirect: str
    triage: str
    advice: str
    providers: dict[str, str]  # service id -> provider ODS


class Referrer:
    """A GP practice's system: a referring clinician searching, referring, booking and asking for advice."""

    def __init__(self, actor: Actor, patient: str):
        self.actor, self.patient = actor, patient

    def search(self, request_type: str = "APPOINTMENT_REQUEST", fault: str | None = None) -> list[dict]:
        reply = self.actor.call("POST", f"{STU3}/HealthcareService/$ers.searchHealthcareServicesForPatient",
                                search_body(self.patient, request_type), fault=fault)
        if reply.status == 422:
            raise Unrecoverable(reply)
        assert reply.status == 200, reply.body
        found = []
        for entry in reply.json()["entry"]:
            summary = {e["url"]: e for e in entry["item"]["extension"][0]["extension"]}
            code = {name: summary[name]["valueCodeableConcept"]["coding"][0]["code"]
                    for name in ("bookableType", "supportedRequestFlowType")}
            kind = code["supportedRequestFlowType"]  # triage and advice services by their request flow
            found.append({"id": entry["item"]["identifier"]["value"],
                          "type": code["bookableType"] if kind == "APPOINTMENT_REQUEST" else kind,
                          "provider": summary["location"]["valueReference"]["identifier"]["value"]})
        return found

    def services(self) -> Services:
        found = self.search() + self.search("ADVICE_AND_GUIDANCE_REQUEST")
        first: dict[str, str] = {}
        for service in found:
            first.setdefault(service["type"], service["id"])
        return Services(first["DIRECTLY_BOOKABLE"], first["INDIRECTLY_BOOKABLE"], first["TRIAGE_REQUEST"],
                        first["ADVICE_AND_GUIDANCE_REQUEST"], {s["id"]: s["provider"] for s in found})

    def create(self, *service_ids: str, fault: str | None = None) -> str:
        body = parameters("eRS-CreateReferral-Parameters-1", patient_param(self.patient), shortlist(*service_ids),
                          letter_intention(), reminder())
        reply = self.actor.call("POST", f"{STU3}/ReferralRequest/$ers.createReferral", body, fault=fault)
        if reply.status == 422:
            raise Unrecoverable(reply)
        assert reply.status == 201, reply.body
        return reply.json()["id"]

    def create_for_triage(self, service_id: str) -> str:
        body = parameters("eRS-CreateReferralAndSendForTriage-Parameters-1", patient_param(self.patient),
                          shortlist(service_id), letter_intention(), reminder())
        reply = self.actor.call("POST", f"{STU3}/ReferralRequest/$ers.createReferralAndSendForTriage", body)
        assert reply.status == 201, reply.body
        return reply.json()["id"]

    def upload(self, name: str, ubrn: str | None) -> str:
        headers = {"Content-Type": "application/pdf", "NHSD-eRS-File-Name": name}
        if ubrn:
            headers["NHSD-eRS-Referral-ID"] = ubrn
        reply = self.actor.call("POST", f"{STU3}/Binary", data=PDF, headers=headers)
        assert reply.status == 201, reply.body
        return reply.header("Location")

    def attach_letter(self, ubrn: str) -> None:
        location = self.upload(f"letter-{ubrn}.pdf", ubrn)
        body = parameters("eRS-MaintainReferralLetter-Parameters-1",
                          {"name": "referralLetterFile", "resource": document(location, "REFERRER")})
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "maintainReferralLetter", body)
        assert reply.status == 200, reply.body

    def free_slots(self, service_id: str, fault: str | None = None) -> list[str]:
        reply = self.actor.call("GET", f"{STU3}/Slot", fault=fault, headers={
            "NHSD-eRS-Comm-Rule-Org": self.actor.ods}, params={
            "schedule.actor:HealthcareService": service_id, "status": "free", "appointmentType": "ROUTINE",
            "_count": "5", "page": "1"})
        assert reply.status == 200, reply.body
        return [e["resource"]["id"] for e in reply.json()["entry"] if e["resource"]["resourceType"] == "Slot"]

    def book(self, ubrn: str, service_id: str, fault: str | None = None, tried: tuple[str, ...] = ()) -> Reply:
        """Book the first free slot not tried yet: a taken slot means fetching the slots again and offering another;
        a PAS that does not answer means checking the referral and deferring the booking to the provider."""
        slot = next(s for s in self.free_slots(service_id) if s not in tried)
        resource = f"ReferralRequest/{ubrn}"
        referral = self.actor.read(resource)
        reply = self.actor.call("POST", f"{STU3}/Appointment", fault=fault, body=appointment(
            ubrn, int(referral["meta"]["versionId"]), service_id, self.patient, slot=slot))
        if reply.status == 422 and reply.error == "SLOT_NOT_AVAILABLE":
            self.actor.log.append(f"slot {slot} was taken: offering another")
            return self.book(ubrn, service_id, tried=(*tried, slot))
        if reply.status == 502:
            self.actor.log.append(f"the provider's system refused slot {slot}: offering another")
            return self.book(ubrn, service_id, tried=(*tried, slot))
        if reply.status == 504:
            self.actor.log.append("the provider's system did not answer: checking the referral")
            return self.defer(ubrn, service_id, "BOOKING_ATTEMPT_PROBLEM")
        assert reply.status == 201, reply.body
        return reply

    def defer(self, ubrn: str, service_id: str, reason: str) -> Reply:
        referral = self.actor.read(f"ReferralRequest/{ubrn}")
        assert _state(referral) == "NOT_BOOKED", referral
        reply = self.actor.call("POST", f"{STU3}/Appointment", appointment(
            ubrn, int(referral["meta"]["versionId"]), service_id, self.patient, reason=reason))
        assert reply.status == 201, reply.body
        return reply

    def change_shortlist(self, ubrn: str, *service_ids: str, triage: bool = False) -> None:
        if triage:
            body = parameters("eRS-ChangeShortlistAndSendForTriage-Request-Parameters-1", shortlist(*service_ids),
                              letter_intention(), reminder())
        else:
            body = parameters("eRS-ChangeShortlist-Parameters-1", shortlist(*service_ids), letter_intention(),
                              reminder())
        operation = "changeShortlistAndSendForTriage" if triage else "changeShortlist"
        reply = self.actor.change(f"ReferralRequest/{ubrn}", operation, body)
        assert reply.status == 200, reply.body

    def ask_advice(self, service_id: str, authorised: bool) -> str:
        location = self.upload("history.pdf", None)
        body = parameters(
            "eRS-CreateAdviceAndGuidance-Request-Parameters-1", patient_param(self.patient),
            {"name": "providerConversionAuthorisation", "valueCoding": coding(
                CS + "eRS-ProviderConversionAuthorisation-1",
                "AUTHORISED_TO_CONVERT" if authorised else "NOT_AUTHORISED_TO_CONVERT")},
            {"name": "shortlist", "resource": {
                "resourceType": "List", "meta": {"profile": [PROFILE + "eRS-Shortlist-List-1"]},
                "status": "current", "mode": "snapshot",
                "entry": [{"item": {"identifier": {"system": ERS_SERVICE, "value": service_id}}}]}},
            {"name": "request", "valueString": "Raised LDL despite statins: please advise on next steps."},
            {"name": "requestAttachmentFile", "resource": document(location, "ADVICE_REQUEST")})
        reply = self.actor.call("POST", f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance", body)
        assert reply.status == 200, reply.body
        created = {p["name"]: p["resource"] for p in reply.json()["parameter"]}
        return created["createdCommunicationRequest"]["id"]

    def cancel(self, ubrn: str, fault: str | None = None) -> None:
        body = parameters("eRS-CancelReferral-Request-Parameters-1", {
            "name": "cancellationReason",
            "valueCoding": coding("_baseurl_/STU3/CodeSystem/REFERRAL-CANCELLATION-REASON", "RAISED_IN_ERROR")})
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "cancelReferral", body, fault=fault)
        assert reply.status == 200, reply.body


def _state(referral: dict) -> str:
    ext = next(e for e in referral["extension"] if e["url"].endswith("Extension-eRS-ReferralState-1"))
    return next(e["valueCoding"]["code"] for e in ext["extension"] if e["url"] == "state")


def walk_referrer(http: Http, token: str, patient: str, practice: str) -> dict:
    """Every step of `ers-referrer`, as a well-behaved GP system does it. Returns what the provider needs."""
    referrer = Referrer(Actor(http, token, RC, practice), patient)
    services = referrer.services()  # A010: services for the patient, with their types and providers
    # A referral, its letter uploaded and attached, then booked: the first slot is taken meanwhile (422), the
    # provider's PAS refuses the next (502); a third is booked.
    booked = referrer.create(services.bookable)
    referrer.attach_letter(booked)
    referrer.free_slots(services.bookable, fault="ers-rate-limited")  # 429: backs off, then the slots
    referrer.book(booked, services.bookable, fault="ers-slot-no-longer-available")
    second = referrer.create(services.bookable)
    referrer.book(second, services.bookable, fault="ers-pas-error")
    # The PAS does not answer: the referral is read and the booking deferred to the provider.
    deferred = referrer.create(services.bookable)
    referrer.book(deferred, services.bookable, fault="ers-pas-not-responding")
    # A referral whose shortlist changes, then goes for triage; another created straight for triage.
    changing = referrer.create(services.bookable)
    referrer.change_shortlist(changing, services.bookable, services.indirect)
    referrer.change_shortlist(changing, services.triage, triage=True)
    triaged = referrer.create_for_triage(services.triage)
    # Advice and guidance, one the provider may convert into a referral and one it answers.
    to_convert = referrer.ask_advice(services.advice, authorised=True)
    to_answer = referrer.ask_advice(services.advice, authorised=False)
    # A referral raised in error, cancelled: the first attempt meets a lock (423), the retry reads again first.
    mistaken = referrer.create(services.indirect)
    referrer.cancel(mistaken, fault="ers-resource-locked")
    referrer.actor.read(f"ReferralRequest/{mistaken}", fault="ers-service-unavailable")  # 503, then read
    referrer.actor.call("GET", f"{STU3}/ReferralRequest/{booked}", fault="ers-token-expired")  # 401, then read
    # Two more booked referrals for the provider: one to reject, one whose appointment it cancels.
    rejected = referrer.create(services.indirect)
    referrer.book(rejected, services.indirect)
    later = referrer.create(services.bookable)
    referrer.book(later, services.bookable)
    try:  # e-RS cannot retrieve the patient: the user is told, and the request is not sent again
        referrer.create(services.triage, fault="ers-patient-error")
    except Unrecoverable as refused:
        assert refused.reply.error == "PATIENT_ERROR"
        referrer.actor.log.append("the patient cannot be referred: told the user, not retried")
    return {"services": services, "booked": booked, "second": second, "deferred": deferred, "triaged": triaged,
            "changed_for_triage": changing, "to_convert": to_convert, "to_answer": to_answer, "rejected": rejected,
            "later": later, "log": referrer.actor.log}


# ---- the providing system -----------------------------------------------------------------------------------------------
class Provider:
    """A hospital's system: clinicians (and their admins, on their behalf) working the worklists."""

    def __init__(self, actor: Actor):
        self.actor = actor

    def worklist(self, list_type: str, fault: str | None = None) -> list[str]:
        body = parameters("eRS-FetchWorklist-Parameters-1", {
            "name": "listType", "valueCodeableConcept": {"coding": [coding(CS + "eRS-ReferralListSelector-1",
                                                                           list_type)]}})
        reply = self.actor.call("POST", f"{STU3}/ReferralRequest/$ers.fetchworklist", body, fault=fault)
        assert reply.status == 200, reply.body
        return [e["item"]["reference"].split("/")[1] for e in reply.json().get("entry", [])]

    def advice_worklist(self, fault: str | None = None) -> list[str]:
        body = parameters("eRS-FetchWorklist-Parameters-1", {
            "name": "listType", "valueCodeableConcept": {"coding": [coding(CS + "eRS-CommunicationListSelector-1",
                                                                           "ADVICE_AND_GUIDANCE_REQUESTS")]}})
        reply = self.actor.call("POST", f"{STU3}/CommunicationRequest/$ers.fetchworklist", body, fault=fault)
        assert reply.status == 200, reply.body
        return [e["item"]["reference"].split("/")[-1] for e in reply.json().get("entry", [])]

    def attachments(self, ubrn: str, fault: str | None = None) -> list[bytes]:
        referral = self.actor.read(f"ReferralRequest/{ubrn}", fault=fault)
        files = []
        for item in referral.get("contained", []):
            if item.get("resourceType") == "DocumentReference":
                reply = self.actor.call("GET", f"{STU3}/{item['content'][0]['attachment']['url']}")
                assert reply.status == 200, reply.body
                files.append(reply.body)
        return files

    def accept(self, ubrn: str, fault: str | None = None) -> None:
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "acceptReferral", fault=fault)
        assert reply.status == 200, reply.body

    def reject(self, ubrn: str) -> None:
        body = parameters("eRS-RejectReferral-Parameters-1", {
            "name": "rejectionReason",
            "valueCoding": coding("_baseurl_/STU3/CodeSystem/APPOINTMENT-CANCELLATION-REASON", "SERVICE_INAPPROPRIATE")},
            {"name": "rejectionComments", "valueString": "Please refer to the lipid clinic instead."})
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "rejectReferral", body)
        assert reply.status == 200, reply.body

    def triage(self, ubrn: str) -> None:
        body = parameters("eRS-RecordReviewOutcome-Parameters-1", {
            "name": "reviewOutcome", "valueCoding": coding(CS + "eRS-ReviewOutcome-1", "RETURN_TO_REFERRER_WITH_ADVICE")},
            {"name": "reviewComments", "valueString": "Manage in primary care: advice in the comments."})
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "recordReviewOutcome", body)
        assert reply.status == 200, reply.body

    def cancel_appointment_action_later(self, ubrn: str) -> None:
        body = parameters("eRS-cancelAppointmentActionLater-Parameters-1",
                          {"name": "comments", "valueString": "Clinic cancelled: we will rebook."})
        reply = self.actor.change(f"ReferralRequest/{ubrn}", "cancelAppointmentActionLater", body)
        assert reply.status == 200, reply.body

    def read_advice(self, ubrn: str) -> int:
        self.actor.read(f"CommunicationRequest/{ubrn}")
        version = self.actor.versions[f"CommunicationRequest/{ubrn}"]
        reply = self.actor.call("GET", f"{STU3}/Communication",
                                params={"based-on": f"CommunicationRequest/{ubrn}/_history/{version}"})
        assert reply.status == 200, reply.body
        return version

    def answer_advice(self, ubrn: str) -> None:
        self.read_advice(ubrn)
        body = parameters("eRS-SendCommunicationToRequester-Request-Parameters-1", {"name": "guidanceOutcome", "valueCoding": coding(
            CS + "eRS-GuidanceResponseOutcome-1", "RETURN_TO_REFERRER_WITH_ADVICE")},
            {"name": "guidanceIntendedRecommendation", "valueCoding": coding(
                CS + "eRS-GuidanceIntendedRecommendation-1", "ADVICE_ONLY_NO_REFERRAL_RECOMMENDED")},
            {"name": "guidance", "valueString": "Add ezetimibe; recheck lipids in 3 months."},
            {"name": "updatedPriority", "valueCoding": coding(CS + "eRS-Priority-1", "ROUTINE")})
        reply = self.actor.change(f"CommunicationRequest/{ubrn}", "sendCommunicationToRequester", body)
        assert reply.status == 200, reply.body

    def convert_advice(self, ubrn: str) -> str:
        version = self.read_advice(ubrn)
        body = parameters("eRS-CreateFromCommunicationRequestActionLater-Request-Parameters-1", {"name": "createFrom", "valueReference": {
            "reference": f"CommunicationRequest/{ubrn}/_history/{version}"}},
            {"name": "guidance", "valueString": "Referring the patient to our lipid clinic."},
            {"name": "newReferralPriority", "valueCoding": coding(CS + "eRS-Priority-1", "ROUTINE")},
            {"name": "reviewComments", "valueString": "Admin: please book the first free slot."})
        reply = self.actor.call("POST", f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater",
                                body)
        assert reply.status == 201, reply.body
        return reply.json()["id"]


def on_behalf_of(http: Http, token: str, ods: str) -> str:
    """The clinician an SPCA acts for, as A040 lists them."""
    admin = Actor(http, token, SPCA, ods)
    reply = admin.call("GET", f"{R4}/Practitioner", params={"_query": "onBehalfOf"})
    assert reply.status == 200, reply.body
    return reply.json()["entry"][0]["resource"]["id"]


def walk_provider(http: Http, token: str, made: dict) -> dict:
    """Every step of `ers-provider`, as well-behaved hospital systems do it, on what the referrer made."""
    services: Services = made["services"]
    clinic = Provider(Actor(http, token, SPC, services.providers[services.bookable]))
    for_review = clinic.worklist("REFERRALS_FOR_REVIEW", fault="ers-rate-limited")  # 429, backs off, then the list
    assert made["booked"] in for_review and made["later"] in for_review
    letters = clinic.attachments(made["booked"], fault="ers-service-unavailable")  # 503, Retry-After, then read
    assert letters == [PDF]
    clinic.accept(made["booked"], fault="ers-resource-locked")  # 423: reads again, then accepts
    clinic.cancel_appointment_action_later(made["later"])
    assert made["deferred"] in clinic.worklist("APPOINTMENT_SLOT_ISSUES", fault="ers-token-expired")
    # The indirectly bookable service's admin rejects on behalf of a clinician (A040 names them).
    outpatients = services.providers[services.indirect]
    admin = Provider(Actor(http, token, SPCA, outpatients, on_behalf_of(http, token, outpatients)))
    admin.reject(made["rejected"])
    triage = Provider(Actor(http, token, SPC, services.providers[services.triage]))
    waiting = triage.worklist("REFERRALS_FOR_REVIEW")
    assert made["triaged"] in waiting and made["changed_for_triage"] in waiting
    triage.actor.read(f"ReferralRequest/{made['triaged']}")
    triage.triage(made["triaged"])
    advice = Provider(Actor(http, token, SPC, services.providers[services.advice]))
    requests_ = advice.advice_worklist()
    assert {made["to_convert"], made["to_answer"]} <= set(requests_)
    advice.answer_advice(made["to_answer"])
    converted = advice.convert_advice(made["to_convert"])
    return {"converted": converted, "log": clinic.actor.log + admin.actor.log}


# ---- the tests -------------------------------------------------------------------------------------------------------
def new_session(client, plan: str) -> tuple[str, str]:
    made = client.post("/_sandbox/sessions", json={"plan": plan, "supplier": "Acme Health", "system": "Acme 4.2"})
    assert made.status_code == 201, made.get_data(as_text=True)
    return made.get_json()["session"], made.get_json()["token"]


def people(app) -> tuple[str, str]:
    """A patient of the population and a referring practice of the e-RS world (as a supplier's configuration)."""
    from sandbox.services.ers.world import current_world

    with app.app_context():
        practice = current_world().practices[0].ods
    return next(app.extensions["sandbox"].population.of_kind("standard")).nhs_number, practice


@pytest.mark.parametrize("plan", ["ers-referrer", "ers-provider"])
def test_a_well_behaved_system_is_certified_against_the_plan(client, app, plan):
    session, token = new_session(client, plan)
    patient, practice = people(app)
    http = Http(client)
    made = walk_referrer(http, token, patient, practice)
    assert "slot" in " ".join(made["log"]) and "re-authenticated" in made["log"]
    if plan == "ers-provider":
        walk_provider(http, token, made)

    assert_certified(client, session)


def test_a_referrer_that_ignores_versions_fails_naming_the_requirement(client, app):
    """Changes sent without If-Match, and with a version older than the one read, fail the plan."""
    session, token = new_session(client, "ers-referrer")
    patient, practice = people(app)
    http = Http(client)
    made = walk_referrer(http, token, patient, practice)
    careless = Actor(http, token, RC, practice)
    referral = Referrer(careless, patient).create(made["services"].bookable)
    body = parameters("eRS-ChangeShortlist-Parameters-1", shortlist(made["services"].indirect), letter_intention(),
                      reminder())
    unversioned = careless.call("POST", f"{STU3}/ReferralRequest/{referral}/$ers.changeShortlist", body)
    assert unversioned.status == 412
    careless.read(f"ReferralRequest/{referral}")
    stale = careless.call("POST", f"{STU3}/ReferralRequest/{referral}/$ers.changeShortlist", body,
                          headers={"If-Match": 'W/"0"'})
    assert stale.status == 409
    progress = attest_all(client, session)
    assert progress["verdict"] == "fail"
    assert {"ERS-HDR-004", "ERS-VER-001"} <= set(failed(progress)), failed(progress)
    assert any("ERS-HDR-004" in reason for reason in progress["reasons"])


def test_a_provider_admin_without_the_clinician_it_acts_for_fails_naming_the_requirement(client, app):
    """An SPCA that does not name the clinician it acts for is refused (403, the published sentence), and the
    provider plan fails on ERS-BF-002."""
    session, token = new_session(client, "ers-provider")
    patient, practice = people(app)
    http = Http(client)
    made = walk_referrer(http, token, patient, practice)
    walk_provider(http, token, made)
    services = made["services"]
    clinic = services.providers[services.bookable]
    version = Actor(http, token, SPC, clinic).read(f"ReferralRequest/{made['later']}")["meta"]["versionId"]
    careless = Actor(http, token, SPCA, clinic)  # no on-behalf-of user
    refused = careless.call("POST", f"{STU3}/ReferralRequest/{made['later']}/$ers.acceptReferral",
                            headers={"If-Match": f'W/"{version}"'})
    assert refused.status == 403 and b"On-Behalf-Of User ID must be provided" in refused.body
    progress = attest_all(client, session)
    assert progress["verdict"] == "fail" and failed(progress) == ["ERS-BF-002"], progress["reasons"]


def test_a_fault_is_in_the_services_own_error_shape(client, app):
    session, token = new_session(client, "ers-referrer")
    http = Http(client)
    actor = Actor(http, token, RC, people(app)[1])
    cases = [("ers-rate-limited", STU3, 429, "TOO_MANY_REQUESTS", CS + "eRS-APIErrorCode-1", None),
             ("ers-service-unavailable", STU3, 503, "SYSTEM_UNAVAILABLE", CS + "eRS-APIErrorCode-1", "1"),
             ("ers-token-expired", STU3, 401, "NO_ACCESS", CS + "eRS-APIErrorCode-1", None),
             ("ers-rate-limited-r4", R4, 429, "TOO_MANY_REQUESTS",
              "https://fhir.nhs.uk/CodeSystem/NHSD-API-ErrorOrWarningCode", None),
             ("ers-service-unavailable-r4", R4, 503, "REC_UNAVAILABLE", "https://fhir.nhs.uk/CodeSystem/http-error-codes",
              "1"),
             ("ers-token-expired-r4", R4, 401, "ACCESS_DENIED",
              "https://fhir.nhs.uk/CodeSystem/NHSD-API-ErrorOrWarningCode", None)]
    for scenario, version, status, code, system, retry_after in cases:
        path = f"{version}/ReferralRequest/000000070000" if version == STU3 else f"{R4}/HealthcareService/1"
        reply = http.send("GET", path, actor.headers({SCENARIO: scenario}))
        assert reply.status == status, (scenario, reply.body)
        coding_ = reply.json()["issue"][0]["details"]["coding"][0]
        assert (coding_["code"], coding_["system"]) == (code, system), scenario
        assert reply.header("Retry-After") == retry_after and reply.header(SCENARIO) == scenario
        assert reply.header("Content-Type") == "application/fhir+json"
    for scenario, status, code in (("ers-pas-not-responding", 504, "PAS_NOT_RESPONDING"),
                                   ("ers-pas-error", 502, "PAS_RESPONDED_WITH_ERROR"),
                                   ("ers-slot-no-longer-available", 422, "SLOT_NOT_AVAILABLE")):
        reply = http.send("POST", f"{STU3}/Appointment", actor.headers({SCENARIO: scenario,
                                                                          "Content-Type": "application/fhir+json"}),
                          json_body=appointment("000000070000", 6, "11021", "9912003888", slot="11002026"))
        assert (reply.status, reply.error) == (status, code), scenario
        assert reply.json()["meta"]["profile"] == [PROFILE + "eRS-OperationOutcome-1"]
    locked = http.send("POST", f"{STU3}/ReferralRequest/000000070000/$ers.acceptReferral",
                       Actor(http, token, SPC, "R69").headers({SCENARIO: "ers-resource-locked", "If-Match": 'W/"5"'}))
    assert locked.status == 423 and locked.body == b""
    wrong = http.send("GET", f"{STU3}/ReferralRequest/000000070000", actor.headers({SCENARIO: "ers-pas-error"}))
    assert wrong.status == 400 and b"ers-pas-error" in wrong.body


def test_workflow_steps_are_exercised_only_by_the_sessions_own_work(client, app):
    """Replaying a published example is answered from the published sandbox and exercises no plan step."""
    session, token = new_session(client, "ers-referrer")
    http = Http(client)
    actor = Actor(http, token, RC, people(app)[1])
    published = http.send("GET", f"{STU3}/ReferralRequest/000000070000", actor.headers())
    assert published.status == 200 and published.header(SCENARIO) is None
    patient, practice = people(app)
    referrer = Referrer(Actor(http, token, RC, practice), patient)
    ubrn = referrer.create(referrer.services().bookable)
    read = http.send("GET", f"{STU3}/ReferralRequest/{ubrn}", actor.headers({"NHSD-End-User-Organisation-ODS":
                                                                               practice}))
    assert read.status == 200 and read.header(SCENARIO) == "ers-read-referral"
    # A published case is tagged as one when the published example answers it.
    unavailable = http.send("GET", f"{STU3}/ReferralRequest/000000070012", actor.headers())
    assert unavailable.status == 200 and unavailable.header(SCENARIO) == "ers-published-referral-unavailable-attachments"


@pytest.mark.slow
@pytest.mark.parametrize("role", ["referrer", "provider"])
def test_spine_sandbox_run_runs_a_plan_against_a_real_server(tmp_path, app, role):
    """`spine-sandbox run --plan ers-<role> -- <the system's tests>`: every step runs over HTTP (requests, keep-alive
    connections); the verdict waits only for the assessor's attestations (exit 4)."""
    patient, practice = people(app)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "run", "--plan", f"ers-{role}", "--data-dir", str(tmp_path / "data"),
         "--population", str(TEST_POPULATION), "--report-dir", str(tmp_path / "ci"), "--supplier", "Acme",
         "--system", "Acme 4.2", "--", sys.executable, "-m", "tests.test_ers_plans", role, patient, practice],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    report = json.loads((tmp_path / "ci" / "report.json").read_text())
    assert len(report["verdict_reasons"]) == 1 and report["verdict_reasons"][0].startswith("awaiting attestation: ")
    assert all(step["exercised"] for step in report["steps"])


def main(argv: list[str]) -> int:
    """The referring (or providing) system's own test run, as `spine-sandbox run` starts it."""
    role, patient, practice = argv
    http = Http(base_url=os.environ["ERS_BASE_URL"])
    token = os.environ["SPINE_SANDBOX_SESSION_TOKEN"]
    made = walk_referrer(http, token, patient, practice)
    if role == "provider":
        walk_provider(http, token, made)
    print("\n".join(made["log"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---- the service page's examples (docs/services/ers.md), run as written ------------------------------------------------
DOC = ROOT / "docs" / "services" / "ers.md"


@dataclass
class DocRequest:
    line: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    data: bytes | None
    capture: str | None  # NAME=$(curl ... -w '%header{location}'): the variable the Location is kept in
    expected: int | None = None  # the status of the `# → NNN` comment after it


def doc_requests(text: str) -> list[DocRequest]:
    """Every curl of the page's ```sh blocks, in order, with the shell variables and arrays of those blocks expanded
    (`NAME=value`, `NAME=(-H '…' …)`, `NAME=$(curl … -w '%header{location}')`), and the status it documents."""
    import re
    import shlex

    variables: dict[str, str] = {}
    requests_: list[DocRequest] = []
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    offset = {block: text.index(block) for block in blocks}
    for block in blocks:
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            start, command = i, lines[i]
            while not command.lstrip().startswith("#"):  # runs on while a quote or ( is open, or after a backslash
                try:
                    shlex.split(re.sub(r"^\w+=\(|\)$", "", command.replace("$(", "").rstrip(")")))
                    complete = not command.endswith("\\") and command.count("(") <= command.count(")")
                except ValueError:
                    complete = False
                if complete or i + 1 >= len(lines):
                    break
                i += 1
                command = command.rstrip("\\") + "\n" + lines[i]
            i += 1
            where = text[:offset[block]].count("\n") + start + 2
            stripped = command.strip()
            status = re.match(r"#\s*→\s*(\d{3})", stripped)
            if status and requests_:
                requests_[-1].expected = requests_[-1].expected or int(status.group(1))
                continue
            if not stripped or stripped.startswith("#"):
                continue
            array = re.match(r"^(\w+)=\((.*)\)$", stripped, flags=re.S)
            if array:
                variables[array.group(1)] = _expand(array.group(2), variables)
                continue
            capture = re.match(r"^(\w+)=\$\((curl .*)\)$", stripped, flags=re.S)
            plain = re.match(r"^(\w+)=(\S+)$", stripped)
            if plain and not capture:
                variables[plain.group(1)] = _expand(plain.group(2), variables)
                continue
            curl = capture.group(2) if capture else stripped
            assert curl.startswith("curl "), f"docs/services/ers.md line {where}: not a curl command: {curl[:60]}"
            requests_.append(_curl(shlex.split(_expand(curl, variables)), where, capture.group(1) if capture else None))
    return requests_


def _expand(text: str, variables: dict[str, str]) -> str:
    import re

    text = re.sub(r'"\$\{(\w+)\[@\]\}"', lambda m: variables[m.group(1)], text)
    return re.sub(r"(?<!\\)\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)


def _curl(args: list[str], line: int, capture: str | None) -> DocRequest:
    method, url, headers, data = "GET", None, [], None
    n = 1
    while n < len(args):
        arg = args[n]
        if arg in ("-X", "--request"):
            method, n = args[n + 1], n + 1
        elif arg in ("-H", "--header"):
            name, _, value = args[n + 1].partition(":")
            headers.append((name.strip(), value.strip()))
            n += 1
        elif arg in ("-d", "--data", "--data-binary"):
            data, n = args[n + 1].encode(), n + 1
            method = "POST" if method == "GET" else method
        elif arg in ("-o", "-w", "--output", "--write-out"):
            n += 1
        elif arg.startswith("-"):
            pass  # -s, -i, -si: how curl shows the answer
        else:
            url = arg.replace("\\$", "$")  # "…/\$ers.createReferral": the shell's escape
        n += 1
    assert url and url.startswith("http://127.0.0.1:9000/"), f"line {line}: {url}"
    return DocRequest(line, method, url.removeprefix("http://127.0.0.1:9000"), headers, data, capture)


def test_the_service_page_examples_answer_as_documented(client):
    """Every request of docs/services/ers.md, in order, in a fresh session: each answers the status its `# →` comment
    documents, and the Locations the page keeps in variables are used by the requests after them."""
    requests_ = doc_requests(DOC.read_text(encoding="utf-8"))
    assert len(requests_) >= 15
    kept: dict[str, str] = {}
    for request in requests_:
        assert request.expected is not None, f"docs/services/ers.md line {request.line}: no '# → <status>' after it"
        path = request.path
        for name, value in kept.items():
            path = path.replace(f"${name}", value)
        data = request.data
        for name, value in kept.items():
            data = data.replace(f"${name}".encode(), value.encode()) if data else data
        answer = client.open(path, method=request.method, headers=request.headers, data=data)
        assert answer.status_code == request.expected, (request.line, answer.get_data(as_text=True)[:400])
        if request.capture:
            kept[request.capture] = answer.headers["Location"]


def test_the_service_page_lists_every_scenario_and_plan(sandbox):
    text = DOC.read_text(encoding="utf-8")
    missing = [s.id for s in sandbox.scenarios.for_service("ers") if f"`{s.id}`" not in text]
    assert missing == []
    assert "`ers-referrer`" in text and "`ers-provider`" in text
    differences = [r.id for r in sandbox.requirements if r.id.startswith("ERS-PUB-") and r.id not in text]
    assert differences == []
