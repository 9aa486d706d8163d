"""The supplier's own tests, run against Spine Sandbox in-process through the `spine` fixture (pytest plugin).

Together they run every step of the pds-application-restricted plan, so with `--spine-plan
pds-application-restricted` the run is one assurance session and its report says how the client did.
"""

import pytest
import requests
from pds_client import PdsClient, PdsError, PdsUnavailable


@pytest.fixture
def pds(spine):
    # The sandbox session's token stands in for the access token this back-end client would get from the identity
    # service with its signed JWT, and puts every request in the session.
    return PdsClient(access_token=spine.token, ods_code="Y12345")


def synthetic_patient(spine, kind: str) -> str:
    """An NHS number of the sandbox's synthetic population, of one kind (superseded, invalidated, …)."""
    answer = requests.get(f"{spine.url}/_sandbox/patients", params={"kind": kind, "limit": 1}, timeout=10)
    return answer.json()["patients"][0]["nhs_number"]


def test_reads_a_patient(spine, pds):
    patient = pds.get_patient("9000000009")
    assert (patient.family_name, patient.given_names[0]) == ("Smith", "Jane")
    assert patient.version.startswith('W/"')
    assert spine.failures == []  # every header, identifier and token rule the sandbox checks was met
    assert {f.requirement for f in spine.findings} >= {"PDS-HDR-001", "PDS-HDR-002", "PDS-HDR-005", "PDS-GET-001"}


def test_restricted_patient_is_flagged(spine, pds):
    assert pds.get_patient("9000000025").restricted


def test_superseded_number_is_replaced_by_the_one_pds_answers_with(spine, pds):
    merged = synthetic_patient(spine, "superseded")
    patient = pds.get_patient(merged)
    assert patient.superseded_from == merged and patient.nhs_number != merged
    assert pds.get_patient(patient.nhs_number).nhs_number == patient.nhs_number  # from now on, the new number
    assert "PDS-GET-002" in {f.requirement for f in spine.findings if f.outcome == "pass"}


def test_search_finds_the_one_unique_match(spine, pds):
    assert pds.find_one(family="Smith", gender="female", birthdate="eq2010-10-22") == "9000000009"
    assert pds.find_one(family="Nobody-By-This-Name", birthdate="eq1900-01-01") is None


def test_invalidated_patient_is_an_error_with_the_spine_code(spine, pds):
    with pytest.raises(PdsError) as raised:
        pds.get_patient(synthetic_patient(spine, "invalidated"))
    assert (raised.value.status, raised.value.code) == (404, "INVALIDATED_RESOURCE")


def test_unknown_patient_is_an_error_with_the_spine_code(spine, pds):
    with pytest.raises(PdsError) as raised:
        pds.get_patient("9111231130")
    assert (raised.value.status, raised.value.code) == (404, "RESOURCE_NOT_FOUND")


def test_an_invalid_nhs_number_is_never_sent(spine, pds):
    with pytest.raises(ValueError, match="not an NHS number"):
        pds.get_patient("9000000001")
    assert spine.exchanges == []


def test_retries_after_503_with_the_same_request_id(spine, pds):
    assert pds.get_patient("9999000010").nhs_number == "9999000010"  # 503 with Retry-After first, then the patient
    first, second = spine.exchanges
    assert (first.response.status, second.response.status) == (503, 200)
    assert _request_id(first) == _request_id(second)
    assert second.started_at - first.started_at >= 2  # waited as long as Retry-After said
    assert spine.failures == []


def test_gives_up_when_pds_stays_unavailable(spine, pds):
    with pytest.raises(PdsUnavailable):
        pds.get_patient("9999000045")
    assert len(spine.exchanges) == pds.max_attempts
    assert spine.failures == []


def test_backs_off_when_rate_limited(spine, pds):
    with pytest.raises(PdsUnavailable, match="429"):
        pds.get_patient("9999000002")
    attempts = spine.exchanges
    assert [ex.response.status for ex in attempts] == [429] * pds.max_attempts
    assert all(b.started_at - a.started_at >= 1 for a, b in zip(attempts, attempts[1:], strict=False))
    assert spine.failures == []


def test_retries_a_downstream_timeout_with_the_same_request_id(spine, pds):
    with pytest.raises(PdsUnavailable, match="408"):
        pds.get_patient("9999000029")
    assert len({_request_id(ex) for ex in spine.exchanges}) == 1 and len(spine.exchanges) == pds.max_attempts
    assert spine.failures == []


def test_times_out_on_a_slow_answer(spine):
    slow = PdsClient(access_token=spine.token, timeout=(1, 1))
    with pytest.raises(PdsUnavailable):
        slow.get_patient("9999000037")  # answered after 3 s


def _request_id(exchange):
    return next(v for k, v in exchange.request.headers if k.lower() == "x-request-id")
