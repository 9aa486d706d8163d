"""Hosted mode's service traffic (issue 13): bound to its tenant by its own credentials, held to per-tenant quotas,
and never sent to the host's own network. Each rule is shown over HTTP, and the same requests outside hosted mode
behave as before."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from sandbox.app import create_app
from sandbox.hosting import keys, outbound
from sandbox.hosting.binding import ANONYMOUS_SESSION
from sandbox.hosting.ownership import owner_of
from sandbox.journal.store import ExchangeFilter
from sandbox.runtime import Sandbox
from sandbox.services.spine import delivery
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION, PdsClient
from tests.mesh_helpers import Mesh
from tests.test_spine_delivery import FAST, Supplier, finished, message
from tests.test_spine_messages import PDS_QUERY, pds_query, register, soap_request, sync_headers

ADMIN_KEY = "sbk_admin-key-for-the-binding-tests-0000"
PLAN = "pds-healthcare-worker"
PATIENT = "/Patient/9000000009"
SDS_REGISTRATION = {"ods": "A20047", "asid": "200000001234", "party_key": "A20047-0000001",
                    "endpoint": "https://mhs.example.nhs.uk/inbound", "interactions": ["REPC_IN150016UK05"]}
PUBLIC_ADDRESS = outbound.ipaddress.ip_address("93.184.216.34")  # a global address (never connected to here)


@dataclass
class Tenant:
    id: str
    key: str
    session: str
    token: str


@dataclass
class Hosted:
    client: object
    sandbox: Sandbox
    a: Tenant
    b: Tenant

    def control(self, method: str, path: str, key: str = ADMIN_KEY, **kwargs):
        return self.client.open(path, method=method, headers={"X-Sandbox-Key": key}, **kwargs)

    def journaled(self, session: str) -> list[tuple[str, str, int]]:
        rows = self.sandbox.store.journal.exchanges(ExchangeFilter(session=session), limit=1000)
        return [(r["service"], r["operation"], r["status"]) for r in rows]


def hosted_settings(tmp_path, **extra) -> Settings:
    return Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, hosted=True,
                         admin_key=ADMIN_KEY, **extra)


def _tenant(client, sandbox, name: str) -> Tenant:
    tenant, key = keys.create_tenant(sandbox.store, name)
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": name, "system": "PAS"},
                       headers={"X-Sandbox-Key": key})
    assert made.status_code == 201, made.get_data(as_text=True)
    return Tenant(tenant.id, key, made.get_json()["session"], made.get_json()["token"])


@pytest.fixture
def hosted_factory(tmp_path):
    apps = []

    def make(**extra) -> Hosted:
        app = create_app(hosted_settings(tmp_path / str(len(apps)), **extra))
        apps.append(app)
        client, sandbox = app.test_client(), app.extensions["sandbox"]
        return Hosted(client, sandbox, _tenant(client, sandbox, "Alpha Health"), _tenant(client, sandbox, "Beta"))

    yield make
    for app in apps:
        app.extensions["sandbox"].close()


@pytest.fixture
def hosted(hosted_factory) -> Hosted:
    return hosted_factory()


def _mailboxes(h: Hosted, tenant: Tenant, count: int = 2) -> list[dict]:
    made = h.control("POST", f"/_sandbox/mesh/mailboxes?session={tenant.session}", tenant.key, json={"count": count})
    assert made.status_code == 201, made.get_data(as_text=True)
    return made.get_json()["mailboxes"]


def _mesh(h: Hosted, mailbox: dict, **kwargs) -> Mesh:
    return Mesh(h.client, mailbox["id"], password=mailbox["password"], **kwargs)


# --- bound by credentials --------------------------------------------------------------------------------------------
def test_an_oauth_app_registered_by_a_tenant_carries_its_traffic_into_that_tenants_session(hosted):
    h = hosted
    app = h.control("POST", "/_sandbox/oauth/apps", h.a.key, json={"name": "Alpha PAS"}).get_json()
    assert owner_of(h.sandbox.store, app["session"]) == h.a.id

    token = h.client.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": app["api_key"]})
    sds = h.client.get("/spine-directory/FHIR/R4/Endpoint", headers={"apikey": app["api_key"]})

    assert token.status_code == 400 and "error" in token.get_json()  # refused (no assertion), in OAuth's shape
    assert sds.status_code in (200, 400)
    assert [s for s, _, _ in h.journaled(app["session"])] == ["sds", "oauth"]  # newest first
    assert h.journaled(ANONYMOUS_SESSION) == [] and h.journaled(h.b.session) == []


def test_a_tenants_own_mailboxes_authenticate_into_its_session_and_their_passwords_are_shown_once(hosted):
    h = hosted
    first, second = _mailboxes(h, h.a)
    assert first["id"] != "X26ABC1" and len(first["password"]) >= 20

    shaken = _mesh(h, first).handshake()
    sent = _mesh(h, first).send(to=second["id"], workflow="ANY_WORKFLOW")
    inbox = _mesh(h, second).call("GET", "/inbox")

    assert shaken.status_code == 200, shaken.get_data(as_text=True)
    assert sent.status_code == 202 and inbox.get_json()["messages"] == [sent.get_json()["message_id"]]
    assert {op for _, op, _ in h.journaled(h.a.session)} >= {"handshake", "send-message", "list-inbox"}
    assert h.journaled(ANONYMOUS_SESSION) == []
    config = h.control("GET", f"/_sandbox/mesh/config?session={h.a.session}", h.a.key).get_json()
    assert {m["id"] for m in config["config"]["mailboxes"]} == {first["id"], second["id"]}
    assert first["password"] not in str(config)  # shown once, when made


def test_the_public_default_mailboxes_do_not_exist_in_hosted_mode(hosted):
    h = hosted
    config = h.control("GET", f"/_sandbox/mesh/config?session={h.a.session}", h.a.key).get_json()
    refused = Mesh(h.client, "X26ABC1").handshake()

    assert config["config"]["mailboxes"] == [] and "hosted" in config["source"]
    assert refused.status_code == 403 and "X26ABC1" in refused.get_data(as_text=True)
    assert h.journaled(ANONYMOUS_SESSION) == [("mesh", "handshake", 403)]


def test_a_wrong_mailbox_password_proves_nothing_and_lands_in_no_tenants_session(hosted):
    h = hosted
    mailbox = _mailboxes(h, h.a, 1)[0]

    refused = Mesh(h.client, mailbox["id"], password="guessed").handshake()

    assert refused.status_code == 403
    assert h.journaled(h.a.session) == [] and h.journaled(ANONYMOUS_SESSION) == [("mesh", "handshake", 403)]


def test_a_session_configuration_may_list_only_its_own_mailboxes(hosted):
    h = hosted
    theirs = _mailboxes(h, h.a, 1)[0]
    body = {"mailboxes": [{"id": theirs["id"], "password": "mine-now"}]}

    refused = h.control("PUT", f"/_sandbox/mesh/config?session={h.b.session}", h.b.key, json=body)

    assert refused.status_code == 400 and refused.get_json()["error"] == "bad_request"
    assert "was not made for session" in refused.get_json()["message"]
    assert _mesh(h, theirs).handshake().status_code == 200  # A's mailbox still A's, with A's password


def test_x_sandbox_session_takes_a_session_token_never_a_plain_session_id(hosted):
    h = hosted
    plain = PdsClient(h.client, h.a.session).get(PATIENT)
    by_token = PdsClient(h.client, h.a.token).get(PATIENT)

    assert plain.status_code == 401 and plain.get_json()["resourceType"] == "OperationOutcome"
    assert "session token" in str(plain.get_json()) and "not a session id" in str(plain.get_json())
    assert by_token.status_code == 200
    assert h.journaled(h.a.session) == [("pds", "get-patient", 200)]
    assert [status for _, _, status in h.journaled(ANONYMOUS_SESSION)] == [401]


def test_a_token_of_one_tenant_with_anothers_session_is_403_and_journaled_in_its_own_session_only(hosted):
    h = hosted
    named = PdsClient(h.client, h.b.session).get(PATIENT, headers={"Authorization": f"Bearer {h.a.token}"})
    b_mailbox = _mailboxes(h, h.b, 1)[0]
    by_credential = _mesh(h, b_mailbox, session=h.a.token).handshake()

    assert named.status_code == 403 and named.get_json()["resourceType"] == "OperationOutcome"
    assert "does not belong to" in str(named.get_json())
    assert by_credential.status_code == 403 and "does not belong to" in by_credential.get_data(as_text=True)
    assert [status for _, _, status in h.journaled(h.a.session)] == [403, 403]
    assert h.journaled(h.b.session) == [] and h.journaled(ANONYMOUS_SESSION) == []


def test_requests_with_no_credential_land_in_the_anonymous_session_only_admin_and_assessors_see(hosted):
    h = hosted
    answered = h.client.get("/personal-demographics/FHIR/R4" + PATIENT,
                            headers={"X-Request-ID": str(uuid.uuid4()), "Accept": "application/fhir+json"})
    _, assessor_key = keys.create_assessor(h.sandbox.store, "Jo Assessor")

    assert answered.status_code in (200, 401, 403)
    assert len(h.journaled(ANONYMOUS_SESSION)) == 1
    assert all(h.journaled(s) == [] for s in (h.a.session, h.b.session, "default"))
    assert owner_of(h.sandbox.store, ANONYMOUS_SESSION) is None
    path = f"/_sandbox/exchanges?session={ANONYMOUS_SESSION}"
    assert h.control("GET", path, h.a.key).status_code == 404
    assert len(h.control("GET", path).get_json()["exchanges"]) == 1
    assert len(h.control("GET", path, assessor_key).get_json()["exchanges"]) == 1


def test_spine_messages_are_bound_by_the_session_token_not_by_the_published_party_key(hosted, monkeypatch):
    monkeypatch.setattr(outbound, "resolver", lambda host, port: [PUBLIC_ADDRESS])
    h = hosted
    register(h.sandbox, h.a.session, endpoint="https://mhs.example.nhs.uk/inbound",
             interactions=(f"{PDS_QUERY}:QUPA_IN000011UK02",))
    body = soap_request(pds_query())

    by_party_key = h.client.post("/sync-service", data=body, headers=sync_headers())
    by_token = h.client.post("/sync-service", data=soap_request(pds_query()),
                             headers=sync_headers(**{"X-Sandbox-Session": h.a.token}))

    assert by_party_key.status_code == 500  # a SOAP fault: this sender is registered in no session it proves
    assert by_token.status_code == 200
    assert [s for _, _, s in h.journaled(ANONYMOUS_SESSION)] == [500]
    assert [s for _, _, s in h.journaled(h.a.session)] == [200]


# --- quotas ----------------------------------------------------------------------------------------------------------
def test_sessions_created_per_minute_over_the_quota_are_429_with_retry_after(hosted_factory):
    h = hosted_factory(quota_sessions_per_minute=2)  # each tenant made one session already
    body = {"plan": PLAN, "supplier": "Alpha Health", "system": "PAS"}

    second = h.control("POST", "/_sandbox/sessions", h.a.key, json=body)
    third = h.control("POST", "/_sandbox/sessions", h.a.key, json=body)
    other_tenant = h.control("POST", "/_sandbox/sessions", h.b.key, json=body)

    assert second.status_code == 201 and other_tenant.status_code == 201
    assert third.status_code == 429 and third.get_json()["error"] == "too_many_requests"
    assert "SANDBOX_QUOTA_SESSIONS_PER_MINUTE=2" in third.get_json()["message"]
    assert 1 <= int(third.headers["Retry-After"]) <= 60


def test_exchanges_per_session_over_the_quota_are_429_in_the_services_shape_and_not_journaled(hosted_factory):
    h = hosted_factory(quota_exchanges_per_session=2)
    pds = PdsClient(h.client, h.a.token)

    answers = [pds.get(PATIENT) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    assert "SANDBOX_QUOTA_EXCHANGES_PER_SESSION=2" in str(refused.get_json())
    assert refused.headers["Retry-After"] and refused.headers["X-Sandbox-Journal"].startswith("not journaled")
    assert len(h.journaled(h.a.session)) == 2
    assert PdsClient(h.client, h.b.token).get(PATIENT).status_code == 200  # another tenant's session is not held up


def test_stored_bytes_over_the_tenants_quota_are_507_in_the_services_shape(hosted_factory):
    h = hosted_factory(quota_stored_bytes=4000)
    first, second = _mailboxes(h, h.a)

    sent = _mesh(h, first).send(to=second["id"], data=b"x" * 5000, workflow="ANY_WORKFLOW")
    full = _mesh(h, second).call("GET", "/inbox")
    other = PdsClient(h.client, h.b.token).get(PATIENT)

    assert sent.status_code == 202
    assert full.status_code == 507 and "SANDBOX_QUOTA_STORED_BYTES=4000" in full.get_json()["detail"][0]["msg"]
    assert other.status_code == 200  # Beta's bytes are its own


# --- outbound deliveries ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("endpoint", "rule"), [
    ("http://127.0.0.1:9000/inbound", "loopback"),
    ("https://[::1]/inbound", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("https://10.1.2.3/inbound", "private"),
    ("https://192.168.0.7/inbound", "private"),
    ("https://[fd00::7]/inbound", "private"),
    ("http://0.0.0.0:80/inbound", "unspecified"),
    ("http://localhost:9000/inbound", "loopback"),
    ("https://mhs.example.nhs.uk:99999/inbound", "not a port number"),
])
def test_registering_an_endpoint_on_the_hosts_own_network_is_refused_naming_the_rule(hosted, endpoint, rule):
    h = hosted
    refused = h.control("POST", f"/_sandbox/sds/registrations?session={h.a.session}", h.a.key,
                        json={**SDS_REGISTRATION, "endpoint": endpoint})

    assert refused.status_code == 400 and refused.get_json()["field"] == "endpoint"
    assert rule in refused.get_json()["message"]
    assert "SANDBOX_DELIVERY_ALLOW" in refused.get_json()["message"] or "port" in rule


def test_a_name_resolving_to_a_private_address_is_refused_unless_allowed(hosted_factory, monkeypatch):
    answers = {"mhs.inside.test": [outbound.ipaddress.ip_address("10.0.0.5")],
               "mhs.example.nhs.uk": [PUBLIC_ADDRESS]}
    monkeypatch.setattr(outbound, "resolver", lambda host, port: answers[host])
    h = hosted_factory(delivery_allow="mhs.partner.test, 172.16.0.0/12")
    url = f"/_sandbox/sds/registrations?session={h.a.session}"

    inside = h.control("POST", url, h.a.key, json={**SDS_REGISTRATION, "endpoint": "https://mhs.inside.test/in"})
    public = h.control("POST", url, h.a.key, json=SDS_REGISTRATION)
    allowed = h.control("POST", url, h.a.key, json={**SDS_REGISTRATION, "endpoint": "https://172.20.1.1/in"})
    ca_file = h.control("POST", url, h.a.key, json={**SDS_REGISTRATION, "ca_file": "/etc/hostname"})

    assert inside.status_code == 400 and "resolves to 10.0.0.5" in inside.get_json()["message"]
    assert public.status_code == 201 and allowed.status_code == 201
    assert ca_file.status_code == 400 and ca_file.get_json()["field"] == "ca_file"


@pytest.fixture
def supplier():
    mhs = Supplier().start()
    yield mhs
    mhs.stop()


def _delivering(tmp_path, **extra) -> Sandbox:
    sandbox = Sandbox.build(hosted_settings(tmp_path, **extra))
    delivery.stop(sandbox)
    delivery.configure(sandbox, **FAST)
    delivery.start(sandbox)
    return sandbox


def test_a_delivery_to_a_name_rebound_to_a_private_address_is_refused_and_journaled_failed(tmp_path, monkeypatch,
                                                                                         supplier):
    monkeypatch.setattr(outbound, "resolver", lambda host, port: [outbound.ipaddress.ip_address("127.0.0.1")])
    sandbox = _delivering(tmp_path)
    try:
        port = supplier.server.server_address[1]
        delivery_id = delivery.enqueue(sandbox, message("s-rebind", f"http://mhs.rebound.test:{port}/inbound"))

        record = finished(sandbox, "s-rebind", delivery_id)
    finally:
        sandbox.close()

    assert record["status"] == "failed" and len(record["attempts"]) == 1  # refused at once, never retried
    assert record["attempts"][0]["result"] == "blocked" and "loopback" in record["attempts"][0]["detail"]
    assert supplier.received == []


def test_an_allowed_destination_is_sent_to_the_address_that_was_checked(tmp_path, monkeypatch, supplier):
    monkeypatch.setattr(outbound, "resolver", lambda host, port: [outbound.ipaddress.ip_address("127.0.0.1")])
    sandbox = _delivering(tmp_path / "allowed", delivery_allow="127.0.0.1")
    try:
        port = supplier.server.server_address[1]
        sent = message("s-allowed", f"http://mhs.no-such-name.test:{port}/inbound")  # resolvable only by the test
        record = finished(sandbox, "s-allowed", delivery.enqueue(sandbox, sent))
    finally:
        sandbox.close()

    assert record["status"] == "delivered" and supplier.received[0].message_id == sent.message_id
    assert supplier.received[0].headers["host"].startswith("mhs.no-such-name.test")


@examples(deadline=None, max_examples=300)
@given(allow=st.text(max_size=60), host=st.text(max_size=60))
def test_the_outbound_rules_answer_any_host_and_allow_list_with_an_address_or_a_refusal(allow, host):
    try:
        found = outbound.destination(host, 443, outbound.allow_list(allow), lambda name, port: [PUBLIC_ADDRESS])
    except outbound.Refused as exc:
        assert str(exc)
    else:
        assert found is not None and (outbound.forbidden_kind(found) is None
                                      or outbound.allow_list(allow).allows_address(found)
                                      or outbound.allow_list(allow).allows_host(host.strip("[]")))


# --- outside hosted mode: as before ----------------------------------------------------------------------------------
def test_outside_hosted_mode_sessions_mailboxes_registrations_and_quotas_are_as_before(client, sandbox):
    by_id = PdsClient(client, "my-session").get(PATIENT)
    bare = PdsClient(client).get(PATIENT)
    shaken = Mesh(client, "X26ABC1").handshake()
    loopback = client.post("/_sandbox/sds/registrations?session=my-session",
                           json={**SDS_REGISTRATION, "endpoint": "http://127.0.0.1:9000/inbound"})
    many = [PdsClient(client, "my-session").get(PATIENT) for _ in range(3)]

    assert by_id.status_code == 200 and bare.status_code == 200 and shaken.status_code == 200
    assert loopback.status_code == 201
    assert all(a.status_code == 200 and "X-Sandbox-Journal" not in a.headers for a in many)
    rows = sandbox.store.journal.exchanges(ExchangeFilter(session="my-session"), limit=100)
    assert len(rows) == 4 and sandbox.store.journal.exchanges(ExchangeFilter(session="default"), limit=100)
    assert sandbox.store.journal.exchanges(ExchangeFilter(session=ANONYMOUS_SESSION), limit=100) == []


def test_outside_hosted_mode_deliveries_go_to_loopback_as_before(settings, supplier):
    sandbox = Sandbox.build(settings)
    delivery.stop(sandbox)
    delivery.configure(sandbox, **FAST)
    delivery.start(sandbox)
    try:
        record = finished(sandbox, "s-local", delivery.enqueue(sandbox, message("s-local", supplier.url)))
    finally:
        sandbox.close()
    assert record["status"] == "delivered"
    assert time.time() - record["attempts"][0]["at"] < 60
