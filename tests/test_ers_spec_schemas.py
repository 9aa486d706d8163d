"""Every e-RS response body the sandbox sends validates against the published specification's own schemas: the
response each endpoint documents for that status (components/{stu3,r4}/schemas/endpoints/<operation>.yaml ->
responses/... -> the resource schema, loaded with their relative $refs). Run over the answers to every published
example request and URL, and over a referral lifecycle walk. The specification is an outside reference; absent,
this skips.

Adding an answer is one line: `spec.check(operation_id, response)` after the request."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sandbox.services.ers.context import OPERATIONS, R4
from tests.conftest import spec_path
from tests.ers_helpers import R4 as R4_BASE
from tests.ers_helpers import RC, RCA, SPC, SPCA, STU3, body_json, ers_app, ers_headers, mock

JSON_TYPES = ("application/fhir+json", "application/json")
NO_MATCH = b"SANDBOX_ERROR"  # the published sandbox's "no example matched" answer (its own error file)


@cache
def _load(path: str):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@cache
def _validator(location: str) -> Draft202012Validator:
    """A validator for one schema of the specification (a file URI, maybe with a JSON pointer), resolving its
    relative $refs between the YAML files."""
    @cache
    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(_load(uri.removeprefix("file://")), default_specification=DRAFT202012)

    return Draft202012Validator({"$ref": location}, registry=Registry(retrieve=retrieve))


def _follow(document: dict, where: Path) -> tuple[dict, Path]:
    """A document that is only a $ref, followed (relative to the file it is in)."""
    while isinstance(document, dict) and set(document) == {"$ref"}:
        where = (where.parent / document["$ref"]).resolve()
        document = _load(str(where))
    return document, where


def response_schema(operation_id: str, status: int, content_type: str) -> str | None:
    """Where the specification's schema for this operation's answer of `status` is (a file URI and a JSON pointer
    into the response's YAML, whose $refs resolve from there); None when it documents no JSON body for it."""
    folder = "r4" if OPERATIONS[operation_id].fhir == R4 else "stu3"
    endpoint = spec_path("e-rs-fhir", "specification", "components", folder, "schemas", "endpoints",
                         f"{operation_id}.yaml")
    responses = _load(str(endpoint)).get("responses", {})
    entry = responses.get(str(status)) or responses.get(status)
    if entry is None:
        raise AssertionError(f"{operation_id} documents no {status} answer (it documents {sorted(map(str, responses))})")
    response, where = _follow(entry, endpoint)
    pointer = "#/responses/" + str(status) if where == endpoint else "#"
    content = response.get("content") or {}
    media = content_type.split(";")[0].strip().lower()
    key = media if media in content else next((k for k in content if k.split(";")[0] in JSON_TYPES), None)
    if key is None or "schema" not in content[key]:
        return None
    return f"{where.as_uri()}{pointer}/content/{key.replace('~', '~0').replace('/', '~1')}/schema"


def _leaf(error):
    """anyOf/oneOf errors are vague on their own; the branch that came closest says what is actually wrong."""
    while error.context:
        error = min(error.context, key=lambda e: (len(e.context), -len(e.absolute_path)))
    return error


class SpecChecker:
    """Validates answers against the specification and counts what it checked."""

    def __init__(self):
        self.checked: list[str] = []

    def check(self, operation_id: str, response) -> None:
        content_type = response.headers.get("Content-Type", "")
        if response.status_code == 304 or content_type.split(";")[0].strip().lower() not in JSON_TYPES:
            return  # PDFs, empty answers, text: no JSON schema to meet
        if NO_MATCH in response.get_data()[:2000]:
            return  # the published sandbox's own "use an example" answer, which the specification does not describe
        schema = response_schema(operation_id, response.status_code, content_type)
        if schema is None:
            return
        body = body_json(response)
        errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                  for error in _validator(schema).iter_errors(body) for e in [_leaf(error)]]
        assert not errors, (f"{response.request.method} {response.request.path} -> {response.status_code} "
                            f"({operation_id}, {schema.rsplit('/components/', 1)[-1]}):\n" + "\n".join(errors[:10]))
        self.checked.append(f"{operation_id} {response.status_code}")


@pytest.fixture
def spec():
    return SpecChecker()


@pytest.fixture(params=["published", "live"])
def client(request, tmp_path):
    with ers_app(tmp_path, ers_mode=request.param) as app:
        yield app.test_client()


