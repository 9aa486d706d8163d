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
    BUSINESS_STATUS_SYSTEM,
    CLAIM,
    DISPENSE,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    PRESCRIPTION_ID_SYSTEM,
    RELEASE,
    RETURN,
    ROLE_PROFILE_SYSTEM,
    USER_ID_SYSTEM,
    WITHDRAW,
)
from sandbox.services.eps.resources import entries, find_identifier, first, identifier_value, parameter
from sandbox.services.eps.translation.agents import NOT_SPECIFIED_ORG_TYPE, job_role_code
from sandbox.services.eps.translation.agents import address as convert_address
from sandbox.services.eps.translation.agents import telecom as convert_telecom
from sandbox.services.eps.translation.common import (
    ITEM_STATUS,
    ORG_TYPE,
    PRESCRIPTION_STATUS,
    ROOT_NHS_NUMBER,
    ROOT_ODS,
    ROOT_PROFESSIONAL_CODE,
    ROOT_SDS_JOB_ROLE,
    ROOT_SDS_ROLE_PROFILE,
    ROOT_SDS_USER,
    Untranslatable,
    act_root,
    annotation,
    as_dict,
    as_list,
    code,
    coding,
    coding_or_none,
    el,
    extension_or_none,
    global_id,
    hl7_datetime,
    hl7_from_iso,
    ident,
    identifier,
    message_id,
    pertinent,
    prescription_id_act,
    resolve,
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
    ident(element, ROOT_ODS, identifier(organization.get("identifier"), ODS_SYSTEM, "Organization.identifier"))
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
    ident(agent, ROOT_SDS_ROLE_PROFILE,
          identifier(role.get("identifier"), ROLE_PROFILE_SYSTEM, "PractitionerRole.identifier"))
    code(agent, ROOT_SDS_JOB_ROLE, job_role_code(role))
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
    ident(person, ROOT_SDS_USER if person_id.get("system") == USER_ID_SYSTEM else ROOT_PROFESSIONAL_CODE, value)
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


def _short_form(body: Any, path: str) -> str:
    found = find_identifier(body, PRESCRIPTION_ID_SYSTEM)
    if not found:
        raise Untranslatable("Expected the short-form prescription id.", path)
    return found


def _reason(parent: etree._Element, tag: str, act_tag: str, act_code: str, concept: Any, system: str,
            code_system: str, context: str) -> None:
    reason = coding(concept, system, "Task.statusReason")
    act = annotation(pertinent(parent, tag, False, contextConductionInd=context), act_tag, "OBS", act_code)
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
    request = act_root(tag, "INFO", "RQO", message_uuid)
    el(request, "effectiveTime", {"value": hl7_datetime(now)})
    organization = as_dict(owner.get("resource")) or {
        "identifier": [as_dict(owner.get("valueIdentifier"))]}
    if not identifier_value(organization.get("identifier"), ODS_SYSTEM):
        raise Untranslatable("Expected the owner's ODS code.", "Parameters.parameter('owner')")
    role = as_dict(agent.get("resource"))
    author = el(request, "author", {"typeCode": "AUT"})
    if role:
        _agent_person(author, role, organization)
    else:
        org_agent = el(author, "AgentPerson", {"classCode": "AGNT"})
        _organization(org_agent, organization, None)
    if short_form:
        prescription_id_act(request, "pertinentInformation", "pertinentPrescriptionID", "PID", str(short_form))
    return (PATIENT_RELEASE if short_form else NOMINATED_RELEASE), message_uuid, request


# --- return and withdraw (Task) ---------------------------------------------------------------------------------------

def _task_head(task: Any, tag: str, class_code: str) -> tuple[str, etree._Element]:
    message_uuid = message_id(task, "Task.identifier")
    element = act_root(tag, class_code, "EVN", message_uuid)
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
    prescription_id_act(element, "pertinentInformation1", "pertinentPrescriptionID", "PID",
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
    prescription_id_act(element, "pertinentInformation3", "pertinentWithdrawID", "WID",
                         _short_form(as_dict(task).get("groupIdentifier"), "Task.groupIdentifier"), context="false")
    kind = annotation(pertinent(element, "pertinentInformation2", False, contextConductionInd="true"),
                      "pertinentWithdrawType", "OBS", "PWT")
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
    act = annotation(pertinent(parent, "pertinentInformation3", False, contextConductionInd="true"),
                     "pertinentItemStatus", "OBS", "IS")
    code(act, ITEM_STATUS, status, tag="value")


def _prescription_status(parent: etree._Element, status: str) -> None:
    act = annotation(pertinent(parent, "pertinentInformation4", False, contextConductionInd="true"),
                     "pertinentPrescriptionStatus", "OBS", "PS")
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
    notification = act_root("DispenseNotification", "INFO", "EVN", message_uuid)
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
        line_id = as_dict((as_list(dispense.get("identifier")) or [None])[0]).get("value")
        global_id(item, str(line_id or uuid.uuid4()))
        type_code = (coding_or_none(dispense.get("type"), DISPENSE_TYPE) or {}).get("code")
        _item_status(item, str(type_code or "0001"))
    status = (coding_or_none(as_dict(_business_status(first(bundle, "MedicationRequest"))), BUSINESS_STATUS_SYSTEM)
              or {}).get("code")
    _prescription_status(supply, str(status or "0006"))
    prescription_id_act(notification, "pertinentInformation2", "pertinentPrescriptionID", "PID",
                         _short_form(bundle, "MedicationRequest.groupIdentifier"))
    return DISPENSE_NOTIFICATION, message_uuid, notification


def _business_status(resource: Any) -> dict | None:
    found = extension_or_none(as_dict(resource).get("extension"), BUSINESS_STATUS_URL)
    return as_dict(found.get("valueCoding")) if found is not None else None


def claim(resource: Any, now: datetime) -> tuple[str, str, etree._Element]:
    message_uuid = message_id(resource, "Claim.identifier")
    claim_element = act_root("DispenseClaim", "INFO", "EVN", message_uuid)
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
            line_id = identifier_value(as_dict(detail).get("extension"), "") or str(
                as_dict(detail).get("sequence", ""))
            global_id(item, line_id or str(uuid.uuid4()))
            status = (_business_status(detail) or {}).get("code")
            _item_status(item, str(status or "0001"))
        status = (_business_status(claim_item) or {}).get("code")
        _prescription_status(supply, str(status or "0006"))
    prescription_id_act(claim_element, "pertinentInformation2", "pertinentPrescriptionID", "PID",
                         _short_form(as_dict(resource).get("prescription"), "Claim.prescription"))
    return DISPENSE_CLAIM, message_uuid, claim_element


BUILDERS: dict[str, Callable[[Any, datetime], tuple[str, str, etree._Element]]] = {
    RELEASE: release, DISPENSE: dispense_notification, CLAIM: claim, RETURN: return_, WITHDRAW: withdraw}
