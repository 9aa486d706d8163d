"""Hostile input: XML bombs, external entities, deep nesting, thousands of parts, huge headers, bytes that are not
UTF-8, and a deterministic corpus of mangled real messages (hypothesis is not installed, so the corpus is made here
from seeded mutations). Every parser answers with a result or MessagingError, never another exception, and never
needs its last-resort guard."""

from __future__ import annotations

import random

import pytest

from sandbox.messaging import MessagingError, ebxml, hl7, mime, soap
from sandbox.messaging.mime import Part

CT = 'multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="<ebXMLHeader@spine.nhs.uk>"'
BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']><lolz>&lol9;</lolz>')
XXE = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
QUADRATIC = b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"
DEEP = b"<a>" * 10_000 + b"</a>" * 10_000


def good_message() -> tuple[str, bytes]:
    return ebxml.build_message(
        from_party="A91424-9199121", to_party="YES-0000806", cpa_id="S1001A1630",
        conversation_id="10F5A436-1913-43F0-9F18-95EA0E43E61A", service="urn:nhs:names:services:psis",
        action="REPC_IN150016UK05", message_id="C614484E-4B10-499A-9ACD-5D645CFACF61",
        hl7=b'<REPC_IN150016UK05 xmlns="urn:hl7-org:v3"><id root="C614484E-4B10-499A-9ACD-5D645CFACF61"/>'
            b"</REPC_IN150016UK05>",
        attachments=[Part("image/png", "a@spine.nhs.uk", b"\x89PNG" * 40, transfer_encoding="base64")],
        ack_requested=True, duplicate_elimination=True)


def every_parser(content_type: str | None, body: bytes) -> None:
    """Run each parser; anything but a result or MessagingError fails the test."""
    for call in (lambda: ebxml.parse(content_type, body), lambda: ebxml.parse_header(body),
                 lambda: mime.read_multipart(content_type, body), lambda: soap.parse_request(body),
                 lambda: soap.parse_fault(body), lambda: hl7.parse_wrapper(body)):
        try:
            call()
        except MessagingError as exc:
            assert exc.problems and all(p.code and p.message for p in exc.problems)
            # messaging.defect is the guard catching a bug of ours: the corpus must never reach it
            assert "messaging.defect" not in [p.code for p in exc.problems], exc.__cause__


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE, QUADRATIC, DEEP], ids=["bomb", "xxe", "quadratic", "deep"])
def test_xml_attacks_are_refused_by_every_xml_parser(xml):
    for parse in (ebxml.parse_header, soap.parse_request, hl7.parse_wrapper, soap.parse_fault):
        with pytest.raises(MessagingError) as caught:
            parse(xml)
        assert caught.value.problems[0].code.split(".")[1] in ("doctype", "malformed", "too-deep", "header-not-xml")


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE, DEEP], ids=["bomb", "xxe", "deep"])
def test_xml_attacks_inside_mime_parts(xml):
    content_type, body = good_message()
    header_part, payload_part, *rest = mime.parse_multipart(content_type, body)
    bad_payload_type, bad_payload = mime.build_multipart([header_part, Part("text/xml", payload_part.content_id, xml),
                                                          *rest])
    message = ebxml.parse(bad_payload_type, bad_payload)
    assert "ebxml.payload-not-xml" in [p.code for p in message.problems]
    bad_header_type, bad_header = mime.build_multipart([Part("text/xml", header_part.content_id, xml), payload_part])
    with pytest.raises(MessagingError):
        ebxml.parse(bad_header_type, bad_header)


def test_ten_thousand_parts_are_cut_short_with_a_problem():
    body = b"".join(b"----=_MIME-Boundary\r\nContent-Id: <p%d@x>\r\n\r\nx\r\n" % i for i in range(10_000))
    body += b"----=_MIME-Boundary--\r\n"
    parsed = mime.read_multipart(CT, body)
    assert len(parsed.parts) == mime.MAX_PARTS + 1
    assert "mime.too-many-parts" in [p.code for p in parsed.problems]
    with pytest.raises(MessagingError) as caught:  # and none of them is an ebXML header
        ebxml.parse(CT, body)
    assert "mime.too-many-parts" in [p.code for p in caught.value.problems]


def test_huge_headers():
    with pytest.raises(MessagingError) as caught:
        mime.read_multipart(CT + "; x=" + "a" * 1_000_000, b"----=_MIME-Boundary\r\n\r\nx\r\n")
    assert caught.value.problems[0].code == "mime.header-too-large"
    huge_part = b"----=_MIME-Boundary\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\nbody\r\n----=_MIME-Boundary--\r\n"
    parsed = mime.read_multipart(CT, huge_part)
    assert "mime.header-too-large" in [p.code for p in parsed.problems]


