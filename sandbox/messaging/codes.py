"""The Spine error codes the published examples show, with what they show about each. Only what the captured
messages, templates and the fake Spine's canned answers say: nothing here is guessed."""

from __future__ import annotations

from dataclasses import dataclass

# ---- synchronous pattern: SOAP fault, detail/nasp:errorList/nasp:error (codeContext urn:nhs:names:error:tms)
TMS_CODE_CONTEXT = "urn:nhs:names:error:tms"
SOAP_FAULTCODE = "SOAP:Server"
SOAP_FAULTSTRING = "Application Exception"


@dataclass(frozen=True)
class SpineCode:
    code: str
    description: str  # the description text Spine sends with it, as captured
    note: str  # what the examples show about it


SOAP_FAULT_CODES: dict[str, SpineCode] = {c.code: c for c in (
    SpineCode("200", "System failure to process message - default",
              "the fake Spine's canned SOAP fault (configured_responses/soap_fault_single_error.xml)"),
    SpineCode("201", "The message is not well formed",
              "second error of the captured multiple-error SOAP fault"),
    SpineCode("206", "System failure to process message - default",
              "the fake Spine's 'soap_fault_that_should_be_retried': a client MHS retries on it"),
    SpineCode("208", "System failure to process message - default", "captured single-error SOAP fault"),
    SpineCode("300", "System failure to process message - default", "captured single-error SOAP fault"),
)}
SYSTEM_FAILURE = "200"
NOT_WELL_FORMED = "201"
RETRIABLE_FAILURE = "206"

# ---- asynchronous patterns: ebXML MessageError, eb:ErrorList/eb:Error
EBXML_CODE_CONTEXT = "urn:oasis:names:tc:ebxml-msg:service:errors"
VALUE_NOT_RECOGNIZED = "ValueNotRecognized"  # eb:errorCode of every captured Spine MessageError
# Spine puts its own code before a colon in eb:Description: "<code>:<text>".
EBXML_DESCRIPTIONS: dict[str, SpineCode] = {c.code: c for c in (
    SpineCode("501314", "Invalid To Party Type attribute",
              "eb:To/eb:PartyId has the wrong eb:type (expected_messages/ebxml_nack.xml)"),
    SpineCode("501319", "Unknown eb:CPAId",
              "the CPA id names no agreement Spine knows (fake Spine ebxml_fault_single_error.xml)"),
)}
INVALID_TO_PARTY_TYPE = "501314"
UNKNOWN_CPA_ID = "501319"


def ebxml_description(code: str, text: str | None = None) -> str:
    """eb:Description in Spine's form, e.g. ebxml_description("501319") == "501319:Unknown eb:CPAId"."""
    known = EBXML_DESCRIPTIONS.get(code)
    return f"{code}:{text or (known.description if known else '')}"


def split_ebxml_description(description: str) -> tuple[str | None, str]:
    """("501319", "Unknown eb:CPAId") from "501319:Unknown eb:CPAId"; (None, text) when there is no code."""
    head, colon, tail = description.partition(":")
    if colon and head.strip().isdigit():
        return head.strip(), tail.strip()
    return None, description.strip()
