"""SDS FHIR API over HTTP, row by row of the published sandbox's behaviour (BEHAVIOUR.md sections 2-9). Where the
published records must answer verbatim the sandbox runs with SANDBOX_SDS_ADDRESSES=published. Where this sandbox
deliberately differs from the published mock (substring matching, the B82617 crash, invalid UTF-8), the test says so.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest

from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION
from tests.sds_helpers import (
    GP2GP,
    HOST,
    ODS,
    PK,
    QUPA,
    QUPC,
    REPC,
    SDS,
    SPINE_PK,
    SVC,
    finding,
    get,
    published_client,
    query,
)

FRESH_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
STU3 = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"
ORG_TEXT = ("HTTP 400: Bad Request (Missing or invalid 'organization' query parameter. Should be "
            "'organization=https://fhir.nhs.uk/Id/ods-organization-code|value')")
IDENTIFIER_TEXT = ("HTTP 400: Bad Request (Missing or invalid 'identifier' query parameter. Should be one or both of: "
                   "['identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value', "
                   "'identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey|value')")
DEVICE_SVC_TEXT = ("HTTP 400: Bad Request (Missing or invalid 'identifier' query parameter. Should be "
                   "'identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value')")
MANUFACTURER_TEXT = ("HTTP 400: Bad Request (Missing or invalid 'manufacturing-organization' query parameter. Should "
                     "be 'manufacturing-organization=https://fhir.nhs.uk/Id/ods-organization-code|value')")
COMBINATION_TEXT = (
    "HTTP 400: Bad Request (Missing or invalid query parameters. Should one of following combinations: "
    "['organization=https://fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/"
    "nhsServiceInteractionId|value&identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey|value''organization=https://"
    "fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value'"
    "'organization=https://fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/"
    "nhsMhsPartyKey|value''identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value&identifier=https://"
    "fhir.nhs.uk/Id/nhsMhsPartyKey|value'])")
CORRELATION_TEXT = ("HTTP 400: Bad Request (Invalid X-Correlation-ID header. Should be an UUIDv4 matching regex "
                    "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')")
DEVICE_OK = query("YES", REPC)
ENDPOINT_OK = query("YES", REPC)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One published-mode sandbox for the module: these tests only read the directory."""
    return published_client(Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("sds"),
                                          population=TEST_POPULATION))