def test_too_large_a_body_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(mime, "MAX_MESSAGE_BYTES", 1000)
    with pytest.raises(MessagingError) as caught:
        mime.read_multipart(CT, b"x" * 1001)
    assert caught.value.problems[0].code == "mime.too-large"


@pytest.mark.parametrize("body", [
    "<a>caf\u00e9</a>".encode("latin-1"),  # declared nothing, so UTF-8: invalid
    b'<?xml version="1.0" encoding="klingon"?><a/>',
    b'<?xml version="1.0" encoding="UTF-16"?><a/>',
    b"\xef\xbb\xbf\xff\xfe<a/>",
    b"\x00" * 100,
])
def test_bytes_that_are_not_the_declared_encoding(body):
    every_parser(CT, body)
    with pytest.raises(MessagingError):
        soap.parse_request(body)


def test_a_latin1_payload_that_says_so_is_read():
    wrapper = hl7.parse_wrapper('<?xml version="1.0" encoding="ISO-8859-1"?><x xmlns="urn:hl7-org:v3">'
                                "caf\u00e9</x>".encode("latin-1"))
    assert wrapper.root.text == "caf\u00e9" and wrapper.problems


@pytest.mark.parametrize("content_type", [None, "", b"multipart/related; boundary=\xff", "multipart/related; ;;=;\"",
                                          "multipart/related; boundary=" + "x" * 100, 12345])
def test_odd_content_type_headers(content_type):
    every_parser(content_type, good_message()[1])


@pytest.mark.parametrize("body", [None, "a str", 42])
def test_what_is_not_bytes(body):
    for parse in (lambda: ebxml.parse(CT, body), lambda: mime.read_multipart(CT, body),
                  lambda: soap.parse_request(body), lambda: hl7.parse_wrapper(body)):
        with pytest.raises(MessagingError):
            parse()


def mutations(seed: int, original: bytes, count: int) -> list[bytes]:
    """Deterministic mangling: truncations, byte flips, deleted and duplicated lines, spliced junk."""
    rng = random.Random(seed)
    out = []
    lines = original.split(b"\n")
    for _ in range(count):
        choice = rng.randrange(6)
        if choice == 0:
            out.append(original[:rng.randrange(len(original))])
        elif choice == 1:
            data = bytearray(original)
            for _ in range(rng.randrange(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            out.append(bytes(data))
        elif choice == 2:
            kept = [line for line in lines if rng.random() > 0.1]
            out.append(b"\n".join(kept))
        elif choice == 3:
            index = rng.randrange(len(lines))
            out.append(b"\n".join(lines[:index] + [lines[index]] * rng.randrange(2, 50) + lines[index:]))
        elif choice == 4:
            position = rng.randrange(len(original))
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            out.append(original[:position] + junk + original[position:])
        else:
            out.append(original.replace(b"\r\n", b"\n").replace(b"<", b"<" * rng.randrange(1, 3), 3))
    return out


def test_a_corpus_of_mangled_real_messages_never_escapes_messaging_error():
    content_type, body = good_message()
    ack = ebxml.build_acknowledgment(ebxml.parse(content_type, body).header, from_party="YES-0000806",
                                     message_id="97111C1C-48B8-B2FA-DE13-B64B2ADEB391")
    fault = soap.build_fault([soap.SpineErrorDetail("200", "System failure to process message - default")])
    sync = soap.build_response(action="urn:nhs:names:services:pdsquery/QUPA_IN050000UK32",
                               message_id="9CB12D64-19FA-42CD-B403-0CC205BD5B23",
                               relates_to="9CB12D64-19FA-42CD-B403-0CC205BD5B24",
                               from_service="urn:nhs:names:services:pdsquery", sender_asid="928942012545",
                               receiver_asid="918999198975", wrapper="retrievalQueryResponse",
                               hl7=b'<QUPA_IN050000UK32 xmlns="urn:hl7-org:v3"/>')
    seen = 0
    for seed, original in enumerate((body, ack, fault, sync)):
        for mangled in mutations(seed, original, 150):
            every_parser(content_type, mangled)
            every_parser("text/xml", mangled)
            seen += 1
    assert seen == 600


def test_the_last_resort_guard_turns_a_defect_into_messaging_error(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(mime, "_split", broken)
    with pytest.raises(MessagingError) as caught:
        ebxml.parse(CT, good_message()[1])
    assert [p.code for p in caught.value.problems] == ["messaging.defect"]
    assert isinstance(caught.value.__cause__, KeyError)
