"""RCMR_IN030000UK06, the EHR extract the sandbox practice sends back for an EHR request: the patient's record as
an EhrFolder of compositions; attachments of a large record are referenced (ExternalDocument) and travel as
COPC_IN000001UK01 fragments (fragments.py)."""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from sandbox.messaging import hl7
from sandbox.messaging.hl7read import NHS_NUMBER_ROOT
from sandbox.services.gp2gp.practice import ODS_ROOT, PRACTICE_ASID, PRACTICE_ODS
from sandbox.services.gp2gp.records import Document, Note, registered_since
from sandbox.synthetic.population import Person

INTERACTION = "RCMR_IN030000UK06"
SNOMED = "2.16.840.1.113883.2.1.3.2.4.15"
# Codes from the value sets the schema enumerates (NHSVocab EhrExtractSpec, EhrCompositionName, EhrAttachmentCode).
ENTIRE_RECORD = "37241000000102"  # the extract specification: the whole GP record
COMPOSITION_CODE = "24591000000103"
ATTACHMENT_CODE = "24891000000101"


def build_extract(*, person: Person, message_id: str, extract_id: str, request_id: str, requester_asid: str,
                  requester_ods: str, notes: list[Note], documents: list[Document],
                  now: datetime | None = None) -> etree._Element:
    stamp = hl7.format_ts(now)
    message = hl7.new_message(INTERACTION, message_id=message_id, sender_asid=PRACTICE_ASID,
                              receiver_asid=requester_asid, created=now)
    event = hl7.control_act(message, author_asid=PRACTICE_ASID)
    extract = _sub(_sub(event, "subject", typeCode="SUBJ", contextConductionInd="false"), "EhrExtract",
                   classCode="EXTRACT", moodCode="EVN")
    _sub(extract, "id", root=extract_id)
    _sub(extract, "statusCode", code="COMPLETE")
    _sub(extract, "availabilityTime", value=stamp)
    _sub(_sub(_sub(extract, "recordTarget", typeCode="RCT"), "patient", classCode="PAT"), "id",
         root=NHS_NUMBER_ROOT, extension=person.nhs_number)
    author = _sub(extract, "author", typeCode="AUT")
    _sub(author, "time", value=stamp)
    _organisation(author, PRACTICE_ODS)
    _organisation(_sub(extract, "destination", typeCode="DST"), requester_ods)
    _folder(_sub(extract, "component", typeCode="COMP"), person, stamp, notes, documents, extract_id)
    _sub(_sub(_sub(extract, "inFulfillmentOf", typeCode="FLFS"), "priorEhrRequest", classCode="EXTRACT",
              moodCode="RQO"), "id", root=request_id)
    spec = _sub(_sub(extract, "limitation", typeCode="LIMIT", inversionInd="true"),
                "limitingEhrExtractSpecification", classCode="OBS", moodCode="DEF")
    _sub(spec, "id", root=f"{extract_id[:-12]}{'0' * 11}1")
    _sub(spec, "code", code=ENTIRE_RECORD, codeSystem=SNOMED)
    return message


def _folder(component: etree._Element, person: Person, stamp: str, notes: list[Note], documents: list[Document],
            extract_id: str) -> None:
    folder = _sub(component, "ehrFolder", classCode="FOLDER", moodCode="EVN")
    _sub(folder, "id", root=f"{extract_id[:-12]}{'0' * 11}2")
    _sub(folder, "statusCode", code="COMPLETE")
    period = _sub(folder, "effectiveTime")
    _sub(period, "low", value=_day(registered_since(person)))
    _sub(period, "high", value=stamp)
    _sub(folder, "availabilityTime", value=stamp)
    author = _sub(folder, "author", typeCode="AUT")
    _sub(author, "time", value=stamp)
    _organisation(author, PRACTICE_ODS)
    agent_id = f"{extract_id[:-12]}{'0' * 11}3"
    directory = _sub(_sub(folder, "responsibleParty", typeCode="RESP"), "agentDirectory", classCode="AGNT")
    agent = _sub(_sub(directory, "part", typeCode="PART"), "Agent", classCode="AGNT")
    _sub(agent, "id", root=agent_id)
    organisation = _sub(agent, "agentOrganizationSDS", classCode="ORG", determinerCode="INSTANCE")
    _sub(organisation, "id", root=ODS_ROOT, extension=PRACTICE_ODS)
    for note in notes:
        statement = _composition(folder, note.id, note.written, stamp, agent_id)
        narrative = _sub(statement, "NarrativeStatement", classCode="OBS", moodCode="EVN")
        _sub(narrative, "id", root=f"{note.id[:-12]}{'F' * 12}")
        _sub(narrative, "text").text = note.text
        _sub(narrative, "statusCode", code="COMPLETE")
        _sub(narrative, "availabilityTime", value=_day(note.written))
    for document in documents:
        statement = _composition(folder, f"{document.id[:-12]}{'C' * 12}", document.written, stamp, agent_id)
        narrative = _sub(statement, "NarrativeStatement", classCode="OBS", moodCode="EVN")
        _sub(narrative, "id", root=f"{document.id[:-12]}{'E' * 12}")
        _sub(narrative, "text").text = f"{document.title} (attachment {document.filename})"
        _sub(narrative, "statusCode", code="COMPLETE")
        _sub(narrative, "availabilityTime", value=_day(document.written))
        external = _sub(_sub(narrative, "reference", typeCode="REFR"), "referredToExternalDocument",
                        classCode="DOC", moodCode="EVN")
        _sub(external, "id", root=document.id)
        _sub(external, "code", code=ATTACHMENT_CODE, codeSystem=SNOMED)
        _sub(_sub(external, "text", mediaType=document.content_type), "reference", value=document.reference)


def _composition(folder: etree._Element, composition_id: str, written: date, stamp: str,
                 agent_id: str) -> etree._Element:
    """An ehrComposition authored by the practice's agent; returns its component, for the one statement."""
    composition = _sub(_sub(folder, "component", typeCode="COMP"), "ehrComposition", classCode="COMPOSITION",
                       moodCode="EVN")
    _sub(composition, "id", root=composition_id)
    _sub(composition, "code", code=COMPOSITION_CODE, codeSystem=SNOMED)
    _sub(composition, "statusCode", code="COMPLETE")
    _sub(_sub(composition, "effectiveTime"), "center", value=_day(written))
    _sub(composition, "availabilityTime", value=_day(written))
    author = _sub(composition, "author", typeCode="AUT", contextControlCode="OP")
    _sub(author, "time", value=stamp)
    _sub(_sub(author, "agentRef", classCode="AGNT"), "id", root=agent_id)
    return _sub(composition, "component", typeCode="COMP")


def _organisation(parent: etree._Element, ods: str) -> None:
    agent = _sub(parent, "AgentOrgSDS", classCode="AGNT")
    _sub(_sub(agent, "agentOrganizationSDS", classCode="ORG", determinerCode="INSTANCE"), "id", root=ODS_ROOT,
         extension=ods)


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{hl7.HL7}}}{name}", attrs)
