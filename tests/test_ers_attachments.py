"""e-RS attachments over HTTP, per session: uploads (A020) kept and downloaded byte for byte (A006; A042's 307 to the
object store), referral letters linked to a session referral (A012), and what live e-RS refuses."""

from __future__ import annotations

import pytest

from sandbox.services.ers import world
from tests.ers_helpers import BASE_URL_HEADER, R4, RC, SPC, STU3, body_json, exchange_of

CODES = "https://fhir.nhs.uk/STU3/CodeSystem/"
PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # every byte value, as a binary file has


def headers(function: str = RC, ods: str = "A81001", **extra: str) -> dict[str, str]:
    return {"Authorization": "Bearer sandbox-test-token", "NHSD-eRS-Business-Function": function,
            "NHSD-End-User-Organisation-ODS": ods, **extra}


def upload(client, data: bytes, name: str, content_type: str = "application/pdf", referral_id: str | None = "x",
           **extra: str):
    sent = headers(**extra)
    sent.update({"Content-Type": content_type, "NHSD-eRS-File-Name": name})
    if referral_id:
        sent["NHSD-eRS-Referral-ID"] = referral_id
    return client.post(f"{STU3}/Binary", data=data, headers=sent)


def binary_id(answer) -> str:
    assert answer.status_code == 201, answer.data
    location = answer.headers["Location"]
    assert location.startswith("Binary/")
    return location.removeprefix("Binary/")


def error_code(answer) -> str:
    return body_json(answer)["issue"][0]["details"]["coding"][0]["code"]


def test_an_upload_is_downloaded_byte_for_byte_through_a006(client):
    answer = upload(client, PDF_BYTES, "scan.pdf")
    assert answer.headers["Content-Type"].startswith("text/html") and answer.data == b""
    file_id = binary_id(answer)
    assert file_id != "19eb7224-dff3-4730-a5cb-67eac811f1a5"  # not the published sandbox's fixed answer
    downloaded = client.get(f"{STU3}/Binary/{file_id}", headers=headers())
    assert downloaded.status_code == 200
    assert downloaded.data == PDF_BYTES
    assert downloaded.headers["Content-Type"] == "application/pdf"
    assert downloaded.headers["Content-Disposition"] == "attachment; filename=scan.pdf"


def test_a042_redirects_to_the_object_store_which_serves_the_bytes(client):
    file_id = binary_id(upload(client, PDF_BYTES, "The filenamé.pdf".encode().decode("latin-1")))
    sent_base = client.get(f"{R4}/Binary/{file_id}", headers=headers(**{BASE_URL_HEADER: "https://proxy.example/ers"}))
    assert sent_base.status_code == 307 and sent_base.data == b""
    assert sent_base.headers["Location"] == f"https://proxy.example/ers/ObjectStore/{file_id}"
    own = client.get(f"{R4}/Binary/{file_id}", headers=headers())
    assert own.headers["Location"] == f"http://localhost/referrals/ObjectStore/{file_id}"
    stored = client.get(f"/referrals/ObjectStore/{file_id}")
    assert stored.status_code == 200 and stored.data == PDF_BYTES
    assert stored.headers["Content-Type"] == "application/pdf"
    assert stored.headers["Content-Disposition"] == (
        "attachment; filename=\"=?UTF-8?Q?The_filenam=C3=A9.pdf?=\"; filename*=UTF-8''The%20filenam%C3%A9.pdf")


def test_only_related_organisations_download_a_file(client):
    file_id = binary_id(upload(client, PDF_BYTES, "private.pdf", ods="A81001"))
    assert client.get(f"{STU3}/Binary/{file_id}", headers=headers(ods="A81001")).status_code == 200
    other = client.get(f"{STU3}/Binary/{file_id}", headers=headers(ods="B82002"))
    assert other.status_code == 403 and error_code(other) == "NO_RELATIONSHIP"


def test_unknown_attachments_are_not_found(client):
    stu3 = client.get(f"{STU3}/Binary/not-an-upload", headers=headers())
    assert stu3.status_code == 404 and error_code(stu3) == "NOT_FOUND"
    r4 = client.get(f"{R4}/Binary/not-an-upload", headers=headers())
    assert r4.status_code == 404 and error_code(r4) == "REC_NOT_FOUND"


