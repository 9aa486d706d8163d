"""The directory behind SDS: Spine's own entries point at the sandbox, suppliers register their own MHS (control
API and CLI), answers include it, sessions stay apart, bad registrations are refused naming the field, and the
global party key / ASID lookup finds the session."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.app import create_app
from sandbox.services.sds.directory import (
    SPINE_ASID,
    SPINE_PARTY_KEY,
    Directory,
    Registration,
    directory,
    published,
)
from tests.sds_helpers import PK, QUPA, REPC, SDS, SPINE_PK, get, published_client, query

interactions = pytest.importorskip("sandbox.messaging.interactions")
CONTROL = "/_sandbox/sds/registrations"
SUPPLIER = {"ods": "A20047", "asid": "200000001234", "party_key": "A20047-0000001",
            "endpoint": "https://mhs.example.nhs.uk/inbound", "interactions": ["REPC_IN150016UK05"]}


def _by_pattern() -> dict[str, object]:
    found = {}
    for item in interactions.catalogue().values():
        found.setdefault(item.pattern, item)
    return found


def _endpoints(client, qs, headers=None) -> list[dict]:
    response = get(client, "/Endpoint", qs, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["resource"] for e in response.get_json(force=True)["entry"]]


def _reliability(resource: dict) -> dict:
    for extension in resource.get("extension", []):
        if extension["url"].endswith("ReliabilityConfiguration"):
            return {e["url"]: e.get("valueString", e.get("valueInteger")) for e in extension["extension"]}
    return {}


# --- Spine's own entries ------------------------------------------------------------------------------------------
PATHS = {"sync": "/sync-service", "async-express": "/reliablemessaging/queryrequest",
         "async-reliable": "/reliablemessaging/reliablerequest", "forward-reliable": "/reliablemessaging/intermediary",
         "forward-express": "/reliablemessaging/intermediary"}


@pytest.mark.parametrize("pattern", list(PATHS))
def test_spine_entries_point_at_the_sandbox(client, pattern):
    interaction = _by_pattern().get(pattern)
    if interaction is None:
        pytest.skip(f"no {pattern} interaction in the catalogue")
    found = _endpoints(client, query("YES", interaction.service_interaction), {"Host": "sandbox.test:9000"})
    assert len(found) == 1
    assert found[0]["address"] == f"http://sandbox.test:9000{PATHS[pattern]}"
    identifiers = {i["system"].rsplit("/", 1)[1]: i["value"] for i in found[0]["identifier"]}
    assert identifiers["nhsMhsPartyKey"] == SPINE_PK and identifiers["nhsMhsFQDN"] == "sandbox.test"
    reliability = _reliability(found[0])
    if pattern == "async-reliable":
        assert reliability == {"nhsMHSSyncReplyMode": "MSHSignalsOnly", "nhsMHSRetryInterval": "PT1M",
                               "nhsMHSRetries": 2, "nhsMHSPersistDuration": "PT5M",
                               "nhsMHSDuplicateElimination": "always", "nhsMHSAckRequested": "always",
                               "nhsMHSActor": "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"}
    else:
        assert reliability["nhsMHSAckRequested"] == "never"
        assert reliability["nhsMHSDuplicateElimination"] == "never"
        assert reliability["nhsMHSSyncReplyMode"] == ("MSHSignalsOnly" if pattern == "async-express" else "None")


def test_every_catalogue_interaction_has_one_spine_entry(sandbox):
    entries = directory(sandbox).endpoints("default", base_url="http://h:1", party_key=SPINE_PARTY_KEY)
    by_interaction = {}
    for entry in entries:
        by_interaction.setdefault(entry.service_interaction, []).append(entry)
    for item in interactions.catalogue().values():
        if item.answer_to:  # an answer only Spine sends: Spine has no entry to receive it
            assert item.service_interaction not in by_interaction, item.id
            continue
        assert len(by_interaction[item.service_interaction]) == 1, item.id
        assert by_interaction[item.service_interaction][0].endpoint == f"http://h:1{PATHS[item.pattern]}"
    cpa_ids = [e.cpa_id for e in entries]
    assert len(cpa_ids) == len(set(cpa_ids))
    assert all(len(c) == 13 and c[0] == "S" and c[6] == "A" for c in cpa_ids)


def test_published_record_wins_and_keeps_its_cpa_id(client):
    found = _endpoints(client, query("YES", REPC, SPINE_PK))
    assert len(found) == 1
    identifiers = {i["system"].rsplit("/", 1)[1]: i["value"] for i in found[0]["identifier"]}
    assert identifiers["nhsMhsCPAId"] == "S20001A000182"


def test_published_mode_has_no_spine_extras(settings):
    published = published_client(settings)
    assert len(_endpoints(published, query("YES", pk=SPINE_PK))) == 5
    assert _endpoints(published, query("YES", REPC, SPINE_PK))[0]["address"] == (
        "https://msg.opentest.hscic.gov.uk/reliablemessaging/reliablerequest")


def test_public_url_wins_over_the_request_host(settings):
    client = create_app(settings.replace(public_url="https://spine.example:8443/")).test_client()
    assert _endpoints(client, query("YES", QUPA))[0]["address"] == "https://spine.example:8443/sync-service"


def test_https_request_gives_https_addresses(client):
    response = client.get(f"{SDS}/Endpoint?{query('YES', REPC)}", base_url="https://localhost:9443")
    found = [e["resource"] for e in response.get_json(force=True)["entry"]]
    assert found[0]["address"] == "https://localhost:9443/reliablemessaging/reliablerequest"


def test_forwarded_gp2gp_routes_through_the_sandbox_intermediary(client):
    found = _endpoints(client, query("X26", "urn:nhs:names:services:gp2gp:COPC_IN000001UK01"))
    assert [f["address"] for f in found] == ["http://localhost:9000/reliablemessaging/intermediary"] * 2


def test_spine_device_lists_every_catalogue_interaction(client):
    for item in interactions.catalogue().values():
        body = get(client, "/Device", query("YES", item.service_interaction)).get_json(force=True)
        assert body["total"] == 1, item.id
        assert body["entry"][0]["resource"]["identifier"][0]["value"] == SPINE_ASID


def test_published_data_is_the_mock_data(spec_folder):
    """Our own data file carries the published facts: compared with the published mock data as an outside reference."""
    base = spec_folder / "sds-fhir" / "published-sandbox" / "mock_data"
    systems = json.loads((base / "sds_as_response.json").read_text())
    handlers = json.loads((base / "sds_mhs_response.json").read_text())
    ours = published()
    assert [(s.ods, s.party_key, s.asid, s.manufacturer, list(s.interactions)) for s in ours.systems] == [
        (s["nhsIDCode"], s["nhsMHSPartyKey"], s["uniqueIdentifier"][0], s["nhsMhsManufacturerOrg"], s["nhsAsSvcIA"])
        for s in systems]
    flat = [(h["nhsIDCode"], h["nhsMHSPartyKey"], svc, h["nhsMHSEndPoint"][0], h["uniqueIdentifier"][0])
            for h in handlers for svc in (h["nhsMhsSvcIA"] if isinstance(h["nhsMhsSvcIA"], list)
                                          else [h["nhsMhsSvcIA"]])]
    assert [(e.ods, e.party_key, e.service_interaction, e.endpoint, e.unique_identifier) for e in ours.handlers] == flat


@pytest.fixture
def spec_folder():
    from tests.conftest import spec_path

    return spec_path("sds-fhir").parent


# --- registration through the control API ----------------------------------------------------------------------------
def test_register_through_the_control_api_then_sds_answers_it(client):
    response = client.post(CONTROL, json={**SUPPLIER, "interactions": [REPC, "QUPC_IN160101UK05"],
                                          "retries": 3, "retry_interval": "PT5S", "persist_duration": "PT1M"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["interactions"] == [REPC, "urn:nhs:names:services:psisquery:QUPC_IN160101UK05"]
    found = _endpoints(client, query("A20047", pk="A20047-0000001"))
    assert [f["address"] for f in found] == ["https://mhs.example.nhs.uk/inbound"] * 2
    assert _reliability(found[0]) == {"nhsMHSSyncReplyMode": "MSHSignalsOnly", "nhsMHSRetryInterval": "PT5S",
                                      "nhsMHSRetries": 3, "nhsMHSPersistDuration": "PT1M",
                                      "nhsMHSDuplicateElimination": "always", "nhsMHSAckRequested": "always",
                                      "nhsMHSActor": "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"}
    assert _reliability(found[1])["nhsMHSAckRequested"] == "never"
    device = get(client, "/Device", query("A20047", REPC)).get_json(force=True)["entry"][0]["resource"]
    assert device["identifier"] == [{"system": "https://fhir.nhs.uk/Id/nhsSpineASID", "value": "200000001234"},
                                    {"system": PK, "value": "A20047-0000001"}]
    assert client.get(f"{CONTROL}/A20047-0000001").get_json()["asid"] == "200000001234"
    listed = client.get(CONTROL).get_json()
    assert listed["count"] == 1 and listed["registrations"][0]["party_key"] == "A20047-0000001"


def test_registration_in_published_mode_is_answered_too(settings):
    client = published_client(settings)
    assert client.post(CONTROL, json=SUPPLIER).status_code == 201
    assert len(_endpoints(client, query("A20047", REPC))) == 1


def test_re_registering_replaces_and_delete_removes(client):
    client.post(CONTROL, json=SUPPLIER)
    client.post(CONTROL, json={**SUPPLIER, "endpoint": "http://mhs.example:8080/in", "asid": "200000009999"})
    assert [f["address"] for f in _endpoints(client, query("A20047", REPC))] == ["http://mhs.example:8080/in"]
    assert client.get(CONTROL).get_json()["count"] == 1
    assert client.delete(f"{CONTROL}/A20047-0000001").get_json()["removed"] is True
    assert _endpoints(client, query("A20047", REPC)) == []
    assert client.delete(f"{CONTROL}/A20047-0000001").status_code == 404
    assert client.get(f"{CONTROL}/A20047-0000001").status_code == 404


@pytest.mark.parametrize("change,field", [
    ({"ods": "a20047"}, "ods"), ({"ods": ""}, "ods"), ({"asid": "12345"}, "asid"), ({"asid": "20000000123X"}, "asid"),
    ({"party_key": "A20047"}, "party_key"), ({"party_key": "B11111-0001"}, "party_key"),
    ({"party_key": "A20047-abc"}, "party_key"), ({"endpoint": "ftp://mhs.example/in"}, "endpoint"),
    ({"endpoint": "not a url"}, "endpoint"), ({"interactions": []}, "interactions"),
    ({"interactions": ["NOT_AN_INTERACTION"]}, "interactions"),
    ({"interactions": ["urn:nhs:names:services:wrong:REPC_IN150016UK05"]}, "interactions"),
    ({"retries": -1}, "retries"), ({"retries": "many"}, "retries"), ({"retry_interval": "5s"}, "retry_interval"),
    ({"persist_duration": "P"}, "persist_duration"), ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ({"colour": "blue"}, "colour"), ({"party_key": SPINE_PARTY_KEY, "ods": "YES"}, "party_key"),
    ({"asid": SPINE_ASID}, "asid"), ({"party_key": "X26-820918", "ods": "X26"}, "party_key"),
])
def test_bad_registrations_are_refused_naming_the_field(client, change, field):
    response = client.post(CONTROL, json={**SUPPLIER, **change})
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == field and body["message"]
    assert client.get(CONTROL).get_json()["count"] == 0


def test_ca_file_is_for_https_only(client, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    refused = client.post(CONTROL, json={**SUPPLIER, "endpoint": "http://mhs.example/in", "ca_file": str(ca)})
    assert refused.status_code == 400 and refused.get_json()["field"] == "ca_file"
    accepted = client.post(CONTROL, json={**SUPPLIER, "ca_file": str(ca)})
    assert accepted.status_code == 201 and accepted.get_json()["ca_file"] == str(ca)


def test_not_json_is_refused(client):
    response = client.post(CONTROL, data="ods=A20047")
    assert response.status_code == 400 and response.get_json()["field"] == "body"


# --- sessions ----------------------------------------------------------------------------------------------------------
def test_sessions_do_not_see_each_others_registrations(client):
    assert client.post(f"{CONTROL}?session=alpha", json=SUPPLIER).status_code == 201
    assert len(_endpoints(client, query("A20047", REPC), {"X-Sandbox-Session": "alpha"})) == 1
    assert _endpoints(client, query("A20047", REPC), {"X-Sandbox-Session": "beta"}) == []
    assert _endpoints(client, query("A20047", REPC)) == []
    assert client.get(CONTROL, headers={"X-Sandbox-Session": "beta"}).get_json()["count"] == 0


def test_a_party_key_or_asid_belongs_to_one_session(client):
    assert client.post(f"{CONTROL}?session=alpha", json=SUPPLIER).status_code == 201
    taken = client.post(f"{CONTROL}?session=beta", json=SUPPLIER)
    assert taken.status_code == 409 and taken.get_json()["field"] == "party_key"
    asid_taken = client.post(f"{CONTROL}?session=beta", json={**SUPPLIER, "party_key": "A20047-0000002"})
    assert asid_taken.status_code == 409 and asid_taken.get_json()["field"] == "asid"


def test_global_lookup_by_party_key_and_asid(client, sandbox):
    client.post(f"{CONTROL}?session=alpha", json=SUPPLIER)
    found = directory(sandbox)
    assert found.session_for_party_key("A20047-0000001") == "alpha"
    assert found.session_for_asid("200000001234") == "alpha"
    assert found.session_for_party_key("A20047-0000009") is None
    client.post(f"{CONTROL}?session=alpha", json={**SUPPLIER, "asid": "200000005678"})
    assert found.session_for_asid("200000001234") is None
    assert found.session_for_asid("200000005678") == "alpha"
    client.delete(f"{CONTROL}/A20047-0000001?session=alpha")
    assert found.session_for_party_key("A20047-0000001") is None
    assert found.session_for_asid("200000005678") is None
    # freed: another session may now take it
    assert client.post(f"{CONTROL}?session=beta", json=SUPPLIER).status_code == 201
    assert found.session_for_party_key("A20047-0000001") == "beta"


def test_directory_api_for_the_transport(client, sandbox):
    client.post(CONTROL, json={**SUPPLIER, "interactions": ["REPC_IN150016UK05", "COPC_IN000001UK01"]})
    found = directory(sandbox)
    registration = found.registration("default", "A20047-0000001")
    assert isinstance(registration, Registration) and registration.retries == 2
    entries = found.endpoints("default", base_url="http://h", party_key="A20047-0000001",
                              interaction="COPC_IN000001UK01")
    assert [(e.endpoint, e.source, e.interaction) for e in entries] == [
        ("https://mhs.example.nhs.uk/inbound", "registered", "COPC_IN000001UK01")]
    assert found.endpoints("default", base_url="http://h", party_key="A20047-0000001", interaction="COPC_IN000001UK01",
                           strict=True) == []
    systems = found.devices("default", ods="A20047", interaction=REPC)
    assert [s.asid for s in systems] == ["200000001234"]


# --- the CLI ---------------------------------------------------------------------------------------------------------------
def test_cli_register_list_remove_and_the_server_sees_it(settings):
    from sandbox.cli import main

    data_dir = str(settings.data_dir)
    runner = CliRunner(env={"SANDBOX_DATABASE_URL": settings.database_url})  # the store the app below opens
    result = runner.invoke(main, ["sds", "register", "--ods", "A20047", "--asid", "200000001234", "--party-key",
                                  "A20047-0000001", "--endpoint", "https://mhs.example.nhs.uk/inbound",
                                  "--interaction", "REPC_IN150016UK05", "--interaction", QUPA, "--retry-interval",
                                  "PT5S", "--retries", "3", "--persist-duration", "PT1M", "--session", "cli",
                                  "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    assert "registered A20047-0000001" in result.output
    listed = runner.invoke(main, ["sds", "list", "--session", "cli", "--data-dir", data_dir, "--json"])
    assert json.loads(listed.output)[0]["retry_interval"] == "PT5S"
    client = create_app(settings).test_client()
    found = _endpoints(client, query("A20047", REPC), {"X-Sandbox-Session": "cli"})
    assert found[0]["address"] == "https://mhs.example.nhs.uk/inbound"
    assert _reliability(found[0])["nhsMHSRetries"] == 3
    removed = runner.invoke(main, ["sds", "remove", "A20047-0000001", "--session", "cli", "--data-dir", data_dir])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert _endpoints(client, query("A20047", REPC), {"X-Sandbox-Session": "cli"}) == []


def test_cli_refuses_a_bad_field_by_name(settings):
    from sandbox.cli import main

    result = CliRunner().invoke(main, ["sds", "register", "--ods", "A20047", "--asid", "12", "--party-key",
                                       "A20047-1", "--endpoint", "https://mhs.example/in", "--interaction",
                                       "REPC_IN150016UK05", "--data-dir", str(settings.data_dir)])
    assert result.exit_code != 0
    assert "asid" in result.output and "12 digits" in result.output


def test_cli_remove_unknown(settings):
    from sandbox.cli import main

    result = CliRunner().invoke(main, ["sds", "remove", "A20047-1", "--data-dir", str(settings.data_dir)])
    assert result.exit_code != 0 and "no registration" in result.output


def test_directory_on_a_bare_store(tmp_path):
    from sandbox.journal.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'j.sqlite3'}")
    try:
        found = Directory(store)
        found.register("s1", Registration("A20047", "200000001234", "A20047-0000001", "http://mhs/in", (REPC,)))
        assert found.session_for_asid("200000001234") == "s1"
        assert [r.party_key for r in found.registrations("s1")] == ["A20047-0000001"]
    finally:
        store.close()


def test_the_sandbox_gp_practice_is_in_the_directory(client):
    practice = pytest.importorskip("sandbox.services.gp2gp.practice")
    ehr_request = "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05"
    device = get(client, "/Device", query(practice.PRACTICE_ODS, ehr_request)).get_json(force=True)
    assert device["entry"][0]["resource"]["identifier"][0]["value"] == practice.PRACTICE_ASID
    found = _endpoints(client, query(practice.PRACTICE_ODS, pk=practice.PRACTICE_PARTY_KEY))
    assert len(found) == len(practice.INTERACTIONS)
    assert {f["address"] for f in found} == {"http://localhost:9000/reliablemessaging/intermediary"}
    assert _reliability(found[0])["nhsMHSAckRequested"] == "always"
    refused = client.post(CONTROL, json={**SUPPLIER, "ods": practice.PRACTICE_ODS,
                                         "party_key": practice.PRACTICE_PARTY_KEY})
    assert refused.status_code == 400 and refused.get_json()["field"] == "party_key"


def test_registering_bare_ids_directly_stores_full_service_interactions(sandbox):
    registration = directory(sandbox).register("default", Registration(
        "A20047", "200000001234", "A20047-0000001", "http://mhs/in", ("REPC_IN150016UK05", REPC)))
    assert registration.interactions == (REPC,)
    assert directory(sandbox).registration("default", "A20047-0000001").interactions == (REPC,)


def test_an_applications_apikey_selects_its_session(client, sandbox):
    from sandbox.services.oauth.registry import Registry

    app = Registry(sandbox.store).register("Supplier MHS", session="alpha")
    assert client.post(f"{CONTROL}?session=alpha", json=SUPPLIER).status_code == 201
    assert len(_endpoints(client, query("A20047", REPC), {"apikey": app.api_key})) == 1
    assert _endpoints(client, query("A20047", REPC), {"apikey": "unknown-key"}) == []
