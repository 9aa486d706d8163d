"""A prescription order as live EPS translates it (request/prescribe/parent-prescription.ts, prescription.ts,
line-item.ts): the ParentPrescription sent as PORX_IN020101SM31, and the signature fragments the prescriber signs
(request/signature.ts), which $prepare digests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from sandbox.services.eps.context import ITEM_ID_SYSTEM
from sandbox.services.eps.resources import entries
from sandbox.services.eps.translation import agents
from sandbox.services.eps.translation.common import (
    ENDORSEMENT,
    PRESCRIPTION_ID_EXTENSION,
    PRESCRIPTION_TYPE,
    ROOT_ODS,
    ROOT_SHORT_FORM_ID,
    ROOT_TEMPLATE,
    ROOT_TYPE,
    SITE_PREFERENCE,
    SNOMED,
    SNOMED_URL,
    TREATMENT_TYPE,
    H,
    Untranslatable,
    act_root,
    annotation,
    as_dict,
    as_list,
    code,
    coding,
    el,
    extension,
    extension_or_none,
    global_id,
    hl7_date_from_iso,
    hl7_datetime,
    hl7_from_iso,
    ident,
    identifier,
    message_id,
    numeric,
    pertinent,
    resolve,
    text_of,
    xmljs_canonical,
)

INTERACTION = "PORX_IN020101SM31"
SCHEMA = "PORX_IN020101UK31"  # the official schema; SM31 is Spine's internal name for the same message
ADMINISTRATION = ("225426007", "Administration of therapeutic substance (procedure)")
DISPENSING = ("373784005", "Dispensing medication (procedure)")
COURSE_OF_THERAPY = {"acute": "0001", "continuous": "0002", "continuous-repeat-dispensing": "0003"}
PERFORMER_SITE_TYPE = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PerformerSiteType"
PRESCRIPTION_TYPE_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionType"
ENDORSEMENT_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionEndorsement"
CONTROLLED_DRUG_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-ControlledDrug"
REPEAT_INFORMATION_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"


def medication_requests(bundle: Any) -> list[dict]:
    found = entries(bundle, "MedicationRequest")
    if not found:
        raise Untranslatable("Expected at least one MedicationRequest.",
                             "Bundle.entry.resource.ofType(MedicationRequest)")
    return found


def long_form_id(group_identifier: dict) -> str:
    """The prescription's UUID, from MedicationRequest.groupIdentifier's Extension-DM-PrescriptionId."""
    found = extension(group_identifier.get("extension"), PRESCRIPTION_ID_EXTENSION,
                      "MedicationRequest.groupIdentifier.extension")
    return text_of(as_dict(found.get("valueIdentifier")).get("value"),
                   "MedicationRequest.groupIdentifier.extension.valueIdentifier.value")


def course_of_therapy(requests: list[dict]) -> str:
    """One course of therapy for the prescription (a mix of acute and continuous is acute), as live decides."""
    codes = {str(c.get("code")) for r in requests for c in as_list(as_dict(r.get("courseOfTherapyType")).get("coding"))
             if isinstance(c, dict)}
    if len(codes) == 1:
        return codes.pop()
    if codes == {"acute", "continuous"}:
        return "acute"
    raise Untranslatable("Course of therapy type must either match for all MedicationRequests or be a mixture of "
                         "'acute' and 'continuous'.", "MedicationRequest.courseOfTherapyType.coding")


def parent_prescription(bundle: dict, when: datetime | None = None) -> etree._Element:
    """The ParentPrescription a prescription-order Bundle becomes. `when`: the author time used when the Bundle
    carries no signature (live uses the current time, which $prepare then returns as its timestamp)."""
    requests = medication_requests(bundle)
    first = requests[0]
    parent = act_root("ParentPrescription", "INFO", "EVN", message_id(bundle, "Bundle.identifier"))
    code(parent, SNOMED, "163501000000109", "Prescription - FocusActOrEvent (record artifact)")
    effective = el(parent, "effectiveTime")
    el(parent, "typeId", {"extension": "PORX_MT132004UK31", "root": ROOT_TYPE})
    agents.record_target(parent, bundle)
    info1 = el(parent, "pertinentInformation1", {"contextConductionInd": "true", "typeCode": "PERT"})
    el(info1, "templateId", {"extension": "CSAB_RM-NPfITUK10.pertinentInformation", "root": ROOT_TEMPLATE})
    prescription = _prescription(info1, bundle, requests, when)
    validity = as_dict(as_dict(first.get("dispenseRequest")).get("validityPeriod"))
    effective.set("value", hl7_from_iso(validity.get("start"), "MedicationRequest.dispenseRequest.validityPeriod.start")
                  if validity else prescription.find(f"{H}author/{H}time").get("value"))
    info2 = el(parent, "pertinentInformation2", {"typeCode": "PERT"})
    el(info2, "templateId", {"extension": "CSAB_RM-NPfITUK10.pertinentInformation1", "root": ROOT_TEMPLATE})
    category = el(info2, "pertinentCareRecordElementCategory", {"classCode": "CATEGORY", "moodCode": "EVN"})
    code(category, SNOMED, "185361000000102", "Medication - care record element (record artifact)")
    for line_item in prescription.iterfind(f"{H}pertinentInformation2/{H}pertinentLineItem"):
        ref = el(el(category, "component", {"typeCode": "COMP"}), "actRef", {"classCode": "SBADM", "moodCode": "RQO"})
        ref.append(_copy(line_item.find(f"{H}id")))
    return parent


def _copy(element: etree._Element) -> etree._Element:
    copied = etree.Element(element.tag, dict(element.attrib))
    copied.text = element.text
    for child in element:
        copied.append(_copy(child))
    return copied


def _prescription(parent: etree._Element, bundle: Any, requests: list[dict], when: datetime | None
                  ) -> etree._Element:
    first = requests[0]
    group = as_dict(first.get("groupIdentifier"))
    prescription = el(parent, "pertinentPrescription", {"classCode": "SBADM", "moodCode": "RQO"})
    global_id(prescription, long_form_id(group))
    ident(prescription, ROOT_SHORT_FORM_ID, text_of(group.get("value"), "MedicationRequest.groupIdentifier.value"))
    code(prescription, SNOMED, *ADMINISTRATION)
    el(prescription, "effectiveTime", {"nullFlavor": "NA"})
    course = course_of_therapy(requests)
    repeats = _repeat_number(first, course)
    if repeats:
        _interval(prescription, "repeatNumber", *repeats)
    dispense_request = as_dict(first.get("dispenseRequest"))
    performer = as_dict(dispense_request.get("performer"))
    if performer:
        agent = el(el(prescription, "performer", {"contextControlCode": "OP", "typeCode": "PRF"}), "AgentOrgSDS",
                   {"classCode": "AGNT"})
        org = el(agent, "agentOrganizationSDS", {"classCode": "ORG", "determinerCode": "INSTANCE"})
        ident(org, ROOT_ODS, text_of(as_dict(performer.get("identifier")).get("value"),
                                     "MedicationRequest.dispenseRequest.performer.identifier.value"))
    author = el(prescription, "author", {"contextControlCode": "OP", "typeCode": "AUT"})
    _signature(author, bundle, first, when)
    agents.agent_person(author, bundle, agents.practitioner_role_of(bundle, first, responsible=False),
                        person_id="author", with_licence=True)
    responsible = el(prescription, "responsibleParty", {"contextControlCode": "OP", "typeCode": "RESP"})
    agents.agent_person(responsible, bundle, agents.practitioner_role_of(bundle, first, responsible=True),
                        person_id="responsible", with_licence=True)
    if course == "continuous-repeat-dispensing":
        _days_supply(prescription, dispense_request)
    review = _review_date(first)
    if review:
        info7 = pertinent(prescription, "pertinentInformation7", False, contextConductionInd="true")
        act = annotation(info7, "pertinentReviewDate", "OBS", "RD")
        el(act, "value", {"value": hl7_date_from_iso(review, "MedicationRequest.extension.extension.valueDateTime")})
    info5 = pertinent(prescription, "pertinentInformation5", False, contextConductionInd="true")
    if course not in COURSE_OF_THERAPY:
        raise Untranslatable(f"Unhandled course of therapy type code '{course}'.",
                             "MedicationRequest.courseOfTherapyType.coding.code")
    code(annotation(info5, "pertinentPrescriptionTreatmentType", "OBS", "PTT"), TREATMENT_TYPE,
         COURSE_OF_THERAPY[course], tag="value")
    info1 = pertinent(prescription, "pertinentInformation1", True, contextConductionInd="true")
    site = extension(dispense_request.get("extension"), PERFORMER_SITE_TYPE, "MedicationRequest.dispenseRequest.extension")
    code(annotation(info1, "pertinentDispensingSitePreference", "OBS", "DSP"), SITE_PREFERENCE,
         str(as_dict(site.get("valueCoding")).get("code")), tag="value")
    medication_list, patient_info = _communication_texts(bundle)
    for index, request in enumerate(requests):
        info2 = pertinent(prescription, "pertinentInformation2", True, contextConductionInd="true",
                          inversionInd="false", negationInd="false")
        el(info2, "templateId", {"extension": "CSAB_RM-NPfITUK10.sourceOf2", "root": ROOT_TEMPLATE})
        _line_item(info2, bundle, request, repeats, medication_list if index == 0 else [],
                   patient_info if index == 0 else [])
    info8 = pertinent(prescription, "pertinentInformation8", False, contextConductionInd="true")
    el(annotation(info8, "pertinentTokenIssued", "OBS", "TI"), "value", {"value": "false"})
    info4 = pertinent(prescription, "pertinentInformation4", False, contextConductionInd="true")
    prescription_type = extension(first.get("extension"), PRESCRIPTION_TYPE_URL, "MedicationRequest.extension")
    code(annotation(info4, "pertinentPrescriptionType", "OBS", "PT"), PRESCRIPTION_TYPE,
         str(as_dict(prescription_type.get("valueCoding")).get("code")), tag="value")
    return prescription


def _interval(parent: etree._Element, tag: str, low: str, high: str) -> None:
    element = el(parent, tag)
    el(element, "low", {"value": low})
    el(element, "high", {"value": high})


def _repeat_number(first: dict, course: str) -> tuple[str, str] | None:
    if course == "continuous":
        return "1", "1"
    if course != "continuous-repeat-dispensing":
        return None
    allowed = as_dict(first.get("dispenseRequest")).get("numberOfRepeatsAllowed")
    if not allowed:
        raise Untranslatable("Number of repeats allowed is required.",
                             "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed")
    try:
        return "1", str(int(allowed) + 1)
    except (TypeError, ValueError) as exc:
        raise Untranslatable("Number of repeats allowed is required.",
                             "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed") from exc


def _days_supply(prescription: etree._Element, dispense_request: dict) -> None:
    component = el(prescription, "component1", {"typeCode": "COMP"})
    el(component, "seperatableInd", {"value": "true"})
    supply = el(component, "daysSupply", {"classCode": "SPLY", "moodCode": "RQO"})
    code(supply, SNOMED, *DISPENSING)
    validity = as_dict(dispense_request.get("validityPeriod"))
    path = "MedicationRequest.dispenseRequest.validityPeriod"
    _interval(supply, "effectiveTime", hl7_date_from_iso(validity.get("start"), f"{path}.start"),
              hl7_date_from_iso(validity.get("end"), f"{path}.end"))
    duration = as_dict(dispense_request.get("expectedSupplyDuration"))
    if duration.get("code") != "d":
        raise Untranslatable("Expected supply duration must be specified in days.",
                             "MedicationRequest.dispenseRequest.expectedSupplyDuration.code")
    el(el(supply, "expectedUseTime"), "width",
       {"unit": "d", "value": numeric(duration.get("value"), "MedicationRequest.dispenseRequest.expectedSupplyDuration")})


def _review_date(first: dict) -> str | None:
    repeat = extension_or_none(first.get("extension"), REPEAT_INFORMATION_URL)
    review = extension_or_none(as_dict(repeat).get("extension"), "authorisationExpiryDate") if repeat else None
    return review.get("valueDateTime") if review else None


def _signature(author: etree._Element, bundle: Any, first: dict, when: datetime | None) -> None:
    """author/time and signatureText: the requester's Provenance signature when there is one (time from its
    `when`, text the decoded XML-DSig Signature), else now and nullFlavor NA."""
    requester = as_dict(first.get("requester")).get("reference")
    signatures = [s for p in entries(bundle, "Provenance") for s in as_list(p.get("signature"))
                  if isinstance(s, dict) and as_dict(s.get("who")).get("reference") == requester]
    if len(signatures) > 1:
        raise Untranslatable(f"Expected at most one Provenance.signature with who.reference == '{requester}'.",
                             "Provenance.signature")
    if not signatures:
        el(author, "time", {"value": hl7_datetime(when or datetime.now(UTC))})
        el(author, "signatureText", {"nullFlavor": "NA"})
        return
    signature = signatures[0]
    el(author, "time", {"value": hl7_from_iso(signature.get("when"), "Provenance.signature.when")})
    text = el(author, "signatureText")
    text.append(_signature_xml(signature.get("data")))


def _signature_xml(data: Any) -> etree._Element:
    try:
        decoded = base64.b64decode(data if isinstance(data, str) else "", validate=False)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True,
                                 remove_comments=True, remove_pis=True, huge_tree=False)
        element = etree.fromstring(decoded.strip(), parser)
    except (ValueError, etree.XMLSyntaxError) as exc:
        raise Untranslatable("Invalid signature format.", "Provenance.signature.data") from exc
    return element


def _communication_texts(bundle: Any) -> tuple[list[str], list[str]]:
    """The first line item's additional instructions from CommunicationRequests: listed medication, patient info."""
    medication: list[str] = []
    patient_info: list[str] = []
    for request in entries(bundle, "CommunicationRequest"):
        for payload in as_list(request.get("payload")):
            payload = as_dict(payload)
            if isinstance(payload.get("contentString"), str):
                patient_info.append(payload["contentString"])
            elif isinstance(payload.get("contentReference"), dict):
                listed = resolve(bundle, payload["contentReference"], "CommunicationRequest.payload.contentReference")
                medication.extend(str(as_dict(as_dict(item).get("item")).get("display")) for item in
                                  as_list(listed.get("entry")) if as_dict(as_dict(item).get("item")).get("display"))
    return medication, patient_info


