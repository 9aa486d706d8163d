"""The FHIR STU3 resources of the session's referrals, shaped as the published examples (eRS-ReferralRequest-1,
eRS-Appointment-1, the shortlist List and search criteria Parameters they contain), and the reading of the
Parameters bodies the operations take."""

from __future__ import annotations

from typing import Any

from sandbox.services.ers.world import World

PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
EXT = PROFILE + "Extension-eRS-"
CS = "https://fhir.nhs.uk/STU3/CodeSystem/"
SPECIALTY_SYSTEM = "_baseUrl_/STU3/CodeSystem/SPECIALTY"
CLINIC_TYPE_SYSTEM = CS + "eRS-ClinicType-1"
PRIORITY_SYSTEM = CS + "eRS-Priority-1"
STATE_SYSTEM = CS + "eRS-ReferralState-1"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER = "http://fhir.nhs.net/Id/nhs-number"
ERS_SERVICE = "http://fhir.nhs.net/Id/ers-service"
SDS_USER = "http://fhir.nhs.net/Id/sds-user-id"
PRIORITIES = {"ROUTINE": "Routine", "URGENT": "Urgent", "TWO_WEEK_WAIT": "2 Week Wait"}
APPOINTMENT_PROFILES = [PROFILE + "eRS-Appointment-1",
                        "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Appointment-1"]


# --- reading Parameters -------------------------------------------------------------------------------------------
def parameters(body: Any) -> list[dict]:
    """The `parameter` entries of a Parameters body ([] when the body is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("parameter"), list):
        return []
    return [p for p in body["parameter"] if isinstance(p, dict)]


def param(body: Any, name: str) -> dict | None:
    return next((p for p in parameters(body) if p.get("name") == name), None)


def coding_code(value: Any) -> str | None:
    """The code of a valueCoding or of a valueCodeableConcept's first coding."""
    if isinstance(value, dict) and isinstance(value.get("coding"), list) and value["coding"]:
        value = value["coding"][0]
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return value["code"]
    return None


def param_code(body: Any, name: str) -> str | None:
    p = param(body, name)
    if p is None:
        return None
    return coding_code(p.get("valueCoding") or p.get("valueCodeableConcept"))


def param_string(body: Any, name: str) -> str | None:
    p = param(body, name)
    value = p.get("valueString") if p is not None else None
    return value if isinstance(value, str) else None


def param_identifier(body: Any, name: str) -> str | None:
    p = param(body, name)
    ident = p.get("valueIdentifier") if p is not None else None
    value = ident.get("value") if isinstance(ident, dict) else None
    return value if isinstance(value, str) else None


def shortlist_of(list_resource: Any) -> tuple[list[str], dict] | None:
    """(service ids, search criteria as {priority, specialty, clinicType, ...}) of a shortlist List, None when it
    is not one."""
    if not isinstance(list_resource, dict) or not isinstance(list_resource.get("entry"), list):
        return None
    ids = []
    for entry in list_resource["entry"]:
        item = entry.get("item") if isinstance(entry, dict) else None
        ident = item.get("identifier") if isinstance(item, dict) else None
        value = ident.get("value") if isinstance(ident, dict) else None
        if not isinstance(value, str):
            return None
        ids.append(value)
    criteria: dict = {}
    for contained in list_resource.get("contained", []) or []:
        if isinstance(contained, dict) and contained.get("resourceType") == "Parameters":
            for p in parameters(contained):
                name = p.get("name")
                code = coding_code(p.get("valueCoding") or p.get("valueCodeableConcept"))
                if name in ("priority", "specialty", "clinicType") and code:
                    criteria[name] = code
                elif isinstance(name, str):
                    scalar = next((v for k, v in p.items() if k.startswith("value") and not isinstance(v, dict)), None)
                    if scalar is not None:
                        criteria[name] = scalar
    return ids, criteria