def test_uploads_are_kept_per_session(client):
    file_id = binary_id(upload(client, PDF_BYTES, "mine.pdf", **{"X-Sandbox-Session": "first-session"}))
    own = client.get(f"{STU3}/Binary/{file_id}", headers=headers(**{"X-Sandbox-Session": "first-session"}))
    assert own.data == PDF_BYTES
    # Another session does not have it: a UUID it did not upload gets the published sandbox's example file.
    other = client.get(f"{STU3}/Binary/{file_id}", headers=headers(**{"X-Sandbox-Session": "second-session"}))
    assert other.data != PDF_BYTES
    assert client.get(f"/referrals/ObjectStore/{file_id}", headers={"X-Sandbox-Session": "second-session"}).data \
        != PDF_BYTES


def test_refused_uploads(client):
    empty = upload(client, b"", "empty.pdf")
    assert empty.status_code == 422 and error_code(empty) == "FILE_SIZE_ERROR"
    unnamed = upload(client, PDF_BYTES, "")
    assert unnamed.status_code == 422 and error_code(unnamed) == "MISSING_VALUE"
    assert upload(client, PDF_BYTES, "a.zip", content_type="application/zip").status_code == 415
    too_large = upload(client, b"x" * (5 * 1024 * 1024 + 1), "big.txt", content_type="text/plain")
    assert too_large.status_code in (413, 422) and too_large.status_code != 201


def test_a_file_whose_extension_does_not_fit_fails_validation(client):
    answer = upload(client, PDF_BYTES, "photo.png")  # PDF content type, PNG name
    file_id = binary_id(answer)
    failing = [f for f in exchange_of(client, answer)["findings"] if f["requirement"] == "ERS-ATT-005"]
    assert failing and failing[0]["outcome"] == "fail"
    downloaded = client.get(f"{STU3}/Binary/{file_id}", headers=headers())
    assert downloaded.status_code == 422 and error_code(downloaded) == "VALIDATION_FAILED"


def test_an_upload_without_a_referral_id_is_taken_with_a_warning(client):
    answer = upload(client, PDF_BYTES, "later.pdf", referral_id=None)
    binary_id(answer)
    warned = [f for f in exchange_of(client, answer)["findings"] if f["requirement"] == "ERS-ATT-004"]
    assert warned and warned[0]["outcome"] == "warning"


# --- A012: referral letters of a session referral ---------------------------------------------------------------
@pytest.fixture
def referral(client, app, sandbox):
    """A referral the session created (A011) into a bookable service of the world, and its referrer's headers."""
    with app.app_context():
        the_world = world.current_world()
    practice = the_world.practices[0].ods
    service = next(s for s in the_world.services.values() if s.kind == world.DBS)
    patient = next(sandbox.population.of_kind("standard")).nhs_number
    body = {"resourceType": "Parameters", "meta": {"profile": [
        "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-CreateReferral-Parameters-1"]}, "parameter": [
        {"name": "patient", "valueIdentifier": {"system": "http://fhir.nhs.net/Id/nhs-number", "value": patient}},
        {"name": "intentionToAddReferralLetter", "valueCoding": {
            "system": CODES + "eRS-ReferralLetterIntention-1", "code": "NEED_TO_ADD_LATER"}},
        {"name": "shortlist", "resource": {
            "resourceType": "List", "status": "current", "mode": "snapshot",
            "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-Shortlist-List-1"]},
            "contained": [{"resourceType": "Parameters", "id": "ServiceSearchCriteria-1", "parameter": [
                {"name": "priority", "valueCoding": {"system": CODES + "eRS-Priority-1", "code": "ROUTINE"}},
                {"name": "specialty", "valueCoding": {"system": "_baseUrl_/STU3/CodeSystem/SPECIALTY",
                                                      "code": service.specialty}}]}],
            "extension": [{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-Shortlist-SearchCriteria-1",
                           "valueReference": {"reference": "#ServiceSearchCriteria-1"}}],
            "entry": [{"item": {"identifier": {"system": "http://fhir.nhs.net/Id/ers-service", "value": service.id}}}]}},
    ]}
    referrer = headers(RC, practice)
    created = client.post(f"{STU3}/ReferralRequest/$ers.createReferral", json=body, headers=referrer)
    assert created.status_code == 201 and not body_json(created)["id"].startswith("0000000700"), created.data
    resource = body_json(created)
    return resource["id"], int(resource["meta"]["versionId"]), referrer, service


def letter_body(*locations: str) -> dict:
    return {"resourceType": "Parameters", "meta": {"profile": [
        "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-MaintainReferralLetter-Parameters-1"]}, "parameter": [
        {"name": "referralLetterFile", "resource": {
            "resourceType": "DocumentReference", "status": "current", "indexed": "2026-12-04T10:00:00.000000+00:00",
            "type": {"coding": [{"system": CODES + "eRS-AttachmentType-1", "code": "REFERRER"}]},
            "content": [{"attachment": {"url": location}}]}} for location in locations]}


