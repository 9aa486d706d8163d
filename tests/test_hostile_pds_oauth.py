"""Hostile input on the PDS FHIR and OAuth2 identity service paths: every body reader and parameter parser is total,
and over HTTP every answer is below 500, every error is in the service's own shape (PDS OperationOutcome, OAuth
{error, error_description, message_id}), and every exchange is journaled. Also: Authorization schemes are read
case-insensitively everywhere."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from datetime import date

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.app import create_app
from sandbox.conformance.checks import RequestView
from sandbox.conformance.parsing import dig, is_ascii_digits, printable
from sandbox.services.oauth import assertion, idp, registry, tokens
from sandbox.services.oauth.checks import parse_form
from sandbox.services.oauth.jwtparts import decode_unverified
from sandbox.services.oauth.registry import DEMO_API_KEY, DEMO_SECRET, demo_private_key
from sandbox.services.oauth.rules import RuleLog
from sandbox.services.pds import birth, birth_request, coverage_request, create, patch_request, search_params
from sandbox.settings import Settings
from sandbox.web.access import bearer_token, credentials
from tests.conftest import PDS_BASE, TEST_POPULATION
from tests.oauth_helpers import JWT_BEARER, TOKEN_URL, KeyPair, cc_form, jwks, register
from tests.oauth_helpers import assertion as sign_assertion

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EXAMPLE = "9000000009"  # the published example patient, version 2, never changed by an update
DEMO_KID = "sandbox-demo-1"

# What broke parsers before: non-ASCII digits, huge and non-finite numbers, lone surrogates, odd text.
HOSTILE_TEXT = ["²", "١٢", "٣", "1_000", "9" * 400, "-1", "1e999", "nan", "inf", "0x10", " 7 ", "", "\x00", "%ff",
                "ü" * 300, "a" * 5000, "\ud800", "a\udcffb", "9223372036854775808", "W/\"٣\"", "*", "eq٢٠٠٠-01-01"]
HOSTILE_BODIES = [
    b"", b"null", b"[]", b"0", b'"text"', b"true", b"1e999", b"9" * 400, b"-" + b"9" * 400, b"NaN", b"Infinity",
    b"[" * 100_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'"\\ud800"', b'{"\\udfff": 1}', b"\xff\xfe\x00",
    b"\xc3\x28", b"{", b'{"a": 1,}', b'{"patches": 5}', b'{"patches": [1]}', b'{"patches": [null]}',
    b'{"patches": {}}', b'{"patches": "x"}', b'[{"op": "replace", "path": "/gender", "value": "male"}]',
    b'{"patches": [{"op": "replace", "path": "/gender", "value": 1e999}]}',
    b'{"patches": [{"op": "replace", "path": "/multipleBirthInteger", "value": ' + b"9" * 400 + b"}]}",
    b'{"subscriber": 5}', b'{"subscriber": {"identifier": []}}', b'{"subscriber": {"identifier": {"value": 9}}}',
    b'{"name": 5}', b'{"name": [5]}', b'{"name": [{"family": 5}], "birthDate": [], "gender": {}}',
    b'{"extension": 5}', b'{"extension": [5]}', b'[{"name": 1}]',
]

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20) | st.sampled_from(
                    [t for t in HOSTILE_TEXT if "\ud800" not in t and "\udcff" not in t]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["name", "given", "family", "value", "url", "id", "system", "use", "period", "start", "line",
                     "extension", "identifier", "reference", "valueCode", "coding"]) | st.text(max_size=6),
    inner, max_size=4), max_leaves=10)
SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile-pds-oauth") / "data"
    app = create_app(Settings.load(environ={}, data_dir=data, population=TEST_POPULATION))
    yield app
    app.extensions["sandbox"].close()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def sandbox(app):
    return app.extensions["sandbox"]


@pytest.fixture(scope="module")
def person(sandbox) -> str:
    return next(sandbox.population.of_kind("standard")).nhs_number


def pds_headers(**extra) -> dict:
    headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": "Bearer sandbox-test-token",
               "Accept": "application/fhir+json"}
    headers.update(extra)
    return {k: v for k, v in headers.items() if v is not None}


def journaled(client, response) -> dict:
    exchange_id = response.headers.get("X-Sandbox-Exchange")
    assert exchange_id, f"{response.status_code} has no X-Sandbox-Exchange header"
    record = client.get(f"/_sandbox/exchanges/{exchange_id}")
    assert record.status_code == 200, f"exchange {exchange_id} is not in the journal"
    return record.get_json()


def assert_pds(client, response, what: str = "") -> dict:
    """Below 500, errors as an OperationOutcome with a Spine code, and journaled."""
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{what}: {response.status_code} {text[:400]}"
    body = response.get_json(silent=True)
    assert isinstance(body, dict), f"{what}: not JSON: {text[:200]}"
    if response.status_code >= 400 or body.get("resourceType") == "OperationOutcome":
        issue = body["issue"][0]
        assert body["resourceType"] == "OperationOutcome" and issue["severity"] in ("error", "warning", "information")
        assert isinstance(issue["details"]["coding"][0]["code"], str)
    journaled(client, response)
    return body


def assert_oauth(client, response, what: str = "") -> None:
    """Below 500, errors as {error, error_description, message_id} naming the exchange, and journaled."""
    text = response.get_data(as_text=True)
    assert response.status_code < 500, f"{what}: {response.status_code} {text[:400]}"
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and set(body) == {"error", "error_description", "message_id"}, text[:300]
        assert body["message_id"] == response.headers["X-Sandbox-Exchange"]
    journaled(client, response)


def b64(data: bytes | str) -> str:
    return base64.urlsafe_b64encode(data.encode() if isinstance(data, str) else data).rstrip(b"=").decode()


def raw_jwt(header: bytes, claims: bytes) -> str:
    return f"{b64(header)}.{b64(claims)}.c2ln"


def view(method: str = "POST", body: bytes = b"", content_type: str = "application/json", **query) -> RequestView:
    return RequestView(method, PDS_BASE + "/Patient", {k: [v] for k, v in query.items()},
                       [("Content-Type", content_type)], body)


# --- header schemes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme, basic, mesh", [("Bearer", "Basic", "NHSMESH"), ("bearer", "basic", "nhsmesh"),
                                                  ("BEARER", "BASIC", "NhsMesh"), ("bEaReR", "bAsIc", "nhsMESH")])
def test_authorization_schemes_are_case_insensitive(scheme, basic, mesh):
    assert bearer_token(f"{scheme} abc.DEF-123") == "abc.DEF-123"
    assert bearer_token(f"  {scheme}   tok  ") == "tok"
    assert credentials(f"{basic} dXNlcjpwdw==", "Basic") == "dXNlcjpwdw=="
    assert credentials(f"{mesh} X26ABC1:n:1:202001011200:abc", "NHSMESH") == "X26ABC1:n:1:202001011200:abc"
    assert credentials(f"{scheme} x", "NHSMESH") is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer a b", "Bearer \udcff", "Bearer ü",
                                    "Basic abc", "Bearerabc", "NHSMESH a:b:c:d:e"])
def test_bearer_token_refuses_what_is_not_one(header):
    assert bearer_token(header) is None


def pds_with(client, token: str, scheme: str, number: str):
    return client.get(f"{PDS_BASE}/Patient/{number}", headers=pds_headers(Authorization=f"{scheme} {token}"))


def hdr005(client, response) -> list[str]:
    return [f["outcome"] for f in journaled(client, response)["findings"] if f["requirement"] == "PDS-HDR-005"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_a_session_token_in_any_case_of_the_scheme_passes_and_selects_its_session(client, person, scheme):
    made = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "Acme",
                                                   "system": "PAS"})
    assert made.status_code == 201, made.get_json()
    token, session = made.get_json()["token"], made.get_json()["session"]
    response = pds_with(client, token, scheme, person)
    assert response.status_code == 200, response.get_json()
    assert hdr005(client, response) == ["pass"]
    assert journaled(client, response)["session"] == session


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEARER"])
def test_an_oauth_token_in_any_case_of_the_scheme_passes_and_selects_its_application_session(client, person, key,
                                                                                             scheme):
    app = register(client, name="Case app", keys=jwks(key), session="case-app")
    issued = client.post("/oauth2/token", data=cc_form(sign_assertion(key, app["api_key"])))
    assert issued.status_code == 200, issued.get_json()
    response = pds_with(client, issued.get_json()["access_token"], scheme, person)
    assert response.status_code == 200, response.get_json()
    assert hdr005(client, response) == ["pass"]
    assert journaled(client, response)["session"] == "case-app"


def test_a_malformed_authorization_header_is_a_failing_pds_hdr_005_not_a_500(client, person):
    for value in ("Bearer \udcff", "Bearer " + "a" * 20_000, "Bearer a b", "Basic ¤", "bearer"):
        response = client.get(f"{PDS_BASE}/Patient/{person}", headers=pds_headers(Authorization=value))
        assert_pds(client, response, value[:20])
        assert hdr005(client, response) == ["fail"]


# --- regressions: each cause the issue lists ---------------------------------------------------------------------
@pytest.mark.parametrize("value", ["²", "٣", "١٢", "9" * 400, "1e999", "+5", " 5", "0", "51", "-1", "1_0"])
def test_max_results_that_is_not_1_to_50_in_ascii_digits_is_invalid_value(client, value):
    response = client.get(f"{PDS_BASE}/Patient", headers=pds_headers(),
                          query_string={"family": "Smith", "birthdate": "eq2010-10-22", "_max-results": value})
    body = assert_pds(client, response, value)
    assert response.status_code == 400
    assert body["issue"][0]["details"]["coding"][0]["code"] == "INVALID_VALUE"
    assert "_max-results" in body["issue"][0]["diagnostics"]


def test_non_ascii_digits_elsewhere_are_refused_as_pds_refuses_them(client, person):
    urid = client.get(f"{PDS_BASE}/Patient/{person}", headers=pds_headers(**{"NHSD-Session-URID": "٣٣٣"}))
    assert_pds(client, urid)
    assert [f["outcome"] for f in journaled(client, urid)["findings"] if f["requirement"] == "PDS-HDR-007"] == \
        ["fail"]
    number = client.get(f"{PDS_BASE}/Patient/٩٠٠٠٠٠٠٠٠٩", headers=pds_headers())
    assert number.status_code == 400 and assert_pds(client, number)["issue"][0]["details"]["coding"][0]["code"] == \
        "INVALID_RESOURCE_ID"
    etag = client.patch(f"{PDS_BASE}/Patient/{EXAMPLE}", json={"patches": [
        {"op": "replace", "path": "/gender", "value": "male"}]}, headers=pds_headers(**{
            "Content-Type": "application/json-patch+json", "If-Match": 'W/"٢"'}))
    assert etag.status_code == 400 and "If-Match" in assert_pds(client, etag)["issue"][0]["diagnostics"]
    huge = client.patch(f"{PDS_BASE}/Patient/{EXAMPLE}", json={"patches": [
        {"op": "replace", "path": "/gender", "value": "male"}]}, headers=pds_headers(**{
            "Content-Type": "application/json-patch+json", "If-Match": 'W/"' + "9" * 400 + '"'}))
    assert huge.status_code == 400


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_on_every_pds_body_operation(client, person, body):
    for number in (EXAMPLE, person):
        patched = client.patch(f"{PDS_BASE}/Patient/{number}", data=body, headers=pds_headers(**{
            "Content-Type": "application/json-patch+json", "If-Match": 'W/"2"' if number == EXAMPLE else 'W/"1"'}))
        assert_pds(client, patched, f"PATCH {body[:40]!r}")
        assert patched.status_code in (200, 400, 409, 412), patched.get_json()
    created = client.post(f"{PDS_BASE}/Patient", data=body, headers=pds_headers(**{"Content-Type": "application/json"}))
    assert_pds(client, created, f"POST Patient {body[:40]!r}")
    assert created.status_code == 400
    covered = client.post(f"{PDS_BASE}/Coverage", data=body, headers=pds_headers(**{
        "Content-Type": "application/json", "If-Match": 'W/"2"'}))
    assert_pds(client, covered, f"POST Coverage {body[:40]!r}")
    assert covered.status_code == 400


def test_deep_json_is_a_pds_400_naming_the_depth(client):
    response = client.patch(f"{PDS_BASE}/Patient/{EXAMPLE}", data=b"[" * 100_000 + b"]" * 100_000,
                            headers=pds_headers(**{"Content-Type": "application/json-patch+json",
                                                   "If-Match": 'W/"2"'}))
    body = assert_pds(client, response)
    assert response.status_code == 400 and "nested deeper" in body["issue"][0]["diagnostics"]


def test_wrong_types_in_a_coverage_body_name_the_field(client):
    response = client.post(f"{PDS_BASE}/Coverage", json={**COVERAGE_REQUEST, "subscriber": 5}, headers=pds_headers(**{
        "If-Match": 'W/"2"'}))
    body = assert_pds(client, response)
    assert response.status_code == 400 and "subscriber" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("claims", [b'{"exp": 1e999}', b'{"exp": ' + b"9" * 400 + b"}", b'{"exp": NaN}',
                                    b'{"iat": -' + b"9" * 400 + b"}", b'{"nbf": Infinity}', b'{"iss": "\\ud800"}',
                                    b"[" * 100_000, b'{"exp": "soon"}', b"[]", b'{"exp": 1e308, "jti": []}'])
def test_hostile_jwt_claims_are_invalid_request_not_500(client, claims):
    token = raw_jwt(b'{"alg":"RS512","kid":"k","typ":"JWT"}', claims)
    for form in (cc_form(token), cc_form(token, grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                                         subject_token_type="urn:ietf:params:oauth:token-type:id_token",
                                         subject_token=token)):
        response = client.post("/oauth2/token", data=form)
        assert_oauth(client, response, claims[:30])
        assert response.status_code in (400, 401) and response.get_json()["error"] == "invalid_request"


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return KeyPair("hostile-1")


@pytest.fixture(scope="module")
def api_key(client, key) -> str:
    return register(client, name="Hostile app", keys=jwks(key))["api_key"]


def test_huge_exp_within_64_bits_is_judged_not_crashed(client, key):
    token = sign_assertion(key, DEMO_API_KEY, exp=2**63 - 1)
    response = client.post("/oauth2/token", data=cc_form(token))
    assert_oauth(client, response)
    assert response.get_json()["error_description"].endswith("more than 5 minutes in future")


@pytest.mark.parametrize("value", ["²", "9" * 400, "1e999", "1_000", "\x00"])
def test_access_token_expiry_ms_that_is_not_a_number_keeps_the_default_life(client, key, value):
    token = sign_assertion(key, DEMO_API_KEY, key=demo_private_key(), headers={"kid": DEMO_KID})
    response = client.post("/oauth2/token", data=cc_form(token, _access_token_expiry_ms=value))
    assert_oauth(client, response)
    assert response.status_code == 200 and response.get_json()["expires_in"] == "599"


def test_hostile_form_values_on_every_oauth_endpoint(client):
    for text in HOSTILE_TEXT:
        for form in ({"grant_type": text}, {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
                                            "client_assertion": text},
                     {"grant_type": "authorization_code", "client_id": DEMO_API_KEY, "client_secret": DEMO_SECRET,
                      "code": text, "redirect_uri": text},
                     {"grant_type": "refresh_token", "client_id": text, "client_secret": text, "refresh_token": text}):
            body = "&".join(f"{k}={v}" for k, v in form.items()).encode("utf-8", "surrogatepass")
            response = client.post("/oauth2/token", data=body, headers=FORM)
            assert_oauth(client, response, f"token {form}")
        signed = client.post("/oauth2/simulated_auth", data=f"request={text}&idp=cis2&worker={text}&aal={text}"
                             .encode("utf-8", "surrogatepass"), headers=FORM)
        assert_oauth(client, signed, f"sign-in {text[:20]!r}")
        safe = printable(text)
        authorised = client.get("/oauth2/authorize", query_string={
            "client_id": DEMO_API_KEY, "redirect_uri": "http://localhost:8080/callback", "state": safe,
            "response_type": safe})
        assert authorised.status_code < 500
        journaled(client, authorised)


def test_surrogates_in_headers_are_answered_and_journaled(client, person):
    for name in ("X-Request-ID", "X-Correlation-ID", "Authorization", "X-Sandbox-Session", "If-Match",
                 "NHSD-Session-URID", "X-Sandbox-Scenario"):
        response = client.get(f"{PDS_BASE}/Patient/{person}", headers=pds_headers(**{name: "a\udcffb"}))
        assert response.status_code < 500, (name, response.get_data(as_text=True)[:300])
        assert response.get_json()["resourceType"] in ("Patient", "OperationOutcome")
        journaled(client, response)
    token = client.post("/oauth2/token", data=cc_form("x"), headers={"Authorization": "Bearer \udcff"})
    assert_oauth(client, token)


# --- property tests: body readers and parameter parsers ----------------------------------------------------------
PATCH_PATHS = ["/gender", "/birthDate", "/name/0", "/name/-", "/name/0/given/0", "/name/0/id", "/address/0",
               "/address/-", "/telecom/0", "/telecom/-", "/extension/0", "/extension/-", "/generalPractitioner/0",
               "/managingOrganization", "/multipleBirthInteger", "/deceasedDateTime", "/contact/0", "/id", "/",
               "/name/99999999999999999999", "/name/٣", "~", ""]
PATCH_OPS = st.fixed_dictionaries({"op": st.sampled_from(["add", "replace", "remove", "test", "move", 5, None]),
                                   "path": st.sampled_from(PATCH_PATHS) | JSON_SCALARS},
                                  optional={"value": JSON_VALUES, "from": JSON_SCALARS})
PATCH_BODIES = st.fixed_dictionaries({"patches": st.lists(PATCH_OPS | JSON_VALUES, max_size=4) | JSON_VALUES})


@SETTINGS
@given(body=PATCH_BODIES | JSON_VALUES)
def test_the_patch_body_reader_is_total(body):
    req = view("PATCH", json.dumps(body).encode(), "application/json-patch+json")
    findings = list(patch_request.judge_patch_body(req))
    assert findings and all(f.reject is None or f.reject.status == 400 for f in findings)


def create_request() -> dict:
    return {"name": [{"use": "usual", "family": "Quennell", "given": ["Araminta"], "period": {"start": "1986-07-01"}}],
            "gender": "female", "birthDate": "1986-07-01",
            "address": [{"use": "home", "line": ["1 Trevelyan Square"], "postalCode": "LS1 6AE"}],
            "extension": [{"url": "https://fhir.nhs.uk/StructureDefinition/Extension-UKCore-RegisteringAuthority"}]}


COVERAGE_REQUEST = {
    "resourceType": "Coverage", "status": "active",
    "subscriber": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}},
    "identifier": [{"value": "29401395498043123948", "assigner": {
        "identifier": {"system": "urn:iso:std:iso:3166", "value": "FRA"}, "display": "France"}}],
    "payor": [{"identifier": {"value": "92847ADGJL"}}], "beneficiary": {"identifier": {"value": "178705ABC"}},
    "period": {"end": "2030-12-31"}}


def birth_bundle(mother: str = "9000000009") -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"use": "usual", "family": "Quennell", "given": ["Rose"]}],
                      "gender": "female", "birthDate": "2026-01-02", "multipleBirthInteger": 1,
                      "address": [{"use": "home", "line": ["1 Trevelyan Square", "", "", "Leeds"],
                                   "period": {"start": "2026-01-02"}, "postalCode": "LS1 6AE"}],
                      "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-"
                                            "EthnicCategory", "valueCodeableConcept": {"coding": [{"code": "A"}]}}]}},
        {"resource": {"resourceType": "Observation", "code": {"coding": [{"code": "364589006"}]},
                      "valueQuantity": {"value": 3500}}},
        {"resource": {"resourceType": "Patient", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                                 "value": mother}]}},
        {"resource": {"resourceType": "Location"}}]}


def mutated(document, steps, value):
    """`document` with the value at the path `steps` picks (as far as it reaches) replaced by `value`."""
    document = copy.deepcopy(document)
    parent, key = None, None
    node = document
    for step in steps:
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
        elif isinstance(node, list) and node:
            key = step % len(node)
        else:
            break
        parent, node = node, node[key]
    if parent is None:
        return value
    parent[key] = value
    return document


@SETTINGS
@given(steps=st.lists(st.integers(0, 10), max_size=5), value=JSON_VALUES)
def test_the_create_and_coverage_body_readers_are_total(steps, value):
    for reader, base in ((create.request_problems, create_request()), (coverage_request.body_problems,
                                                                        COVERAGE_REQUEST),
                         (birth_request.problems, birth_bundle())):
        problems = reader(view(body=json.dumps(mutated(base, steps, value)).encode()))
        assert all(p.error.status == 400 and p.requirement for p in problems)
    coverage_request.subscriber_number(mutated(COVERAGE_REQUEST, steps, value))
    create.published_example(mutated(create_request(), steps, value))
    birth.published_example(mutated(birth_bundle(), steps, value))
    found, _ = birth_request.read(mutated(birth_bundle(), steps, value))
    if found is not None:
        birth_request.registration_problems(found, date.today())


@SETTINGS
@given(query=st.dictionaries(st.sampled_from([*search_params.PARAMETERS, "unknown"]),
                             st.lists(st.sampled_from(HOSTILE_TEXT) | st.text(max_size=12), min_size=1, max_size=3),
                             max_size=6))
def test_the_search_parameter_parser_is_total(query):
    found, findings = search_params.parse_search(query)
    rejected = [f for f in findings if f.reject is not None]
    assert (found is None) == bool(rejected)
    assert all(f.reject.status == 400 for f in rejected)


@SETTINGS
@given(header=JSON_VALUES, claims=JSON_VALUES, raw=st.sampled_from(HOSTILE_BODIES))
def test_jwt_decoding_and_claim_rules_are_total(sandbox, header, claims, raw):
    for token in (raw_jwt(json.dumps(header).encode(), json.dumps(claims).encode()), raw_jwt(raw, raw),
                  raw_jwt(b'{"alg":"RS512","kid":"k","typ":"JWT"}', raw)):
        decoded = decode_unverified(token)
        assert decoded is None or (isinstance(decoded.header, dict) and isinstance(decoded.claims, dict))
        outcome = assertion.check_client_assertion({"client_assertion_type": JWT_BEARER, "client_assertion": token},
                                                   [TOKEN_URL], sandbox.store, log=RuleLog())
        assert outcome.app is None and outcome.log.rejected


@SETTINGS
@given(keys=JSON_VALUES)
def test_jwks_checking_is_total(keys):
    for candidate in (keys, {"keys": keys}, {"keys": [keys]}, {"keys": [{"kid": "a", "kty": "RSA", "n": keys,
                                                                          "e": keys}]}):
        try:
            registry.check_jwks(candidate)
        except registry.RegistrationError as exc:
            assert str(exc)


@SETTINGS
@given(text=st.text(max_size=30) | st.sampled_from(HOSTILE_TEXT))
def test_small_readers_are_total(text):
    assert 0 <= tokens.lifetime_ms(text) <= tokens.ACCESS_LIFETIME_MS
    assert is_ascii_digits(text) == (text.isascii() and text.isdigit() and 0 < len(text) <= 20)
    assert patch_request.if_match_version(text) is None or 0 <= patch_request.if_match_version(text) < 10**18
    printable(text).encode("utf-8")
    parse_form(text.encode("utf-8", "surrogatepass"))
    bearer_token(text), bearer_token("Bearer " + text)
    assert dig({"a": [text]}, "a", 0, kind=str) == text and dig(text, "a", 0) is None


# --- property tests over HTTP ------------------------------------------------------------------------------------
HTTP = settings(deadline=None, max_examples=40, suppress_health_check=list(HealthCheck), derandomize=True)


@HTTP
@given(body=PATCH_BODIES, example=st.booleans())
def test_pds_patch_over_http(client, person, body, example):
    number = EXAMPLE if example else person
    current = client.get(f"{PDS_BASE}/Patient/{number}", headers=pds_headers())
    response = client.patch(f"{PDS_BASE}/Patient/{number}", json=body, headers=pds_headers(**{
        "Content-Type": "application/json-patch+json", "If-Match": current.headers.get("ETag", 'W/"1"')}))
    assert_pds(client, response, json.dumps(body)[:200])


@HTTP
@given(steps=st.lists(st.integers(0, 10), max_size=5), value=JSON_VALUES)
def test_pds_create_and_coverage_over_http(client, steps, value):
    created = client.post(f"{PDS_BASE}/Patient", json=mutated(create_request(), steps, value),
                          headers=pds_headers(**{"Content-Type": "application/json"}))
    assert_pds(client, created)
    covered = client.post(f"{PDS_BASE}/Coverage", json=mutated(COVERAGE_REQUEST, steps, value),
                          headers=pds_headers(**{"Content-Type": "application/json", "If-Match": 'W/"2"'}))
    assert_pds(client, covered)


@HTTP
@given(steps=st.lists(st.integers(0, 10), max_size=6), value=JSON_VALUES, synthetic=st.booleans())
def test_pds_record_at_birth_over_http(client, person, steps, value, synthetic):
    bundle = birth_bundle(person if synthetic else "9000000009")
    bundle["entry"][0]["resource"]["birthDate"] = date.today().isoformat()
    recorded = client.post(f"{PDS_BASE}/Patient/$process-birth-details", json=mutated(bundle, steps, value),
                           headers=pds_headers(**{"Content-Type": "application/fhir+json"}))
    assert_pds(client, recorded)


@HTTP
@given(query=st.dictionaries(st.sampled_from([*search_params.PARAMETERS, "subscriber:identifier", "x"]),
                             st.sampled_from([t for t in HOSTILE_TEXT if "\udcff" not in t and "\ud800" not in t])
                             | st.text(max_size=12), max_size=5),
       number=st.sampled_from(["9000000009", "٩٠٠٠٠٠٠٠٠٩", "9" * 400, "²", "0000000000", "900000000"]))
def test_pds_reads_over_http(client, query, number):
    for path in ("/Patient", "/Coverage", f"/Patient/{number}", f"/Patient/{number}/RelatedPerson"):
        response = client.get(f"{PDS_BASE}{path}", query_string=query, headers=pds_headers())
        assert_pds(client, response, f"{path} {query}")


@HTTP
@given(header=JSON_VALUES, claims=JSON_VALUES, form=st.dictionaries(
    st.sampled_from(["grant_type", "client_assertion_type", "subject_token_type", "subject_token", "client_id",
                     "client_secret", "code", "redirect_uri", "refresh_token", "_access_token_expiry_ms"]),
    st.sampled_from([*HOSTILE_TEXT[:16], "client_credentials", JWT_BEARER, "authorization_code", "refresh_token",
                     "urn:ietf:params:oauth:grant-type:token-exchange",
                     "urn:ietf:params:oauth:token-type:id_token"]), max_size=6))
def test_oauth_token_endpoint_over_http(client, header, claims, form):
    token = raw_jwt(json.dumps(header).encode(), json.dumps({**claims, "iss": DEMO_API_KEY, "sub": DEMO_API_KEY,
                                                             "exp": int(time.time()) + 60} if isinstance(claims, dict)
                                                            else claims).encode())
    for data in ({**form, "client_assertion": token}, {**form, "subject_token": token, "client_assertion": token}):
        response = client.post("/oauth2/token", data=data)
        assert_oauth(client, response, f"{data}"[:300])


@settings(HTTP, max_examples=15)
@given(provider=st.sampled_from(["cis2", "nhs-login"]), changes=st.dictionaries(st.sampled_from(
    ["sub", "selected_roleid", "authentication_assurance_level", "acr", "nhs_number", "vot",
     "identity_proofing_level", "aud", "exp", "iss"]), JSON_VALUES, max_size=4))
def test_id_tokens_of_the_mock_identity_providers_with_hostile_claims(client, sandbox, key, api_key, provider,
                                                                     changes):
    """An ID token signed by the sandbox's own mock CIS2 or NHS login, its claims changed to anything: the token
    exchange and the PDS calls made with what it grants stay below 500 in their own shapes."""
    now = int(time.time())
    claims = {"iss": idp.ISSUERS[provider], "sub": "555021935107", "aud": "spine-sandbox", "exp": now + 300,
              "iat": now, "jti": str(uuid.uuid4()), "selected_roleid": "555021936103",
              "authentication_assurance_level": "3", "nhs_number": "9000000009", "vot": "P9.Cp.Cd",
              "identity_proofing_level": "P9", **changes}
    pem, jwk = idp.signing_key(sandbox.store, provider)
    signed = jwt.PyJWS().encode(json.dumps(claims).encode(), pem, algorithm="RS512",
                                headers={"kid": jwk["kid"], "typ": "JWT"})  # any claims: PyJWT's encode checks them
    form = cc_form(sign_assertion(key, api_key), subject_token=signed,
                   grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                   subject_token_type="urn:ietf:params:oauth:token-type:id_token")
    exchanged = client.post("/oauth2/token", data=form)
    assert_oauth(client, exchanged, json.dumps(changes)[:200])
    if exchanged.status_code != 200:
        return
    bearer = {"Authorization": f"Bearer {exchanged.get_json()['access_token']}"}
    for path in (f"/Patient/{EXAMPLE}", "/Patient?family=Smith&gender=female&birthdate=eq2010-10-22",
                 f"/Coverage?subscriber:identifier={EXAMPLE}"):
        assert_pds(client, client.get(f"{PDS_BASE}{path}", headers=pds_headers(**bearer)), path)
