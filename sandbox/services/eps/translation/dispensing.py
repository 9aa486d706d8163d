"""The dispensing messages as live EPS sends them to Spine (request/dispense/release.ts, dispense-notification.ts,
dispense-claim.ts, return/return.ts, withdraw/withdraw.ts). Release, return and withdraw follow live's structure;
the dispense notification and the claim carry what Spine acts on (the dispensed items' statuses, the prescription
and its release, the dispenser) rather than every element live writes. The published schema set holds no schema
for these interactions, so they are checked by the sandbox's own structural rules (validate.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lxml import etree

from sandbox.services.eps.context import (
    CLAIM,
    DISPENSE,
    NHS_NUMBER_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    RELEASE,
    RETURN,
    WITHDRAW,
)
from sandbox.services.eps.resources import entries, find_identifier, first, parameter
from sandbox.services.eps.translation.agents import JOB_ROLE_CODE, JOB_ROLE_NAME, ROLE_PROFILE, SDS_USER
from sandbox.services.eps.translation.agents import address as convert_address
from sandbox.services.eps.translation.agents import telecom as convert_telecom
from sandbox.services.eps.translation.common import (
    ANNOTATION,
    ITEM_STATUS,
    ODS,
    ORG_TYPE,
    PRESCRIPTION_STATUS,
    ROOT_NHS_NUMBER,
    ROOT_ODS,
    ROOT_SDS_JOB_ROLE,
    ROOT_SDS_ROLE_PROFILE,
    ROOT_SDS_USER,
    ROOT_SHORT_FORM_ID,
    Untranslatable,
    as_dict,
    as_list,
    code,
    coding_or_none,
    el,
    global_id,
    hl7_datetime,
    hl7_from_iso,
    ident,
    identifier,
    identifier_or_none,
    message_id,
    pertinent,
    resolve,
    root,
)

# Interaction ids as live names them (models/hl7-v3 Hl7InteractionIdentifier).
NOMINATED_RELEASE = "PORX_IN060102SM30"
PATIENT_RELEASE = "PORX_IN132004SM30"
DISPENSE_NOTIFICATION = "PORX_IN080101SM31"
DISPENSE_CLAIM = "PORX_IN090101SM31"
DISPENSE_PROPOSAL_RETURN = "PORX_IN100101SM31"
DISPENSER_WITHDRAW = "PORX_IN510101SM31"
RETURN_REASON = "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-return-status-reason"
WITHDRAW_REASON = "https://fhir.nhs.uk/CodeSystem/EPS-task-dispense-withdraw-reason"
DISPENSE_TYPE = "https://fhir.nhs.uk/CodeSystem/medicationdispense-type"
BUSINESS_STATUS_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-EPS-TaskBusinessStatus"
RETURN_REASON_CODES = "2.16.840.1.113883.2.1.3.2.4.16.28"
WITHDRAW_TYPE_CODES = "2.16.840.1.113883.2.1.3.2.4.17.109"
WITHDRAW_REASON_CODES = "2.16.840.1.113883.2.1.3.2.4.17.110"
NOT_SPECIFIED_ORG_TYPE = "999"


def _contained(resource: Any, reference: Any, path: str) -> dict:
    """A contained resource named by '#id' (live's getContainedPractitionerRoleViaReference …)."""
    target = as_dict(reference).get("reference")
    for item in as_list(as_dict(resource).get("contained")):
        if isinstance(item, dict) and isinstance(target, str) and f"#{item.get('id')}" == target:
            return item
    raise Untranslatable(f"Contained resource '{target}' not found.", path)


def _organization(parent: etree._Element, organization: dict, fallback_telecom: dict | None) -> None:
    """representedOrganization as live's convertOrganization writes it (code 999, the first telecom and
    address)."""
    element = el(parent, "representedOrganization", {"classCode": "ORG", "determinerCode": "INSTANCE"})
    ident(element, ROOT_ODS, identifier(organization.get("identifier"), ODS, "Organization.identifier"))
    code(element, ORG_TYPE, NOT_SPECIFIED_ORG_TYPE)
    if organization.get("name"):
        el(element, "name", text=str(organization["name"]))
    contacts = as_list(organization.get("telecom"))
    contact = contacts[0] if contacts and isinstance(contacts[0], dict) else fallback_telecom
    if contact:
        convert_telecom(element, contact, "Organization.telecom")
    addresses = as_list(organization.get("address"))
    if addresses and isinstance(addresses[0], dict):
        convert_address(element, addresses[0], "Organization.address")


def _agent_person(parent: etree._Element, role: dict, organization: dict) -> etree._Element:
    """AgentPerson from a dispenser's PractitionerRole and Organization (live's
    createAgentPersonUsingPractitionerRoleAndOrganization; the person by SDS user id or professional code)."""
    agent = el(parent, "AgentPerson", {"classCode": "AGNT"})
    ident(agent, ROOT_SDS_ROLE_PROFILE, identifier(role.get("identifier"), ROLE_PROFILE, "PractitionerRole.identifier"))
    job_role = coding_or_none(role.get("code"), JOB_ROLE_NAME) or coding_or_none(role.get("code"), JOB_ROLE_CODE)
    if job_role is None:
        raise Untranslatable(f"Expected exactly one coding with system '{JOB_ROLE_NAME}'.", "PractitionerRole.code")
    code(agent, ROOT_SDS_JOB_ROLE, str(job_role.get("code")))
    contacts = as_list(role.get("telecom"))
    first_telecom = contacts[0] if contacts and isinstance(contacts[0], dict) else None
    if first_telecom:
        convert_telecom(agent, first_telecom, "PractitionerRole.telecom")
    practitioner = as_dict(role.get("practitioner"))
    person = el(agent, "agentPerson", {"classCode": "PSN", "determinerCode": "INSTANCE"})
    person_id = as_dict(practitioner.get("identifier"))
    value = person_id.get("value")
    if not isinstance(value, str):
        raise Untranslatable("practitionerRole.practitioner should be an Identifier", "PractitionerRole.practitioner")
    ident(person, ROOT_SDS_USER if person_id.get("system") == SDS_USER else "1.2.826.0.1285.0.2.1.54", value)
    if isinstance(practitioner.get("display"), str):
        el(person, "name", text=practitioner["display"])
    _organization(agent, organization, first_telecom)
    return agent


def _author(parent: etree._Element, resource: dict, reference: Any, path: str, bundle: Any = None) -> None:
    """The author from a contained PractitionerRole; its Organization contained too, or (a dispense
    notification) an entry of the Bundle."""
    role = _contained(resource, reference, path)
    org_reference = role.get("organization")
    if bundle is not None and not str(as_dict(org_reference).get("reference", "")).startswith("#"):
        organization = resolve(bundle, org_reference, "PractitionerRole.organization")
    else:
        organization = _contained(resource, org_reference, "PractitionerRole.organization")
    _agent_person(el(parent, "author", {"typeCode": "AUT"}), role, organization)


def _prescription_id_act(parent: etree._Element, tag: str, act_tag: str, act_code: str, short_form: str,
                         context: str = "true") -> None:
    info = pertinent(parent, tag, False, contextConductionInd=context)
    act = el(info, act_tag, {"classCode": "OBS", "moodCode": "EVN"})
    code(act, ANNOTATION, act_code)
    ident(act, ROOT_SHORT_FORM_ID, short_form, tag="value")


def _short_form(body: Any, path: str) -> str:
    found = find_identifier(body, PRESCRIPTION_ID_SYSTEM)
    if not found:
        raise Untranslatable("Expected the short-form prescription id.", path)
    return found


def _reason(parent: etree._Element, tag: str, act_tag: str, act_code: str, concept: Any, system: str,
            code_system: str, context: str) -> None:
    reason = coding_or_none(concept, system)
    if reason is None:
        raise Untranslatable(f"Expected exactly one coding with system '{system}'.", "Task.statusReason")
    act = el(pertinent(parent, tag, False, contextConductionInd=context), act_tag,
             {"classCode": "OBS", "moodCode": "EVN"})
    code(act, ANNOTATION, act_code)
    code(act, code_system, str(reason.get("code")), reason.get("display"), tag="value")


# --- release ----------------------------------------------------------------------------------------------------------

def release(body: Any, now: datetime) -> tuple[str, str, etree._Element]:
    """Task/$release: with a group-identifier a patient (by prescription id) release, else a nominated one; the
    message id is new (Parameters carry none), the time is now."""
    owner = as_dict(parameter(body, "owner"))
    agent = as_dict(parameter(body, "agent"))
    short_form = as_dict(as_dict(parameter(body, "group-identifier")).get("valueIdentifier")).get("value")
    tag = "PatientPrescriptionReleaseRequest" if short_form else "NominatedPrescriptionReleaseRequest"
    message_uuid = str(uuid.uuid4())
    request = root(tag)
    request.set("classCode", "INFO")
    request.set("moodCode", "RQO")
    global_id(request, message_uuid)
    el(request, "effectiveTime", {"value": hl7_datetime(now)})
    organization = as_dict(owner.get("resource")) or {
        "identifier": [as_dict(owner.get("valueIdentifier"))]}
    if not identifier_or_none(organization.get("identifier"), ODS):
        raise Untranslatable("Expected the owner's ODS code.", "Parameters.parameter('owner')")
    role = as_dict(agent.get("resource"))
    author = el(request, "author", {"typeCode": "AUT"})
    if role:
        _agent_person(author, role, organization)
    else:
        org_agent = el(author, "AgentPerson", {"classCode": "AGNT"})
        _organization(org_agent, organization, None)
    if short_form:
        _prescription_id_act(request, "pertinentInformation", "pertinentPrescriptionID", "PID", str(short_form))
    return (PATIENT_RELEASE if short_form else NOMINATED_RELEASE), message_uuid, request


# --- return and withdraw (Task) ---------------------------------------------------------------------------------------

def _task_head(task: Any, tag: str, class_code: str) -> tuple[str, etree._Element]:
    message_uuid = message_id(task, "Task.identifier")
    element = root(tag)
    element.set("classCode", class_code)
    element.set("moodCode", "EVN")
    global_id(element, message_uuid)
    el(element, "effectiveTime", {"value": hl7_from_iso(as_dict(task).get("authoredOn"), "Task.authoredOn")})
    return message_uuid, element


def _focus_id(task: Any) -> str:
    value = as_dict(as_dict(as_dict(task).get("focus")).get("identifier")).get("value")
    if not isinstance(value, str):
        raise Untranslatable("Expected Task.focus.identifier.", "Task.focus.identifier")
    return value


def return_(task: Any, now: datetime) -> tuple[str, str, etree._Element]:
    message_uuid, element = _task_head(task, "DispenseProposalReturn", "INFO")
    _author(element, task, as_dict(task).get("requester"), "Task.requester")
    _prescription_id_act(element, "pertinentInformation1", "pertinentPrescriptionID", "PID",
                         _short_form(as_dict(task).get("groupIdentifier"), "Task.groupIdentifier"))
    _reason(element, "pertinentInformation3", "pertinentReturnReason", "RR", as_dict(task).get("statusReason"),
            RETURN_REASON, RETURN_REASON_CODES, "false")
    reversal = el(element, "reversalOf", {"inversionInd": "true", "negationInd": "false", "typeCode": "REV"})
    el(reversal, "seperatableInd", {"value": "true"})
    global_id(el(reversal, "priorPrescriptionReleaseResponseRef", {"classCode": "INFO", "moodCode": "EVN"}),
              _focus_id(task))
    return DISPENSE_PROPOSAL_RETURN, message_uuid, element


def withdraw(task: Any, now: datetime) -> tuple[str, str, etree._Element]:
    message_uuid, element = _task_head(task, "ETPWithdraw", "ALRT")
    nhs_number = identifier(as_dict(as_dict(task).get("for")).get("identifier"), NHS_NUMBER_SYSTEM,
                            "Task.for.identifier")
    patient = el(el(element, "recordTarget", {"typeCode": "RCT"}), "Patient", {"classCode": "PAT"})
    ident(patient, ROOT_NHS_NUMBER, nhs_number)
    _author(element, task, as_dict(task).get("requester"), "Task.requester")
    _prescription_id_act(element, "pertinentInformation3", "pertinentWithdrawID", "WID",
                         _short_form(as_dict(task).get("groupIdentifier"), "Task.groupIdentifier"), context="false")
    kind = el(pertinent(element, "pertinentInformation2", False, contextConductionInd="true"),
              "pertinentWithdrawType", {"classCode": "OBS", "moodCode": "EVN"})
    code(kind, ANNOTATION, "PWT")
    code(kind, WITHDRAW_TYPE_CODES, "LD", "Last Dispense", tag="value")
    _reason(element, "pertinentInformation5", "pertinentWithdrawReason", "PWR", as_dict(task).get("statusReason"),
            WITHDRAW_REASON, WITHDRAW_REASON_CODES, "true")
    ref = el(element, "pertinentInformation4", {"inversionInd": "false", "negationInd": "false", "typeCode": "PERT"})
    el(ref, "seperatableInd", {"value": "true"})
    global_id(el(ref, "pertinentDispenseNotificationRef", {"classCode": "INFO", "moodCode": "EVN"}), _focus_id(task))
    return DISPENSER_WITHDRAW, message_uuid, element


# --- dispense notification and claim ----------------------------------------------------------------------------------

def _patient_reference(parent: etree._Element, body: Any) -> None:
    nhs_number = find_identifier(body, NHS_NUMBER_SYSTEM)
    if not nhs_number:
        raise Untranslatable("Expected the patient's NHS number.", "Patient.identifier")
    patient = el(el(parent, "recordTarget", {"typeCode": "RCT"}), "patient", {"classCode": "PAT"})
    ident(patient, ROOT_NHS_NUMBER, nhs_number)


def _item_status(parent: etree._Element, status: str) -> None:
    act = el(pertinent(parent, "pertinentInformation3", False, contextConductionInd="true"), "pertinentItemStatus",
             {"classCode": "OBS", "moodCode": "EVN"})
    code(act, ANNOTATION, "IS")
    code(act, ITEM_STATUS, status, tag="value")


def _prescription_status(parent: etree._Element, status: str) -> None:
    act = el(pertinent(parent, "pertinentInformation4", False, contextConductionInd="true"),
             "pertinentPrescriptionStatus", {"classCode": "OBS", "moodCode": "EVN"})
    code(act, ANNOTATION, "PS")
    code(act, PRESCRIPTION_STATUS, status, tag="value")


def _dispenser_author(parent: etree._Element, dispense: dict, bundle: Any) -> None:
    """The dispenser: the MedicationDispense's performer, a contained PractitionerRole and its Organization."""
    for performer in as_list(dispense.get("performer")):
        reference = as_dict(as_dict(performer).get("actor"))
        if reference.get("reference", "").startswith("#"):
            _author(parent, dispense, reference, "MedicationDispense.performer.actor", bundle)
            return
    raise Untranslatable("Expected a performer referencing a contained PractitionerRole.",
                         "MedicationDispense.performer")


def dispense_notification(bundle: Any, now: datetime) -> tuple[str, str, etree._Element]:
    dispenses = entries(bundle, "MedicationDispense")
    if not dispenses:
        raise Untranslatable("Expected at least one MedicationDispense.",
                             "Bundle.entry.resource.ofType(MedicationDispense)")
    message_uuid = message_id(bundle, "Bundle.identifier")
    notification = root("DispenseNotification")
    notification.set("classCode", "INFO")
    notification.set("moodCode", "EVN")
    global_id(notification, message_uuid)
    handed_over = dispenses[0].get("whenHandedOver")
    el(notification, "effectiveTime", {"value": hl7_from_iso(handed_over, "MedicationDispense.whenHandedOver")
                                       if handed_over else hl7_datetime(now)})
    _patient_reference(notification, bundle)
    _dispenser_author(notification, dispenses[0], bundle)
    supply = el(pertinent(notification, "pertinentInformation1", False, contextConductionInd="true"),
                "pertinentSupplyHeader", {"classCode": "SPLY", "moodCode": "EVN"})
    global_id(supply, str(uuid.uuid5(uuid.NAMESPACE_URL, message_uuid)))
    for dispense in dispenses:
        item = el(pertinent(supply, "pertinentInformation1", True, contextConductionInd="true"),
                  "pertinentSuppliedLineItem", {"classCode": "SBADM", "moodCode": "PRMS"})
        global_id(item, str(as_dict(as_list(dispense.get("identifier"))[0] if as_list(dispense.get("identifier"))
                                     else {}).get("value") or uuid.uuid4()))
        type_code = (coding_or_none(dispense.get("type"), DISPENSE_TYPE) or {}).get("code")
        _item_status(item, str(type_code or "0001"))
    status = (coding_or_none(as_dict(_business_status(first(bundle, "MedicationRequest"))), "https://fhir.nhs.uk/"
                             "CodeSystem/EPS-task-business-status") or {}).get("code")
    _prescription_status(supply, str(status or "0006"))
    _prescription_id_act(notification, "pertinentInformation2", "pertinentPrescriptionID", "PID",
                         _short_form(bundle, "MedicationRequest.groupIdentifier"))
    return DISPENSE_NOTIFICATION, message_uuid, notification


def _business_status(resource: Any) -> dict | None:
    for item in as_list(as_dict(resource).get("extension")):
        if as_dict(item).get("url") == BUSINESS_STATUS_URL:
            return as_dict(item.get("valueCoding"))
    return None


def claim(resource: Any, now: datetime) -> tuple[str, str, etree._Element]:
    message_uuid = message_id(resource, "Claim.identifier")
    claim_element = root("DispenseClaim")
    claim_element.set("classCode", "INFO")
    claim_element.set("moodCode", "EVN")
    global_id(claim_element, message_uuid)
    created = as_dict(resource).get("created")
    el(claim_element, "effectiveTime", {"value": hl7_from_iso(created, "Claim.created") if created
                                        else hl7_datetime(now)})
    _patient_reference(claim_element, as_dict(resource).get("patient"))
    _author(claim_element, resource, as_dict(resource).get("provider"), "Claim.provider")
    supply = el(pertinent(claim_element, "pertinentInformation1", False, contextConductionInd="true"),
                "pertinentSupplyHeader", {"classCode": "SPLY", "moodCode": "EVN"})
    global_id(supply, str(uuid.uuid5(uuid.NAMESPACE_URL, message_uuid)))
    for claim_item in as_list(as_dict(resource).get("item")):
        for detail in as_list(as_dict(claim_item).get("detail")):
            item = el(pertinent(supply, "pertinentInformation1", True, contextConductionInd="true"),
                      "pertinentSuppliedLineItem", {"classCode": "SBADM", "moodCode": "PRMS"})
            line_id = identifier_or_none(as_dict(detail).get("extension"), "") or str(
                as_dict(detail).get("sequence", ""))
            global_id(item, line_id or str(uuid.uuid4()))
            status = (_business_status(detail) or {}).get("code")
            _item_status(item, str(status or "0001"))
        status = (_business_status(claim_item) or {}).get("code")
        _prescription_status(supply, str(status or "0006"))
    _prescription_id_act(claim_element, "pertinentInformation2", "pertinentPrescriptionID", "PID",
                         _short_form(as_dict(resource).get("prescription"), "Claim.prescription"))
    return DISPENSE_CLAIM, message_uuid, claim_element


BUILDERS: dict[str, Callable[[Any, datetime], tuple[str, str, etree._Element]]] = {
    RELEASE: release, DISPENSE: dispense_notification, CLAIM: claim, RETURN: return_, WITHDRAW: withdraw}