# ---- the published example requests: folder -> operation, and the URLs it is sent to (its UBRN or id)
UBRN, OTHER_UBRN = "000000070000", "000000070001"
BODY_EXAMPLES = {
    "retrieveWorklist": ("a008-retrieve-worklist", ["/ReferralRequest/$ers.fetchworklist"]),
    "patientServiceSearch": ("a010-patient-service-search",
                             ["/HealthcareService/$ers.searchHealthcareServicesForPatient"]),
    "createReferral": ("a011-create-referral", ["/ReferralRequest/$ers.createReferral"]),
    "maintainReferralLetter": ("a012-maintain-referral-letter",
                               [f"/ReferralRequest/{u}/$ers.maintainReferralLetter" for u in (UBRN, OTHER_UBRN)]),
    "rejectReferral": ("a014-reject-referral", [f"/ReferralRequest/{UBRN}/$ers.rejectReferral"]),
    "bookOrDeferAppointment": ("a016-book-or-defer-appointment", ["/Appointment"]),
    "createReferralAndSendForTriage": ("a021-create-referral-request-and-send-for-triage",
                                       ["/ReferralRequest/$ers.createReferralAndSendForTriage"]),
    "cancelAppointmentActionLater": ("a022-cancel-appointment-action-later",
                                     [f"/ReferralRequest/{UBRN}/$ers.cancelAppointmentActionLater"]),
    "retrieveAdviceAndGuidanceWorklist": ("a023-retrieve-a&g-worklist", ["/CommunicationRequest/$ers.fetchworklist"]),
    "sendAdviceAndGuidanceResponse": ("a026-send-a&g-response",
                                      [f"/CommunicationRequest/{UBRN}/$ers.sendCommunicationToRequester"]),
    "convertAdviceAndGuidanceToReferral": ("a027-convert-a&g-to-referral",
                                           ["/ReferralRequest/$ers.createFromCommunicationRequestActionLater"]),
    "recordTriageOutcome": ("a028-record-triage-outcome", [f"/ReferralRequest/{UBRN}/$ers.recordReviewOutcome"]),
    "changeShortlist": ("a031-change-shortlist", [f"/ReferralRequest/{UBRN}/$ers.changeShortlist"]),
    "changeShortlistAndSendForTriage": ("a032-change-shortlist-and-send-for-triage",
                                        [f"/ReferralRequest/{UBRN}/$ers.changeShortlistAndSendForTriage"]),
    "updateAppointment": ("a034-update-appointment", ["/Appointment/70000"]),
    "cancelReferral": ("a036-cancel-referral", [f"/ReferralRequest/{UBRN}/$ers.cancelReferral"]),
    "createAdviceAndGuidance": ("a044-create-advice-and-guidance-request",
                                ["/CommunicationRequest/$ers.createAdviceAndGuidance"]),
}
SLOTS = "/Slot?appointmentType=ROUTINE&status=free&schedule.actor:HealthcareService="
URL_EXAMPLES = [
    *(("a004-retrieve-reference-data", f"/CodeSystem/{c}") for c in (
        "SPECIALTY", "CLINIC-TYPE", "APPOINTMENT-CANCELLATION-REASON", "REFERRAL-CANCELLATION-REASON",
        "APPOINTMENT-NON-ATTENDANCE-REASON", "PRIORITY")),
    *(("a005-retrieve-referral-request", f"/ReferralRequest/0000000700{n:02d}") for n in (0, 1, 2, 3, 4, 5, 11, 12)),
    ("a005-retrieve-referral-request-versioned", f"/ReferralRequest/{UBRN}/_history/5"),
    *(("a024-retrieve-advice-and-guidance", f"/CommunicationRequest/0000000700{n:02d}") for n in (0, 1, 2)),
    ("a024-retrieve-advice-and-guidance-versioned", f"/CommunicationRequest/{UBRN}/_history/5"),
    *(("a038-retrieve-appointment", f"/Appointment/7000{n}") for n in range(8)),
    ("a038-retrieve-appointment-versioned", "/Appointment/70000/_history/5"),
    ("a015-retrieve-appointment-slots", SLOTS + "12000&_count=20&page=1"),
    ("a015-retrieve-appointment-slots", SLOTS + "10000&_count=20&page=1"),
    ("a015-retrieve-appointment-slots", SLOTS + "11000&_count=5&page=1"),
    ("a015-retrieve-appointment-slots", SLOTS + "11000&_count=5&page=2"),
    ("a015-retrieve-appointment-slots", SLOTS + "11000&_count=5&page=5"),
    ("a015-retrieve-appointment-slots", SLOTS + "13000&_count=5&page=1"),
    ("a015-retrieve-appointment-slots", SLOTS + "14000&schedule.actor:Practitioner=921600556514&_count=5&page=1"),
    *(("a029-available-actions-for-user-list",
       f"/Task?intent=proposal&status=ready&focus=ReferralRequest/0000000700{n:02d}/_history/6") for n in range(7)),
    *(("a025-retrieve-advice-and-guidance-conversation", f"/Communication?based-on=CommunicationRequest/{b}")
      for b in ("000000070000/_history/1", "000000070000/_history/2", "000000070001/_history/6",
                "000000070002/_history/1", "000000070003/_history/7", "000000070004/_history/3")),
    ("a030-retrieve-business-functions", "R4:/PractitionerRole"),
    ("a040-retrieve-practitioner-info", "R4:/Practitioner?_query=onBehalfOf"),
    *(("a033-retrieve-healthcare-service", f"R4:/HealthcareService/{n}") for n in (1, 2)),
    *(("a035-search-for-healthcare-services", f"R4:/HealthcareService?_id={ids}") for ids in ("1,2", "3,4", "5,6")),
    *(("a041-search-service-request", f"R4:/ServiceRequest?identifier=0000000700{n:02d}") for n in range(4)),
]


