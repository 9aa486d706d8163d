"""Advice and guidance (A&G) conversations, per session: a referrer asks an advice service for advice about a
patient (A044), the service's provider organisation sees it in its worklist (A023), reads it and the conversation
(A024, A025, A043), and answers (A026) or converts it into a referral with the same UBRN (A027).

One A&G request is one session state row (`NAMESPACE`, keyed by UBRN) holding what was asked, every version of the
CommunicationRequest as it was answered (so `_history/<v>` and `based-on=.../_history/<v>` serve older ones) and the
conversation's messages, each stamped with the version that first showed it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.conformance.findings import Finding
from sandbox.journal.store import VersionConflict
from sandbox.runtime import current_sandbox
from sandbox.services.ers import attachments, directory, referrals, resources, world
from sandbox.services.ers.attachments import SDS_USER, now, refuse
from sandbox.services.ers.context import PROVIDERS, RC, RCA, Answer, ErsCall
from sandbox.web.pipeline import ExchangeContext

NAMESPACE = "ers.advice"  # session state: UBRN -> the A&G request (see module docstring)
COMMUNICATION_COUNTER = "ers.communication"
FIRST_COMMUNICATION = 100_001
MAX_TEXT = 8000  # characters of a request or guidance text

CREATE = "a044-create-advice-and-guidance-request"
WORKLIST = "a023-retrieve-a&g-worklist"
READ = "a024-retrieve-advice-and-guidance"
READ_VERSION = "a024-retrieve-advice-and-guidance-versioned"
CONVERSATION = "a025-retrieve-advice-and-guidance-conversation"
RESPOND = "a026-send-a&g-response"
CONVERT = "a027-convert-a&g-to-referral"
OVERVIEW_PDF = "a043-retrieve-advice-and-guidance-overview-pdf"

# A&G states (eRS-AdviceAndGuidanceStatus-1).
PROVIDER_RESPONSE_REQUIRED = "PROVIDER_RESPONSE_REQUIRED"
FURTHER_INFORMATION = "REFERRER_TO_SUBMIT_FURTHER_INFORMATION"
REVIEW_RESPONSE = "REFERRER_TO_REVIEW_RESPONSE"
CONVERTED = "ADVICE_CONVERTED"
ENDED = ("CONVERSATION_ENDED_CANCELLED", "CONVERSATION_ENDED_CLOSED", CONVERTED)

STRUCTURE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
CODES = "https://fhir.nhs.uk/STU3/CodeSystem/"
REQUEST_PROFILE = STRUCTURE + "eRS-CommunicationRequest-1"
COMMUNICATION_PROFILE = STRUCTURE + "eRS-Communication-1"
ROLE_PROFILE = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-PractitionerRole-1"
NHS_NUMBER = "http://fhir.nhs.net/Id/nhs-number"
ERS_SERVICE = "http://fhir.nhs.net/Id/ers-service"
REQUEST_ID = "https://fhir.nhs.uk/Id/ers-request-id"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PRIORITY_SYSTEM = CODES + "eRS-Priority-1"
PRIORITIES = {"ROUTINE": "Routine", "URGENT": "Urgent", "TWO_WEEK_WAIT": "2 Week Wait"}
AUTHORISATION_SYSTEM = CODES + "eRS-ProviderConversionAuthorisation-1"
AUTHORISATIONS = {
    "AUTHORISED_TO_CONVERT": "Referrer has allowed the Service Provider to convert the Advice and Guidance to a Referral",
    "NOT_AUTHORISED_TO_CONVERT":
        "Referrer has NOT allowed the Service Provider to convert the Advice and Guidance to a Referral",
}
OUTCOME_SYSTEM = CODES + "eRS-GuidanceResponseOutcome-1"
OUTCOMES = {"RETURN_TO_REFERRER_WITH_ADVICE": REVIEW_RESPONSE, "REQUIRE_FURTHER_INFORMATION": FURTHER_INFORMATION}
RECOMMENDATIONS = ("ADVICE_ONLY_NO_REFERRAL_RECOMMENDED", "ADVICE_FOLLOWED_BY_REFERRAL_IF_REQUIRED",
                   "REFERRAL_RECOMMENDED", "OTHER")
LIST_SELECTOR = CODES + "eRS-CommunicationListSelector-1"
A_AND_G_LIST = "ADVICE_AND_GUIDANCE_REQUESTS"
_BASED_ON = re.compile(r"^(?:.*/)?CommunicationRequest/(\d{12})(?:/_history/(\d{1,9}))?$")
_CREATE_FROM = re.compile(r"^(?:.*/)?CommunicationRequest/(\d{12})/_history/(\d{1,9})$")


# --- session records ----------------------------------------------------------------------------------------------
def find(session: str, ubrn: str) -> tuple[dict, int] | None:
    """The A&G request with this UBRN and its state row's version, or None."""
    item = current_sandbox().store.state.get(session, NAMESPACE, ubrn)
    return (item.value, item.version) if item is not None else None


def all_requests(session: str) -> list[dict]:
    return [item.value for item in current_sandbox().store.state.items(session, NAMESPACE).values()]


def _save(ex: ExchangeContext, session: str, record: dict, row_version: int | None) -> None:
    """Commit the record with the exchange (compare-and-set against the row read, so a concurrent change wins)."""
    def write() -> None:
        store = current_sandbox().store
        try:
            if row_version is None:
                store.state.put(session, NAMESPACE, record["ubrn"], record, create_only=True)
            else:
                store.state.put(session, NAMESPACE, record["ubrn"], record, expect_version=row_version)
        except VersionConflict:  # another request changed this A&G request first: the live service's 409
            raise referrals.concurrent_refusal(
                "ERS-AG-010", 409, "VERSION_MISMATCH", f"Advice and guidance request {record['ubrn']} was changed by "
                "another request while this one was answered; read it again and retry.") from None

    ex.write_with_record(write)


