"""Directory entries as SDS FHIR resources: Device (accredited system), Endpoint (routing and reliability), and the
searchset Bundle around them (2-space indented JSON, fresh upper-case ids, members in the published order)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from urllib.parse import unquote

from sandbox.services.sds.directory import AccreditedSystem, MhsEntry, split_service_interaction
from sandbox.services.sds.query import ODS_SYSTEM, PK_SYSTEM, SVC_SYSTEM

ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
FQDN_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsFQDN"
CPA_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsCPAId"
MHS_ID_SYSTEM = "https://fhir.nhs.uk/Id/nhsMHSId"
MANUFACTURER_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ManufacturingOrganisation"
INTERACTION_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-NhsServiceInteractionId"
RELIABILITY_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration"

# Forwarded interactions: their Endpoint carries Spine's intermediary address, not the party's own (6.4).
FORWARD_SERVICES = frozenset({"cc", "ebs", "ebsepr", "ebsnpr", "gp2gp", "pat", "itk", "dis", "ed", "op", "caf", "adm",
                              "ooh", "am", "mh", "nd", "dir"})
FORWARD_RELIABLE = frozenset({
    "COPC_IN000001UK01", "PRSC_IN040000UK08", "PRSC_IN080000UK07", "PRPA_IN010000UK07", "PRPA_IN020000UK06",
    "PRSC_IN050000UK06", "PRSC_IN090000UK09", "PRPA_IN030000UK08", "PRSC_IN100000UK06", "PRSC_IN070000UK08",
    "PRSC_IN140000UK06", "RCMR_IN010000UK05", "RCMR_IN030000UK06", "PRSC_IN130000UK07", "PRSC_IN110000UK08",
    "PRSC_IN060000UK06", "PRSC_IN150000UK06", "POLB_IN020006UK01", "POLB_IN020005UK01", "COMT_IN000004GB01",
    "MCCI_IN010000UK13"})
FORWARD_EXPRESS = frozenset(("PRSC_IN080000UK03", "PRSC_IN040000UK03"))
RELIABLE_INTERMEDIARY = "urn:nhs:names:services:tms:ReliableIntermediary"
EXPRESS_INTERMEDIARY = "urn:nhs:names:services:tms:ExpressIntermediary"


def fresh_id() -> str:
    return str(uuid.uuid4()).upper()


def intermediary_for(entry: MhsEntry) -> str | None:
    """Which Spine intermediary record a forwarded interaction is routed through, or None."""
    service_part = split_service_interaction(entry.service_interaction)[0].rpartition(":")[2]
    if service_part not in FORWARD_SERVICES:
        return None
    if entry.interaction in FORWARD_RELIABLE:
        return RELIABLE_INTERMEDIARY
    if entry.interaction in FORWARD_EXPRESS:
        return EXPRESS_INTERMEDIARY
    return None


def _identifier(system: str, value: str) -> dict:
    return {"identifier": {"system": system, "value": value}}


def device(system: AccreditedSystem) -> dict:
    resource: dict = {"resourceType": "Device", "id": fresh_id()}
    identifiers = [{"system": s, "value": v} for s, v in ((ASID_SYSTEM, system.asid), (PK_SYSTEM, system.party_key))
                   if v]
    if identifiers:
        resource["identifier"] = identifiers
    extensions = []
    if system.manufacturer:
        extensions.append({"url": MANUFACTURER_URL, "valueReference": _identifier(ODS_SYSTEM, system.manufacturer)})
    extensions += [{"url": INTERACTION_URL, "valueReference": _identifier(SVC_SYSTEM, i)} for i in system.interactions]
    if extensions:
        resource["extension"] = extensions
    if system.client_ods:
        resource["owner"] = _identifier(ODS_SYSTEM, system.client_ods)
    return resource


def endpoint(entry: MhsEntry, address: str) -> dict:
    resource: dict = {
        "resourceType": "Endpoint", "id": fresh_id(), "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                           "code": "hl7-fhir-msg", "display": "HL7 FHIR Messaging"},
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                     "code": "any", "display": "Any"}]}],
    }
    if address:
        resource["address"] = address
    if entry.ods:
        resource["managingOrganization"] = _identifier(ODS_SYSTEM, entry.ods)
    identifiers = [{"system": s, "value": v} for s, v in ((FQDN_SYSTEM, entry.fqdn), (PK_SYSTEM, entry.party_key),
                                                          (CPA_SYSTEM, entry.cpa_id),
                                                          (MHS_ID_SYSTEM, entry.unique_identifier)) if v]
    if identifiers:
        resource["identifier"] = identifiers
    reliability = []
    for name, value in (("nhsMHSSyncReplyMode", entry.sync_reply_mode), ("nhsMHSRetryInterval", entry.retry_interval),
                        ("nhsMHSRetries", entry.retries), ("nhsMHSPersistDuration", entry.persist_duration),
                        ("nhsMHSDuplicateElimination", entry.duplicate_elimination),
                        ("nhsMHSAckRequested", entry.ack_requested), ("nhsMHSActor", entry.actor)):
        if value is None or value == "":
            continue
        reliability.append({"url": name, "valueInteger": int(value)} if name == "nhsMHSRetries"
                           else {"url": name, "valueString": str(value)})
    extensions = []
    if reliability:
        extensions.append({"url": RELIABILITY_URL, "extension": reliability})
    if entry.service_interaction:
        extensions.append({"url": INTERACTION_URL, "valueReference": _identifier(SVC_SYSTEM,
                                                                                 entry.service_interaction)})
    if extensions:
        resource["extension"] = extensions
    return resource


def endpoint_resources(entries: list[MhsEntry], intermediary: Callable[[str], str | None]) -> list[dict]:
    """One Endpoint per entry, forwarded interactions answered with the intermediary's address."""
    resources = []
    for entry in entries:
        via = intermediary_for(entry)
        address = (intermediary(via) or entry.endpoint) if via else entry.endpoint
        resources.append(endpoint(entry, address))
    return resources


def self_url(scheme_host: str, path: str, raw_query: bytes) -> str:
    """The request's URL decoded once ('%7C' -> '|', but '+' stays '+'), as SDS shows it in Bundle.link."""
    query = raw_query.decode("latin-1")
    text = path + (f"?{query}" if query else "")
    return scheme_host + unquote(text, errors="replace")


def bundle(resources: list[dict], self_link: str, resource_base: str) -> dict:
    return {"resourceType": "Bundle", "id": fresh_id(), "type": "searchset", "total": len(resources),
            "link": [{"relation": "self", "url": self_link}],
            "entry": [{"fullUrl": f"{resource_base}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in resources]}


def serialise(body: dict) -> bytes:
    return json.dumps(body, indent=2).encode("ascii")


def etag(data: bytes) -> str:
    return f'"{hashlib.sha1(data).hexdigest()}"'  # noqa: S324 - the SDS API's own ETag, not security
