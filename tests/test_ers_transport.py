"""How e-RS answers travel (BEHAVIOUR.md section 7): compression by Accept-Encoding, HEAD, conditional and range
requests, the request ids, the two settings (SANDBOX_ERS_MODE, SANDBOX_RESPONSE_HEADERS), the journal of a
compressed answer, our own PDFs, and the same answers through the real server."""

from __future__ import annotations

import gzip
import json
import re
import zlib

import pytest
import requests

from sandbox.services.ers.documents import pdf
from sandbox.settings import SettingError, Settings
from tests.conftest import LiveServer, free_port
from tests.ers_helpers import R4, RC, REQUEST_ID, STU3, ers_app, ers_headers, mock_json

BIG = f"{STU3}/ReferralRequest/000000070001"  # a JSON answer well over 1024 bytes
SMALL = f"{R4}/HealthcareService/1"  # under 1024 bytes
LAST_MODIFIED = "Fri, 26 Jun 2026 13:24:20 GMT"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with ers_app(tmp_path_factory.mktemp("ers-transport")) as app:
        yield app.test_client()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    with ers_app(tmp_path_factory.mktemp("ers-transport-pub"), ers_mode="published",
                 response_headers="published") as app:
        yield app.test_client()


def _expected_big() -> dict:
    return mock_json("stu3", "retrieveReferralRequest", "responses", "BookedDBS.json")


@pytest.mark.parametrize("accept,coding", [
    ("gzip, deflate", "gzip"), ("gzip", "gzip"), ("deflate", "deflate"), ("gzip;q=0, deflate", "deflate"),
    ("deflate, gzip;q=0.5", "gzip"), ("*", None), ("br", None), ("identity", None), ("gzip;q=0", None), (None, None)])
def test_compression_follows_accept_encoding(published, accept, coding):
    headers = ers_headers(RC, **({"Accept-Encoding": accept} if accept is not None else {}))
    response = published.get(BIG, headers=headers)
    assert response.status_code == 200
    assert response.headers["vary"] == "origin,accept-encoding"  # whether compressed or not
    assert response.headers.get("content-encoding") == coding
    data = response.get_data()
    if coding is None:
        assert int(response.headers["content-length"]) == len(data)
        assert "transfer-encoding" not in response.headers
    else:
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        data = gzip.decompress(data) if coding == "gzip" else zlib.decompress(data)
    assert json.loads(data) == _expected_big()


def test_small_answers_are_never_compressed(published):
    response = published.get(SMALL, headers=ers_headers(RC, **{"Accept-Encoding": "gzip"}))
    assert "content-encoding" not in response.headers and response.headers["vary"] == "origin"
    assert int(response.headers["content-length"]) == len(response.get_data()) < 1024


def test_head_has_the_length_and_no_body(published):
    get = published.get(BIG, headers=ers_headers(RC))
    head = published.head(BIG, headers=ers_headers(RC, **{"Accept-Encoding": "gzip"}))
    assert head.status_code == 200 and head.get_data() == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert "content-encoding" not in head.headers and head.headers["etag"] == 'W/"5"'


@pytest.mark.parametrize("headers,status", [
    ({"If-None-Match": 'W/"5"'}, 304), ({"If-None-Match": 'W/"4", W/"5"'}, 304), ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": 'W/"4"'}, 200), ({"If-Modified-Since": LAST_MODIFIED}, 304),
    ({"If-Modified-Since": "Sat, 27 Jun 2026 00:00:00 GMT"}, 304), ({"If-Modified-Since": "Thu, 25 Jun 2026 00:00:00 GMT"}, 200),
    ({"If-Modified-Since": "not a date"}, 200)])
def test_conditional_requests(published, headers, status):
    response = published.get(BIG, headers=ers_headers(RC, **headers))
    assert response.status_code == status
    if status == 304:
        assert response.get_data() == b"" and response.headers["etag"] == 'W/"5"'


def test_not_modified_also_replaces_the_error_file(published):
    """The 400/422 error file has its own strong ETag; asking with it gives 304, as the published sandbox does."""
    url = f"{STU3}/ReferralRequest/000000079999"
    etag = published.get(url, headers=ers_headers(RC)).headers["etag"]
    assert published.get(url, headers=ers_headers(RC, **{"If-None-Match": etag})).status_code == 304