def owns(call: ErsCall) -> bool:
    """True when the request names an A&G request the session created, and for the A&G worklist once the session
    has one (its published example body is the only request there is: it would never reach the session's list)."""
    if call.operation.id == WORKLIST:
        return bool(current_sandbox().store.state.items(call.session, NAMESPACE))
    ubrn = subject_ubrn(call)
    return bool(ubrn) and find(call.session, ubrn) is not None


def subject_ubrn(call: ErsCall) -> str:
    """The UBRN an A&G request is about: in the path, in A025's `based-on`, or in A027's `createFrom`."""
    if call.operation.id == CONVERSATION:
        values = call.query.get("based-on", [])
        match = _BASED_ON.match(values[0]) if len(values) == 1 else None
        return match.group(1) if match else ""
    if call.operation.id == CONVERT:
        reference = (resources.param(call.body, "createFrom") or {}).get("valueReference")
        text = reference.get("reference") if isinstance(reference, dict) else None
        match = _CREATE_FROM.match(text) if isinstance(text, str) else None
        return match.group(1) if match else ""
    return call.params.get("ubrn", "")


# --- reading Parameters bodies -----------------------------------------------------------------------------------
def _all_named(body: Any, name: str) -> list[dict]:
    return [p for p in resources.parameters(body) if p.get("name") == name]


def _require_parameters(ex: ExchangeContext, body: Any, requirement: str) -> None:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters" or not resources.parameters(body):
        raise refuse(ex, requirement, 422, "INVALID_FHIR_STRUCTURE", "The body must be a FHIR Parameters resource "
                     "with its parameters", "/")


def _one(ex: ExchangeContext, body: Any, name: str, value_key: str, requirement: str, required: bool = True) -> Any:
    """The single value of a 0..1 or 1..1 parameter (MISSING_VALUE when required and absent)."""
    named = _all_named(body, name)
    if len(named) > 1:
        raise refuse(ex, requirement, 422, "INVALID_FHIR_STRUCTURE", f"Parameter {name!r} is sent more than once",
                     f"/parameter[name={name}]")
    value = named[0].get(value_key) if named else None
    if value is None and required:
        raise refuse(ex, requirement, 422, "MISSING_VALUE", f"Parameter {name!r} ({value_key}) is required",
                     f"/parameter[name={name}]")
    return value


def _text(ex: ExchangeContext, body: Any, name: str, requirement: str) -> str:
    value = _one(ex, body, name, "valueString", requirement)
    if not isinstance(value, str) or not value.strip():
        raise refuse(ex, requirement, 422, "MISSING_VALUE", f"Parameter {name!r} needs a non-empty valueString",
                     f"/parameter[name={name}]")
    if len(value) > MAX_TEXT:
        raise refuse(ex, requirement, 422, "INVALID_VALUE", f"Parameter {name!r} is {len(value)} characters: at "
                     f"most {MAX_TEXT} are allowed", f"/parameter[name={name}]")
    return value


def _code(ex: ExchangeContext, body: Any, name: str, system: str, allowed: Any, requirement: str,
          required: bool = True) -> str:
    coding = _one(ex, body, name, "valueCoding", requirement, required)
    if coding is None:
        return ""
    code = coding.get("code") if isinstance(coding, dict) else None
    if not isinstance(coding, dict) or coding.get("system") != system or code not in allowed:
        raise refuse(ex, requirement, 422, "INVALID_CODE", f"Parameter {name!r} must be a coding of {system} "
                     f"(one of {', '.join(allowed)})", f"/parameter[name={name}]/valueCoding")
    return code


# --- who is asking ------------------------------------------------------------------------------------------------
def _actor(call: ErsCall, ex: ExchangeContext) -> dict:
    return {"user": attachments.caller_user(call, ex), "ods": call.ods_code.strip().upper(),
            "businessFunction": call.business_function or "", "onBehalfOf": call.on_behalf_of}


def _check_relationship(call: ErsCall, ex: ExchangeContext, record: dict, requirement: str,
                        providers_only: bool = False) -> None:
    """Only the referring organisation and the advice service's provider organisation may see or act on a request
    (NO_RELATIONSHIP), and only providers may act for the provider. A caller that names no organisation is not
    checked (a warning says so)."""
    ods = call.ods_code.strip().upper()
    if not ods:
        ex.add(Finding.warning(requirement, "No NHSD-End-User-Organisation-ODS: live e-RS checks the caller's "
                               "organisation's relationship with the request; this sandbox could not",
                               "NHSD-End-User-Organisation-ODS"))
        return
    provider = ods == record["service"]["ods"] and call.business_function in (*PROVIDERS, "")
    referrer = ods == record["referrer"]["ods"] and call.business_function not in PROVIDERS
    if not (provider or (referrer and not providers_only)):
        raise refuse(ex, requirement, 422, "NO_RELATIONSHIP", f"Organisation {ods} has no relationship with advice "
                     f"and guidance request {record['ubrn']}")


def _found(call: ErsCall, ex: ExchangeContext, ubrn: str, requirement: str) -> tuple[dict, int]:
    found = find(call.session, ubrn)
    if found is None and referrals.find(call.session, ubrn) is not None:
        raise refuse(ex, requirement, 422, "INVALID_REQUEST_TYPE", f"UBRN {ubrn} is a referral, not an advice and "
                     "guidance request: read it with A005", "ubrn")
    if found is None:
        raise refuse(ex, requirement, 404, "NOT_FOUND", f"No advice and guidance request with UBRN {ubrn!r}",
                     "ubrn")
    return found