def outcome(response, status: int, code: str, diagnostics: str | None = None, issue: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/fhir+json"
    body = response.get_json(force=True)
    assert list(body) == ["resourceType", "id", "issue"]
    assert body["resourceType"] == "OperationOutcome"
    assert body["id"] == response.headers["X-Correlation-Id"]
    item = body["issue"][0]
    assert list(item) == ["severity", "code", "details", "diagnostics"]
    assert item["severity"] == "error"
    assert item["details"]["coding"][0]["system"] == STU3
    assert item["details"]["coding"][0]["code"] == code
    if diagnostics is not None:
        assert item["diagnostics"] == diagnostics
    if issue is not None:
        assert item["code"] == issue
    assert response.get_data(as_text=True).startswith('{\n    "resourceType"')  # 4-space indentation
    return body


# --- 2. routes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,qs", [("/Device", DEVICE_OK), ("/Endpoint", ENDPOINT_OK)])
def test_search_paths_answer_get(published, path, qs):
    response = get(published, path, qs)
    assert response.status_code == 200
    assert response.get_json(force=True)["resourceType"] == "Bundle"


@pytest.mark.parametrize("path", ["/Device", "/Endpoint"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_on_searches_are_405(published, path, method):
    response = published.open(f"{SDS}{path}?organization=bad", method=method, headers={"X-Correlation-ID": "bad"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    if method != "HEAD":
        outcome(response, 405, "NOT_IMPLEMENTED", "HTTP operation not supported", "not-supported")


@pytest.mark.parametrize("path", ["/healthcheck", "/healthcheck/deep"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_other_methods_on_health_checks_are_405_html(published, path, method):
    response = published.open(f"{SDS}{path}", method=method)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    if method != "HEAD":
        assert response.get_data(as_text=True) == ("<html><title>405: Method Not Allowed</title><body>405: Method "
                                                   "Not Allowed</body></html>")


@pytest.mark.parametrize("path", ["/device", "/Device/", "/Device/123", "/", "", "/metadata", "/healthcheck/",
                                  "/ENDPOINT"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_anything_else_is_404(published, path, method):
    response = published.open(f"{SDS}{path}?organization=bad", method=method,
                              headers={"X-Correlation-ID": "not-a-uuid"})
    outcome(response, 404, "NO_RECORD_FOUND", "HTTP endpoint not found", "not-found")
    assert FRESH_ID.match(response.headers["X-Correlation-Id"])


# --- 3.1 order of checks ---------------------------------------------------------------------------------------------
def test_correlation_id_is_checked_before_parameters(published):
    response = get(published, "/Endpoint", "foo=1", {"X-Correlation-ID": "nope", "Accept": "text/html"})
    outcome(response, 400, "BAD_REQUEST", CORRELATION_TEXT, "required")


def test_parameter_names_are_checked_before_combination_and_accept(published):
    response = get(published, "/Endpoint", "foo=1", {"Accept": "text/html"})
    outcome(response, 400, "BAD_REQUEST", "HTTP 400: Bad Request (Illegal query parameter 'foo')")


def test_combination_is_checked_before_accept(published):
    response = get(published, "/Endpoint", query("YES"), {"Accept": "text/html"})
    outcome(response, 400, "BAD_REQUEST", COMBINATION_TEXT)


def test_accept_is_checked_last(published):
    outcome(get(published, "/Endpoint", ENDPOINT_OK, {"Accept": "text/html"}), 406, "MISSING_OR_INVALID_HEADER",
            "Accept type not supported", "not-supported")


@pytest.mark.parametrize("qs,expected", [
    ("foo=1&organization=bad", "HTTP 400: Bad Request (Illegal query parameter 'foo')"),
    ("organization=bad&foo=1", ORG_TEXT),
    (f"identifier=bad&organization={ODS}|YES", IDENTIFIER_TEXT),
    (f"organization={ODS}|YES&identifier={SVC}|{REPC}&identifier=bad", IDENTIFIER_TEXT),
])
def test_parameters_are_visited_in_order_of_first_appearance(published, qs, expected):
    outcome(get(published, "/Endpoint", qs), 400, "BAD_REQUEST", expected)


# --- 3.2 query parsing ----------------------------------------------------------------------------------------------
def test_blank_value_is_a_value(published):
    outcome(get(published, "/Endpoint", f"organization=&identifier={SVC}|{REPC}"), 400, "BAD_REQUEST", ORG_TEXT)


def test_leading_space_fails_the_prefix_check(published):
    outcome(get(published, "/Endpoint", f"organization=%20{ODS}|YES&identifier={SVC}|{REPC}"), 400, "BAD_REQUEST",
            ORG_TEXT)
    outcome(get(published, "/Endpoint", f"organization=+{ODS}|YES&identifier={SVC}|{REPC}"), 400, "BAD_REQUEST",
            ORG_TEXT)


def test_values_are_trimmed_after_the_prefix_check(published):
    body = get(published, "/Endpoint", f"organization={ODS}|YES%20%20&identifier={SVC}|{REPC}+").get_json(force=True)
    assert body["total"] == 1


def test_the_last_token_of_a_system_wins(published):
    qs = f"organization={ODS}|X26&organization={ODS}|YES&identifier={SVC}|{REPC}"
    response = get(published, "/Endpoint", qs)
    assert response.get_json(force=True)["total"] == 1
    assert finding(published, response, "SDS-QRY-008")[0]["outcome"] == "warning"


def test_everything_after_the_first_bar_is_the_value(published):
    body = get(published, "/Endpoint", f"organization={ODS}|YES|123456&identifier={PK}|{SPINE_PK}").get_json(
        force=True)
    assert body["total"] == 0


def test_a_token_with_nothing_after_the_bar_is_not_present(published):
    outcome(get(published, "/Device", f"organization={ODS}|&identifier={SVC}|{REPC}"), 400, "BAD_REQUEST", ORG_TEXT)
    outcome(get(published, "/Endpoint", f"organization={ODS}|%20&identifier={SVC}|{REPC}"), 400, "BAD_REQUEST",
            COMBINATION_TEXT)


def test_percent_and_plus_decoding(published):
    encoded = get(published, "/Endpoint", query("YES", REPC, encode=True)).get_json(force=True)
    assert encoded["total"] == 1


def test_invalid_utf8_value_is_refused_not_a_crash(published):
    """Published sandbox: 500 ''utf-8' codec can't decode byte 0xff…'. This sandbox answers 400 naming the
    parameter (SDS-QRY-010): a supplier learns what is wrong instead of seeing a server failure."""
    response = get(published, "/Endpoint", f"organization=%FF&identifier={SVC}|{REPC}")
    outcome(response, 400, "BAD_REQUEST", "HTTP 400: Bad Request (Query parameter 'organization' is not valid UTF-8)")
    assert finding(published, response, "SDS-QRY-010")[0]["outcome"] == "fail"


def test_parameter_name_not_utf8_is_read_as_latin1_and_illegal(published):
    response = get(published, "/Endpoint", "%FF=1")
    outcome(response, 400, "BAD_REQUEST", "HTTP 400: Bad Request (Illegal query parameter '\u00ff')")
    assert "Illegal query parameter '\\u00ff'" in response.get_data(as_text=True)


# --- 3.3 allowed parameters and prefixes ------------------------------------------------------------------------------
@pytest.mark.parametrize("path,name", [("/Device", "_format"), ("/Device", "_count"), ("/Device", "use_cpm"),
                                       ("/Endpoint", "_format"), ("/Endpoint", "manufacturing-organization"),
                                       ("/Endpoint", "use_cpm")])
def test_illegal_parameters(published, path, name):
    response = get(published, path, f"{DEVICE_OK}&{name}=iwanttogetdatafromcpm")
    outcome(response, 400, "BAD_REQUEST", f"HTTP 400: Bad Request (Illegal query parameter '{name}')")
    failed = finding(published, response, "SDS-QRY-001")[0]
    assert failed["outcome"] == "fail" and name in failed["message"]


@pytest.mark.parametrize("path,qs,expected,requirement", [
    ("/Device", f"organization=YES&identifier={SVC}|{REPC}", ORG_TEXT, "SDS-QRY-002"),
    ("/Device", f"organization={ODS}|YES&identifier={REPC}", IDENTIFIER_TEXT, "SDS-QRY-003"),
    ("/Device", f"{DEVICE_OK}&manufacturing-organization=X09001", MANUFACTURER_TEXT, "SDS-QRY-004"),
    ("/Endpoint", f"organization={ODS}|YES&identifier=https://example.org|{REPC}", IDENTIFIER_TEXT, "SDS-QRY-003"),
])
def test_system_prefixes(published, path, qs, expected, requirement):
    response = get(published, path, qs)
    outcome(response, 400, "BAD_REQUEST", expected)
    failed = finding(published, response, requirement)[0]
    assert failed["outcome"] == "fail"
    assert "|" in failed["message"] and "https://fhir.nhs.uk/Id/" in failed["message"]  # tells the prefix to use


def test_the_supplier_learns_which_prefix_to_use(published):
    response = get(published, "/Device", f"organization=YES&identifier={SVC}|{REPC}")
    message = finding(published, response, "SDS-QRY-002")[0]["message"]
    assert f"organization={ODS}|YES" in message


# --- 3.4 headers read ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0c9bd8f5-6a13-4c32-9c4b-2dcd0d8b1d0a", "0C9BD8F5-6A13-4C32-9C4B-2DCD0D8B1D0A",
                                   "00000000-0000-0000-0000-000000000000", "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"])
def test_valid_correlation_id_is_echoed_exactly(published, value):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"X-Correlation-ID": value})
    assert response.status_code == 200
    assert response.headers["X-Correlation-Id"] == value
    assert finding(published, response, "SDS-HDR-001")[0]["outcome"] == "pass"


@pytest.mark.parametrize("headers", [{}, {"X-Correlation-ID": ""}])
def test_absent_or_empty_correlation_id_gets_a_fresh_one(published, headers):
    first = get(published, "/Endpoint", ENDPOINT_OK, headers)
    second = get(published, "/Endpoint", ENDPOINT_OK, headers)
    assert first.status_code == 200
    assert FRESH_ID.match(first.headers["X-Correlation-Id"])
    assert first.headers["X-Correlation-Id"] != second.headers["X-Correlation-Id"]


@pytest.mark.parametrize("value", ["not-a-uuid", "{0c9bd8f5-6a13-4c32-9c4b-2dcd0d8b1d0a}",
                                   "0c9bd8f56a134c329c4b2dcd0d8b1d0a", "0c9bd8f5-6a13-4c32-9c4b-2dcd0d8b1d0a "])
def test_malformed_correlation_id_is_400_with_a_fresh_id(published, value):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"X-Correlation-ID": value})
    body = outcome(response, 400, "BAD_REQUEST", CORRELATION_TEXT)
    assert body["id"] != value and FRESH_ID.match(body["id"])
    failed = finding(published, response, "SDS-HDR-001")[0]
    assert failed["outcome"] == "fail" and "not a UUID" in failed["message"]


def test_two_correlation_id_lines_are_joined_and_fail(published):
    value = str(uuid.uuid4())
    response = get(published, "/Endpoint", ENDPOINT_OK, [("X-Correlation-ID", value), ("X-Correlation-ID", value)])
    outcome(response, 400, "BAD_REQUEST", CORRELATION_TEXT)
    assert "holds 2 values" in finding(published, response, "SDS-HDR-001")[0]["message"]


def test_x_request_id_is_not_echoed_and_apikey_is_not_checked(published):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"X-Request-ID": "anything", "apikey": "whatever"})
    assert response.status_code == 200
    assert "X-Request-ID" not in response.headers
    assert finding(published, response, "SDS-HDR-003")[0]["outcome"] == "pass"


def test_missing_apikey_is_a_warning_not_a_refusal(published):
    response = get(published, "/Endpoint", ENDPOINT_OK)
    assert response.status_code == 200
    warned = finding(published, response, "SDS-HDR-003")[0]
    assert warned["outcome"] == "warning" and "401" in warned["message"]


def test_if_none_match_star_is_304_with_correlation_id(published):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"If-None-Match": "*"})
    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["X-Correlation-Id"]