def _line_item(parent: etree._Element, bundle: Any, request: dict, repeats: tuple[str, str] | None,
               medication_list: list[str], patient_info: list[str]) -> None:
    item = el(parent, "pertinentLineItem", {"classCode": "SBADM", "moodCode": "RQO"})
    global_id(item, identifier(request.get("identifier"), ITEM_ID_SYSTEM, "MedicationRequest.identifier"))
    code(item, SNOMED, *ADMINISTRATION)
    el(item, "effectiveTime", {"nullFlavor": "NA"})
    if repeats:
        _interval(item, "repeatNumber", *repeats)
    medication = _medication_coding(bundle, request)
    product = el(item, "product", {"contextControlCode": "OP", "typeCode": "PRD"})
    material = el(el(product, "manufacturedProduct", {"classCode": "MANU"}), "manufacturedRequestedMaterial",
                  {"classCode": "MMAT", "determinerCode": "KIND"})
    code(material, SNOMED, str(medication.get("code")), medication.get("display"))
    quantity = as_dict(as_dict(request.get("dispenseRequest")).get("quantity"))
    component = el(item, "component", {"typeCode": "COMP"})
    el(component, "seperatableInd", {"value": "false"})
    supply = el(component, "lineItemQuantity", {"classCode": "SPLY", "moodCode": "RQO"})
    code(supply, SNOMED, *DISPENSING)
    value = numeric(quantity.get("value"), "MedicationRequest.dispenseRequest.quantity.value")
    amount = el(supply, "quantity", {"unit": "1", "value": value})
    el(amount, "translation", {"code": quantity.get("code"), "codeSystem": SNOMED, "displayName": quantity.get("unit"),
                               "value": value})
    endorsement = extension_or_none(request.get("extension"), ENDORSEMENT_URL)
    for endorsement_coding in as_list(as_dict(as_dict(endorsement).get("valueCodeableConcept")).get("coding")):
        info3 = pertinent(item, "pertinentInformation3", False, contextConductionInd="true")
        code(annotation(info3, "pertinentPrescriberEndorsement", "OBS", "PE"), ENDORSEMENT,
             str(as_dict(endorsement_coding).get("code")), tag="value")
    dosages = [d for d in as_list(request.get("dosageInstruction")) if isinstance(d, dict)]
    instructions = _additional_instructions(request, dosages, medication_list, patient_info)
    if instructions:
        info1 = pertinent(item, "pertinentInformation1", False, contextConductionInd="true")
        el(annotation(info1, "pertinentAdditionalInstructions", "OBS", "AI"), "value", text=instructions)
    info2 = pertinent(item, "pertinentInformation2", False, contextConductionInd="true")
    el(annotation(info2, "pertinentDosageInstructions", "OBS", "DI"), "value", text=dosage_text(dosages))


