"""A cancellation as live EPS translates it (request/cancel/cancellation.ts): CancellationRequest, sent as
PORX_IN030101SM32. As live's $convert of the specification's cancellation examples shows: the author is the
requester, the responsibleParty the responsible practitioner (Extension-DM-ResponsiblePractitioner, else the
requester; an organisation when that PractitionerRole has no SDS role profile), both identified by their SDS user id
and without healthCareProviderLicense."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lxml import etree

from sandbox.services.eps.context import ITEM_ID_SYSTEM
from sandbox.services.eps.translation import agents
from sandbox.services.eps.translation.common import (
    CANCELLATION_REASON,
    act_root,
    annotation,
    as_dict,
    code,
    coding,
    el,
    global_id,
    hl7_datetime,
    identifier,
    message_id,
    pertinent,
    prescription_id_act,
    text_of,
)
from sandbox.services.eps.translation.prescription import long_form_id, medication_requests

INTERACTION = "PORX_IN030101SM32"
STATUS_REASON = "https://fhir.nhs.uk/CodeSystem/medicationrequest-status-reason"


def cancellation_request(bundle: Any, now: datetime) -> etree._Element:
    first = medication_requests(bundle)[0]
    request = act_root("CancellationRequest", "INFO", "EVN", message_id(bundle, "Bundle.identifier"))
    el(request, "effectiveTime", {"value": hl7_datetime(now)})
    agents.record_target(request, bundle)
    author = el(request, "author", {"typeCode": "AUT"})
    agents.agent_person(author, bundle, agents.practitioner_role_of(bundle, first, responsible=False),
                        person_id="sds", with_licence=False)
    responsible = el(request, "responsibleParty", {"typeCode": "RESP"})
    agents.agent_person(responsible, bundle, agents.practitioner_role_of(bundle, first, responsible=True),
                        person_id="sds", with_licence=False)
    group = as_dict(first.get("groupIdentifier"))
    prescription_id_act(request, "pertinentInformation2", "pertinentPrescriptionID", "PID",
                        text_of(group.get("value"), "MedicationRequest.groupIdentifier.value"))
    info1 = pertinent(request, "pertinentInformation1", True, inversionInd="false", negationInd="false")
    line_item = el(info1, "pertinentLineItemRef", {"classCode": "SBADM", "moodCode": "RQO"})
    global_id(line_item, identifier(first.get("identifier"), ITEM_ID_SYSTEM, "MedicationRequest.identifier"))
    reason = coding(first.get("statusReason"), STATUS_REASON, "MedicationRequest.statusReason")
    info = pertinent(request, "pertinentInformation", False, contextConductionInd="true")
    act = annotation(info, "pertinentCancellationReason", "OBS", "CR")
    if reason.get("display"):
        el(act, "text", text=str(reason["display"]))
    code(act, CANCELLATION_REASON, str(reason.get("code")), tag="value")
    info3 = pertinent(request, "pertinentInformation3", True, contextConductionInd="false")
    original = el(info3, "pertinentOriginalPrescriptionRef", {"classCode": "SBADM", "moodCode": "RQO"})
    global_id(original, long_form_id(group))
    return request