# --- writing resources --------------------------------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None = None) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def state_extension(record: dict) -> dict:
    from sandbox.services.ers.referrals import STATE_DISPLAY

    parts: list[dict] = [{"url": "state", "valueCoding": _coding(STATE_SYSTEM, record["state"],
                                                                 STATE_DISPLAY.get(record["state"]))}]
    reason = record.get("reason")
    if reason:
        parts.append({"url": "reason", "valueCoding": _coding(reason["system"], reason["code"], reason.get("display"))})
    if record.get("comments"):
        parts.append({"url": "comments", "valueString": record["comments"]})
    return {"url": EXT + "ReferralState-1", "extension": parts}


def criteria_parameters(record: dict) -> dict:
    criteria = record.get("criteria") or {}
    parameter = [{"name": "priority", "valueCoding": _coding(PRIORITY_SYSTEM, record["priority"])}]
    if record.get("specialty"):
        parameter.append({"name": "specialty", "valueCoding": _coding(SPECIALTY_SYSTEM, record["specialty"])})
    if record.get("clinicType"):
        parameter.append({"name": "clinicType", "valueCoding": _coding(CLINIC_TYPE_SYSTEM, record["clinicType"])})
    for name in ("postcode", "distanceLimit", "ageAndGenderAppropriate"):
        if name in criteria:
            value = criteria[name]
            kind = "valueBoolean" if isinstance(value, bool) else "valueUnsignedInt" if isinstance(value, int) \
                else "valueString"
            parameter.append({"name": name, kind: value})
    parameter.append({"name": "commissioningProvisioning", "valueCoding": _coding(
        CS + "eRS-CommissioningProvisioning-1", "ALL_AVAILABLE_FOR_BOOKING")})
    return {"id": "serviceSearchCriteria", "meta": {"profile": [PROFILE + "eRS-ServiceSearchCriteria-Parameters-1"]},
            "resourceType": "Parameters", "parameter": parameter}


def shortlist_list(record: dict, world: World) -> dict:
    entries = []
    for service_id in record.get("shortlist", []):
        service = world.service(service_id)
        item: dict = {"identifier": {"system": ERS_SERVICE, "value": service_id}}
        if service is not None:
            item["display"] = service.name
        entries.append({"item": item})
    return {"id": "shortlist", "meta": {"profile": [PROFILE + "eRS-Shortlist-List-1"]}, "resourceType": "List",
            "extension": [{"url": EXT + "Shortlist-SearchCriteria-1",
                           "valueReference": {"reference": "#serviceSearchCriteria"}}],
            "status": "current", "mode": "snapshot", "entry": entries}


def appointment_resource(appointment: dict, ubrn: str, referral_version: int, patient: str, world: World,
                         contained: bool = False) -> dict:
    """An eRS-Appointment-1 (a booking, or a deferral: `proposed` with its review reason)."""
    service = world.service(appointment["service"])
    resource: dict = {
        "id": "appointment" if contained else appointment["id"],
        "meta": {"versionId": str(appointment["version"]), "profile": list(APPOINTMENT_PROFILES)},
        "language": "en", "resourceType": "Appointment", "status": appointment["status"],
    }
    if appointment.get("reason"):
        reason = appointment["reason"]
        resource["reason"] = [{"coding": [_coding(reason["system"], reason["code"], reason.get("display"))]}]
    resource["description"] = "e-Referral Appointment"
    if appointment.get("start"):
        resource["start"], resource["end"] = appointment["start"], appointment["end"]
    if appointment.get("slot"):
        resource["slot"] = [{"reference": f"Slot/{appointment['slot']}"}]
    resource["created"] = appointment["created"]
    if appointment.get("comment"):
        resource["comment"] = appointment["comment"]
    resource["incomingReferral"] = [{"reference": f"ReferralRequest/{ubrn}/_history/{referral_version}"}]
    actor: dict = {"identifier": {"system": ERS_SERVICE, "value": appointment["service"]}}
    if service is not None:
        actor["display"] = service.name
    participants = [{"actor": actor, "status": "accepted"},
                    {"actor": {"identifier": {"system": NHS_NUMBER, "value": patient}}, "status": "accepted"}]
    if appointment.get("clinician"):
        participants.append({"type": {"coding": [{"system": "http://hl7.org/fhir/ValueSet/encounter-participant-type",
                                                  "code": "CON"}]},
                             "actor": {"identifier": {"system": SDS_USER, "value": appointment["clinician"]}},
                             "status": "accepted"})
    resource["participant"] = participants
    return resource


