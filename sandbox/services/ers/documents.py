"""Small, valid PDF documents made by the sandbox (a title and lines of text on A4 pages), for the e-RS answers that
are PDFs: clinical information summaries, patient letters, advice and guidance overviews, attachments. Standard
library only; the published sandbox's own PDFs are NHS documents we do not copy (ERS-PUB-004)."""

from __future__ import annotations

from collections.abc import Iterable

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 56
TITLE_SIZE, TEXT_SIZE, LEADING = 16, 10, 14
LINES_PER_PAGE = (PAGE_HEIGHT - 2 * MARGIN - 2 * LEADING) // LEADING
WRAP_AT = 95  # characters of Helvetica 10 pt that fit between the margins


def pdf(title: str, lines: Iterable[str] = ()) -> bytes:
    """A PDF 1.4 document: the title on the first page, then the lines, wrapped and paged as needed. Text outside
    Latin-1 is replaced by '?', as the standard Helvetica font has no other characters."""
    wrapped = [piece for line in lines for piece in _wrap(str(line))]
    pages = [wrapped[i:i + LINES_PER_PAGE] for i in range(0, len(wrapped), LINES_PER_PAGE)] or [[]]
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree (filled in below)
    font = _add(objects, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for number, page_lines in enumerate(pages):
        stream = _page_stream(title if number == 0 else "", page_lines)
        content = _add(objects, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        page_ids.append(_add(objects, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font "
                                      b"<< /F1 %d 0 R >> >> /Contents %d 0 R >>"
                             % (PAGE_WIDTH, PAGE_HEIGHT, font, content)))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    info = _add(objects, b"<< /Title %s /Producer (Spine Sandbox) >>" % _literal(title))
    return _assemble(objects, info)


def _add(objects: list[bytes], body: bytes) -> int:
    objects.append(body)
    return len(objects)


def _page_stream(title: str, lines: list[str]) -> bytes:
    parts = [b"BT", b"/F1 %d Tf" % TITLE_SIZE, b"%d TL" % LEADING, b"%d %d Td" % (MARGIN, PAGE_HEIGHT - MARGIN)]
    if title:
        parts += [_literal(title) + b" Tj", b"/F1 %d Tf" % TEXT_SIZE, b"T*", b"T*"]
    else:
        parts.append(b"/F1 %d Tf" % TEXT_SIZE)
    parts += [_literal(line) + b" Tj T*" for line in lines]
    parts.append(b"ET")
    return b"\n".join(parts)


def _wrap(line: str) -> list[str]:
    if len(line) <= WRAP_AT:
        return [line]
    pieces, current = [], ""
    for word in line.split(" "):
        while len(word) > WRAP_AT:  # a word longer than a line is cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:WRAP_AT])
            word = word[WRAP_AT:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) > WRAP_AT:
            pieces.append(current)
            current = word
        else:
            current = candidate
    return pieces + [current] if current else pieces


def _literal(text: str) -> bytes:
    """A PDF string literal: backslash, parentheses and control characters escaped; Latin-1 (WinAnsi) text."""
    raw = text.encode("latin-1", errors="replace")
    escaped = bytearray(b"(")
    for byte in raw:
        if byte in b"\\()":
            escaped += b"\\" + bytes([byte])
        elif byte < 32 or byte == 127:
            escaped += b"\\%03o" % byte
        else:
            escaped.append(byte)
    return bytes(escaped + b")")


def _assemble(objects: list[bytes], info: int) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)