# --- 3.5 Accept -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept,content_type", [
    (None, "application/fhir+json"), ("*/*", "application/fhir+json"),
    ("application/fhir+json", "application/fhir+json"), ("Application/FHIR+JSON", "application/fhir+json"),
    ("application/json", "application/json"), ("text/html, application/json", "application/json"),
    ("application/json, */*", "application/fhir+json"), (" application/json ,text/plain", "application/json"),
])
def test_accept_negotiation(published, accept, content_type):
    headers = {"Accept": accept} if accept is not None else {}
    response = get(published, "/Endpoint", ENDPOINT_OK, headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type


@pytest.mark.parametrize("accept", ["application/fhir+json; charset=utf-8", "application/json;q=0.9",
                                    "application/*", "", "text/html"])
def test_unacceptable_accept_is_406(published, accept):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"Accept": accept})
    outcome(response, 406, "MISSING_OR_INVALID_HEADER", "Accept type not supported", "not-supported")
    assert finding(published, response, "SDS-HDR-004")[0]["outcome"] == "fail"


def test_errors_are_fhir_json_whatever_was_asked(published):
    response = get(published, "/Endpoint", "foo=1", {"Accept": "application/json"})
    assert response.headers["Content-Type"] == "application/fhir+json"


# --- 3.6 headers on a 200 -----------------------------------------------------------------------------------------------
def test_headers_on_200(published):
    response = get(published, "/Endpoint", ENDPOINT_OK)
    data = response.get_data()
    assert response.headers["Etag"] == f'"{hashlib.sha1(data).hexdigest()}"'  # noqa: S324
    assert response.headers["Content-Length"] == str(len(data))
    assert "Cache-Control" not in response.headers and "Location" not in response.headers


