"""The supplier's own tests, run against Spine Sandbox in-process through the `spine` fixture (pytest plugin)."""

import pytest
from pds_client import PdsClient, PdsError, PdsUnavailable


@pytest.fixture
def pds():
    return PdsClient(access_token="test-token", ods_code="Y12345")


def test_reads_a_patient(spine, pds):
    patient = pds.get_patient("9000000009")
    assert (patient.family_name, patient.given_names[0]) == ("Smith", "Jane")
    assert patient.version.startswith('W/"')
    assert spine.failures == []  # every header and identifier rule the sandbox checks was met
    assert {f.requirement for f in spine.findings} >= {"PDS-HDR-001", "PDS-HDR-002", "PDS-GET-001"}


def test_restricted_patient_is_flagged(spine, pds):
    assert pds.get_patient("9000000025").restricted


def test_unknown_patient_is_an_error_with_the_spine_code(spine, pds):
    with pytest.raises(PdsError) as raised:
        pds.get_patient("9111231130")
    assert (raised.value.status, raised.value.code) == (404, "RESOURCE_NOT_FOUND")


def test_retries_after_503_with_the_same_request_id(spine, pds):
    assert pds.get_patient("9999000010").nhs_number == "9999000010"  # 503 with Retry-After first, then the patient
    first, second = spine.exchanges
    assert (first.response.status, second.response.status) == (503, 200)
    assert _request_id(first) == _request_id(second)
    assert second.started_at - first.started_at >= 2  # waited as long as Retry-After said


def test_gives_up_when_pds_stays_unavailable(spine, pds):
    with pytest.raises(PdsUnavailable):
        pds.get_patient("9999000045")
    assert len(spine.exchanges) == pds.max_attempts


def test_times_out_on_a_slow_answer(spine):
    slow = PdsClient(access_token="test-token", timeout=(1, 1))
    with pytest.raises(PdsUnavailable):
        slow.get_patient("9999000037")  # answered after 3 s


def _request_id(exchange):
    return next(v for k, v in exchange.request.headers if k.lower() == "x-request-id")
