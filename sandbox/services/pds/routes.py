"""PDS FHIR R4 endpoints: thin handlers that find, trim and answer; checks and scenarios run before them."""

from __future__ import annotations

from flask import Blueprint, request

from sandbox.conformance.parsing import Malformed, printable
from sandbox.runtime import current_sandbox
from sandbox.services.pds import access as access_rules
from sandbox.services.pds import (
    birth,
    birth_request,
    coverage,
    coverage_request,
    create,
    fixtures,
    patch,
    search,
)
from sandbox.services.pds.outcome import fhir_response
from sandbox.services.pds.patch_request import patch_list
from sandbox.services.pds.published_search import published_fact
from sandbox.services.pds.records import PatientRecords, for_retrieval, patient_facts
from sandbox.services.pds.related import related_bundle
from sandbox.services.pds.search_params import parse_search
from sandbox.web.pipeline import current_exchange, operation

blueprint = Blueprint("pds", __name__)
BIRTH_PATH = "/Patient/$process-birth-details"


def _facts(source=None):
    """Scenario facts: which access-mode rules apply (access_rules), and what `source` adds."""

    def facts(view):
        found = access_rules.rules_fact(current_exchange().access)
        return {**found, **source(view)} if source else found

    return facts


def _patient_facts(view):
    return patient_facts(current_sandbox(), view.params.get("nhs_number", ""))


def _patch_facts(view):
    """For a published example, whether If-Match names its version (if_match: current) or not (stale, a 409)."""
    found = _patient_facts(view)
    example = fixtures.fixture(view.params.get("nhs_number", "")) if found["patient_kind"] == "published-example" else None
    if example is not None:
        current = etag(int(example["meta"]["versionId"]))
        found["if_match"] = "current" if (view.header("If-Match") or "").strip() == current else "stale"
    return found


def etag(version: int) -> str:
    return f'W/"{version}"'


@blueprint.get("/Patient/<nhs_number>")
@operation("get-patient", facts=_facts(_patient_facts))
def get_patient(ex, nhs_number: str):
    body, version = PatientRecords(current_sandbox(), ex.session).retrieval(nhs_number)
    return fhir_response(body, headers={"ETag": etag(version)})


def _search_facts(view):
    fact = published_fact(view.query)
    return {"published_search": fact} if fact else {}


@blueprint.get("/Patient")
@operation("search-patients", facts=_facts(_search_facts))
def search_patients(ex):
    query = access_rules.search_query(ex.access, parse_search(ex.view.query)[0])
    result = search.answer(PatientRecords(current_sandbox(), ex.session), ex.view.query, query)
    ex.add(result.finding())
    return fhir_response(result.body)


@blueprint.get("/Patient/<nhs_number>/RelatedPerson")
@operation("get-related-people", facts=_facts(_patient_facts))
def get_related_people(ex, nhs_number: str):
    records = PatientRecords(current_sandbox(), ex.session)
    record = records.find(nhs_number)
    return fhir_response(related_bundle(records, record), headers={"ETag": etag(record.version)})


@blueprint.patch("/Patient/<nhs_number>")
@operation("patch-patient", facts=_facts(_patch_facts))
def patch_patient(ex, nhs_number: str):
    patches, _ = patch_list(ex.view)  # the request checks have refused any body without them
    records = PatientRecords(current_sandbox(), ex.session)
    resource, version = patch.update(records, nhs_number, patches, ex.view.header("If-Match"), ex.add,
                                     patient_access=access_rules.limits_updates(ex.access))
    return fhir_response(for_retrieval(resource), headers={"ETag": etag(version)})


def _create_facts(view):
    try:
        example = create.published_example(view.json())
    except Malformed:
        return {}  # the request checks answer a malformed body
    return {"create_example": example} if example else {}


@blueprint.post("/Patient")
@operation("create-patient", facts=_facts(_create_facts))
def create_patient(ex):
    resource, status = create.create(PatientRecords(current_sandbox(), ex.session), ex.view, ex.add)
    return fhir_response(for_retrieval(resource), status, headers={"ETag": etag(int(resource["meta"]["versionId"]))})


def _birth_facts(view):
    try:
        body = view.json()
    except Malformed:
        return {}  # the request checks answer a malformed body
    readable = birth_request.read(body)[1] is None  # the request checks answer a notification without its parts
    return {"birth_example": birth.published_example(body) or "register"} if readable else {}


@blueprint.post(BIRTH_PATH)
@operation("process-birth-details", facts=_facts(_birth_facts))
def process_birth_details(ex):
    resource, notification = birth.record(PatientRecords(current_sandbox(), ex.session), ex.view.json(), ex.add)
    return fhir_response(resource, 201, headers={"ETag": etag(int(resource["meta"]["versionId"])),
                                                 birth.NOTIFICATION_HEADER: notification})


def _coverage_facts(view):
    try:
        number = view.arg(coverage.PARAMETER) if view.method == "GET" else coverage_request.subscriber_number(
            view.json())
    except Malformed:
        return {}  # the request checks answer a malformed body
    return {"nhs_number": number, **patient_facts(current_sandbox(), number)} if number else {}


@blueprint.get("/Coverage")
@operation("search-coverage", facts=_facts(_coverage_facts))
def search_coverage(ex):
    records = PatientRecords(current_sandbox(), ex.session)
    body, version = coverage.search(records, ex.view.arg(coverage.PARAMETER))
    return fhir_response(body, headers={"ETag": etag(version)})


@blueprint.post("/Coverage")
@operation("update-coverage", facts=_facts(_coverage_facts))
def update_coverage(ex):
    records = PatientRecords(current_sandbox(), ex.session)
    body, version = coverage.update(records, ex.view.json(), ex.view.header("If-Match"), ex.add)
    return fhir_response(body, 201, headers={"ETag": etag(version)})


def echo_request_headers(response) -> None:
    """PDS mirrors X-Request-ID and X-Correlation-ID back on every response, errors included; every answer to a
    record at birth carries a notification id (the published sandbox's own where no registration made one)."""
    for name in ("X-Request-ID", "X-Correlation-ID"):
        value = request.headers.get(name)
        if value is not None:
            response.headers[name] = printable(value)
    birth_answer = request.method == "POST" and request.path.endswith(BIRTH_PATH)
    if birth_answer and birth.NOTIFICATION_HEADER not in response.headers:
        response.headers[birth.NOTIFICATION_HEADER] = birth.PUBLISHED_NOTIFICATION_ID