# --- 4. the Bundle ------------------------------------------------------------------------------------------------------
def test_bundle_format(published):
    response = get(published, "/Endpoint", query("YES", pk=SPINE_PK))
    text = response.get_data(as_text=True)
    body = json.loads(text)
    assert text == json.dumps(body, indent=2)  # 2-space indentation, ASCII only
    assert list(body) == ["resourceType", "id", "type", "total", "link", "entry"]
    assert body["type"] == "searchset" and FRESH_ID.match(body["id"])
    assert body["total"] == len(body["entry"]) == 5
    for entry in body["entry"]:
        assert list(entry) == ["fullUrl", "resource", "search"]
        assert entry["search"] == {"mode": "match"}
        assert entry["fullUrl"] == f"http://{HOST}/Endpoint/{entry['resource']['id']}"


def test_ids_are_fresh_on_every_request(published):
    first = get(published, "/Endpoint", ENDPOINT_OK).get_json(force=True)
    second = get(published, "/Endpoint", ENDPOINT_OK).get_json(force=True)
    assert first["id"] != second["id"]
    assert first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]


def test_empty_bundle_has_entry_list(published):
    body = get(published, "/Endpoint", query("YES", "non-existing")).get_json(force=True)
    assert body["total"] == 0 and body["entry"] == []


