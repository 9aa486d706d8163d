"""R4 reads of the e-RS world (world.py) and of the session's own requests: HealthcareService by id (A033; A037 is
the same as HEAD, for its ETag), HealthcareService search by `_id` (A035), the caller's business functions as
PractitionerRoles (A030), the users an SPCA may act for (A040) and the ServiceRequests behind a UBRN (A041).

The answers that would read the published sandbox's examples (services 1 and 2, UBRNs 000000070000-3, ...) are the
published answers' (routes try those first); these handlers answer everything else as live e-RS would. Also here:
what the other modules need to know of the world (`advice_service`, `patient_exists`, `registered_practice`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from flask import has_request_context, request

from sandbox.conformance.findings import Finding
from sandbox.runtime import current_sandbox
from sandbox.services.ers import resources, world
from sandbox.services.ers.attachments import now, refuse
from sandbox.services.ers.context import BASE_PATH, Answer, ErsCall
from sandbox.web.pipeline import ExchangeContext

GET_SERVICE = "a033-retrieve-healthcare-service"
SERVICE_VERSION = "a037-retrieve-healthcare-service-version"
SEARCH_SERVICES = "a035-search-for-healthcare-services"
BUSINESS_FUNCTIONS = "a030-retrieve-business-functions"
OBO_USERS = "a040-retrieve-practitioner-info"
SERVICE_REQUESTS = "a041-search-service-request"

MAX_SEARCHED_SERVICES = 20  # A035 takes at most 20 service ids
R4_CODES = "https://fhir.nhs.uk/CodeSystem/"
SDS_USER_R4 = "https://fhir.nhs.uk/Id/sds-user-id"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE = "https://fhir.nhs.uk/Id/ods-site-code"
UBRN_SYSTEM = "https://fhir.nhs.uk/Id/UBRN"
NHS_NUMBER_R4 = "https://fhir.nhs.uk/Id/nhs-number"
FLOW_DISPLAY = {
    "BOOKABLE": "A service which supports a patient appointment",
    "REVIEW": "A service that reviews referrals, without the support or need for any appointment with the patient "
              "to be made",
    "ADVICE_AND_GUIDANCE": "A service which can discuss the patient and receive guidance rather than a patient "
                           "attending an appointment",
}
BOOKABLE_DISPLAY = {"DIRECTLY_BOOKABLE": "Directly Bookable", "INDIRECTLY_BOOKABLE": "Indirectly Bookable"}
_SERVICE_ID = re.compile(r"^\d{1,12}$")


# --- the world, as the other modules need it ----------------------------------------------------------------------
def fhir_base() -> str:
    """The API's own base URL (…/referrals/FHIR), as e-RS writes it into links and code systems."""
    public = current_sandbox().settings.public_url.rstrip("/")
    if not public:
        public = request.host_url.rstrip("/") if has_request_context() else "http://localhost"
    return f"{public}{BASE_PATH}/FHIR"


def patient_exists(nhs_number: str) -> bool:
    return bool(re.fullmatch(r"\d{10}", nhs_number)) and \
        current_sandbox().population.by_nhs_number(nhs_number) is not None


def registered_practice(nhs_number: str) -> str:
    """The ODS code of the patient's registered GP practice ('' when unknown)."""
    person = current_sandbox().population.by_nhs_number(nhs_number)
    return person.gp or "" if person is not None else ""


def service(service_id: str) -> dict | None:
    """A service of the world, as the A&G and directory answers describe it, or None."""
    found = world.current_world().service(service_id)
    return describe(found) if found is not None else None


def advice_service(service_id: str) -> dict | None:
    return service(service_id)


