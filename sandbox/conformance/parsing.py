"""Safe parsing of what suppliers send: JSON and XML, never resolving entities, DTDs or anything on the network."""

from __future__ import annotations

import hashlib
import json
import math
import re
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


MAX_JSON_DEPTH = 64  # far deeper than any Spine body; deep enough nesting would exhaust the stack of whatever reads it
INT64 = (-(2**63), 2**63 - 1)  # what storage can hold, and more than any Spine API's integers


def parse_json(body: bytes | str):
    """JSON as Python values, or Malformed: also for nesting deeper than MAX_JSON_DEPTH, numbers that are not finite or
    beyond 64 bits, and lone surrogates (which cannot be stored or sent back as UTF-8)."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed("JSON", "it is not UTF-8", f"byte {exc.start}") from None
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise Malformed("JSON", exc.msg, f"line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Malformed("JSON", f"it is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise Malformed("JSON", str(exc)) from None
    _check_shape(value, check_strings="\\u" in body)  # a lone surrogate can only arrive as an escape
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]}{'…' if len(text) > 20 else ''} is too large")
    return number


def _bounded_int(text: str) -> int:
    if len(text) > 20 or not INT64[0] <= (number := int(text)) <= INT64[1]:
        raise ValueError(f"the integer {text[:20]}{'…' if len(text) > 20 else ''} is larger than 64 bits")
    return number


def _check_shape(value, check_strings: bool) -> None:
    """Depth, and lone surrogates when the text has escapes; iteratively, so no input can make it recurse."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Malformed("JSON", f"it is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            if check_strings:
                stack.extend((k, depth) for k in item)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif check_strings and isinstance(item, str) and _SURROGATE.search(item):
            raise Malformed("JSON", "a string holds a lone surrogate (\\ud800-\\udfff), which is not a character")


_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_INT = re.compile(r"[+-]?[0-9]+")



def canonical_json(value) -> bytes:
    """A JSON value's canonical form: keys sorted, no layout, numbers by value (1 and 1.0 alike), booleans apart
    from numbers. Two values have the same form exactly when they are equal as JSON."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _normal(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normal(item) for item in value]
    return value


def json_digest(value) -> str:
    """SHA-256 (hex) of a JSON value's canonical form: equal JSON values, equal digests."""
    return hashlib.sha256(canonical_json(value)).hexdigest()

def parse_int(text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer written in ASCII digits (str.isdigit() admits '²' and Arabic-Indic digits, which int() then refuses or
    reads), within [minimum, maximum]; ValueError with a sentence a caller can put in its own error otherwise."""
    text = text.strip()
    if not _ASCII_INT.fullmatch(text) or len(text) > 20:
        raise ValueError(f"{text[:30]!r} is not a whole number")
    number = int(text)
    if minimum is not None and number < minimum:
        raise ValueError(f"{number} is less than {minimum}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{number} is more than {maximum}")
    return number


def is_ascii_digits(text: str, most: int = 20) -> bool:
    """1..`most` ASCII digits and nothing else (str.isdigit() also admits '²', '٣' and other Unicode digits)."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def dig(document, *steps: str | int, kind: type | tuple[type, ...] = object):
    """The value at `steps` (object keys and list indexes) inside parsed JSON, or None when a step is missing or meets
    a value of another type, or the value found is not of `kind`: a body reader that no JSON can crash."""
    value = document
    for step in steps:
        if isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        elif isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds and object not in kinds:  # JSON true is not a number
        return None
    return value if isinstance(value, kinds) else None


def printable(text: str) -> str:
    """`text` with lone surrogates (which only a test client or a surrogateescape'd byte can put in a header or a
    parameter) replaced by U+FFFD, so it can be stored, compared with stored text and sent back as UTF-8."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


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