def test_self_link_is_the_request_url_decoded_once(published):
    qs = f"organization={ODS}%7CYES&identifier={SVC}%7C{REPC}&identifier={PK}|a+b%C3%A9"
    body = get(published, "/Endpoint", qs, {"Host": "LocalHost:9000"}).get_json(force=True)
    assert body["link"] == [{"relation": "self", "url": f"http://LocalHost:9000/Endpoint?organization={ODS}|YES&"
                                                           f"identifier={SVC}|{REPC}&identifier={PK}|a+bé"}]


def test_sandbox_mode_links_are_where_the_supplier_called(client):
    body = get(client, "/Endpoint", ENDPOINT_OK, {"Host": "sandbox.example:8443"}).get_json(force=True)
    assert body["link"][0]["url"].startswith(f"http://sandbox.example:8443{'/spine-directory/FHIR/R4'}/Endpoint?")
    assert body["entry"][0]["fullUrl"].startswith("http://sandbox.example:8443/spine-directory/FHIR/R4/Endpoint/")


# --- 5. /Device -----------------------------------------------------------------------------------------------------------
def test_device_needs_organization_first(published):
    response = get(published, "/Device", f"identifier={PK}|{SPINE_PK}")
    outcome(response, 400, "BAD_REQUEST", ORG_TEXT)
    assert finding(published, response, "SDS-QRY-005")[0]["outcome"] == "fail"


def test_device_needs_a_service_interaction(published):
    outcome(get(published, "/Device", query("YES", pk=SPINE_PK)), 400, "BAD_REQUEST", DEVICE_SVC_TEXT)


def test_device_required_values_before_accept(published):
    outcome(get(published, "/Device", query("YES"), {"Accept": "text/html"}), 400, "BAD_REQUEST", DEVICE_SVC_TEXT)


@pytest.mark.parametrize("org,svc,pk,man,total", [
    ("YES", REPC, None, None, 1), ("YES", QUPA, SPINE_PK, None, 1), ("YES", QUPC, SPINE_PK, "X09001", 1),
    ("YES", REPC, None, "YES", 0), ("YES", REPC, "YES-1", None, 0), ("YES", "REPC_IN150016UK05", None, None, 0),
    ("X26", GP2GP, "X26-822084", "X26", 1), ("X26", GP2GP, None, None, 1), ("X26", REPC, None, None, 0),
    ("x26", GP2GP, None, None, 0), ("123456", REPC, None, None, 0),
])
def test_device_matching(published, org, svc, pk, man, total):
    body = get(published, "/Device", query(org, svc, pk, man)).get_json(force=True)
    assert body["total"] == total