# --- building resources -------------------------------------------------------------------------------------------
def role_id(actor: dict, business_function: str | None = None) -> str:
    """`<user>.<ODS>.<BUSINESS-FUNCTION>`, as e-RS names a PractitionerRole."""
    function = (business_function or actor.get("businessFunction") or "").replace("_", "-")
    return f"{actor['user']}.{actor['ods']}.{function}"


def practitioner_role(actor: dict, business_function: str | None = None, contained: bool = True) -> dict:
    function = business_function or actor.get("businessFunction") or ""
    return {
        "id": ("PractitionerRole." if contained else "") + role_id(actor, function),
        "meta": {"profile": [ROLE_PROFILE]},
        "resourceType": "PractitionerRole",
        "practitioner": {"identifier": {"system": SDS_USER, "value": actor["user"]}},
        "organization": {"identifier": {"system": ODS, "value": actor["ods"]}},
        "code": [{"coding": [{"system": CODES + "eRS-BusinessFunction-1", "code": function}]}],
    }


def _role_reference(actor: dict, business_function: str | None, contained: bool) -> dict:
    rid = role_id(actor, business_function)
    return {"reference": f"#PractitionerRole.{rid}" if contained else f"PractitionerRole/{rid}"}


def _service_reference(service_id: str) -> dict:
    return {"extension": [{"url": STRUCTURE + "Extension-HealthcareService-Reference-1",
                           "valueReference": {"identifier": {"system": ERS_SERVICE, "value": service_id}}}]}


def _priority(code: str) -> dict:
    return {"coding": [{"system": PRIORITY_SYSTEM, "code": code, "display": PRIORITIES.get(code, code)}]}


def _requester(record: dict) -> tuple[dict, str]:
    """The requesting clinician (an RCA acts for the RC named in `referringClinician`)."""
    referrer = record["referrer"]
    if referrer.get("clinician"):
        return {"user": referrer["clinician"], "ods": referrer["ods"]}, "REFERRING_CLINICIAN"
    return referrer, referrer["businessFunction"] or "REFERRING_CLINICIAN"


def communication_request(record: dict) -> dict:
    """The CommunicationRequest (A&G summary) as it is now."""
    service = record["service"]
    requester, requester_function = _requester(record)
    referrer = record["referrer"]
    contained: list[dict] = [
        {"id": "serviceSearchCriteria", "meta": {"profile": [STRUCTURE + "eRS-ServiceSearchCriteria-Parameters-1"]},
         "resourceType": "Parameters", "parameter": record["searchCriteria"]},
        {"id": "shortlist", "meta": {"profile": [STRUCTURE + "eRS-Shortlist-List-1"]}, "resourceType": "List",
         "extension": [{"url": STRUCTURE + "Extension-eRS-Shortlist-SearchCriteria-1",
                        "valueReference": {"reference": "#serviceSearchCriteria"}}],
         "status": "current", "mode": "snapshot",
         "entry": [{"item": {"identifier": {"system": ERS_SERVICE, "value": service["id"]},
                             "display": service["name"]}}]},
        practitioner_role(requester, requester_function),
    ]
    if referrer.get("clinician"):
        contained.append(practitioner_role(referrer))
    contained.extend(record["requestDocuments"])
    resource: dict = {
        "id": record["ubrn"],
        "meta": {"versionId": str(record["version"]), "profile": [REQUEST_PROFILE]},
        "resourceType": "CommunicationRequest",
        "extension": [
            {"url": STRUCTURE + "Extension-eRS-ReferralPriority-1", "valueCodeableConcept": _priority(record["priority"])},
            {"url": STRUCTURE + "Extension-eRS-ProviderConversionAuthorisation-1",
             "valueCoding": {"system": AUTHORISATION_SYSTEM, "code": record["authorisation"],
                             "display": AUTHORISATIONS[record["authorisation"]]}},
            {"url": STRUCTURE + "Extension-eRS-ReferralShortlist-1", "valueReference": {"reference": "#shortlist"}},
            {"url": STRUCTURE + "Extension-eRS-Specialty-1", "valueCoding": service["specialty"]},
        ],
        "contained": contained,
        "status": "completed" if record["state"] in ENDED else "active",
        "category": [{"coding": [{"system": CODES + "eRS-AdviceAndGuidanceStatus-1", "code": record["state"]}]}],
        "subject": {"identifier": {"system": NHS_NUMBER, "value": record["patient"]}},
        "recipient": [_service_reference(service["id"])],
        "sender": {"extension": [{"url": STRUCTURE + "Extension-PractitionerRole-Reference-1",
                                  "valueReference": _role_reference(requester, requester_function, True)}]},
        "requester": {"agent": {"extension": [{"url": STRUCTURE + "Extension-PractitionerRole-Reference-1",
                                               "valueReference": _role_reference(requester, requester_function,
                                                                                 True)}]}},
    }
    if record["requestDocuments"]:
        resource["payload"] = [{"contentReference": {"reference": f"#{d['id']}"}} for d in record["requestDocuments"]]
    resource["identifier"] = [{"system": REQUEST_ID, "value": record["requestId"]}]
    return resource