def describe(found: world.HealthcareService) -> dict:
    """What the A&G and directory answers need of a world service (kept in A&G records as it was then)."""
    flows = {world.ADVICE: ["ADVICE_AND_GUIDANCE"], world.RAS: ["REVIEW"]}.get(found.kind, ["BOOKABLE"])
    return {
        "id": found.id, "name": found.name, "ods": found.ods, "kind": found.kind, "advice": found.kind == world.ADVICE,
        "specialty": {"system": resources.SPECIALTY_SYSTEM, "code": found.specialty,
                      "display": found.specialty_display},
        "clinicType": {"system": resources.CLINIC_TYPE_SYSTEM, "code": found.clinic_type},
        "flows": flows, "bookable": found.kind if found.kind in world.BOOKABLE else None,
        "appointmentType": {"code": "FIRST_OUTPATIENT", "display": "First Outpatient"} if found.bookable else None,
        "hours": "9-5 Mon-Fri", "phone": "0" + str(1000000000 + int(found.id) * 7919 % 899999999),
        "version": 1,
    }


def caller(call: ErsCall, ex: ExchangeContext | None) -> world.User | None:
    """The world's user making the call: the user the access token names, else the first user of the caller's
    organisation (NHSD-End-User-Organisation-ODS) holding the business function sent (an unattended call)."""
    found = world.current_world()
    user_id = ex.access.user_id if ex is not None and ex.access is not None else None
    user = found.user(user_id) if user_id else None
    if user is None and call.ods_code:
        user = found.default_user(call.ods_code.strip().upper(), call.business_function)
    return user


# --- A033 / A037 / A035 -------------------------------------------------------------------------------------------
def healthcare_service(described: dict) -> dict:
    """A world service as an R4 HealthcareService."""
    resource: dict = {
        "id": described["id"],
        "meta": {"versionId": str(described.get("version", 1))},
        "language": "en",
        "resourceType": "HealthcareService",
    }
    extensions = []
    if described.get("hours"):
        extensions.append({"url": "https://fhir.nhs.uk/StructureDefinition/Extension-eRS-HoursOfOperation",
                           "valueString": described["hours"]})
    if described.get("instructions"):
        extensions.append({"url": "https://fhir.nhs.uk/StructureDefinition/Extension-eRS-ServiceInstructions",
                           "valueString": described["instructions"]})
    if described.get("phone"):
        extensions.append({"url": "https://fhir.nhs.uk/StructureDefinition/Extension-eRS-HealthcareService-Contact",
                           "extension": [
                               {"url": "purpose", "valueCodeableConcept": {"coding": [
                                   {"system": "http://terminology.hl7.org/CodeSystem/contactentity-type",
                                    "code": "PATINF", "display": "Patient"}]}},
                               {"url": "telecom", "valueContactPoint": {"system": "phone",
                                                                        "value": described["phone"]}}]})
    if extensions:
        resource["extension"] = extensions
    resource["active"] = described.get("active", True)
    resource["location"] = [{"identifier": {"system": ODS_SITE, "value": described.get("site") or described["ods"]}}]
    resource["name"] = described["name"]
    if described.get("appointmentType"):
        resource["type"] = [{"coding": [{"system": R4_CODES + "eRS-AppointmentType", **described["appointmentType"]}]}]
    characteristics = [{"coding": [{"system": R4_CODES + "eRS-RequestFlowType", "code": flow,
                                    "display": FLOW_DISPLAY[flow]}]} for flow in described.get("flows", ())]
    if described.get("bookable") in BOOKABLE_DISPLAY:
        characteristics.append({"coding": [{"system": R4_CODES + "eRS-BookableType", "code": described["bookable"],
                                            "display": BOOKABLE_DISPLAY[described["bookable"]]}]})
    if characteristics:
        resource["characteristic"] = characteristics
    return resource


def _service_or_404(call: ErsCall, ex: ExchangeContext) -> dict:
    service_id = call.params.get("service_id", "")
    described = service(service_id) if _SERVICE_ID.match(service_id) else None
    if described is None:
        raise refuse(ex, "ERS-DIR-001", 404, "REC_NOT_FOUND", f"No service with id {service_id!r}", "service_id")
    return described


