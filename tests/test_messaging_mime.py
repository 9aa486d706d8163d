"""MIME multipart/related: every transfer encoding, charsets, CRLF and bare LF, and each defect as a Problem."""

from __future__ import annotations

import base64

import pytest

from sandbox.messaging import MessagingError, mime
from sandbox.messaging.mime import Part

CT = 'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="<ebXMLHeader@spine.nhs.uk>"'


def body(*parts: str, close: bool = True, newline: str = "\r\n") -> bytes:
    lines = []
    for part in parts:
        lines.append("----=_MIME-Boundary")
        lines.extend(part.split("\n"))
    if close:
        lines.append("----=_MIME-Boundary--")
    return newline.join(lines).encode("utf-8") + newline.encode()


def part(headers: str, content: str) -> str:
    return f"{headers}\n\n{content}"


def codes(multipart: mime.Multipart) -> list[str]:
    return [p.code for p in multipart.problems]


@pytest.mark.parametrize("encoding, raw, expected", [
    ("7bit", "plain ascii", b"plain ascii"),
    ("8bit", "caf\u00e9 \u20ac", "caf\u00e9 \u20ac".encode()),
    ("binary", "bin\u00e4ry", "bin\u00e4ry".encode()),
    ("base64", base64.b64encode(b"\x00\x01\xffpng").decode(), b"\x00\x01\xffpng"),
    ("base64", "QW5vdGhl\r\ncg==", b"Another"),  # folded base64
    ("quoted-printable", "caf=C3=A9 =\r\nsoft break=3D", "caf\u00e9 soft break=".encode()),
    ("BASE64", base64.b64encode(b"case").decode(), b"case"),  # encoding names are case-insensitive
])
def test_every_transfer_encoding_is_undone(encoding, raw, expected):
    message = body(part("Content-Id: <a@x>\nContent-Type: text/plain", "x"),
                   part(f"Content-Id: <b@x>\nContent-Type: application/octet-stream\n"
                        f"Content-Transfer-Encoding: {encoding}", raw))
    parsed = mime.read_multipart(CT.replace("ebXMLHeader@spine.nhs.uk", "a@x"), message)
    assert codes(parsed) == []
    assert parsed.parts[1].body == expected
    assert parsed.parts[1].transfer_encoding == encoding.lower()


def test_missing_transfer_encoding_means_7bit_and_non_ascii_in_it_is_a_problem():
    parsed = mime.read_multipart(CT, body(part("Content-Id: <a@x>\nContent-Type: text/plain", "caf\u00e9")))
    assert codes(parsed) == ["mime.7bit-not-ascii"]
    assert parsed.problems[0].where == "MIME part 1 header:Content-Transfer-Encoding"
    assert parsed.parts[0].transfer_encoding is None and parsed.parts[0].body == "caf\u00e9".encode()


@pytest.mark.parametrize("encoding, raw, code", [
    ("base64", "not base64 at all!", "mime.bad-base64"),
    ("x-uuencode", "begin 644", "mime.unknown-transfer-encoding"),
])
def test_undecodable_parts_keep_their_bytes_and_say_why(encoding, raw, code):
    parsed = mime.read_multipart(CT, body(part(f"Content-Id: <a@x>\nContent-Transfer-Encoding: {encoding}", raw)))
    assert codes(parsed) == [code] and parsed.parts[0].body == raw.encode()


def test_charset_and_content_id_and_headers_are_read():
    parsed = mime.read_multipart(CT, body(part(
        'Content-ID: <ebXMLHeader@spine.nhs.uk>\nContent-Type: Text/XML; charset="ISO-8859-1"\n'
        "X-Folded: first\n  second", "<a/>")))
    only = parsed.parts[0]
    assert (only.content_type, only.charset, only.content_id) == ("text/xml", "iso-8859-1", "ebXMLHeader@spine.nhs.uk")
    assert only.header("x-folded") == "first second"
    assert parsed.start == "ebXMLHeader@spine.nhs.uk" and parsed.index_of("ebXMLHeader@spine.nhs.uk") == 0


def test_an_unknown_charset_and_an_unbracketed_content_id_are_problems():
    parsed = mime.read_multipart(CT, body(part("Content-Id: bare@x\nContent-Type: text/xml; charset=klingon", "x")))
    assert codes(parsed) == ["mime.unknown-charset", "mime.content-id"]
    assert parsed.parts[0].content_id == "bare@x"
    assert parsed.parts[0].text() == "x"


def test_bare_lf_parses_the_same_and_is_one_problem():
    crlf = mime.read_multipart(CT, body(part("Content-Id: <a@x>", "one\ntwo"), part("Content-Id: <b@x>", "3")))
    lf = mime.read_multipart(CT, body(part("Content-Id: <a@x>", "one\ntwo"), part("Content-Id: <b@x>", "3"),
                                      newline="\n"))
    assert [p.body for p in lf.parts] == [b"one\ntwo", b"3"]
    assert [p.body for p in crlf.parts] == [b"one\r\ntwo", b"3"]
    assert codes(lf) == ["mime.bare-lf"] and codes(crlf) == []