def communication(message: dict, ubrn: str, version: int, contained: bool) -> dict:
    """One message of the conversation, based on version `version` of the request: with its author's
    PractitionerRole and its files contained (as A044/A026 answer) or referenced (as A025's bundle includes them)."""
    author = message["author"]
    requester = message.get("requester") or author  # an RCA writes for the referring clinician it names
    resource: dict = {
        "id": message["id"],
        "meta": {"versionId": "0", "profile": [COMMUNICATION_PROFILE]},
        "resourceType": "Communication",
    }
    if contained:
        roles = [practitioner_role(author)] + ([practitioner_role(requester)] if requester is not author else [])
        resource["contained"] = [*roles, *message["documents"]]
    reference = _role_reference(author, None, contained)
    resource.update({
        "extension": [{"url": STRUCTURE + "Extension-Communication-Requester-1",
                       "valueReference": _role_reference(requester, None, contained)}],
        "basedOn": [{"reference": f"CommunicationRequest/{ubrn}/_history/{version}"}],
        "status": "completed",
        "category": [{"coding": [{"system": CODES + "eRS-CommunicationSentBy-1", "code": message["sentBy"]}]}],
        "recipient": [_service_reference(message["recipientService"])] if message["sentBy"] == "REQUESTER"
        else [{"identifier": {"system": ODS, "value": message["recipientOrganisation"]}}],
        "sent": message["sent"],
        "sender": {"extension": [{"url": STRUCTURE + "Extension-PractitionerRole-Reference-1",
                                  "valueReference": reference}]},
    })
    if message["documents"]:
        resource["payload"] = [{"contentReference": {"reference": f"#{d['id']}" if contained else
                                                     f"DocumentReference/{d['content'][0]['attachment']['id']}"}}
                               for d in message["documents"]]
    resource["note"] = [{"text": message["text"]}]
    return resource


def _new_version(record: dict, when: str) -> None:
    """One more version of the request: its summary as it now reads is kept for `_history`."""
    record["version"] += 1
    record["updated"] = when
    record["history"].append(communication_request(record))


def _message(session: str, author: dict, sent_by: str, text: str, documents: list[dict], record: dict,
             when: str, requester: dict | None = None) -> dict:
    number = current_sandbox().store.state.next_counter(session, COMMUNICATION_COUNTER, FIRST_COMMUNICATION)
    return {"id": str(number), "version": record["version"], "author": author, "requester": requester,
            "sentBy": sent_by, "text": text, "documents": documents, "sent": when,
            "recipientService": record["service"]["id"], "recipientOrganisation": record["referrer"]["ods"]}


def _documents(ex: ExchangeContext, session: str, body: Any, name: str, kind: str, ubrn: str | None,
               already: list[str], requirement: str) -> list[dict]:
    """The DocumentReferences of every `name` parameter, for files the session uploaded (checked as e-RS checks
    files being linked, duplicate names included)."""
    records, resources = [], []
    for index, parameter in enumerate(_all_named(body, name)):
        record, resource = attachments.linked_document(ex, session, parameter.get("resource"), kind, ubrn,
                                                       requirement, f"/parameter[name={name}][{index}]")
        records.append(record)
        resources.append(resource)
    attachments.check_unique_names(ex, records, already, requirement)
    return resources


def _linked_names(record: dict) -> list[str]:
    names = [d["content"][0]["attachment"]["title"] for d in record["requestDocuments"]]
    for message in record["messages"]:
        names.extend(d["content"][0]["attachment"]["title"] for d in message["documents"])
    return names


# --- A044 create --------------------------------------------------------------------------------------------------
def create(call: ErsCall, ex: ExchangeContext) -> Answer:
    body = call.body
    _require_parameters(ex, body, "ERS-AG-001")
    patient = _one(ex, body, "patient", "valueIdentifier", "ERS-AG-001")
    nhs_number = patient.get("value") if isinstance(patient, dict) else None
    if not isinstance(patient, dict) or patient.get("system") != NHS_NUMBER or not isinstance(nhs_number, str):
        raise refuse(ex, "ERS-AG-001", 422, "INVALID_VALUE", f"Parameter 'patient' must be an identifier of "
                     f"{NHS_NUMBER}", "/parameter[name=patient]")
    authorisation = _code(ex, body, "providerConversionAuthorisation", AUTHORISATION_SYSTEM, tuple(AUTHORISATIONS),
                          "ERS-AG-001")
    shortlist = _one(ex, body, "shortlist", "resource", "ERS-AG-001")
    entries = shortlist.get("entry") if isinstance(shortlist, dict) else None
    if not isinstance(entries, list) or not entries:
        raise refuse(ex, "ERS-AG-001", 422, "MISSING_VALUE", "The shortlist names no service",
                     "/parameter[name=shortlist]/resource/entry")
    if len(entries) > 1:
        raise refuse(ex, "ERS-AG-002", 422, "TOO_MANY_ITEMS", "An advice and guidance request goes to one service: "
                     f"the shortlist names {len(entries)}", "/parameter[name=shortlist]/resource/entry")
    service_id = _service_id(entries[0])
    text = _text(ex, body, "request", "ERS-AG-001")
    clinician = _one(ex, body, "referringClinician", "valueIdentifier", "ERS-AG-001", required=False)
    if call.business_function == RCA and clinician is None:
        raise refuse(ex, "ERS-AG-003", 422, "VALUE_IS_REQUIRED", "A REFERRING_CLINICIAN_ADMIN names the referring "
                     "clinician it acts for (referringClinician)", "/parameter[name=referringClinician]")
    if call.business_function != RCA and clinician is not None:
        raise refuse(ex, "ERS-AG-003", 422, "FIELD_NOT_PERMITTED", "referringClinician is only sent by a "
                     "REFERRING_CLINICIAN_ADMIN", "/parameter[name=referringClinician]")
    clinician_id = clinician.get("value") if isinstance(clinician, dict) else None
    if clinician is not None and (clinician.get("system") != SDS_USER or not isinstance(clinician_id, str)
                                  or not re.fullmatch(r"\d{12}", clinician_id)):
        raise refuse(ex, "ERS-AG-003", 422, "INVALID_VALUE", f"referringClinician must be a 12-digit {SDS_USER} "
                     "identifier", "/parameter[name=referringClinician]")
    if clinician_id:
        _check_clinician(ex, clinician_id, call.ods_code.strip().upper())
    if not directory.patient_exists(nhs_number):
        raise refuse(ex, "ERS-AG-004", 422, "PATIENT_ERROR", f"No patient with NHS number {nhs_number!r} could be "
                     "retrieved", "/parameter[name=patient]")
    service = directory.advice_service(service_id)
    if service is None:
        raise refuse(ex, "ERS-AG-002", 422, "REFERENCE_NOT_FOUND", f"No service {service_id!r}: search for advice "
                     "services with A010", "/parameter[name=shortlist]")
    if not service["advice"]:
        raise refuse(ex, "ERS-AG-002", 422, "INAPPROPRIATE_VALUE", f"Service {service_id} ({service['name']}) gives "
                     "no advice and guidance: create a referral instead", "/parameter[name=shortlist]")
    documents = _documents(ex, call.session, body, "requestAttachmentFile", "ADVICE_REQUEST", None, [], "ERS-AG-005")
    referrer = _actor(call, ex)
    if not referrer["ods"]:
        referrer["ods"] = directory.registered_practice(nhs_number)
    if clinician_id:
        referrer["clinician"] = clinician_id
    when = now()
    ubrn = referrals.next_ubrn(call.session)
    record: dict = {
        "ubrn": ubrn, "requestId": f"a.{uuid.uuid4()}", "version": 0, "state": PROVIDER_RESPONSE_REQUIRED,
        "patient": nhs_number, "service": service, "priority": _search_priority(shortlist) or "ROUTINE",
        "authorisation": authorisation, "referrer": referrer, "created": when, "updated": when,
        "searchCriteria": _search_criteria(shortlist, service), "requestDocuments": [], "messages": [],
        "history": [], "referral": None,
    }
    _new_version(record, when)
    # The request's text and files are the conversation's first message (as e-RS answers A044); files linked to
    # the summary itself (`requestDocuments`) come only from outside the API, so none are made here.
    requester = {"user": clinician_id, "ods": referrer["ods"], "businessFunction": "REFERRING_CLINICIAN"} \
        if clinician_id else None
    first = _message(call.session, referrer, "REQUESTER", text, documents, record, when, requester)
    record["messages"].append(first)
    _save(ex, call.session, record, None)
    attachments.note_links(ex, call.session, attachments.binaries(documents), ubrn)
    ex.add(Finding.passed("ERS-AG-001", f"Advice and guidance request {ubrn} created for service {service['id']}"))
    return Answer(200, {
        "resourceType": "Parameters",
        "meta": {"profile": [STRUCTURE + "eRS-CreateAdviceAndGuidance-Response-Parameters-1"]},
        "parameter": [
            {"name": "createdCommunicationRequest", "resource": record["history"][-1]},
            {"name": "createdCommunication", "resource": communication(first, ubrn, record["version"], True)},
        ]})