def get_service(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A033 (GET) and A037 (HEAD: the transport sends no body): the service, its version as the ETag."""
    described = _service_or_404(call, ex)
    resource = healthcare_service(described)
    return Answer(200, resource, etag=f'W/"{resource["meta"]["versionId"]}"')


def search_services(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A035: the services named by `_id` (comma-separated, at most 20); ids the world does not know are left out."""
    values = call.query.get("_id", [])
    if len(values) != 1 or not values[0].strip():
        raise refuse(ex, "ERS-DIR-002", 400, "REC_BAD_REQUEST", "_id is required, once: one or more service ids "
                     "separated by commas", "_id")
    ids = [part.strip() for part in values[0].split(",")]
    if len(ids) > MAX_SEARCHED_SERVICES or any(not _SERVICE_ID.match(i) for i in ids):
        raise refuse(ex, "ERS-DIR-002", 400, "REC_BAD_REQUEST", f"_id must be at most {MAX_SEARCHED_SERVICES} "
                     "numeric service ids separated by commas", "_id")
    base = fhir_base()
    entries = []
    for service_id in dict.fromkeys(ids):
        described = service(service_id)
        if described is not None:
            entries.append({"fullUrl": f"{base}/R4/HealthcareService/{service_id}",
                            "resource": healthcare_service(described), "search": {"mode": "match"}})
    bundle = _bundle(f"{base}/R4/HealthcareService?_id={values[0]}", entries)
    return Answer(200, bundle)


def _bundle(self_url: str, entries: list[dict]) -> dict:
    stamp = now()
    bundle: dict = {"id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp}, "resourceType": "Bundle",
                    "type": "searchset", "timestamp": stamp, "total": len(entries),
                    "link": [{"relation": "self", "url": self_url}]}
    if entries:
        bundle["entry"] = entries
    return bundle


# --- A030 / A040 ----------------------------------------------------------------------------------------------------
def business_functions(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A030: the calling user's business functions, one PractitionerRole per organisation."""
    user = caller(call, ex)
    if user is None:
        raise refuse(ex, "ERS-DIR-004", 403, "NO_ACCESS", "The calling user is not an e-RS user of this sandbox's "
                     "world: use a healthcare worker token of one, or send NHSD-End-User-Organisation-ODS of one of "
                     "its organisations")
    stamp = now()
    base = fhir_base()
    entries = []
    for ods, functions in _roles_of(user).items():
        role_id = f"PractitionerRole-{ods}-{user.user_id}"
        entries.append({"fullUrl": f"{base}/R4/PractitionerRole/{role_id}", "resource": {
            "id": role_id, "meta": {"lastUpdated": stamp}, "resourceType": "PractitionerRole",
            "practitioner": {"identifier": {"system": SDS_USER_R4, "value": user.user_id}},
            "organization": {"identifier": {"system": ODS, "value": ods}},
            "code": [{"coding": [{"system": R4_CODES + "eRS-BusinessFunction-1", "code": f}]} for f in functions],
        }, "search": {"mode": "match"}})
    ex.add(Finding.passed("ERS-DIR-004", f"Business functions of user {user.user_id}"))
    return Answer(200, _bundle(f"{base}/R4/PractitionerRole", entries))


def _roles_of(user: world.User) -> dict[str, tuple[str, ...]]:
    """Organisation -> business functions of a world user (one organisation each in this world)."""
    return {user.ods: user.business_functions}


def obo_users(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A040: the clinicians a SERVICE_PROVIDER_CLINICIAN_ADMIN of the caller's organisation may act on behalf of."""
    if call.query.get("_query") != ["onBehalfOf"]:
        raise refuse(ex, "ERS-DIR-005", 400, "REC_BAD_REQUEST", "_query=onBehalfOf is required", "_query")
    ods = call.ods_code.strip().upper()
    found = world.current_world()
    clinicians = [u for u in found.users_of(ods) if world.SPC in u.business_functions]
    stamp = now()
    base = fhir_base()
    entries = [{"fullUrl": f"Practitioner/{u.user_id}", "resource": {
        "id": u.user_id, "resourceType": "Practitioner", "meta": {"lastUpdated": stamp},
        "identifier": {"system": SDS_USER_R4, "value": u.user_id},
        "name": [{"family": u.family, "given": [u.given]}]}, "search": {"mode": "match"}} for u in clinicians]
    ex.add(Finding.passed("ERS-DIR-005", f"{len(entries)} users of {ods} to act on behalf of"))
    return Answer(200, _bundle(f"{base}/R4/Practitioner?_query=onBehalfOf", entries))


# --- A041 -----------------------------------------------------------------------------------------------------------
def service_requests(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A041: the referral and the advice and guidance request the session holds under a UBRN, as ServiceRequests."""
    from sandbox.services.ers import advice

    values = call.query.get("identifier", [])
    if len(values) != 1:
        raise refuse(ex, "ERS-DIR-003", 400, "REC_BAD_REQUEST", "identifier is required, once: "
                     f"{UBRN_SYSTEM}|<UBRN>", "identifier")
    system, _, ubrn = values[0].rpartition("|")
    if not re.fullmatch(r"\d{12}", ubrn):
        raise refuse(ex, "ERS-DIR-003", 400, "REC_BAD_REQUEST", f"identifier must be {UBRN_SYSTEM}|<UBRN>, a "
                     "12-digit UBRN", "identifier")
    if system != UBRN_SYSTEM:
        ex.add(Finding.warning("ERS-DIR-003", f"identifier should name its system: {UBRN_SYSTEM}|{ubrn}",
                               "identifier"))
    base = fhir_base()
    entries = []
    referral = _referral_service_request(call, ubrn)
    if referral is not None:
        entries.append(referral)
    found = advice.find(call.session, ubrn)
    if found is not None:
        record = found[0]
        entries.append(_service_request(record["requestId"], record["version"], ubrn, record["patient"],
                                        "completed" if record["state"] in advice.ENDED else "active", "request"))
    bundle = _bundle(f"{base}/R4/ServiceRequest?identifier={values[0]}",
                     [{"fullUrl": f"{base}/R4/ServiceRequest/{e['id']}", "resource": e, "search": {"mode": "match"}}
                      for e in entries])
    return Answer(200, bundle)


def _service_request(request_id: str, version: int, ubrn: str, nhs_number: str, status: str, category: str) -> dict:
    resource: dict = {
        "id": request_id, "meta": {"versionId": str(version)}, "resourceType": "ServiceRequest",
        "identifier": [{"system": UBRN_SYSTEM, "value": ubrn}], "status": status, "intent": "order",
        "category": [{"coding": [{"system": R4_CODES + "message-category-servicerequest", "code": category}]}],
    }
    if category == "request":
        resource["code"] = {"coding": [{"system": R4_CODES + "servicerequest-code", "code": "advice-and-guidance"}]}
    resource["subject"] = {"identifier": {"system": NHS_NUMBER_R4, "value": nhs_number}}
    return resource


def _referral_service_request(call: ErsCall, ubrn: str) -> dict | None:
    """The session's referral of this UBRN (referrals.py) as a ServiceRequest of category referral."""
    from sandbox.services.ers import referrals

    record = referrals.find(call.session, ubrn)
    if record is None:
        return None
    status = {"cancelled": "revoked", "completed": "completed"}.get(record.get("status", "active"), "active")
    return _service_request(record["requestId"], record["version"], ubrn, record["patient"], status, "referral")


def owns(call: ErsCall) -> bool:
    """True for reads about this sandbox's world rather than the published examples: A030 for a world user, A040
    for a world provider organisation (A033, A035 and A041 reach these handlers when no example matches)."""
    from sandbox.web.pipeline import current_exchange

    if call.operation.id == BUSINESS_FUNCTIONS:
        return caller(call, current_exchange()) is not None  # None outside a request
    if call.operation.id == OBO_USERS:
        return world.current_world().organisation(call.ods_code.strip().upper()) is not None
    return False


HANDLERS: dict[str, Callable[[ErsCall, ExchangeContext], Answer]] = {
    GET_SERVICE: get_service,
    SERVICE_VERSION: get_service,
    SEARCH_SERVICES: search_services,
    BUSINESS_FUNCTIONS: business_functions,
    OBO_USERS: obo_users,
    SERVICE_REQUESTS: service_requests,
}

