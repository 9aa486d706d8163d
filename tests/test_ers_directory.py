"""e-RS R4 reads of the world over HTTP: healthcare services (A033, A037, A035), the caller's business functions
(A030), the users an SPCA acts for (A040), and service requests by UBRN (A041) for what the session did not create.
The published examples (services 1 and 2, UBRNs 000000070000-3, ...) keep their published answers."""

from __future__ import annotations

import pytest

from sandbox.services.ers import world
from tests.ers_helpers import R4, RC, SPCA, body_json


@pytest.fixture
def the_world(app):
    with app.app_context():
        return world.current_world()


def headers(function: str, ods: str, **extra: str) -> dict[str, str]:
    return {"Authorization": "Bearer sandbox-test-token", "NHSD-eRS-Business-Function": function,
            "NHSD-End-User-Organisation-ODS": ods, **extra}


def error_code(answer) -> str:
    return body_json(answer)["issue"][0]["details"]["coding"][0]["code"]


def test_a_world_service_is_read_and_its_version_checked(client, the_world):
    service = next(s for s in the_world.services.values() if s.kind == world.DBS)
    rc = headers(RC, the_world.practices[0].ods)
    read = client.get(f"{R4}/HealthcareService/{service.id}", headers=rc)
    assert read.status_code == 200 and read.headers["ETag"] == 'W/"1"'
    resource = body_json(read)
    assert (resource["resourceType"], resource["id"], resource["name"]) == ("HealthcareService", service.id,
                                                                             service.name)
    flags = {c["coding"][0]["code"] for c in resource["characteristic"]}
    assert flags == {"BOOKABLE", "DIRECTLY_BOOKABLE"}
    head = client.head(f"{R4}/HealthcareService/{service.id}", headers=rc)
    assert head.status_code == 200 and head.headers["ETag"] == 'W/"1"' and head.data == b""
    missing = client.get(f"{R4}/HealthcareService/99999", headers=rc)
    assert missing.status_code == 404 and error_code(missing) == "REC_NOT_FOUND"
    published = client.get(f"{R4}/HealthcareService/1", headers=rc)
    assert published.status_code == 200 and body_json(published)["name"] == "Direct Service With Minimal"


def test_services_are_searched_by_id(client, the_world):
    advice = [s.id for s in the_world.services.values() if s.kind == world.ADVICE][:2]
    rc = headers(RC, the_world.practices[0].ods)
    found = client.get(f"{R4}/HealthcareService?_id={','.join(advice)},99999", headers=rc)
    assert found.status_code == 200
    bundle = body_json(found)
    assert bundle["total"] == 2 and [e["resource"]["id"] for e in bundle["entry"]] == advice
    assert {c["coding"][0]["code"] for e in bundle["entry"] for c in e["resource"]["characteristic"]} == {
        "ADVICE_AND_GUIDANCE"}
    none = body_json(client.get(f"{R4}/HealthcareService?_id=99998,99999", headers=rc))
    assert none["total"] == 0 and "entry" not in none
    too_many = client.get(f"{R4}/HealthcareService?_id={','.join(str(30001 + i) for i in range(21))}", headers=rc)
    assert too_many.status_code == 400 and error_code(too_many) == "REC_BAD_REQUEST"
    assert client.get(f"{R4}/HealthcareService?_id=abc", headers=rc).status_code == 400


def test_business_functions_of_a_world_user(client, the_world):
    practice = the_world.practices[0].ods
    user = the_world.default_user(practice, RC)
    answer = client.get(f"{R4}/PractitionerRole", headers=headers(RC, practice))
    assert answer.status_code == 200
    roles = [e["resource"] for e in body_json(answer)["entry"]]
    assert [r["practitioner"]["identifier"]["value"] for r in roles] == [user.user_id]
    assert roles[0]["organization"]["identifier"]["value"] == practice
    assert [c["coding"][0]["code"] for c in roles[0]["code"]] == list(user.business_functions)
    # A caller the world does not know gets the published example bundle.
    published = body_json(client.get(f"{R4}/PractitionerRole", headers=headers(RC, "Z99999")))
    assert published["id"] == "85ca4b21-c327-47c1-9594-69dfc500ea7c"


def test_an_spca_lists_the_clinicians_it_may_act_for(client, the_world):
    provider = the_world.providers[0].ods
    spca = headers(SPCA, provider, **{"NHSD-eRS-On-Behalf-Of-User-ID": "400000000000"})
    answer = client.get(f"{R4}/Practitioner?_query=onBehalfOf", headers=spca)
    assert answer.status_code == 200
    listed = {e["resource"]["id"] for e in body_json(answer)["entry"]}
    assert listed == {u.user_id for u in the_world.users_of(provider) if world.SPC in u.business_functions}
    wrong_query = client.get(f"{R4}/Practitioner?_query=everyone", headers=spca)
    assert wrong_query.status_code == 400


def test_service_requests_of_an_unknown_ubrn_and_bad_identifiers(client, the_world):
    rc = headers(RC, the_world.practices[0].ods)
    empty = client.get(f"{R4}/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|999999999999", headers=rc)
    assert empty.status_code == 200 and body_json(empty)["total"] == 0
    bad = client.get(f"{R4}/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|12", headers=rc)
    assert bad.status_code == 400 and error_code(bad) == "REC_BAD_REQUEST"
    published = client.get(f"{R4}/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|000000070001", headers=rc)
    assert published.status_code == 200 and body_json(published)["total"] == 1