def _check_clinician(ex: ExchangeContext, user_id: str, ods: str) -> None:
    """The clinician an RCA acts for: a user of this sandbox's world must be a referring clinician of the RCA's
    organisation (other user ids are taken, with a warning: the world cannot vouch for them)."""
    user = world.current_world().user(user_id)
    location = "/parameter[name=referringClinician]"
    if user is None:
        ex.add(Finding.warning("ERS-AG-003", f"referringClinician {user_id} is not a user of this sandbox's world: "
                               "live e-RS checks the user is an active referring clinician of the organisation",
                               location))
        return
    if RC not in user.business_functions:
        raise refuse(ex, "ERS-AG-003", 422, "REFERENCED_USER_IS_NOT_RC", f"User {user_id} is not a referring "
                     "clinician", location)
    if ods and user.ods != ods:
        raise refuse(ex, "ERS-AG-003", 422, "REFERENCED_USER_NOT_IN_ORG", f"User {user_id} does not belong to "
                     f"organisation {ods}", location)


def _service_id(entry: Any) -> str:
    item = entry.get("item") if isinstance(entry, dict) else None
    identifier = item.get("identifier") if isinstance(item, dict) else None
    value = identifier.get("value") if isinstance(identifier, dict) else None
    if isinstance(item, dict) and isinstance(item.get("reference"), str):
        value = value or item["reference"].rsplit("/", 1)[-1]
    return value if isinstance(value, str) else ""


def _criteria_parameters(shortlist: Any) -> list[dict]:
    contained = shortlist.get("contained") if isinstance(shortlist, dict) else None
    for resource in contained if isinstance(contained, list) else []:
        if isinstance(resource, dict) and resource.get("resourceType") == "Parameters":
            found = resource.get("parameter")
            return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []
    return []


def _search_priority(shortlist: Any) -> str:
    for parameter in _criteria_parameters(shortlist):
        coding = parameter.get("valueCoding")
        if parameter.get("name") == "priority" and isinstance(coding, dict) and coding.get("code") in PRIORITIES:
            return coding["code"]
    return ""


def _search_criteria(shortlist: Any, service: dict) -> list[dict]:
    """The search criteria the referrer found the service with, as sent; the service's own when none were."""
    sent = _criteria_parameters(shortlist)
    if sent:
        return sent
    return [{"name": "priority", "valueCoding": {"system": PRIORITY_SYSTEM, "code": "ROUTINE"}},
            {"name": "specialty", "valueCoding": {k: v for k, v in service["specialty"].items() if k != "display"}}]


# --- A024 read, A025 conversation, A043 overview ------------------------------------------------------------------
def read(call: ErsCall, ex: ExchangeContext) -> Answer:
    ubrn = call.params.get("ubrn", "")
    record, _ = _found(call, ex, ubrn, "ERS-AG-006")
    _check_relationship(call, ex, record, "ERS-AG-006")
    version = record["version"]
    if "version" in call.params:
        version = _version(call, ex, record, call.params["version"], "ERS-AG-006")
    return Answer(200, record["history"][version - 1], etag=f'W/"{version}"')


