"""Reading an HL7v3 payload (shared by the services that answer over Spine core messaging): the first value at an XPath (hl7 namespace), and where it was looked for."""

from __future__ import annotations

from lxml import etree

from sandbox.messaging import NS

NHS_NUMBER_ROOT = "2.16.840.1.113883.2.1.4.1"  # the OID of the NHS number, on every patient id
HL7_NS = {"hl7": NS["hl7"]}


def first(element: etree._Element | None, xpath: str) -> str | None:
    """The first attribute or text the XPath selects, stripped; None when nothing (or only blanks) is there."""
    if element is None:
        return None
    try:
        found = element.xpath(xpath, namespaces=HL7_NS)
    except etree.XPathError:
        return None
    for item in found if isinstance(found, list) else [found]:
        value = item if isinstance(item, str) else (item.text if isinstance(item, etree._Element) else None)
        if value and str(value).strip():
            return str(value).strip()
    return None


def present(element: etree._Element | None, xpath: str) -> bool:
    if element is None:
        return False
    try:
        return bool(element.xpath(xpath, namespaces=HL7_NS))
    except etree.XPathError:
        return False


def where(root: etree._Element, xpath: str) -> str:
    """The XPath as a supplier reads it: from the interaction element."""
    return f"/hl7:{etree.QName(root).localname}/{xpath}"