def test_device_resource(published):
    body = get(published, "/Device", query("YES", REPC)).get_json(force=True)
    device = body["entry"][0]["resource"]
    assert list(device) == ["resourceType", "id", "identifier", "extension", "owner"]
    assert device["identifier"] == [{"system": "https://fhir.nhs.uk/Id/nhsSpineASID", "value": "928942012545"},
                                    {"system": PK, "value": SPINE_PK}]
    assert device["extension"][0] == {
        "url": "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ManufacturingOrganisation",
        "valueReference": {"identifier": {"system": ODS, "value": "X09001"}}}
    interactions = [e["valueReference"]["identifier"]["value"] for e in device["extension"][1:]]
    assert len(interactions) == 478 and interactions == sorted(interactions)
    assert {REPC, QUPA, QUPC, "urn:nhs:names:services:pdsquery:QUPA_IN000008UK05"} <= set(interactions)
    assert all(e["url"] == "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-NhsServiceInteractionId"
               and e["valueReference"]["identifier"]["system"] == SVC for e in device["extension"][1:])
    assert device["owner"] == {"identifier": {"system": ODS, "value": "YES"}}


def test_x26_device(published):
    device = get(published, "/Device", query("X26", GP2GP)).get_json(force=True)["entry"][0]["resource"]
    assert device["identifier"][0]["value"] == "918999199246"
    assert device["identifier"][1]["value"] == "X26-822084"
    assert [e["valueReference"]["identifier"]["value"] for e in device["extension"]] == ["X26", GP2GP]


# --- 6. /Endpoint ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("org,svc,pk,ok", [
    ("YES", REPC, None, True), ("YES", None, SPINE_PK, True), ("YES", REPC, SPINE_PK, True),
    (None, REPC, SPINE_PK, True), (None, None, None, False), ("YES", None, None, False), (None, REPC, None, False),
    (None, None, SPINE_PK, False),
])
def test_endpoint_combinations(published, org, svc, pk, ok):
    response = get(published, "/Endpoint", query(org, svc, pk))
    if ok:
        assert response.status_code == 200
        assert finding(published, response, "SDS-QRY-006")[0]["outcome"] == "pass"
    else:
        outcome(response, 400, "BAD_REQUEST", COMBINATION_TEXT)


INTERMEDIARY = "https://msg.int.spine2.ncrs.nhs.uk/reliablemessaging/intermediary"


def _addresses(body) -> list[tuple[str, str]]:
    found = []
    for entry in body["entry"]:
        resource = entry["resource"]
        svc = [e for e in resource["extension"] if "valueReference" in e][0]["valueReference"]["identifier"]["value"]
        found.append((svc, resource.get("address")))
    return found


def test_worked_answer_spine_party_key(published):
    body = get(published, "/Endpoint", query("YES", pk=SPINE_PK)).get_json(force=True)
    assert _addresses(body) == [
        (REPC, "https://msg.opentest.hscic.gov.uk/reliablemessaging/reliablerequest"),
        (QUPC, "https://msg.opentest.hscic.gov.uk/reliablemessaging/queryrequest"),
        (QUPA, "https://msg.opentest.hscic.gov.uk/sync-service"),
        ("urn:nhs:names:services:tms:ReliableIntermediary", INTERMEDIARY),
        ("urn:nhs:names:services:tms:ExpressIntermediary", INTERMEDIARY)]


def test_worked_answer_forwarded_gp2gp_uses_the_intermediary(published):
    body = get(published, "/Endpoint", query("X26", GP2GP)).get_json(force=True)
    assert _addresses(body) == [(GP2GP, INTERMEDIARY), (GP2GP, INTERMEDIARY)]
    keys = [[i["value"] for i in e["resource"]["identifier"] if i["system"] == PK][0] for e in body["entry"]]
    assert keys == ["X26-9199246", "X26-820918"]
    reliability = body["entry"][0]["resource"]["extension"][0]["extension"]
    assert reliability == [{"url": "nhsMHSSyncReplyMode", "valueString": "None"},
                           {"url": "nhsMHSRetryInterval", "valueString": "PT2H"},
                           {"url": "nhsMHSRetries", "valueInteger": 2},
                           {"url": "nhsMHSPersistDuration", "valueString": "PT7H"},
                           {"url": "nhsMHSDuplicateElimination", "valueString": "always"},
                           {"url": "nhsMHSAckRequested", "valueString": "always"}]


