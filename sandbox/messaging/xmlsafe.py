"""Safe XML for messaging: the conformance parsing rules (no entities, DTDs or network), a parser per call (lxml
parsers must not be shared between threads), bounded size and depth, and every failure as a MessagingError."""

from __future__ import annotations

from lxml import etree

from sandbox.messaging import MessagingError, Problem

MAX_XML_BYTES = 20 * 1024 * 1024
# Depth is bounded by libxml2 itself: without huge_tree it refuses documents nested deeper than 256 elements
# ("Excessive depth in document"), far beyond any HL7v3 message, and cheaper than walking the tree again.


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False, collect_ids=False)


def parse(body: bytes, *, where: str = "", code: str = "xml.malformed") -> etree._Element:
    """Parse one XML document or raise MessagingError with one Problem saying what is wrong and where."""
    label = f"{where}: " if where else ""
    if not isinstance(body, (bytes, bytearray)):
        raise MessagingError(Problem(code, f"{label}expected bytes, got {type(body).__name__}", where))
    if len(body) > MAX_XML_BYTES:
        raise MessagingError(Problem("xml.too-large", f"{label}the XML is {len(body)} bytes, more than the "
                                     f"{MAX_XML_BYTES} allowed", where))
    if not body.strip():
        raise MessagingError(Problem(code, f"{label}the XML document is empty", where))
    try:
        root = etree.fromstring(bytes(body), parser=_parser())
    except etree.XMLSyntaxError as exc:
        line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        if "Excessive depth" in (exc.msg or ""):
            raise MessagingError(Problem("xml.too-deep", f"{label}the XML nests more than 256 levels{line}",
                                         where)) from None
        raise MessagingError(Problem(code, f"{label}the XML is not well formed{line}: {exc.msg}", where)) from None
    except Exception as exc:  # noqa: BLE001 - e.g. an unknown encoding declaration: still just unreadable XML
        raise MessagingError(Problem(code, f"{label}the XML cannot be read: {exc}", where)) from None
    if root is None:
        raise MessagingError(Problem(code, f"{label}the XML document is empty", where))
    if root.getroottree().docinfo.doctype:
        raise MessagingError(Problem("xml.doctype", f"{label}a DOCTYPE is not allowed in a Spine message", where))
    return root


def text(element: etree._Element | None) -> str | None:
    """The stripped text of an element, or None when absent or empty."""
    if element is None or not isinstance(element.tag, str):
        return None
    value = (element.text or "").strip()
    return value or None


def xpath_of(element: etree._Element) -> str:
    """A readable XPath with namespace prefixes as NS names them (hl7:, eb:, soap:...)."""
    from sandbox.messaging import NS
    prefix_of = {uri: prefix for prefix, uri in NS.items()}
    steps = []
    node = element
    while node is not None and isinstance(node.tag, str):
        qname = etree.QName(node)
        name = f"{prefix_of.get(qname.namespace, 'ns')}:{qname.localname}" if qname.namespace else qname.localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))