def caller(operation_id: str, function: str | None = None) -> dict:
    allowed = OPERATIONS[operation_id].allowed or (SPCA,)
    return ers_headers(function or allowed[0], **{"Content-Type": "application/fhir+json", "If-Match": 'W/"5"'})


def test_answers_to_every_published_example_request(client, spec):
    answered = 0
    for folder, (operation_id, paths) in BODY_EXAMPLES.items():
        functions = [f for f in (RC, RCA, SPC, SPCA) if f in (OPERATIONS[operation_id].allowed or ())]
        for request_file in sorted(mock("stu3", folder, "requests").glob("*.json")):
            body = request_file.read_bytes()
            method = client.put if operation_id == "a034-update-appointment" else client.post
            tries = [(path, f) for path in paths for f in functions]
            for path, function in tries:  # the first URL and business function the example is answered for
                response = method(STU3 + path, data=body, headers=caller(operation_id, function))
                if NO_MATCH not in response.get_data()[:2000] and response.status_code != 500:
                    break
            assert response.status_code < 500 and NO_MATCH not in response.get_data()[:2000], (
                f"{folder}/{request_file.name}: {response.status_code} {response.get_data()[:200]!r}")
            spec.check(operation_id, response)
            answered += 1
    assert answered == 63
    assert len(spec.checked) >= 55  # the rest are documented without a JSON body


def test_answers_to_every_published_url(client, spec):
    for operation_id, path in URL_EXAMPLES:
        url = R4_BASE + path.removeprefix("R4:") if path.startswith("R4:") else STU3 + path
        response = client.get(url, headers=caller(operation_id))
        assert response.status_code in (200, 400), (url, response.status_code, response.get_data()[:200])
        spec.check(operation_id, response)
    assert len(spec.checked) == len(URL_EXAMPLES)