def referral_resource(record: dict, world: World) -> dict:
    """The eRS-ReferralRequest-1 of one version of a referral."""
    extensions: list[dict] = []
    appointment = record.get("appointment")
    if appointment is not None:
        extensions += [{"url": EXT + "Appointment-1", "valueReference": {"reference": "#appointment"}},
                       {"url": EXT + "Appointment-Reference-1",
                        "valueReference": {"reference": f"Appointment/{appointment['id']}"}}]
    if record.get("clinicalInfoFirstSubmitted"):
        extensions.append({"url": EXT + "ClinicalInfoFirstSubmitted-1",
                           "valueDateTime": record["clinicalInfoFirstSubmitted"]})
    extensions += [
        {"url": EXT + "eReferralPathwayStart-1", "valueInstant": record["pathwayStart"]},
        {"url": EXT + "ReferralPriority-1", "valueCodeableConcept": {"coding": [
            _coding(PRIORITY_SYSTEM, record["priority"], PRIORITIES.get(record["priority"]))]}},
        {"url": EXT + "ReferralShortlist-1", "valueReference": {"reference": "#shortlist"}},
    ]
    if record.get("commRuleOrg"):
        extensions.append({"url": EXT + "Commissioning-Rule-Org-1",
                           "valueIdentifier": {"system": ODS, "value": record["commRuleOrg"]}})
    extensions.append(state_extension(record))
    contained: list[dict] = [criteria_parameters(record), shortlist_list(record, world)]
    if appointment is not None:
        contained.append(appointment_resource(appointment, record["ubrn"], record["version"], record["patient"],
                                              world, contained=True))
    documents = [d for d in record.get("documents", []) if isinstance(d, dict)]
    contained += documents
    resource: dict = {
        "id": record["ubrn"],
        "meta": {"versionId": str(record["version"]), "profile": [PROFILE + "eRS-ReferralRequest-1"]},
        "resourceType": "ReferralRequest", "extension": extensions, "contained": contained,
        "status": record["status"],
    }
    if record.get("specialty"):
        display = world_specialty_display(record["specialty"])
        resource["specialty"] = {"coding": [_coding(SPECIALTY_SYSTEM, record["specialty"], display)]}
    resource["subject"] = {"identifier": {"system": NHS_NUMBER, "value": record["patient"]}}
    requester = record.get("referrer", {})
    if requester.get("user") or requester.get("ods"):
        resource["requester"] = {"agent": {"identifier": {"system": SDS_USER, "value": requester.get("user", "")}},
                                 "onBehalfOf": {"identifier": {"system": ODS, "value": requester.get("ods", "")}}}
    resource["supportingInfo"] = [{"reference": f"#{d['id']}"} for d in documents if d.get("id")]
    resource["intent"] = "plan"
    resource["identifier"] = [{"system": "https://fhir.nhs.uk/Id/ers-request-id", "value": record["requestId"]}]
    return resource


def world_specialty_display(code: str) -> str | None:
    from sandbox.services.ers.world import SPECIALTIES

    entry = SPECIALTIES.get(code)
    return entry[0] if entry else None


def updated_parameters(profile: str, referral: dict, appointment: dict | None = None) -> dict:
    """The Parameters answer of A032 and A036: the updated referral (and appointment)."""
    parameter = [{"name": "updatedReferralRequest", "resource": referral}]
    if appointment is not None:
        parameter.append({"name": "updatedAppointment", "resource": appointment})
    return {"meta": {"profile": [PROFILE + profile]}, "resourceType": "Parameters", "parameter": parameter}