def _version(call: ErsCall, ex: ExchangeContext, record: dict, text: str, requirement: str) -> int:
    version = int(text) if text.isdigit() and len(text) < 10 else 0
    if not 1 <= version <= record["version"]:
        raise refuse(ex, requirement, 404, "NOT_FOUND", f"{record['ubrn']} has no version {text!r} (versions 1 to "
                     f"{record['version']})", "version")
    return version


def conversation(call: ErsCall, ex: ExchangeContext) -> Answer:
    values = call.query.get("based-on", [])
    match = _BASED_ON.match(values[0]) if len(values) == 1 else None
    if match is None:
        raise refuse(ex, "ERS-AG-007", 400, "INVALID_VALUE", "based-on must be sent once, as "
                     "CommunicationRequest/<UBRN>/_history/<version>", "based-on")
    record, _ = _found(call, ex, match.group(1), "ERS-AG-007")
    _check_relationship(call, ex, record, "ERS-AG-007")
    version = _version(call, ex, record, match.group(2), "ERS-AG-007") if match.group(2) else record["version"]
    if not match.group(2):
        ex.add(Finding.warning("ERS-AG-007", "based-on names no version: send the latest version read with A024 "
                               "(CommunicationRequest/<UBRN>/_history/<version>)", "based-on"))
    messages = [m for m in record["messages"] if m["version"] <= version]
    messages.sort(key=lambda m: (m["sent"], int(m["id"])), reverse=True)  # newest first, as e-RS lists them
    base = directory.fhir_base()
    entries = [{"fullUrl": f"{base}/STU3/Communication/{m['id']}",
                "resource": communication(m, record["ubrn"], version, contained=False), "search": {"mode": "match"}}
               for m in messages]
    roles: dict[str, dict] = {}
    documents: dict[str, dict] = {}
    for m in messages:
        for actor in (m["author"], m.get("requester")):
            if actor:
                roles.setdefault(role_id(actor), practitioner_role(actor, contained=False))
        for d in m["documents"]:
            number = d["content"][0]["attachment"]["id"]
            documents.setdefault(number, {**d, "id": number})
    entries += [{"fullUrl": f"{base}/STU3/PractitionerRole/{rid}", "resource": role, "search": {"mode": "include"}}
                for rid, role in roles.items()]
    entries += [{"fullUrl": f"{base}/STU3/DocumentReference/{number}", "resource": doc,
                 "search": {"mode": "include"}} for number, doc in documents.items()]
    bundle = {
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": record["updated"], "profile": ["http://hl7.org/fhir/STU3/StructureDefinition/Bundle"]},
        "resourceType": "Bundle", "type": "searchset", "total": len(messages),
        "link": [{"relation": "self", "url": f"{base}/STU3/Communication?based-on=CommunicationRequest/"
                  f"{record['ubrn']}/_history/{version}"}],
        "entry": entries,
    }
    return Answer(200, bundle, etag=f'W/"{version}"')


def overview_pdf(call: ErsCall, ex: ExchangeContext) -> Answer:
    from sandbox.services.ers import documents

    ubrn = call.params.get("ubrn", "")
    record, _ = _found(call, ex, ubrn, "ERS-AG-008")
    _check_relationship(call, ex, record, "ERS-AG-008")
    service = record["service"]
    lines = [f"UBRN: {ubrn}", f"Patient NHS number: {record['patient']}",
             f"Service: {service['name']} ({service['id']}), {service['ods']}",
             f"Specialty: {service['specialty'].get('display', service['specialty'].get('code', ''))}",
             f"Priority: {PRIORITIES.get(record['priority'], record['priority'])}",
             f"Status: {record['state']}", f"Requested: {record['created']}", ""]
    for message in sorted(record["messages"], key=lambda m: (m["sent"], int(m["id"]))):
        who = "Referrer" if message["sentBy"] == "REQUESTER" else "Provider"
        lines.append(f"{message['sent']} {who} {message['author']['user']} ({message['author']['ods']}):")
        lines.extend(message["text"].splitlines() or [""])
        lines.extend(f"  Attachment: {d['content'][0]['attachment']['title']}" for d in message["documents"])
        lines.append("")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    name = f"{ubrn}_Advice_And_Guidance_{stamp}.pdf"
    return Answer(200, documents.pdf(f"Advice and Guidance {ubrn}", lines), content_type="application/pdf",
                  disposition=f"attachment; filename={name}")


# --- A023 worklist -------------------------------------------------------------------------------------------------
def worklist(call: ErsCall, ex: ExchangeContext) -> Answer:
    body = call.body
    _require_parameters(ex, body, "ERS-AG-009")
    selector = _one(ex, body, "listType", "valueCodeableConcept", "ERS-AG-009")
    codings = selector.get("coding") if isinstance(selector, dict) else None
    codes = [c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == LIST_SELECTOR] \
        if isinstance(codings, list) else []
    if codes != [A_AND_G_LIST]:
        raise refuse(ex, "ERS-AG-009", 422, "INVALID_CODE", f"listType must be {LIST_SELECTOR}|{A_AND_G_LIST}",
                     "/parameter[name=listType]")
    ods = call.ods_code.strip().upper()
    if not ods:
        ex.add(Finding.warning("ERS-AG-009", "No NHSD-End-User-Organisation-ODS: the worklist is of the caller's "
                               "organisation, so this sandbox lists every organisation's requests",
                               "NHSD-End-User-Organisation-ODS"))
    rows = [r for r in all_requests(call.session)
            if r["state"] not in ENDED and (not ods or r["service"]["ods"] == ods)]
    rows.sort(key=lambda r: r["created"])
    return Answer(200, {
        "meta": {"profile": [STRUCTURE + "eRS-FetchWorklist-List-1"]},
        "resourceType": "List", "status": "current", "mode": "snapshot",
        "entry": [_worklist_entry(r) for r in rows],
    })


