"""What a referrer can book: A015 free slots of a bookable service (generated from the world, paged with `_count`
and `page`, minus the slots the session has booked), and A010 the services a patient can be referred to (the world's
services filtered by the search criteria)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from sandbox.conformance.findings import Finding
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.services.ers.referral_requests import require_parameters, require_patient
from sandbox.services.ers.resources import (
    CS,
    ERS_SERVICE,
    SPECIALTY_SYSTEM,
    coding_code,
    param,
    param_code,
    parameters,
)
from sandbox.services.ers.world import (
    ADVICE,
    APPOINTMENT_TYPE,
    BOOKABLE,
    FLOW,
    HealthcareService,
    current_world,
)
from sandbox.web.pipeline import ExchangeContext

SLOTS_PER_SERVICE = 24
HOURS = (9, 11, 14)  # three clinics a day, an hour each
DEFAULT_COUNT = 20
MAX_COUNT = 100
SLOT_PROFILE = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Slot-1"
SCHEDULE_PROFILE = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Schedule-1"
SERVICE_PARAM = "schedule.actor:HealthcareService"
CLINICIAN_PARAM = "schedule.actor:Practitioner"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def service_slots(service: HealthcareService) -> list[dict]:
    """Every slot of a bookable service, from tomorrow on (the same all day, in every process)."""
    if service.kind not in BOOKABLE or not service.clinicians:
        return []
    today = datetime.now(UTC).date()
    slots = []
    for index in range(SLOTS_PER_SERVICE):
        day = today + timedelta(days=1 + index // len(HOURS))
        start = datetime.combine(day, time(HOURS[index % len(HOURS)]), tzinfo=UTC)
        clinician = service.clinicians[index % len(service.clinicians)]
        slots.append({"id": f"{service.id}{index + 1:03d}", "service": service.id, "clinician": clinician,
                      "start": _iso(start), "end": _iso(start + timedelta(hours=1))})
    return slots


def find_slot(slot_id: str) -> dict | None:
    world = current_world()
    for service in world.services.values():
        if slot_id.startswith(service.id):
            return next((s for s in service_slots(service) if s["id"] == slot_id), None)
    return None


def _one(call: ErsCall, ex: ExchangeContext, name: str, required: bool) -> str | None:
    values = call.query.get(name, [])
    if not values:
        if required:
            raise R.refuse(ex, R.REQ_SLOTS, 400, "MISSING_PARAMETER", f"The query parameter {name!r} is required",
                           name)
        return None
    if len(values) > 1:
        raise R.refuse(ex, R.REQ_SLOTS, 400, "INVALID_VALUE", f"{name!r} is sent {len(values)} times: once only", name)
    return values[0]


def _number(call: ErsCall, ex: ExchangeContext, name: str, default: int, low: int, high: int, label: str) -> int:
    text = _one(call, ex, name, required=False)
    if text is None:
        return default
    value = R.whole_number(text)
    if value is None or not low <= value <= high:
        raise R.refuse(ex, R.REQ_SLOTS, 400, "INVALID_VALUE", f"'{label}' ({text}) is invalid.", name)
    return value


def retrieve_slots(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A015: a searchset of free Slots (and their Schedules) of one service, one page."""
    service_id = _one(call, ex, SERVICE_PARAM, required=True)
    for name, wanted in (("status", "free"), ("appointmentType", "ROUTINE")):
        value = _one(call, ex, name, required=True)
        if value != wanted:
            raise R.refuse(ex, R.REQ_SLOTS, 400, "INVALID_CODE", f"{name}={value!r}: only {wanted!r} is supported", name)
    clinician = _one(call, ex, CLINICIAN_PARAM, required=False)
    count = _number(call, ex, "_count", DEFAULT_COUNT, 1, MAX_COUNT, "Page Size")
    service = current_world().service(service_id or "")
    if service is None:
        raise R.refuse(ex, R.REQ_SLOTS, 400, "REFERENCE_NOT_FOUND", f"No service {service_id!r}", SERVICE_PARAM)
    free = [s for s in service_slots(service) if R.slot_taken(call.session, s["id"]) is None
            and (clinician is None or s["clinician"] == clinician)]
    pages = max(1, -(-len(free) // count))
    page = _number(call, ex, "page", 1, 1, pages, "Page Number")
    shown = free[(page - 1) * count:page * count]
    ex.add(Finding.passed(R.REQ_SLOTS, f"{len(shown)} of {len(free)} free slots of service {service.id}, page {page}"))
    query = [(SERVICE_PARAM, service.id), ("appointmentType", "ROUTINE"), ("_count", str(count)), ("status", "free")]
    if clinician is not None:
        query.append((CLINICIAN_PARAM, clinician))
    links = [{"relation": "self", "url": "_baseUrl_/STU3/Slot?" + urlencode(query + [("page", str(page))])}]
    if page < pages:
        links.append({"relation": "next", "url": "_baseUrl_/STU3/Slot?" + urlencode(query + [("page", str(page + 1))])})
    entries = [{"fullUrl": f"_baseUrl_/STU3/Slot/{s['id']}", "resource": {
        "id": s["id"], "meta": {"profile": [SLOT_PROFILE]}, "resourceType": "Slot",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/alternative-slot", "value": f"USRN-{s['id']}"}],
        "schedule": {"reference": f"Schedule/{service.id}-{s['clinician']}"}, "status": "free",
        "start": s["start"], "end": s["end"]}, "search": {"mode": "match"}} for s in shown]
    for schedule in sorted({s["clinician"] for s in shown}):
        schedule_id = f"{service.id}-{schedule}"
        entries.append({"fullUrl": f"_baseUrl_/STU3/Schedule/{schedule_id}", "resource": {
            "id": schedule_id, "meta": {"profile": [SCHEDULE_PROFILE]}, "resourceType": "Schedule",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ers-schedule", "value": schedule_id}],
            "actor": [{"identifier": {"system": ERS_SERVICE, "value": service.id}}]}, "search": {"mode": "include"}})
    body = {"id": str(uuid.uuid4()), "meta": {
        "lastUpdated": R.now(), "profile": ["http://hl7.org/fhir/STU3/StructureDefinition/Bundle"]},
        "resourceType": "Bundle", "type": "searchset", "total": len(free), "link": links, "entry": entries}
    return Answer(200, body)


# --- A010 service search ------------------------------------------------------------------------------------------
def _criteria(ex: ExchangeContext, body: dict) -> dict:
    entry = param(body, "searchCriteria")
    resource = entry.get("resource") if entry is not None else None
    if not isinstance(resource, dict):
        raise R.refuse(ex, R.REQ_SEARCH, 422, "MISSING_VALUE", "The 'searchCriteria' parameter (a "
                       "eRS-ServiceSearchCriteria-Parameters-1) is required", "parameter[searchCriteria]")
    criteria: dict = {}
    for p in parameters(resource):
        code = coding_code(p.get("valueCoding") or p.get("valueCodeableConcept"))
        if p.get("name") in ("priority", "specialty", "clinicType") and code:
            criteria[p["name"]] = code
        elif p.get("name") == "namedClinician":
            ident = p.get("valueIdentifier")
            criteria["namedClinician"] = ident.get("value") if isinstance(ident, dict) else None
        elif p.get("name") == "service":
            ident = p.get("valueIdentifier")
            criteria["service"] = ident.get("value") if isinstance(ident, dict) else None
    if "priority" not in criteria:
        raise R.refuse(ex, R.REQ_SEARCH, 422, "MISSING_VALUE", "The search criteria need a 'priority'",
                       "parameter[searchCriteria].priority")
    return criteria


def search_services(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A010: the world's services a patient may be referred to, filtered by specialty, clinic type, named clinician
    or service id, and by the request type (appointment or advice and guidance)."""
    body = require_parameters(call, ex)
    require_patient(call, ex, body)
    criteria = _criteria(ex, body)
    request_type = param_code(body, "requestType") or "APPOINTMENT_REQUEST"
    if request_type not in ("APPOINTMENT_REQUEST", "ADVICE_AND_GUIDANCE_REQUEST"):
        raise R.refuse(ex, R.REQ_SEARCH, 422, "INVALID_CODE", f"requestType {request_type!r} is not "
                       "APPOINTMENT_REQUEST or ADVICE_AND_GUIDANCE_REQUEST", "parameter[requestType]")
    world = current_world()
    # An appointment request finds bookable and triage services alike; advice requests find advice services.
    flows = ("ADVICE_AND_GUIDANCE_REQUEST",) if request_type == "ADVICE_AND_GUIDANCE_REQUEST" else (
        "APPOINTMENT_REQUEST", "TRIAGE_REQUEST")
    found = [s for s in world.services.values()
             if FLOW[s.kind] in flows
             and criteria.get("specialty") in (None, s.specialty)
             and criteria.get("clinicType") in (None, s.clinic_type)
             and criteria.get("service") in (None, s.id)
             and (criteria.get("namedClinician") is None or criteria["namedClinician"] in s.clinicians)]
    ex.add(Finding.passed(R.REQ_SEARCH, f"{len(found)} service(s) found for {request_type}"))
    entries = [_service_item(s, world) for s in found]
    body = {"meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchServices-List-1"]},
            "resourceType": "List", "status": "current", "mode": "snapshot", "entry": entries}
    return Answer(200, body)


def _service_item(service: HealthcareService, world) -> dict:
    """One service as the search lists it (Extension-eRS-ServiceSummaryView-1)."""
    provider = world.organisation(service.ods)
    bookable = service.kind if service.kind in BOOKABLE else "UNSPECIFIED"
    summary = [
        {"url": "serviceName", "valueString": service.name},
        {"url": "specialty", "valueCodeableConcept": {"coding": [{"system": SPECIALTY_SYSTEM,
                                                                  "code": service.specialty}]}},
        {"url": "genderTreated", "valueCodeableConcept": {"coding": [{"system": CS + "eRS-GenderTreated-1",
                                                                      "code": "MALE_AND_FEMALE"}]}},
        {"url": "bookableType", "valueCodeableConcept": {"coding": [{"system": CS + "eRS-BookableType-1",
                                                                     "code": bookable}]}},
        {"url": "supportedAppointmentType", "valueCodeableConcept": {"coding": [
            {"system": CS + "eRS-AppointmentType-1", "code": APPOINTMENT_TYPE[service.kind]}]}},
        {"url": "referralLetterRequired", "valueBoolean": service.kind != ADVICE},
        {"url": "location", "valueReference": {
            "identifier": {"system": "https://directory.spineservices.nhs.uk/STU3/Organization", "value": service.ods},
            "display": provider.name if provider else service.ods}},
        {"url": "supportedRequestFlowType", "valueCodeableConcept": {"coding": [
            {"system": CS + "eRS-RequestFlowType-1", "code": FLOW[service.kind]}]}},
    ]
    return {"extension": [{"extension": [{"url": "displayProminently", "valueBoolean": False},
                                         {"url": "indicativeAppointmentWaitTime",
                                          "valueUnsignedInt": service.wait_weeks * 7}],
                           "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-ServiceSearch-ListItem-1"}],
            "item": {"extension": [{"extension": summary, "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                                                                 "Extension-eRS-ServiceSummaryView-1"}],
                     "identifier": {"system": ERS_SERVICE, "value": service.id}}}