def test_worked_answer_forward_express_ebs_without_reliability(published):
    body = get(published, "/Endpoint", query("X26", pk="X26-200150")).get_json(force=True)
    assert _addresses(body) == [("urn:nhs:names:services:ebs:PRSC_IN080000UK03", INTERMEDIARY)]
    extensions = body["entry"][0]["resource"]["extension"]
    assert [e["url"] for e in extensions] == [
        "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-NhsServiceInteractionId"]


def test_worked_answer_service_and_party_key_without_organisation(published):
    body = get(published, "/Endpoint", query(svc=QUPA, pk=SPINE_PK)).get_json(force=True)
    assert _addresses(body) == [(QUPA, "https://msg.opentest.hscic.gov.uk/sync-service")]
    resource = body["entry"][0]["resource"]
    assert [i["value"] for i in resource["identifier"]] == ["msg.opentest.hscic.gov.uk", SPINE_PK, "S20001A000168",
                                                            "928942012545"]
    assert resource["extension"][0]["extension"] == [
        {"url": "nhsMHSSyncReplyMode", "valueString": "None"},
        {"url": "nhsMHSDuplicateElimination", "valueString": "never"},
        {"url": "nhsMHSAckRequested", "valueString": "never"},
        {"url": "nhsMHSActor", "valueString": "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"}]


def test_lower_case_organisation_finds_nothing(published):
    assert get(published, "/Endpoint", query("x26", GP2GP)).get_json(force=True)["total"] == 0


@pytest.mark.parametrize("svc", ["x", "urn", "QUPA_IN040000UK32"])
def test_no_substring_matching(published, svc):
    """Published sandbox (mock-only): SVC 'x' finds the ExpressIntermediary record by substring. Live SDS, and this
    sandbox, match the whole value; the supplier is told to use the full service interaction id (SDS-QRY-007)."""
    response = get(published, "/Endpoint", query("YES", svc))
    assert response.get_json(force=True)["total"] == 0
    warned = finding(published, response, "SDS-QRY-007")[0]
    assert warned["outcome"] == "warning"
    if svc == "QUPA_IN040000UK32":
        assert QUPA in warned["message"]


def test_gp_connect_record_answers_instead_of_crashing(published):
    """Published sandbox: any match of the B82617 record is a 500 ''list' object has no attribute 'split''. This
    sandbox answers its GP Connect endpoint, one Endpoint per interaction."""
    body = get(published, "/Endpoint", query("B82617", pk="B82617-0000806")).get_json(force=True)
    assert body["total"] == 4
    assert {a for _, a in _addresses(body)} == {"https://orange.testlab.nhs.uk/B82617/STU3/1/gpconnect/"}
    one = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
    assert _addresses(get(published, "/Endpoint", query("B82617", one)).get_json(force=True)) == [
        (one, "https://orange.testlab.nhs.uk/B82617/STU3/1/gpconnect/")]


def test_endpoint_resource_member_order(published):
    resource = get(published, "/Endpoint", ENDPOINT_OK).get_json(force=True)["entry"][0]["resource"]
    assert list(resource) == ["resourceType", "id", "status", "connectionType", "payloadType", "address",
                              "managingOrganization", "identifier", "extension"]
    assert [i["system"] for i in resource["identifier"]] == [
        "https://fhir.nhs.uk/Id/nhsMhsFQDN", PK, "https://fhir.nhs.uk/Id/nhsMhsCPAId", "https://fhir.nhs.uk/Id/nhsMHSId"]
    assert [e["url"] for e in resource["extension"][0]["extension"]] == [
        "nhsMHSSyncReplyMode", "nhsMHSRetryInterval", "nhsMHSRetries", "nhsMHSPersistDuration",
        "nhsMHSDuplicateElimination", "nhsMHSAckRequested", "nhsMHSActor"]