def _worklist_entry(record: dict) -> dict:
    service = record["service"]
    requester, _ = _requester(record)
    fields: list[dict] = [
        {"url": "priority", "valueCodeableConcept": {"coding": [{"system": PRIORITY_SYSTEM,
                                                                 "code": record["priority"]}]}},
        {"url": "specialty", "valueCodeableConcept": {"coding": [
            {k: v for k, v in service["specialty"].items() if k != "display"}]}},
        {"url": "patient", "valueReference": {"identifier": {"system": NHS_NUMBER, "value": record["patient"]}}},
        {"url": "category", "valueCodeableConcept": {"coding": [
            {"system": CODES + "eRS-AdviceAndGuidanceStatus-1", "code": record["state"]}]}},
        {"url": "adviceFirstRequested", "valueDateTime": record["created"]},
        {"url": "adviceLastUpdated", "valueDateTime": record["updated"]},
        {"url": "referrer", "valueReference": {"identifier": {"system": SDS_USER, "value": requester["user"]}}},
        {"url": "service", "valueReference": {"identifier": {"system": ERS_SERVICE, "value": service["id"]},
                                              "display": service["name"]}},
    ]
    if service.get("clinicType"):
        fields.append({"url": "clinicType", "valueCodeableConcept": {"coding": [service["clinicType"]]}})
    fields.append({"url": "communicationRequestVersion", "valueInteger": record["version"]})
    return {"extension": [{"extension": fields,
                           "url": STRUCTURE + "Extension-eRS-AdviceAndGuidanceRequests-WorkListItem-1"}],
            "item": {"reference": f"CommunicationRequest/{record['ubrn']}"}}


# --- A026 respond ----------------------------------------------------------------------------------------------
def respond(call: ErsCall, ex: ExchangeContext) -> Answer:
    ubrn = call.params.get("ubrn", "")
    record, row_version = _found(call, ex, ubrn, "ERS-AG-010")
    _check_relationship(call, ex, record, "ERS-AG-010", providers_only=True)
    referrals.check_if_match(call, ex, record["version"], f"advice and guidance request {ubrn}")
    body = call.body
    _require_parameters(ex, body, "ERS-AG-010")
    outcome = _code(ex, body, "guidanceOutcome", OUTCOME_SYSTEM,
                    (*OUTCOMES, "PROVIDER_CONVERTED"), "ERS-AG-010")
    if outcome == "PROVIDER_CONVERTED":
        raise refuse(ex, "ERS-AG-010", 422, "INAPPROPRIATE_VALUE", "To convert the request into a referral use "
                     "A027 ($ers.createFromCommunicationRequestActionLater)", "/parameter[name=guidanceOutcome]")
    recommendation = _code(ex, body, "guidanceIntendedRecommendation",
                           CODES + "eRS-GuidanceIntendedRecommendation-1", RECOMMENDATIONS, "ERS-AG-010",
                           required=False)
    if outcome == "RETURN_TO_REFERRER_WITH_ADVICE" and not recommendation:
        raise refuse(ex, "ERS-AG-010", 422, "VALUE_IS_REQUIRED", "guidanceIntendedRecommendation is required with "
                     "RETURN_TO_REFERRER_WITH_ADVICE", "/parameter[name=guidanceIntendedRecommendation]")
    if outcome != "RETURN_TO_REFERRER_WITH_ADVICE" and recommendation:
        raise refuse(ex, "ERS-AG-010", 422, "INAPPROPRIATE_VALUE", "guidanceIntendedRecommendation goes only with "
                     "RETURN_TO_REFERRER_WITH_ADVICE", "/parameter[name=guidanceIntendedRecommendation]")
    text = _text(ex, body, "guidance", "ERS-AG-010")
    priority = _code(ex, body, "updatedPriority", PRIORITY_SYSTEM, tuple(PRIORITIES), "ERS-AG-010")
    documents = _documents(ex, call.session, body, "guidanceAttachmentFile", "GUIDANCE_RESPONSE", ubrn,
                           _linked_names(record), "ERS-AG-011")
    if record["state"] != PROVIDER_RESPONSE_REQUIRED:
        raise refuse(ex, "ERS-AG-012", 422, "INVALID_REQUEST_STATE", f"Advice and guidance request {ubrn} is "
                     f"{record['state']}: only a request awaiting the provider's response can be answered")
    when = now()
    message = _message(call.session, _provider_actor(call, ex, record), "RESPONDER", text, documents, record, when)
    record["priority"] = priority
    record["state"] = OUTCOMES[outcome]
    _new_version(record, when)
    message["version"] = record["version"]
    record["messages"].append(message)
    _save(ex, call.session, record, row_version)
    attachments.note_links(ex, call.session, attachments.binaries(documents), ubrn)
    ex.add(Finding.passed("ERS-AG-010", f"Advice and guidance request {ubrn} answered: {record['state']}"))
    return Answer(200, {
        "meta": {"profile": [STRUCTURE + "eRS-SendCommunicationToRequester-Response-Parameters-1"]},
        "resourceType": "Parameters",
        "parameter": [
            {"name": "updatedCommunicationRequest", "resource": record["history"][-1]},
            {"name": "createdCommunication", "resource": communication(message, ubrn, record["version"], True)},
        ]})


def _provider_actor(call: ErsCall, ex: ExchangeContext, record: dict) -> dict:
    actor = _actor(call, ex)
    actor["ods"] = actor["ods"] or record["service"]["ods"]
    actor["businessFunction"] = actor["businessFunction"] or "SERVICE_PROVIDER_CLINICIAN"
    if actor["onBehalfOf"]:  # an SPCA acts for the clinician it names
        actor["user"], actor["businessFunction"] = actor["onBehalfOf"], "SERVICE_PROVIDER_CLINICIAN"
    return actor