def test_the_checks_own_refusals_are_the_documented_outcomes(tmp_path, spec):
    """401 without a token (SANDBOX_AUTH=strict), STU3 and R4, and 403 for an endpoint an application-restricted
    token may not call: OperationOutcomes as the specification documents them."""
    from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, post_token, register

    with ers_app(tmp_path / "strict", auth="strict") as app:
        client = app.test_client()
        stu3 = client.get(f"{STU3}/ReferralRequest/{UBRN}", headers={"NHSD-eRS-Business-Function": RC})
        r4 = client.get(f"{R4_BASE}/HealthcareService/1", headers={"NHSD-eRS-Business-Function": RC})
        assert (stu3.status_code, r4.status_code) == (401, 401)
        spec.check("a005-retrieve-referral-request", stu3)
        spec.check("a033-retrieve-healthcare-service", r4)
    with ers_app(tmp_path / "application") as app:
        client = app.test_client()
        key = KeyPair("ers-spec-1")
        api_key = register(client, name="e-RS unattended", keys=jwks(key))["api_key"]
        token = post_token(client, cc_form(assertion(key, api_key))).get_json()["access_token"]
        refused = client.post(f"{STU3}/ReferralRequest/$ers.createReferral", data=mock(
            "stu3", "createReferral", "requests", "MinimalRequest.json").read_bytes(), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
        assert refused.status_code == 403
        spec.check("a011-create-referral", refused)
        r4_refused = client.get(f"{R4_BASE}/ServiceRequest?identifier={UBRN}", headers={
            "Authorization": f"Bearer {token}"})
        assert r4_refused.status_code == 403
        spec.check("a041-search-service-request", r4_refused)
    assert len(spec.checked) == 4


def test_the_harness_finds_a_body_the_specification_does_not_allow(tmp_path, spec):
    """A guard on the harness itself: a changed answer fails against the specification's schema."""
    with ers_app(tmp_path, ers_mode="published") as app:
        client = app.test_client()
        response = client.get(f"{STU3}/ReferralRequest/{UBRN}", headers=caller("a005-retrieve-referral-request"))
    document = body_json(response)
    document["status"] = "not-a-status"
    response.set_data(json.dumps(document).encode())
    response.headers.pop("Content-Encoding", None)
    with pytest.raises(AssertionError, match="status"):
        spec.check("a005-retrieve-referral-request", response)


# ---- the session's lifecycle: every answer of a referral's life, validated the same way
def test_answers_along_a_referral_lifecycle(tmp_path, spec):
    with ers_app(tmp_path) as app:
        walk_lifecycle(app.test_client(), app.extensions["sandbox"], spec)
    assert len(spec.checked) >= 8  # 404 and 409 are documented without a body


def walk_lifecycle(client, sandbox, spec: SpecChecker) -> None:
    """A referrer finds services for a patient, refers, changes the shortlist, reads the referral, books; the provider
    reads its worklist, accepts; each answer checked against the specification."""
    patient = next(sandbox.population.of_kind("standard")).nhs_number
    referrer = ers_headers(RC, **{"Content-Type": "application/fhir+json"})
    search = json.loads(mock("stu3", "patientServiceSearch", "requests", "RcMinimal.json").read_bytes())
    _set_patient(search, patient)
    found = client.post(f"{STU3}/HealthcareService/$ers.searchHealthcareServicesForPatient", json=search,
                        headers=referrer)
    assert found.status_code == 200, found.get_data()[:300]
    spec.check("a010-patient-service-search", found)
    services = [e["item"]["identifier"]["value"] for e in body_json(found).get("entry", [])][:2]
    create = json.loads(mock("stu3", "createReferral", "requests", "MinimalRequest.json").read_bytes())
    _set_patient(create, patient)
    shortlist = next(p for p in create["parameter"] if p["name"] == "shortlist")["resource"]
    shortlist["entry"] = [{"item": {"identifier": {"system": "http://fhir.nhs.net/Id/ers-service", "value": s}}}
                          for s in services]
    created = client.post(f"{STU3}/ReferralRequest/$ers.createReferral", json=create, headers=referrer)
    assert created.status_code == 201, created.get_data()[:300]
    spec.check("a011-create-referral", created)
    ubrn = body_json(created)["id"]
    read = client.get(f"{STU3}/ReferralRequest/{ubrn}", headers=referrer)
    spec.check("a005-retrieve-referral-request", read)
    spec.check("a005-retrieve-referral-request-versioned",
               client.get(f"{STU3}/ReferralRequest/{ubrn}/_history/1", headers=referrer))
    spec.check("a029-available-actions-for-user-list", client.get(
        f"{STU3}/Task?intent=proposal&status=ready&focus=ReferralRequest/{ubrn}/_history/"
        f"{body_json(read)['meta']['versionId']}", headers=referrer))
    provider = ers_headers(SPC, **{"Content-Type": "application/fhir+json"})
    worklist = json.loads(mock("stu3", "retrieveWorklist", "requests", "MinimalReferralsForReview.json").read_bytes())
    spec.check("a008-retrieve-worklist",
               client.post(f"{STU3}/ReferralRequest/$ers.fetchworklist", json=worklist, headers=provider))
    cancel = json.loads(mock("stu3", "cancelReferral", "requests", "RaisedInError.json").read_bytes())
    cancelled = client.post(f"{STU3}/ReferralRequest/{ubrn}/$ers.cancelReferral", json=cancel,
                            headers={**referrer, "If-Match": read.headers.get("ETag", 'W/"1"')})
    spec.check("a036-cancel-referral", cancelled)
    spec.check("a005-retrieve-referral-request", client.get(f"{STU3}/ReferralRequest/{ubrn}", headers=referrer))
    again = client.post(f"{STU3}/ReferralRequest/{ubrn}/$ers.cancelReferral", json=cancel,
                        headers={**referrer, "If-Match": read.headers.get("ETag", 'W/"1"')})
    assert 400 <= again.status_code < 500  # a stale version, or a referral already cancelled
    spec.check("a036-cancel-referral", again)
    spec.check("a005-retrieve-referral-request", client.get(f"{STU3}/ReferralRequest/299999999999", headers=referrer))


def _set_patient(parameters: dict, nhs_number: str) -> None:
    for parameter in parameters["parameter"]:
        if parameter["name"] == "patient":
            parameter["valueIdentifier"]["value"] = nhs_number
