"""e-RS advice and guidance over HTTP, per session: a referrer asks an advice service (A044), the provider sees it in
its worklist (A023), reads it and the conversation (A024, A025, A043), answers (A026) or converts it into a referral
(A027) that the provider then finds in its referral worklist (A008); and what live e-RS refuses."""

from __future__ import annotations

import pytest

from sandbox.services.ers import world
from tests.ers_helpers import R4, RC, RCA, SPC, SPCA, STU3, body_json

CODES = "https://fhir.nhs.uk/STU3/CodeSystem/"
NHS_NUMBER = "http://fhir.nhs.net/Id/nhs-number"
ERS_SERVICE = "http://fhir.nhs.net/Id/ers-service"


@pytest.fixture
def the_world(app):
    with app.app_context():
        return world.current_world()


@pytest.fixture
def advice_service(the_world) -> world.HealthcareService:
    return next(s for s in the_world.services.values() if s.kind == world.ADVICE)


@pytest.fixture
def patient(sandbox) -> str:
    return next(sandbox.population.of_kind("standard")).nhs_number


def referrer(the_world, function: str = RC, **extra: str) -> dict[str, str]:
    practice = the_world.practices[0].ods
    return {"Authorization": "Bearer sandbox-test-token", "NHSD-eRS-Business-Function": function,
            "NHSD-End-User-Organisation-ODS": practice, **extra}


def provider(ods: str, **extra: str) -> dict[str, str]:
    return {"Authorization": "Bearer sandbox-test-token", "NHSD-eRS-Business-Function": SPC,
            "NHSD-End-User-Organisation-ODS": ods, **extra}


def other_provider(the_world, service: world.HealthcareService) -> str:
    return next(o.ods for o in the_world.providers if o.ods != service.ods)


def document(binary_location: str, kind: str, description: str = "A file") -> dict:
    return {"meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-DocumentReference-1"]},
            "resourceType": "DocumentReference",
            "type": {"coding": [{"system": CODES + "eRS-AttachmentType-1", "code": kind}]},
            "status": "current", "indexed": "2026-12-04T10:00:00.000000+00:00", "description": description,
            "content": [{"attachment": {"url": binary_location}}]}


def create_body(patient: str, service_ids: list[str], authorised: bool = True, text: str = "Please advise",
                files: list[str] = (), clinician: str | None = None) -> dict:
    parameters = [
        {"name": "patient", "valueIdentifier": {"system": NHS_NUMBER, "value": patient}},
        {"name": "providerConversionAuthorisation", "valueCoding": {
            "system": CODES + "eRS-ProviderConversionAuthorisation-1",
            "code": "AUTHORISED_TO_CONVERT" if authorised else "NOT_AUTHORISED_TO_CONVERT"}},
        {"name": "shortlist", "resource": {
            "resourceType": "List", "status": "current", "mode": "snapshot",
            "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-Shortlist-List-1"]},
            "entry": [{"item": {"identifier": {"system": ERS_SERVICE, "value": i}}} for i in service_ids]}},
        {"name": "request", "valueString": text},
        *({"name": "requestAttachmentFile", "resource": document(f, "ADVICE_REQUEST")} for f in files),
    ]
    if clinician:
        parameters.append({"name": "referringClinician",
                           "valueIdentifier": {"system": "http://fhir.nhs.net/Id/sds-user-id", "value": clinician}})
    return {"resourceType": "Parameters", "meta": {"profile": [
        "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-CreateAdviceAndGuidance-Request-Parameters-1"]},
        "parameter": parameters}


def response_body(outcome: str, text: str = "Here is my advice", files: list[str] = ()) -> dict:
    parameters = [{"name": "guidanceOutcome", "valueCoding": {"system": CODES + "eRS-GuidanceResponseOutcome-1",
                                                               "code": outcome}}]
    if outcome == "RETURN_TO_REFERRER_WITH_ADVICE":
        parameters.append({"name": "guidanceIntendedRecommendation", "valueCoding": {
            "system": CODES + "eRS-GuidanceIntendedRecommendation-1", "code": "ADVICE_ONLY_NO_REFERRAL_RECOMMENDED"}})
    parameters += [{"name": "guidance", "valueString": text},
                   {"name": "updatedPriority", "valueCoding": {"system": CODES + "eRS-Priority-1",
                                                               "code": "ROUTINE"}}]
    parameters += [{"name": "guidanceAttachmentFile", "resource": document(f, "GUIDANCE_RESPONSE")} for f in files]
    return {"resourceType": "Parameters", "parameter": parameters}