def test_posts_are_never_conditional(published):
    body = mock_json("stu3", "createReferral", "requests", "MinimalRequest.json")
    response = published.post(f"{STU3}/ReferralRequest/$ers.createReferral", json=body,
                              headers=ers_headers(RC, **{"If-None-Match": 'W/"1"'}))
    assert response.status_code == 201


def test_ranges(published):
    whole = published.get(BIG, headers=ers_headers(RC)).get_data()
    part = published.get(BIG, headers=ers_headers(RC, Range="bytes=0-9"))
    assert part.status_code == 206 and part.get_data() == whole[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(whole)}"
    tail = published.get(BIG, headers=ers_headers(RC, Range="bytes=-5"))
    assert tail.status_code == 206 and tail.get_data() == whole[-5:]
    outside = published.get(BIG, headers=ers_headers(RC, Range=f"bytes={len(whole) + 10}-"))
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(whole)}"
    ignored = published.get(BIG, headers=ers_headers(RC, Range="pages=1-2"))
    assert ignored.status_code == 200 and ignored.get_data() == whole


def test_request_ids(published):
    """X-Request-ID is the published constant whatever was sent; X-Correlation-ID is echoed unless empty."""
    response = published.get(SMALL, headers=ers_headers(RC, **{"X-Request-ID": "mine", "X-Correlation-ID": "abc"}))
    assert response.headers["X-Request-ID"] == REQUEST_ID and response.headers["X-Correlation-ID"] == "abc"
    response = published.get(SMALL, headers=ers_headers(RC, **{"X-Correlation-ID": ""}))
    assert "X-Correlation-ID" not in response.headers


def test_connection_close_is_left_to_the_server(published):
    response = published.get(SMALL, headers=ers_headers(RC, Connection="close"))
    assert "Connection" not in response.headers and "Keep-Alive" not in response.headers
    response = published.get(SMALL, headers=ers_headers(RC))
    assert response.headers["Connection"] == "keep-alive" and response.headers["Keep-Alive"] == "timeout=5"


def test_a_compressed_answer_is_journaled_as_json(client):
    response = client.get(BIG, headers=ers_headers(RC, **{"Accept-Encoding": "gzip"}))
    assert response.headers["content-encoding"] == "gzip"
    exchange = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    assert exchange["operation"] == "a005-retrieve-referral-request"
    assert json.loads(exchange["response"]["body"]) == _expected_big()
    assert ["content-encoding", "gzip"] in exchange["response"]["headers"]


def test_published_headers_mode_applies_to_every_service(tmp_path):
    """SANDBOX_RESPONSE_HEADERS=published: no X-Sandbox-* on any service's answer; the exchange is journaled."""
    with ers_app(tmp_path / "data", response_headers="published") as app:
        client = app.test_client()
        for url in (SMALL, "/spine-directory/FHIR/R4/healthcheck"):
            response = client.get(url, headers=ers_headers(RC))
            assert not [n for n, _ in response.headers.items() if n.lower().startswith("x-sandbox")], url
        listed = client.get("/_sandbox/exchanges?limit=5").get_json()["exchanges"]
        assert {row["path"] for row in listed} >= {SMALL, "/spine-directory/FHIR/R4/healthcheck"}


def test_settings_are_validated():
    assert Settings.load(environ={"SANDBOX_ERS_MODE": "published"}).ers_mode == "published"
    assert Settings.load(environ={}).ers_mode == "live" and Settings.load(environ={}).response_headers == "sandbox"
    with pytest.raises(SettingError, match="SANDBOX_ERS_MODE='stateless' is not one of live, published"):
        Settings.load(environ={"SANDBOX_ERS_MODE": "stateless"})
    with pytest.raises(SettingError, match="SANDBOX_RESPONSE_HEADERS='none' is not one of sandbox, published"):
        Settings.load(environ={"SANDBOX_RESPONSE_HEADERS": "none"})


# ---- our PDFs ---------------------------------------------------------------------------------------------------------