# --- A027 convert -----------------------------------------------------------------------------------------------
def convert(call: ErsCall, ex: ExchangeContext) -> Answer:
    body = call.body
    _require_parameters(ex, body, "ERS-AG-013")
    reference = _one(ex, body, "createFrom", "valueReference", "ERS-AG-013")
    match = _CREATE_FROM.match(reference.get("reference", "")) if isinstance(reference, dict) and \
        isinstance(reference.get("reference"), str) else None
    if match is None:
        raise refuse(ex, "ERS-AG-013", 422, "INVALID_VALUE", "createFrom must reference "
                     "CommunicationRequest/<UBRN>/_history/<version>", "/parameter[name=createFrom]")
    ubrn = match.group(1)
    found = find(call.session, ubrn)
    if found is None:
        raise refuse(ex, "ERS-AG-013", 422, "REFERENCE_NOT_FOUND", f"No advice and guidance request with UBRN "
                     f"{ubrn}", "/parameter[name=createFrom]")
    record, row_version = found
    _check_relationship(call, ex, record, "ERS-AG-013", providers_only=True)
    if int(match.group(2)) != record["version"]:
        raise refuse(ex, "ERS-AG-013", 409, "VERSION_MISMATCH", f"createFrom names version {match.group(2)} of "
                     f"{ubrn}; the current version is {record['version']}", "/parameter[name=createFrom]")
    guidance = _text(ex, body, "guidance", "ERS-AG-013")
    priority = _code(ex, body, "newReferralPriority", PRIORITY_SYSTEM, tuple(PRIORITIES), "ERS-AG-013")
    comments = _text(ex, body, "reviewComments", "ERS-AG-013")
    linked = _linked_names(record)
    guidance_documents = _documents(ex, call.session, body, "guidanceAttachmentFile", "GUIDANCE_RESPONSE", ubrn,
                                    linked, "ERS-AG-011")
    review_documents = _documents(ex, call.session, body, "reviewAttachmentFile", "PROVIDER", ubrn,
                                  linked + [d["content"][0]["attachment"]["title"] for d in guidance_documents],
                                  "ERS-AG-011")
    if record["authorisation"] != "AUTHORISED_TO_CONVERT":
        raise refuse(ex, "ERS-AG-014", 422, "INAPPROPRIATE_VALUE", f"The referrer has not authorised the provider to "
                     f"convert advice and guidance request {ubrn} into a referral")
    if record["state"] != PROVIDER_RESPONSE_REQUIRED:
        raise refuse(ex, "ERS-AG-012", 422, "INVALID_REQUEST_STATE", f"Advice and guidance request {ubrn} is "
                     f"{record['state']}: only a request awaiting the provider's response can be converted")
    when = now()
    provider = _provider_actor(call, ex, record)
    message = _message(call.session, provider, "RESPONDER", guidance, guidance_documents, record, when)
    earlier_documents = [*record["requestDocuments"], *(d for m in record["messages"] for d in m["documents"])]
    referral = _referral_from_advice(call, ex, record, priority, comments,
                                     [*review_documents, *guidance_documents, *earlier_documents], when)
    record["state"] = CONVERTED
    record["referral"] = ubrn
    _new_version(record, when)
    message["version"] = record["version"]
    record["messages"].append(message)
    _save(ex, call.session, record, row_version)
    attachments.note_links(ex, call.session, attachments.binaries([*guidance_documents, *review_documents]), ubrn)
    ex.add(Finding.passed("ERS-AG-013", f"Advice and guidance request {ubrn} converted into a referral"))
    return Answer(201, referral)


def _referral_from_advice(call: ErsCall, ex: ExchangeContext, record: dict, priority: str, comments: str,
                          documents: list[dict], when: str) -> dict:
    """The referral A027 makes (through referrals.py): the A&G request's UBRN, patient, referrer and service, with
    the provider's review comments, awaiting the provider's admin team to book it (Triaged - Provider To Action, an
    appointment proposed for the service), every file of the conversation attached."""
    service = record["service"]
    requester, function = _requester(record)
    who = referrals.Caller(function, record["referrer"]["ods"], requester["user"])
    criteria = {"priority": priority, "specialty": service["specialty"]["code"],
                "clinicType": (service.get("clinicType") or {}).get("code")}
    referral = referrals.new_record(record["ubrn"], record["patient"], who, [service["id"]], criteria, {})
    reason = {"system": CODES + "eRS-ReviewOutcome-1", "code": "PROVIDER_CONVERTED_ADVICE_AND_GUIDANCE_ADMIN_TO_REFER",
              "display": "Provider Converted Advice and Guidance, Admin to Refer"}
    appointment = {"id": referrals.next_appointment_id(call.session), "version": 1, "status": "proposed",
                   "reason": reason, "created": when, "comment": comments, "service": service["id"]}
    referral.update({
        "state": referrals.TRIAGED_PROVIDER_TO_ACTION, "reason": reason, "comments": comments,
        "service": service["id"], "documents": documents, "clinicalInfoFirstSubmitted": record["created"],
        "clinicalInfoLastUpdated": when, "appointment": appointment, "created": when, "updated": when,
        "fromAdvice": record["ubrn"],
    })
    referrals.save(call, ex, referral, new=True, appointment=appointment)
    return resources.referral_resource(referral, world.current_world())


HANDLERS: dict[str, Callable[[ErsCall, ExchangeContext], Answer]] = {
    CREATE: create,
    WORKLIST: worklist,
    READ: read,
    READ_VERSION: read,
    CONVERSATION: conversation,
    RESPOND: respond,
    CONVERT: convert,
    OVERVIEW_PDF: overview_pdf,
}