def convert_body(ubrn: str, version: int) -> dict:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "createFrom", "valueReference": {"reference": f"CommunicationRequest/{ubrn}/_history/{version}"}},
        {"name": "guidance", "valueString": "Referring the patient to our clinic"},
        {"name": "newReferralPriority", "valueCoding": {"system": CODES + "eRS-Priority-1", "code": "URGENT"}},
        {"name": "reviewComments", "valueString": "Admin: please book"}]}


def upload(client, headers: dict, name: str, data: bytes, referral_id: str | None = None) -> str:
    extra = {"Content-Type": "application/pdf", "NHSD-eRS-File-Name": name}
    if referral_id:
        extra["NHSD-eRS-Referral-ID"] = referral_id
    answer = client.post(f"{STU3}/Binary", data=data, headers={**headers, **extra})
    assert answer.status_code == 201, answer.data
    return answer.headers["Location"]


def create(client, headers: dict, body: dict) -> dict:
    answer = client.post(f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance", json=body, headers=headers)
    assert answer.status_code == 200, answer.data
    return {p["name"]: p["resource"] for p in body_json(answer)["parameter"]}


def error_code(answer) -> str:
    return body_json(answer)["issue"][0]["details"]["coding"][0]["code"]


def category(resource: dict) -> str:
    return resource["category"][0]["coding"][0]["code"]


def worklist(client, headers: dict) -> list[str]:
    # The published example request, as a supplier sends it.
    body = {"resourceType": "Parameters", "meta": {"profile": [
        "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchWorklist-Parameters-1"]}, "parameter": [
        {"name": "listType", "valueCodeableConcept": {"coding": [
            {"system": CODES + "eRS-CommunicationListSelector-1", "code": "ADVICE_AND_GUIDANCE_REQUESTS"}]}}]}
    answer = client.post(f"{STU3}/CommunicationRequest/$ers.fetchworklist", json=body, headers=headers)
    assert answer.status_code == 200, answer.data
    return [e["item"]["reference"].split("/")[-1] for e in body_json(answer).get("entry", [])]


def test_a_conversation_from_request_to_advice(client, the_world, advice_service, patient):
    rc = referrer(the_world)
    spc = provider(advice_service.ods)
    letter = upload(client, rc, "history.pdf", b"%PDF-1.4 referrer's notes")
    created = create(client, rc, create_body(patient, [advice_service.id], files=[letter]))
    request, first = created["createdCommunicationRequest"], created["createdCommunication"]
    ubrn = request["id"]
    assert len(ubrn) == 12 and ubrn.isdigit()
    assert request["meta"]["versionId"] == "1" and category(request) == "PROVIDER_RESPONSE_REQUIRED"
    assert request["subject"]["identifier"]["value"] == patient
    assert [d["content"][0]["attachment"]["url"] for d in first["contained"]
            if d["resourceType"] == "DocumentReference"] == [letter]
    assert first["payload"][0]["contentReference"]["reference"].startswith("#DocumentReference-")
    assert first["basedOn"] == [{"reference": f"CommunicationRequest/{ubrn}/_history/1"}]
    assert first["note"] == [{"text": "Please advise"}]

    assert ubrn in worklist(client, spc)
    assert ubrn not in worklist(client, provider(other_provider(the_world, advice_service)))
    read = client.get(f"{STU3}/CommunicationRequest/{ubrn}", headers=spc)
    assert read.status_code == 200 and read.headers["ETag"] == 'W/"1"'
    # The referrer's file, linked to the request, is the provider's to read too.
    assert client.get(f"{STU3}/{letter}", headers=spc).data == b"%PDF-1.4 referrer's notes"

    advice_file = upload(client, spc, "advice.pdf", b"%PDF-1.4 the provider's advice", referral_id=ubrn)
    answered = client.post(f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester",
                           json=response_body("RETURN_TO_REFERRER_WITH_ADVICE", files=[advice_file]),
                           headers={**spc, "If-Match": 'W/"1"'})
    assert answered.status_code == 200, answered.data
    updated = {p["name"]: p["resource"] for p in body_json(answered)["parameter"]}
    assert updated["updatedCommunicationRequest"]["meta"]["versionId"] == "2"
    assert category(updated["updatedCommunicationRequest"]) == "REFERRER_TO_REVIEW_RESPONSE"
    assert category(updated["createdCommunication"]) == "RESPONDER"

    # The conversation as of each version; the summary's history keeps version 1.
    now = client.get(f"{STU3}/Communication?based-on=CommunicationRequest/{ubrn}/_history/2", headers=rc)
    assert now.status_code == 200 and now.headers["ETag"] == 'W/"2"'
    bundle = body_json(now)
    messages = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert bundle["total"] == 2 and [category(m) for m in messages] == ["RESPONDER", "REQUESTER"]
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert {r["resourceType"] for r in included} == {"PractitionerRole", "DocumentReference"}
    assert [d["content"][0]["attachment"]["url"] for d in included if d["resourceType"] == "DocumentReference"] \
        == [advice_file, letter]
    then = body_json(client.get(f"{STU3}/Communication?based-on=CommunicationRequest/{ubrn}/_history/1",
                                headers=rc))
    assert then["total"] == 1
    old = client.get(f"{STU3}/CommunicationRequest/{ubrn}/_history/1", headers=rc)
    assert old.status_code == 200 and category(body_json(old)) == "PROVIDER_RESPONSE_REQUIRED"

    # The referrer downloads the advice file through the R4 redirect, byte for byte.
    redirect = client.get(f"{R4}/{advice_file}", headers=rc)
    assert redirect.status_code == 307
    downloaded = client.get(redirect.headers["Location"].replace("http://localhost", ""))
    assert downloaded.data == b"%PDF-1.4 the provider's advice"

    overview = client.post(f"{STU3}/CommunicationRequest/{ubrn}/$ers.generateCRI", headers=spc)
    assert overview.status_code == 200 and overview.data.startswith(b"%PDF-")
    assert overview.headers["Content-Type"] == "application/pdf" and ubrn in overview.headers["Content-Disposition"]

    again = client.post(f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester",
                        json=response_body("REQUIRE_FURTHER_INFORMATION"), headers={**spc, "If-Match": 'W/"2"'})
    assert again.status_code == 422 and error_code(again) == "INVALID_REQUEST_STATE"
    assert ubrn in worklist(client, spc)  # the referrer is to review it; still open


def test_a_converted_request_becomes_a_referral_in_the_providers_worklist(client, the_world, advice_service,
                                                                          patient):
    rc = referrer(the_world)
    spc = provider(advice_service.ods)
    ubrn = create(client, rc, create_body(patient, [advice_service.id]))["createdCommunicationRequest"]["id"]
    converted = client.post(f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater",
                            json=convert_body(ubrn, 1), headers=spc)
    assert converted.status_code == 201, converted.data
    referral = body_json(converted)
    assert referral["resourceType"] == "ReferralRequest" and referral["id"] == ubrn
    state = next(e for e in referral["extension"] if e["url"].endswith("ReferralState-1"))
    assert state["extension"][0]["valueCoding"]["code"] == "TRIAGED_PROVIDER_TO_ACTION"

    read = client.get(f"{STU3}/ReferralRequest/{ubrn}", headers=spc)
    assert read.status_code == 200 and body_json(read)["id"] == ubrn
    summary = body_json(client.get(f"{STU3}/CommunicationRequest/{ubrn}", headers=spc))
    assert category(summary) == "ADVICE_CONVERTED" and summary["meta"]["versionId"] == "2"
    assert ubrn not in worklist(client, spc)

    found = client.get(f"{R4}/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|{ubrn}", headers=spc)
    assert found.status_code == 200
    categories = {e["resource"]["category"][0]["coding"][0]["code"] for e in body_json(found)["entry"]}
    assert categories == {"referral", "request"}

    # The provider's admin team books it: the referral is on the provider's "appointment slot issues" worklist.
    body = {"resourceType": "Parameters", "meta": {"profile": [
        "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchWorklist-Parameters-1"]}, "parameter": [
        {"name": "listType", "valueCodeableConcept": {"coding": [
            {"system": CODES + "eRS-ReferralListSelector-1", "code": "APPOINTMENT_SLOT_ISSUES"}]}}]}
    listed = client.post(f"{STU3}/ReferralRequest/$ers.fetchworklist", json=body, headers=spc)
    assert listed.status_code == 200, listed.data
    assert ubrn in {e["item"]["reference"].split("/")[1] for e in body_json(listed).get("entry", [])}
    stranger = client.post(f"{STU3}/ReferralRequest/$ers.fetchworklist", json=body,
                           headers=provider(other_provider(the_world, advice_service)))
    assert ubrn not in {e["item"]["reference"].split("/")[1] for e in body_json(stranger).get("entry", [])}


def test_creating_refuses_what_live_e_rs_refuses(client, the_world, advice_service, patient):
    rc = referrer(the_world)
    bookable = next(s for s in the_world.services.values() if s.kind == world.DBS)
    cases = [
        (create_body("9000000009", [advice_service.id]), rc, "PATIENT_ERROR"),
        (create_body(patient, [bookable.id]), rc, "INAPPROPRIATE_VALUE"),
        (create_body(patient, [advice_service.id, advice_service.id]), rc, "TOO_MANY_ITEMS"),
        (create_body(patient, ["99999"]), rc, "REFERENCE_NOT_FOUND"),
        (create_body(patient, [advice_service.id], text="x" * 8001), rc, "INVALID_VALUE"),
        (create_body(patient, [advice_service.id]), referrer(the_world, RCA), "VALUE_IS_REQUIRED"),
        (create_body(patient, [advice_service.id], clinician="400000000001"), rc, "FIELD_NOT_PERMITTED"),
        (create_body(patient, [advice_service.id], files=["Binary/not-uploaded"]), rc, "REFERENCE_NOT_FOUND"),
    ]
    for body, headers, code in cases:
        answer = client.post(f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance", json=body, headers=headers)
        assert (answer.status_code, error_code(answer)) == (422, code), body


def test_duplicate_file_names_are_refused(client, the_world, advice_service, patient):
    rc = referrer(the_world)
    first = upload(client, rc, "results.pdf", b"%PDF-1.4 a")
    second = upload(client, rc, "results.pdf", b"%PDF-1.4 b")
    answer = client.post(f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance",
                         json=create_body(patient, [advice_service.id], files=[first, second]), headers=rc)
    assert answer.status_code == 422 and error_code(answer) == "DUPLICATE_FILENAME"


def test_providers_act_only_on_their_own_organisations_requests(client, the_world, advice_service, patient):
    rc = referrer(the_world)
    ubrn = create(client, rc, create_body(patient, [advice_service.id]))["createdCommunicationRequest"]["id"]
    stranger = provider(other_provider(the_world, advice_service))
    for answer in (
        client.get(f"{STU3}/CommunicationRequest/{ubrn}", headers=stranger),
        client.post(f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester",
                    json=response_body("REQUIRE_FURTHER_INFORMATION"), headers={**stranger, "If-Match": 'W/"1"'}),
        client.post(f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater",
                    json=convert_body(ubrn, 1), headers=stranger),
    ):
        assert answer.status_code == 422 and error_code(answer) == "NO_RELATIONSHIP"
    referrer_answer = client.post(f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester",
                                  json=response_body("REQUIRE_FURTHER_INFORMATION"), headers={**rc, "If-Match": 'W/"1"'})
    assert referrer_answer.status_code == 403  # only service provider business functions answer


def test_versions_and_authorisation_are_checked(client, the_world, advice_service, patient):
    rc = referrer(the_world)
    spc = provider(advice_service.ods)
    ubrn = create(client, rc, create_body(patient, [advice_service.id], authorised=False)
                  )["createdCommunicationRequest"]["id"]
    url = f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester"
    stale = client.post(url, json=response_body("REQUIRE_FURTHER_INFORMATION"), headers={**spc, "If-Match": 'W/"7"'})
    assert stale.status_code == 409
    missing = client.post(url, json=response_body("REQUIRE_FURTHER_INFORMATION"), headers=spc)
    assert missing.status_code == 412
    not_authorised = client.post(f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater",
                                 json=convert_body(ubrn, 1), headers=spc)
    assert not_authorised.status_code == 422 and error_code(not_authorised) == "INAPPROPRIATE_VALUE"
    answered = client.post(url, json=response_body("REQUIRE_FURTHER_INFORMATION"), headers={**spc, "If-Match": 'W/"1"'})
    assert answered.status_code == 200
    wrong_version = client.get(f"{STU3}/CommunicationRequest/{ubrn}/_history/3", headers=spc)
    assert wrong_version.status_code == 404


def test_unknown_and_wrong_kind_ubrns(client, the_world, advice_service):
    spc = provider(advice_service.ods)
    assert client.get(f"{STU3}/CommunicationRequest/999999999999", headers=spc).status_code == 404
    assert client.get(f"{STU3}/Communication?based-on=CommunicationRequest/999999999999/_history/1",
                      headers=spc).status_code == 404


def test_an_rca_asks_on_behalf_of_a_referring_clinician(client, the_world, advice_service, patient):
    practice = the_world.practices[0].ods
    clinician = the_world.default_user(practice, RC).user_id
    rca = referrer(the_world, RCA)
    created = create(client, rca, create_body(patient, [advice_service.id], clinician=clinician))
    request, message = created["createdCommunicationRequest"], created["createdCommunication"]
    agent = request["requester"]["agent"]["extension"][0]["valueReference"]["reference"]
    assert agent == f"#PractitionerRole.{clinician}.{practice}.REFERRING-CLINICIAN"
    sender = message["sender"]["extension"][0]["valueReference"]["reference"]
    assert sender.endswith(f".{practice}.REFERRING-CLINICIAN-ADMIN")
    assert message["extension"][0]["valueReference"]["reference"] == agent
    roles = {r["id"] for r in message["contained"] if r["resourceType"] == "PractitionerRole"}
    assert {agent[1:], sender[1:]} <= roles
    admin = the_world.default_user(practice, "REFERRING_ADMIN").user_id
    elsewhere = the_world.default_user(the_world.practices[1].ods, RC).user_id
    for user, code in ((admin, "REFERENCED_USER_IS_NOT_RC"), (elsewhere, "REFERENCED_USER_NOT_IN_ORG")):
        answer = client.post(f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance",
                             json=create_body(patient, [advice_service.id], clinician=user), headers=rca)
        assert answer.status_code == 422 and error_code(answer) == code


def test_advice_answers_meet_the_specification(client, the_world, advice_service, patient):
    """Every A&G answer along a conversation and a conversion validates against the specification's schemas."""
    from tests.test_ers_spec_schemas import SpecChecker

    spec = SpecChecker()
    rc = referrer(the_world)
    spc = provider(advice_service.ods)
    letter = upload(client, rc, "notes.pdf", b"%PDF-1.4 notes")
    created = client.post(f"{STU3}/CommunicationRequest/$ers.createAdviceAndGuidance",
                          json=create_body(patient, [advice_service.id], files=[letter]), headers=rc)
    spec.check("a044-create-advice-and-guidance-request", created)
    ubrn = body_json(created)["parameter"][0]["resource"]["id"]
    body = {"resourceType": "Parameters", "parameter": [{"name": "listType", "valueCodeableConcept": {"coding": [
        {"system": CODES + "eRS-CommunicationListSelector-1", "code": "ADVICE_AND_GUIDANCE_REQUESTS"}]}}]}
    spec.check("a023-retrieve-a&g-worklist",
               client.post(f"{STU3}/CommunicationRequest/$ers.fetchworklist", json=body, headers=spc))
    spec.check("a024-retrieve-advice-and-guidance", client.get(f"{STU3}/CommunicationRequest/{ubrn}", headers=spc))
    advice_file = upload(client, spc, "advice.pdf", b"%PDF-1.4 advice", referral_id=ubrn)
    spec.check("a026-send-a&g-response", client.post(
        f"{STU3}/CommunicationRequest/{ubrn}/$ers.sendCommunicationToRequester",
        json=response_body("REQUIRE_FURTHER_INFORMATION", files=[advice_file]), headers={**spc, "If-Match": 'W/"1"'}))
    spec.check("a024-retrieve-advice-and-guidance-versioned",
               client.get(f"{STU3}/CommunicationRequest/{ubrn}/_history/1", headers=rc))
    spec.check("a025-retrieve-advice-and-guidance-conversation",
               client.get(f"{STU3}/Communication?based-on=CommunicationRequest/{ubrn}/_history/2", headers=rc))
    other = create(client, rc, create_body(patient, [advice_service.id]))["createdCommunicationRequest"]["id"]
    spec.check("a027-convert-a&g-to-referral", client.post(
        f"{STU3}/ReferralRequest/$ers.createFromCommunicationRequestActionLater", json=convert_body(other, 1),
        headers=spc))
    spec.check("a041-search-service-request",
               client.get(f"{R4}/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|{other}", headers=spc))
    for operation, path in (("a033-retrieve-healthcare-service", f"/HealthcareService/{advice_service.id}"),
                            ("a035-search-for-healthcare-services", f"/HealthcareService?_id={advice_service.id}")):
        spec.check(operation, client.get(f"{R4}{path}", headers=referrer(the_world)))
    spec.check("a030-retrieve-business-functions", client.get(f"{R4}/PractitionerRole", headers=rc))
    spca = provider(advice_service.ods, **{"NHSD-eRS-Business-Function": SPCA,
                                          "NHSD-eRS-On-Behalf-Of-User-ID": "400000000000"})
    spec.check("a040-retrieve-practitioner-info", client.get(f"{R4}/Practitioner?_query=onBehalfOf", headers=spca))
    assert len(spec.checked) == 12, "\n".join(spec.checked)
