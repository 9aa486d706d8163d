"""Safe parsing of what suppliers send: JSON and XML, never resolving entities, DTDs or anything on the network."""

from __future__ import annotations

import json
from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class Malformed(Exception):
    """The body is not well-formed; `where` says where, in the words of the parser."""

    kind: str  # "JSON" or "XML"
    detail: str
    where: str = ""

    def __str__(self) -> str:
        return f"body is not valid {self.kind}: {self.detail}" + (f" ({self.where})" if self.where else "")


def parse_json(body: bytes | str):
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed("JSON", "it is not UTF-8", f"byte {exc.start}") from None
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Malformed("JSON", exc.msg, f"line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise Malformed("JSON", str(exc)) from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


_XML_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
    remove_blank_text=False,
)


def parse_xml(body: bytes) -> etree._Element:
    try:
        root = etree.fromstring(body, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise Malformed("XML", exc.msg, f"line {exc.lineno}") from None
    if root is None:
        raise Malformed("XML", "the document is empty")
    doctype = root.getroottree().docinfo.doctype
    if doctype:
        raise Malformed("XML", "a DOCTYPE is not allowed", doctype)
    return root