# --- 7. errors: the 500 shape ---------------------------------------------------------------------------------------------
def test_unexpected_failure_is_a_500_operation_outcome(published, monkeypatch):
    from sandbox.services.sds import fhir

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(fhir, "endpoint_resources", broken)
    outcome(get(published, "/Endpoint", ENDPOINT_OK), 500, "INTERNAL_SERVER_ERROR", issue="exception")


# --- 8. health checks -------------------------------------------------------------------------------------------------------
def test_healthcheck(published):
    response = get(published, "/healthcheck", "anything=1")
    assert response.status_code == 200
    assert response.get_data() == b""
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Etag"] == f'"{hashlib.sha1(b"").hexdigest()}"'  # noqa: S324
    assert "X-Correlation-Id" not in response.headers


def test_deep_healthcheck(published):
    response = get(published, "/healthcheck/deep")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert "X-Correlation-Id" not in response.headers
    body = {"status": "pass", "details": {"ldap": {"status": "pass", "links": {"ldap": None}, "output": ""}}}
    assert response.get_data(as_text=True) == json.dumps(body, indent=4)


# --- 9. the gateway -----------------------------------------------------------------------------------------------------------
def test_cors_headers_on_every_response(published):
    for path, qs in (("/Endpoint", ENDPOINT_OK), ("/Endpoint", "foo=1"), ("/nothing", "")):
        response = get(published, path, qs, {"Origin": "https://app.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert response.headers["Access-Control-Max-Age"] == "3628800"
        assert response.headers["Access-Control-Allow-Methods"] == "GET, PUT, POST, PATCH, DELETE"
        assert "x-correlation-id" in response.headers["Access-Control-Allow-Headers"]


def test_preflight_is_answered_by_the_gateway(published):
    response = published.options(f"{SDS}/Endpoint", headers={"Origin": "https://app.example",
                                                             "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_options_without_preflight_headers_reaches_the_service(published):
    assert published.options(f"{SDS}/Endpoint", headers={"Origin": "https://app.example"}).status_code == 405


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping(published, method):
    response = published.open(f"{SDS}/_ping", method=method)
    assert response.status_code == 200
    if method == "GET":
        assert set(response.get_json()) == {"version", "revision", "releaseId", "commitId"}


def test_status_needs_the_status_key(published):
    refused = published.get(f"{SDS}/_status", headers={"apikey": "any"})
    assert refused.status_code == 401 and refused.get_data() == b""
    assert refused.headers["Content-Type"].startswith("text/plain")
    from sandbox.services.sds.routes import STATUS_KEY

    body = published.get(f"{SDS}/_status", headers={"apikey": STATUS_KEY}).get_json()
    assert body["status"] == "pass" and body["checks"]["healthcheckService:status"][0]["status"] == "pass"


# --- scenarios ---------------------------------------------------------------------------------------------------------------
def test_forced_unavailable_scenario(published):
    response = get(published, "/Endpoint", ENDPOINT_OK, {"X-Sandbox-Scenario": "sds-unavailable"})
    outcome(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "2"
    assert get(published, "/Endpoint", ENDPOINT_OK).status_code == 200  # only when forced


def test_forced_platform_error_scenario(published):
    response = get(published, "/Device", DEVICE_OK, {"X-Sandbox-Scenario": "sds-platform-error"})
    assert response.status_code == 500
    issue = response.get_json(force=True)["issue"][0]
    assert issue["code"] == "unknown" and issue["details"]["coding"][0]["code"] == "UNKNOWN_ERROR"


def test_forced_deep_healthcheck_failure(published):
    response = get(published, "/healthcheck/deep", headers={"X-Sandbox-Scenario": "sds-healthcheck-deep-fail"})
    assert response.status_code == 503
    assert response.get_json(force=True)["status"] == "fail"