def dosage_text(dosages: list[dict]) -> str:
    """One dosage's text; several are ordered by sequence, concurrent ones joined ', and ', sequential ones
    ', then ' (live's getDosageInstruction)."""
    path = "MedicationRequest.dosageInstruction"
    if len(dosages) == 1:
        return text_of(dosages[0].get("text"), f"{path}.text")
    if not dosages:
        raise Untranslatable("Dosage instructions not provided", path)
    by_sequence: dict[int, list[str]] = {}
    for dosage in dosages:
        sequence = dosage.get("sequence")
        if isinstance(sequence, bool) or not isinstance(sequence, int) or not sequence:
            raise Untranslatable("Dosage instructions lacking complete sequencing", f"{path}.sequence")
        by_sequence.setdefault(sequence, []).append(text_of(dosage.get("text"), f"{path}.text"))
    return ", then ".join(", and ".join(by_sequence[key]) for key in sorted(by_sequence))


def _medication_coding(bundle: Any, request: dict) -> dict:
    concept = request.get("medicationCodeableConcept")
    if concept is None and isinstance(request.get("medicationReference"), dict):
        concept = resolve(bundle, request["medicationReference"], "MedicationRequest.medicationReference").get("code")
    return coding(concept, SNOMED_URL, "MedicationRequest.medicationCodeableConcept.coding")


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _additional_instructions(request: dict, dosages: list[dict], medication_list: list[str],
                             patient_info: list[str]) -> str:
    """The additional-instructions text live writes: <medication>…</medication><patientInfo>…</patientInfo>, then
    the controlled drug's quantity in words ('CD: …') and the patient instruction, one a line."""
    controlled = extension_or_none(request.get("extension"), CONTROLLED_DRUG_URL)
    words = extension_or_none(as_dict(controlled).get("extension"), "quantityWords") if controlled else None
    lines = [f"CD: {words['valueString']}" if words and words.get("valueString") else "",
             *(d["patientInstruction"] for d in dosages if isinstance(d.get("patientInstruction"), str))]
    text = "\n".join(line for line in lines if line)
    markup = "".join(f"<medication>{_escape_text(m)}</medication>" for m in medication_list)
    markup += "".join(f"<patientInfo>{_escape_text(p)}</patientInfo>" for p in patient_info)
    return markup + _escape_text(text) if (markup or text) else ""