def test_preamble_epilogue_and_lookalike_boundaries():
    raw = (b"preamble text\r\n----=_MIME-Boundary\r\nContent-Id: <a@x>\r\n\r\nline\r\n"
           b"----=_MIME-BoundaryNOT\r\nmore\r\n----=_MIME-Boundary--  \r\nepilogue")
    parsed = mime.read_multipart(CT, raw)
    assert len(parsed.parts) == 1 and parsed.parts[0].body == b"line\r\n----=_MIME-BoundaryNOT\r\nmore"
    assert parsed.preamble == b"preamble text"


def test_missing_close_delimiter_is_a_problem_and_the_last_part_runs_to_the_end():
    parsed = mime.read_multipart(CT, body(part("Content-Id: <a@x>", "text"), close=False))
    assert codes(parsed) == ["mime.no-close-delimiter"] and parsed.parts[0].body == b"text\r\n"


def test_part_without_blank_line_after_headers():
    parsed = mime.read_multipart(CT, b"----=_MIME-Boundary\r\nContent-Id: <a@x>\r\nmock-payload\r\n"
                                     b"----=_MIME-Boundary--\r\n")
    assert codes(parsed) == ["mime.part-no-blank-line", "mime.part-header"]
    assert parsed.problems[1].where == "MIME part 1" and "mock-payload" in parsed.problems[1].message


def test_a_missing_boundary_is_read_from_the_first_delimiter_line():
    parsed = mime.read_multipart("multipart/related; type=text/xml", body(part("Content-Id: <a@x>", "x")))
    assert codes(parsed) == ["mime.no-boundary"] and parsed.parts[0].body == b"x"
    assert "--=_MIME-Boundary" in parsed.problems[0].message


@pytest.mark.parametrize("content_type, code", [
    ("text/plain", "mime.not-multipart"),
    ("", "mime.not-multipart"),
    (None, "mime.not-multipart"),
])
def test_no_boundary_or_not_multipart_raises(content_type, code):
    with pytest.raises(MessagingError) as caught:
        mime.read_multipart(content_type, body(part("Content-Id: <a@x>", "x")))
    assert code in [p.code for p in caught.value.problems]
    assert caught.value.problems[-1].where in ("header:Content-Type", "body")


def test_no_parts_raises():
    with pytest.raises(MessagingError) as caught:
        mime.read_multipart(CT, b"Message")
    assert [p.code for p in caught.value.problems] == ["mime.no-parts"]
    with pytest.raises(MessagingError) as caught:
        mime.read_multipart("multipart/related", b"Message")
    assert [p.code for p in caught.value.problems] == ["mime.no-boundary"]


def test_multipart_mixed_is_read_but_is_a_problem():
    parsed = mime.read_multipart('multipart/mixed; boundary="--=_MIME-Boundary"', body(part("Content-Id: <a@x>", "x")))
    assert codes(parsed) == ["mime.not-related"]


def test_content_type_parameters_quoting():
    parsed = mime.parse_content_type('Multipart/Related; boundary="a\\"b;c"; TYPE=text/xml; start="<x>"; junk')
    assert parsed.media_type == "multipart/related"
    assert parsed.params == {"boundary": 'a"b;c', "type": "text/xml", "start": "<x>"}
    assert [p.code for p in parsed.problems] == ["mime.content-type"]
    assert mime.parse_content_type('multipart/related; boundary="open').problems[0].code == "mime.content-type"


def test_build_then_parse_round_trips_every_encoding():
    parts = [Part("text/xml", "ebXMLHeader@spine.nhs.uk", b"<a/>", charset="utf-8"),
             Part("application/xml", "p@x", "<b>\u20ac</b>".encode(), transfer_encoding="binary"),
             Part("image/png", "c@x", bytes(range(256)), transfer_encoding="base64"),
             Part("text/plain", "d@x", b"x=y\r\n\t end \r\n" * 40, transfer_encoding="quoted-printable"),
             Part("text/plain", "e@x", b"seven bit", transfer_encoding="7bit")]
    content_type, raw = mime.build_multipart(parts)
    assert content_type == ('multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; '
                            'start="<ebXMLHeader@spine.nhs.uk>"')
    parsed = mime.read_multipart(content_type, raw)
    assert codes(parsed) == []
    assert [(p.content_type, p.content_id, p.body) for p in parsed.parts] == [
        (p.content_type, p.content_id, p.body) for p in parts]
    assert parsed.parts[0].charset == "utf-8"
    assert mime.parse_multipart(content_type, raw)[2].body == bytes(range(256))
