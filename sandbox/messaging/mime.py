"""MIME multipart/related as Spine uses it (RFC 2046 / RFC 2387): parse totally, build exactly.

A defect in one part is a Problem with where ("MIME part 2", "header:Content-Type") and parsing goes on; only a
body with no boundary, no parts or beyond the size bounds raises MessagingError."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import uuid
from dataclasses import dataclass, field

from sandbox.messaging import MessagingError, Problem, total

MAX_MESSAGE_BYTES = 50 * 1024 * 1024
MAX_PARTS = 200  # Spine carries at most 100 attachments; anything past this is not a real message
MAX_HEADER_BYTES = 16 * 1024  # the headers of one part, and the Content-Type header of the whole
TRANSFER_ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable")
SPINE_BOUNDARY = "--=_MIME-Boundary"


@dataclass(frozen=True)
class Part:
    content_type: str  # lower-case media type, no parameters
    content_id: str | None  # without the angle brackets
    body: bytes  # after the Content-Transfer-Encoding is undone
    headers: tuple[tuple[str, str], ...] = ()
    charset: str | None = None
    transfer_encoding: str | None = None  # as declared (lower case), None when absent

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def text(self) -> str:
        """The body decoded with its charset (UTF-8 when none), undecodable bytes replaced."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Multipart:
    """What parse found: the parts, the top-level parameters, and every problem on the way."""

    media_type: str
    params: dict[str, str]
    parts: tuple[Part, ...]
    problems: tuple[Problem, ...] = ()
    preamble: bytes = b""

    @property
    def start(self) -> str | None:
        """The content id the `start` parameter names (brackets removed), when given."""
        start = self.params.get("start")
        return _strip_brackets(start) if start else None

    def index_of(self, content_id: str | None) -> int | None:
        if content_id is None:
            return None
        return next((i for i, p in enumerate(self.parts) if p.content_id == content_id), None)


@dataclass(frozen=True)
class ContentType:
    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


_TOKEN = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*")


def parse_content_type(value: str | None, *, where: str = "header:Content-Type") -> ContentType:
    """Media type (lower case) and parameters (names lower case; quoted values unquoted). Never raises."""
    value = header_text(value)
    if value is None or not value.strip():
        return ContentType("", {}, (Problem("mime.content-type", "the Content-Type is missing", where),))
    problems: list[Problem] = []
    media, _, rest = value.partition(";")
    media = media.strip().lower()
    if "/" not in media:
        problems.append(Problem("mime.content-type", f"the Content-Type {media!r} is not type/subtype", where))
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if not match:
            chunk = rest[position:].split(";", 1)[0].strip()
            if chunk:
                problems.append(Problem("mime.content-type", f"Content-Type parameter {chunk[:60]!r} is not "
                                        "name=value", where))
            next_semicolon = rest.find(";", position)
            position = len(rest) if next_semicolon < 0 else next_semicolon + 1
            continue
        name = match.group(1).lower()
        position = match.end()
        if position < len(rest) and rest[position] == '"':
            chars: list[str] = []
            position += 1
            closed = False
            while position < len(rest):
                char = rest[position]
                if char == "\\" and position + 1 < len(rest):
                    chars.append(rest[position + 1])
                    position += 2
                    continue
                if char == '"':
                    closed = True
                    position += 1
                    break
                chars.append(char)
                position += 1
            if not closed:
                problems.append(Problem("mime.content-type", f"Content-Type parameter {name} has an unclosed "
                                        "quote", where))
            params[name] = "".join(chars)
            semicolon = rest.find(";", position)
            position = len(rest) if semicolon < 0 else semicolon + 1
        else:
            semicolon = rest.find(";", position)
            end = len(rest) if semicolon < 0 else semicolon
            params[name] = rest[position:end].strip()
            position = end + 1
    return ContentType(media, params, tuple(problems))


def known_charset(name: str | None) -> str | None:
    """The codec's canonical name for a charset label, or None when Python does not know it (or it is junk)."""
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError, TypeError):
        return None