def _objects(document: bytes) -> dict[int, int]:
    """Object number -> offset, from the cross-reference table."""
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", document).group(1))
    table = document[start:].split(b"trailer")[0].split(b"\n")
    count = int(table[1].split()[1])
    return {n: int(table[2 + n].split()[0]) for n in range(1, count)}


def test_pdf_is_well_formed():
    document = pdf("Clinical Information Summary (test)", [f"Line {n} \\ ( ) é" for n in range(150)] + ["x" * 300])
    assert document.startswith(b"%PDF-1.4\n")
    offsets = _objects(document)
    for number, offset in offsets.items():  # every cross-reference points at its object
        assert document[offset:].startswith(b"%d 0 obj" % number)
    assert document.count(b"/Type /Page ") == 4  # 50 lines a page: 150, and a long one wrapped over 4 more
    assert rb"(Clinical Information Summary \(test\))" in document
    assert b"\\\\ \\( \\) \xe9" in document  # escaped, in the font's own encoding
    for stream in re.finditer(rb"<< /Length (\d+) >>\nstream\n", document):
        length = int(stream.group(1))
        assert document[stream.end() + length:stream.end() + length + 10] == b"\nendstream"


def test_empty_pdf_has_one_page():
    document = pdf("Title only")
    assert document.count(b"/Type /Page ") == 1 and b"/Count 1" in document


# ---- the real server ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_through_the_real_server(tmp_path):
    """Granian sends the answers as the test client sees them (header names lower-cased, `server:` added)."""
    server = LiveServer(tmp_path / "data", free_port(), extra_env={"SANDBOX_ERS_MODE": "published",
                                                                   "SANDBOX_RESPONSE_HEADERS": "published"}).wait(60)
    try:
        response = requests.get(server.url + BIG, headers=ers_headers(RC, **{"Accept-Encoding": "gzip, deflate"}),
                                timeout=30)
        assert response.status_code == 200 and response.json() == _expected_big()
        assert response.headers["content-encoding"] == "gzip" and "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        assert not any(name.lower().startswith("x-sandbox") for name in response.headers)
        head = requests.head(server.url + BIG, headers=ers_headers(RC), timeout=30)
        assert head.status_code == 200 and int(head.headers["content-length"]) > 1024
        redirect = requests.get(server.url + f"{R4}/Binary/att-1", allow_redirects=False, timeout=30,
                                headers=ers_headers(RC, **{"x-ers-sandbox-baseurl": server.url + "/referrals"}))
        assert redirect.status_code == 307
        stored = requests.get(redirect.headers["Location"], timeout=30)
        assert stored.status_code == 200 and stored.content.startswith(b"%PDF-")
        closing = requests.get(server.url + SMALL, headers=ers_headers(RC, Connection="close"), timeout=30)
        assert closing.status_code == 200 and closing.json()["id"] == "1"
    finally:
        server.stop()


def test_mock_spine_answers_with_the_published_header_set_in_its_spelling(tmp_path):
    """A supplier's test comparing whole header sets, as the NHS's own suite does (BEHAVIOUR section 12), passes
    in-process: names in the published sandbox's spelling, and nothing of ours."""
    import requests

    from sandbox.inprocess import mock_spine
    from sandbox.settings import Settings

    settings = Settings.load(environ={}, data_dir=tmp_path, response_headers="published", population=2000)
    with mock_spine(settings=settings):
        response = requests.get("https://sandbox.api.service.nhs.uk/referrals/FHIR/STU3/ReferralRequest/000000070000",
                                headers=ers_headers(RC, **{"X-Correlation-ID": "abc",
                                                           "Accept-Encoding": "gzip, deflate"}))
    assert response.status_code == 200
    sent = list(response.headers.keys())
    ignored = {"Date", "last-modified", "Keep-Alive", "Strict-Transport-Security"}  # case-sensitively, as there
    assert {"Date", "last-modified"} <= set(sent)
    assert {name.lower() for name in sent if name not in ignored} == {
        "content-type", "etag", "x-correlation-id", "x-request-id", "vary", "access-control-expose-headers",
        "cache-control", "accept-ranges", "content-encoding", "connection", "transfer-encoding"}
    assert response.headers["vary"] == "origin,accept-encoding" and response.json()["id"] == "000000070000"
