"""The validator other EPS tests use (tests/eps_spec.py) proved on the specification's own answers: every response
example the three OpenAPI documents give validates against the schema they give for it, under the named adjustments
and only those; each adjustment that corrects the specification is needed by some example (or, for the short-form
id's ODS group, by an id live makes), and the validator still refuses answers that are wrong."""

from __future__ import annotations

import copy
import json

import pytest

from sandbox.services.eps.prescription_ids import new_short_form
from tests import eps_spec
from tests.conftest import spec_path


def response_examples() -> list[tuple[str, str, int, object]]:
    """(operation, file, status, body) of every response example the documents give, once each, that exists."""
    seen, found = set(), []
    for item in eps_spec.spec_examples():
        path = spec_path("eps-fhir") / item.file
        if item.status == "request" or (item.operation_id, item.status, item.file) in seen or not path.exists():
            continue
        seen.add((item.operation_id, item.status, item.file))
        body = json.loads(path.read_bytes())
        found.append((item.operation_id, item.file, eps_spec.status_of(item.status, body), body))
    return found


def failing(adjustments) -> list[str]:
    return [f"{op} {status} {file}" for op, file, status, body in response_examples()
            if eps_spec.problems(op, status, body, adjustments)]


def test_every_response_example_of_the_specification_validates():
    examples = response_examples()
    assert len(examples) == 46
    for operation_id, _file, status, body in examples:
        eps_spec.assert_valid(operation_id, status, body)


def test_without_the_adjustments_the_specifications_own_examples_fail():
    assert len(failing(())) >= 20


@pytest.mark.parametrize("adjustment", [a for a in eps_spec.ADJUSTMENTS
                                        if a.relaxes and a.name != "ods-in-prescription-ids"],
                         ids=lambda a: a.name)
def test_each_correction_is_needed_by_an_example(adjustment):
    without = tuple(a for a in eps_spec.ADJUSTMENTS if a is not adjustment)
    assert failing(without), f"{adjustment.name} is not needed by any of the specification's examples"


def test_the_short_form_ods_group_is_needed_by_ids_live_makes():
    """The documents' examples all use hex-looking ODS codes (A83008); an id of practice Y12345 is as valid live."""
    body = json.loads((spec_path("eps-fhir") / "examples/spec/dispensing/release/eRD-primary-example-res.json")
                      .read_bytes())
    short_form = new_short_form("Y12345")
    text = json.dumps(body)
    for value in {e["resource"]["groupIdentifier"]["value"] for p in body["parameter"]
                  for b in p["resource"].get("entry", []) for e in b["resource"].get("entry", [])
                  if e["resource"]["resourceType"] == "MedicationRequest"}:
        text = text.replace(value, short_form)
    changed = json.loads(text)
    eps_spec.assert_valid("release", 200, changed)
    without = tuple(a for a in eps_spec.ADJUSTMENTS if a.name != "ods-in-prescription-ids")
    assert eps_spec.problems("release", 200, changed, without)


def test_every_adjustment_is_named_and_explained():
    names = [a.name for a in eps_spec.ADJUSTMENTS]
    assert len(names) == len(set(names)) and all(a.why for a in eps_spec.ADJUSTMENTS)


def test_wrong_answers_still_fail():
    outcome = json.loads((spec_path("eps-fhir") / "examples/spec/dispensing/claim/acute-primary-example-res.json")
                         .read_bytes())
    assert eps_spec.problems("send-dispense-claim-message", 200, {"resourceType": "Bundle"})
    bad_severity = copy.deepcopy(outcome)
    bad_severity["issue"][0]["severity"] = "catastrophe"
    assert eps_spec.problems("send-dispense-claim-message", 200, bad_severity)
    no_issue = {**outcome, "issue": []}
    assert eps_spec.problems("send-dispense-claim-message", 200, no_issue)
    release = json.loads((spec_path("eps-fhir") / "examples/spec/dispensing/release/eRD-primary-example-res.json")
                         .read_bytes())
    wrong_kind = copy.deepcopy(release)
    wrong_kind["parameter"][0]["resource"]["entry"][0]["resource"]["entry"][1]["resource"]["resourceType"] = "Claim"
    assert eps_spec.problems("release", 200, wrong_kind)
    bad_id = copy.deepcopy(release)
    bad_id["parameter"][0]["resource"]["entry"][0]["resource"]["entry"][1]["resource"]["groupIdentifier"]["value"] \
        = "not-an-id"
    assert eps_spec.problems("release", 200, bad_id)


def test_an_undocumented_answer_is_refused():
    """assert_valid fails where the specification documents no JSON answer, so nothing passes unvalidated."""
    assert not eps_spec.documented("convert", 200)
    with pytest.raises(AssertionError, match="documents no JSON"):
        eps_spec.assert_valid("convert", 200, {"resourceType": "OperationOutcome"})
    assert eps_spec.documented("release", 400) and eps_spec.documented("prepare-prescription", 200)