def header_text(value: object) -> str | None:
    """A header value as text, whatever the caller handed over (bytes are read as Latin-1, as HTTP does)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return None


def _strip_brackets(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value


@total
def read_multipart(content_type_header: str | None, body: bytes) -> Multipart:
    """Parse a multipart body, keeping every problem. Raises MessagingError when nothing useful can be read."""
    if not isinstance(body, (bytes, bytearray)):
        raise MessagingError(Problem("mime.body", f"expected bytes, got {type(body).__name__}"))
    body = bytes(body)
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessagingError(Problem("mime.too-large", f"the message is {len(body)} bytes; at most "
                                     f"{MAX_MESSAGE_BYTES} are accepted"))
    header = header_text(content_type_header) or ""
    if len(header) > MAX_HEADER_BYTES:
        raise MessagingError(Problem("mime.header-too-large", f"the Content-Type header is {len(header)} "
                                     f"characters; at most {MAX_HEADER_BYTES} are accepted", "header:Content-Type"))
    content_type = parse_content_type(header)
    problems = list(content_type.problems)
    if not content_type.media_type.startswith("multipart/"):
        raise MessagingError(problems + [Problem(
            "mime.not-multipart", f"the Content-Type is {content_type.media_type or '(none)'!r}; expected "
            "multipart/related", "header:Content-Type")])
    if content_type.media_type != "multipart/related":
        problems.append(Problem("mime.not-related", f"the Content-Type is {content_type.media_type!r}; expected "
                                "multipart/related", "header:Content-Type"))
    boundary = content_type.params.get("boundary")
    if not boundary:
        sniffed = _sniff_boundary(body)
        if sniffed is None:
            raise MessagingError(problems + [Problem(
                "mime.no-boundary", "the Content-Type has no boundary parameter, so the parts cannot be found",
                "header:Content-Type")])
        problems.append(Problem("mime.no-boundary", "the Content-Type has no boundary parameter; the parts were "
                                f"read using the body's first delimiter line --{sniffed}", "header:Content-Type"))
        boundary = sniffed
    if len(boundary) > 70:
        problems.append(Problem("mime.boundary", f"the boundary is {len(boundary)} characters; RFC 2046 allows "
                                "at most 70", "header:Content-Type"))
    parts, preamble, split_problems = _split(body, boundary.encode("latin-1", errors="replace"))
    problems.extend(split_problems)
    if not parts:
        raise MessagingError(problems + [Problem(
            "mime.no-parts", f"no part starts with the boundary --{boundary}", "body")])
    parsed = [_parse_part(raw, index, problems) for index, raw in enumerate(parts, start=1)]
    return Multipart(content_type.media_type, content_type.params, tuple(parsed), tuple(problems), preamble)


def _sniff_boundary(body: bytes) -> str | None:
    """The boundary of a body whose first non-blank line is a delimiter ("--boundary"), else None."""
    first = body.lstrip(b"\r\n")[:200].split(b"\n", 1)[0].rstrip(b"\r \t")
    if first.startswith(b"--") and len(first) > 2 and not first.endswith(b"--"):
        return first[2:].decode("latin-1")
    return None


@total
def parse_multipart(content_type_header: str, body: bytes) -> list[Part]:
    """The parts of a multipart body (problems dropped; use read_multipart to keep them)."""
    return list(read_multipart(content_type_header, body).parts)


def _split(body: bytes, boundary: bytes) -> tuple[list[bytes], bytes, list[Problem]]:
    """The raw parts between delimiter lines. A delimiter is "--boundary" at the start of a line; the line break
    before it belongs to it (RFC 2046 5.1.1). Handles CRLF and bare LF; counts bare LF once as a problem."""
    problems: list[Problem] = []
    delimiter = b"--" + boundary
    positions: list[tuple[int, int, bool]] = []  # (start of delimiter line break, end of delimiter line, closing)
    search = 0
    while True:
        found = body.find(delimiter, search)
        if found < 0:
            break
        at_line_start = found == 0 or body[found - 1:found] == b"\n"
        search = found + len(delimiter)
        if not at_line_start:
            continue
        after = body[search:search + 2]
        closing = after == b"--"
        line_end = body.find(b"\n", search)
        rest_of_line = body[search + (2 if closing else 0): line_end if line_end >= 0 else len(body)]
        if rest_of_line.strip(b" \t\r"):
            continue  # "--boundaryX": a longer token that merely starts with the boundary
        start = found
        if found >= 2 and body[found - 2:found] == b"\r\n":
            start = found - 2
        elif found >= 1 and body[found - 1:found] == b"\n":
            start = found - 1
        positions.append((start, line_end + 1 if line_end >= 0 else len(body), closing))
        if closing:
            break
        if len(positions) > MAX_PARTS + 1:
            problems.append(Problem("mime.too-many-parts", f"the message has more than {MAX_PARTS} parts; the "
                                    "rest are ignored", "body"))
            break
    if not positions:
        return [], body, problems
    if positions[0][2]:
        return [], body, problems
    if not positions[-1][2] and not any(p.code == "mime.too-many-parts" for p in problems):
        problems.append(Problem("mime.no-close-delimiter", f"the closing delimiter --{boundary.decode('latin-1')}-- "
                                "is missing; the last part runs to the end of the body", "body"))
        positions.append((len(body), len(body), True))
    head = body[:positions[0][0]]
    parts = [body[positions[i][1]:positions[i + 1][0]] for i in range(len(positions) - 1)]
    if b"\n" in body[:65536] and b"\r\n" not in body[:65536]:
        problems.append(Problem("mime.bare-lf", "lines end with a bare LF; MIME (RFC 2046) requires CRLF", "body"))
    return parts, head, problems


def _parse_part(raw: bytes, index: int, problems: list[Problem]) -> Part:
    where = f"MIME part {index}"
    header_end, separator_length = _header_end(raw)
    if header_end < 0:
        # No blank line: everything that reads as headers is headers, the rest has no place to be.
        head, content = raw, b""
        problems.append(Problem("mime.part-no-blank-line", "no blank line separates the part's headers from its "
                                "body", where))
    else:
        head, content = raw[:header_end], raw[header_end + separator_length:]
    if len(head) > MAX_HEADER_BYTES:
        problems.append(Problem("mime.header-too-large", f"the part's headers are {len(head)} bytes; at most "
                                f"{MAX_HEADER_BYTES} are read", where))
        head = head[:MAX_HEADER_BYTES]
    headers = _parse_headers(head, where, problems)
    lookup = {name.lower(): value for name, value in headers}
    content_type = parse_content_type(lookup.get("content-type"), where=f"{where} header:Content-Type")
    if "content-type" in lookup:
        problems.extend(content_type.problems)
    media_type = content_type.media_type if "content-type" in lookup else "text/plain"
    charset = content_type.params.get("charset")
    if charset:
        charset = charset.strip().lower()
        if known_charset(charset) is None:
            problems.append(Problem("mime.unknown-charset", f"charset {charset!r} is not a known character set",
                                    f"{where} header:Content-Type"))
    content_id = lookup.get("content-id")
    if content_id is not None:
        stripped = content_id.strip()
        if not (stripped.startswith("<") and stripped.endswith(">")):
            problems.append(Problem("mime.content-id", f"Content-Id {stripped[:80]!r} is not in angle brackets "
                                    "(RFC 2392)", f"{where} header:Content-Id"))
        content_id = _strip_brackets(stripped) or None
    encoding = lookup.get("content-transfer-encoding")
    encoding = encoding.strip().lower() if encoding is not None else None
    body = _decode(content, encoding, where, problems)
    return Part(media_type, content_id, body, tuple(headers), charset, encoding)


def _header_end(raw: bytes) -> tuple[int, int]:
    if raw.startswith(b"\r\n"):
        return 0, 2
    if raw.startswith(b"\n"):
        return 0, 1
    candidates = [(raw.find(sep), len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n")]
    found = [(pos, length) for pos, length in candidates if pos >= 0]
    if not found:
        return -1, 0
    pos, length = min(found)
    return pos + (2 if raw[pos:pos + 2] == b"\r\n" else 1), length - (2 if raw[pos:pos + 2] == b"\r\n" else 1)


def _parse_headers(head: bytes, where: str, problems: list[Problem]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    text = head.decode("utf-8", errors="replace")
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            continue
        if line[0] in " \t" and headers:  # folded continuation (RFC 5322 2.2.3)
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            problems.append(Problem("mime.part-header", f"the line {line[:80]!r} is not a 'Name: value' header "
                                    "(is the blank line after the part's headers missing?)", where))
            continue
        headers.append((name.strip(), value.strip()))
    return headers


def _decode(content: bytes, encoding: str | None, where: str, problems: list[Problem]) -> bytes:
    label = f"{where} header:Content-Transfer-Encoding"
    if encoding in (None, "7bit"):
        if any(byte > 127 for byte in content[:1_000_000]) or b"\x00" in content:
            problems.append(Problem("mime.7bit-not-ascii", f"the part is {encoding or '7bit (the default)'} but "
                                    "holds bytes outside US-ASCII; declare 8bit or binary", label))
        return content
    if encoding in ("8bit", "binary"):
        return content
    if encoding == "base64":
        compact = re.sub(rb"\s+", b"", content)
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            problems.append(Problem("mime.bad-base64", "the part is declared base64 but is not valid base64",
                                    label))
            return content
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(content)
        except (binascii.Error, ValueError):
            problems.append(Problem("mime.bad-quoted-printable", "the part is not valid quoted-printable", label))
            return content
    problems.append(Problem("mime.unknown-transfer-encoding", f"Content-Transfer-Encoding {encoding!r} is not one "
                            f"of {', '.join(TRANSFER_ENCODINGS)}", label))
    return content


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        encoded = base64.b64encode(body)
        return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    if encoding == "quoted-printable":
        return binascii.b2a_qp(body, istext=False).replace(b"\n", b"\r\n")  # soft breaks only: exact bytes back
    return body


def build_multipart(parts: list[Part], boundary: str | None = None, *, start: str | None = None,
                    type_: str = "text/xml", charset: str | None = None) -> tuple[str, bytes]:
    """(Content-Type header, body) in Spine's shape: CRLF lines, Content-Id / Content-Type /
    Content-Transfer-Encoding per part, the first part as `start`. A part's `transfer_encoding` is honoured
    (base64 and quoted-printable are applied); the default is 8bit."""
    boundary = boundary or SPINE_BOUNDARY
    lines: list[bytes] = []
    for part in parts:
        encoding = (part.transfer_encoding or "8bit").lower()
        lines.append(f"--{boundary}".encode())
        if part.content_id:
            lines.append(f"Content-Id: <{part.content_id}>".encode())
        content_type = part.content_type + (f"; charset={part.charset.upper()}" if part.charset else "")
        lines.append(f"Content-Type: {content_type}".encode())
        lines.append(f"Content-Transfer-Encoding: {encoding}".encode())
        for name, value in part.headers:
            if name.lower() not in ("content-id", "content-type", "content-transfer-encoding"):
                lines.append(f"{name}: {value}".encode())
        lines.append(b"")
        lines.append(_encode(part.body, encoding))
    lines.append(f"--{boundary}--".encode())
    body = b"\r\n".join(lines) + b"\r\n"
    first = start or (parts[0].content_id if parts else None)
    header = f'multipart/related; boundary="{boundary}"'
    if charset:
        header += f'; charset="{charset}"'
    header += f'; type="{type_}"'
    if first:
        header += f'; start="<{first}>"'
    return header, body


def new_content_id(domain: str = "spine.nhs.uk") -> str:
    return f"{str(uuid.uuid4()).upper()}@{domain}"