# --- the signature fragments ------------------------------------------------------------------------------------------

def fragments_of(parent: etree._Element) -> bytes:
    """What the prescriber signs: the prescription's id and author time, the author's AgentPerson, the
    recordTarget and each line item (without repeatNumber/low and any item status), each written as live writes
    it (xml-js canonicalised, xmlns="urn:hl7-org:v3" on each fragment)."""
    prescription = parent.find(f"{H}pertinentInformation1/{H}pertinentPrescription")
    author = prescription.find(f"{H}author")
    parts = ["<FragmentsToBeHashed><Fragment>",
             xmljs_canonical(author.find(f"{H}time"), namespaced=True),
             xmljs_canonical(prescription.find(f"{H}id"), namespaced=True),
             "</Fragment><Fragment>",
             xmljs_canonical(author.find(f"{H}AgentPerson"), namespaced=True),
             "</Fragment><Fragment>",
             xmljs_canonical(parent.find(f"{H}recordTarget"), namespaced=True),
             "</Fragment>"]
    for line_item in prescription.iterfind(f"{H}pertinentInformation2/{H}pertinentLineItem"):
        signed = _copy(line_item)
        for low in signed.iterfind(f"{H}repeatNumber/{H}low"):
            low.getparent().remove(low)
        for status in signed.findall(f"{H}pertinentInformation4"):
            signed.remove(status)
        parts += ["<Fragment>", xmljs_canonical(signed, namespaced=True), "</Fragment>"]
    parts.append("</FragmentsToBeHashed>")
    return "".join(parts).encode("utf-8")


def author_time(parent: etree._Element) -> str:
    """The author time (HL7v3, e.g. 20241209115004) a ParentPrescription and its fragments carry."""
    return parent.find(f"{H}pertinentInformation1/{H}pertinentPrescription/{H}author/{H}time").get("value")


def signature_fragments(bundle: dict, when: datetime | None = None) -> bytes:
    """The fragments the prescriber signs (what $prepare's DigestValue is the SHA-256 of), written as live writes
    them. `when`: the author time for an unsigned Bundle (live: now); a signed Bundle's comes from its Provenance."""
    return fragments_of(parent_prescription(bundle, when))

