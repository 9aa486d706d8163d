"""Helpers for tests that hold built messages against captured ones: fill a mustache template, and reduce XML to
its shape (qualified names, attributes, text; prefixes, namespace declarations and layout whitespace ignored)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from lxml import etree

from sandbox.messaging import xmlsafe

_SECTION = re.compile(r"\{\{([#^])\s*(\w+)\s*\}\}(.*?)\{\{/\s*\2\s*\}\}", re.S)
_TRIPLE = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}")
_DOUBLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_mustache(template: str, values: dict) -> str:
    """The subset of mustache the published templates use: sections (boolean or list), inverted sections,
    {{{raw}}} and {{escaped}} values. A missing value renders empty."""
    def section(match: re.Match) -> str:
        kind, name, inner = match.groups()
        value = values.get(name)
        if kind == "^":
            return render_mustache(inner, values) if not value else ""
        if isinstance(value, list):
            return "".join(render_mustache(inner, {**values, **item}) for item in value)
        return render_mustache(inner, values) if value else ""

    text = _SECTION.sub(section, template)
    text = _TRIPLE.sub(lambda m: str(values.get(m.group(1), "")), text)
    return _DOUBLE.sub(lambda m: escape(str(values.get(m.group(1), ""))), text)


def shape(xml: bytes | str | etree._Element, *, ignore_attributes: tuple[str, ...] = ()) -> tuple:
    """(qualified tag, sorted attributes, stripped text, child shapes): equal shapes are the same message."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    root = xml if isinstance(xml, etree._Element) else xmlsafe.parse(xml)
    return _shape(root, ignore_attributes)


def _shape(element: etree._Element, ignore: tuple[str, ...]) -> tuple:
    attributes = tuple(sorted((k, v) for k, v in element.attrib.items() if k not in ignore))
    children = tuple(_shape(child, ignore) for child in element if isinstance(child.tag, str))
    return (element.tag, attributes, (element.text or "").strip(), children)