def letter_urls(resource: dict) -> list[str]:
    return [d["content"][0]["attachment"]["url"] for d in resource["contained"] if d["resourceType"] ==
            "DocumentReference"]


def test_referral_letters_are_linked_replaced_and_downloaded(client, referral):
    ubrn, version, referrer, service = referral
    url = f"{STU3}/ReferralRequest/{ubrn}/$ers.maintainReferralLetter"
    first = "Binary/" + binary_id(upload(client, b"%PDF-1.4 letter one", "letter-one.pdf", referral_id=ubrn))
    second = "Binary/" + binary_id(upload(client, b"%PDF-1.4 letter two", "letter-two.pdf", referral_id=ubrn))
    linked = client.post(url, json=letter_body(first, second), headers={**referrer, "If-Match": f'W/"{version}"'})
    assert linked.status_code == 200, linked.data
    from tests.test_ers_spec_schemas import SpecChecker

    SpecChecker().check("a012-maintain-referral-letter", linked)  # the specification's ReferralRequest schema
    assert linked.headers["ETag"] == f'W/"{version + 1}"'
    assert letter_urls(body_json(linked)) == [first, second]
    read = client.get(f"{STU3}/ReferralRequest/{ubrn}", headers=referrer)
    assert letter_urls(body_json(read)) == [first, second]
    same = client.post(url, json=letter_body(first, second), headers={**referrer, "If-Match": f'W/"{version + 1}"'})
    assert same.status_code == 422 and error_code(same) == "NO_CHANGES_DETECTED"
    kept = client.post(url, json=letter_body(second), headers={**referrer, "If-Match": f'W/"{version + 1}"'})
    assert kept.status_code == 200 and letter_urls(body_json(kept)) == [second]
    provider = headers(SPC, service.ods)
    assert client.get(f"{STU3}/{second}", headers=provider).data == b"%PDF-1.4 letter two"
    stranger = client.get(f"{R4}/{second}", headers=headers(SPC, "Z99999"))
    assert stranger.status_code == 403 and error_code(stranger) == "NO_RELATIONSHIP"


def test_referral_letters_refused(client, referral):
    ubrn, version, referrer, _ = referral
    url = f"{STU3}/ReferralRequest/{ubrn}/$ers.maintainReferralLetter"
    current = {**referrer, "If-Match": f'W/"{version}"'}
    elsewhere = "Binary/" + binary_id(upload(client, b"%PDF-1.4 x", "x.pdf", referral_id="000000000001"))
    unlabelled = "Binary/" + binary_id(upload(client, b"%PDF-1.4 y", "y.pdf", referral_id=None))
    twin_a = "Binary/" + binary_id(upload(client, b"%PDF-1.4 a", "twin.pdf", referral_id=ubrn))
    twin_b = "Binary/" + binary_id(upload(client, b"%PDF-1.4 b", "twin.pdf", referral_id=ubrn))
    cases = [
        (letter_body(elsewhere), current, 422, "INAPPROPRIATE_VALUE"),
        (letter_body(unlabelled), current, 422, "INAPPROPRIATE_VALUE"),
        (letter_body("Binary/never-uploaded"), current, 422, "REFERENCE_NOT_FOUND"),
        (letter_body(twin_a, twin_b), current, 422, "DUPLICATE_FILENAME"),
        (letter_body(), current, 422, "MISSING_VALUE"),
        (letter_body(twin_a), {**referrer, "If-Match": f'W/"{version + 5}"'}, 409, None),
        (letter_body(twin_a), {**referrer, "NHSD-End-User-Organisation-ODS": "Z99999", "If-Match": f'W/"{version}"'},
         422, "NO_RELATIONSHIP"),
    ]
    for body, sent, status, code in cases:
        answer = client.post(url, json=body, headers=sent)
        assert answer.status_code == status, (body, answer.data)
        if code:
            assert error_code(answer) == code


def test_an_unknown_object_store_file_is_not_found_in_live_mode(client):
    """The published sandbox crashes (500) on an object-store id it does not know; live mode answers 404."""
    response = client.get("/referrals/ObjectStore/no-such-file")
    assert response.status_code == 404 and response.get_data() == b"Not Found\n"
    assert response.headers["X-Sandbox-Exchange"]
