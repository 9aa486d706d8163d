"""Hosted mode's control API (issue 13): keys, tenants walled off from each other, assessors who read and attest.

Each attack an outsider or another supplier tried against a default sandbox is tried here against a hosted one:
every one answers 401, 403 or 404, and afterwards nothing of the victim's has changed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.app import create_app
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION, PdsClient

ADMIN_KEY = "sbk_admin-key-for-the-hosted-tests-000"
PLAN = "pds-healthcare-worker"  # PDS-GET-003 is attested by hand
MANUAL = "PDS-GET-003"
PUBLIC = {"control.health", "assurance.report_key"}  # no key asked: the public signing key and health


@dataclass
class Hosted:
    client: object
    sandbox: object
    tenant_a: str
    key_a: str
    key_b: str
    assessor_key: str
    session_a: str
    token_a: str
    session_b: str
    app_a: str
    exchange_a: str

    def call(self, method: str, path: str, key: str | None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["X-Sandbox-Key"] = key
        return self.client.open(path, method=method, headers=headers, **kwargs)


def _admin(client, method: str, path: str, **kwargs):
    return client.open(path, method=method, headers={"X-Sandbox-Key": ADMIN_KEY}, **kwargs)


@pytest.fixture
def hosted(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, hosted=True,
                             admin_key=ADMIN_KEY)
    app = create_app(settings)
    client = app.test_client()
    alpha = _admin(client, "POST", "/_sandbox/tenants", json={"name": "Alpha Health"}).get_json()
    beta = _admin(client, "POST", "/_sandbox/tenants", json={"name": "Beta Systems"}).get_json()
    assessor = _admin(client, "POST", "/_sandbox/assessors", json={"name": "Jo Assessor"}).get_json()
    body = {"plan": PLAN, "supplier": "Alpha Health", "system": "PAS 1"}
    made_a = client.post("/_sandbox/sessions", json=body, headers={"X-Sandbox-Key": alpha["key"]}).get_json()
    made_b = client.post("/_sandbox/sessions", json={**body, "supplier": "Beta"},
                         headers={"X-Sandbox-Key": beta["key"]}).get_json()
    PdsClient(client).get("/Patient/9000000009", headers={"Authorization": f"Bearer {made_a['token']}"})
    app_a = client.post("/_sandbox/oauth/apps", json={"name": "Alpha PAS", "session": made_a["session"]},
                        headers={"X-Sandbox-Key": alpha["key"]}).get_json()
    exchanges = _admin(client, "GET", f"/_sandbox/exchanges?session={made_a['session']}").get_json()["exchanges"]
    assert exchanges, "tenant A's PDS request should be journaled in its session"
    yield Hosted(client, app.extensions["sandbox"], alpha["tenant"], alpha["key"], beta["key"], assessor["key"],
                 made_a["session"], made_a["token"], made_b["session"], app_a["api_key"], exchanges[0]["id"])
    app.extensions["sandbox"].close()


def _snapshot(h: Hosted) -> str:
    """Everything of tenant A's the control API shows its admin: what no other caller may change."""
    s = h.session_a
    paths = [f"/_sandbox/sessions/{s}", f"/_sandbox/oauth/apps/{h.app_a}", f"/_sandbox/mesh/clock?session={s}",
             f"/_sandbox/mesh/config?session={s}", f"/_sandbox/mesh/messages?session={s}",
             f"/_sandbox/spine/clock?session={s}", f"/_sandbox/spine/deliveries?session={s}",
             f"/_sandbox/sds/registrations?session={s}", f"/_sandbox/exchanges?session={s}", "/_sandbox/tenants",
             "/_sandbox/assessors"]
    seen = {}
    for path in paths:
        answer = _admin(h.client, "GET", path)
        assert answer.status_code == 200, (path, answer.get_json())
        data = answer.get_json()
        data.pop("now", None)  # the MESH clock's reading moves with time, not with anyone's change
        seen[path] = data
    return json.dumps(seen, sort_keys=True, default=str)


# --- anonymous and wrong keys -------------------------------------------------------------------------------------
def _rules(app) -> list:
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/_sandbox/")]


def _url(rule, h: Hosted, query: bool = True) -> str:
    values = {"session_id": h.session_a, "api_key": h.app_a, "exchange_id": h.exchange_a, "delivery_id": "dlv-1",
              "party_key": "A20047-0000001", "mailbox_id": "X26ABC1", "token": h.token_a, "principal_id": h.tenant_a,
              "provider": "cis2", "nhs_number": "9000000009", "plan_id": PLAN}
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1).split(")")[-1].lstrip(":"), "x"),
                  rule.rule)
    return f"{path}?session={h.session_a}" if query else path


def test_every_control_call_without_a_key_or_with_a_wrong_one_answers_401(hosted):
    before = _snapshot(hosted)
    app = hosted.client.application
    checked = 0
    for rule in _rules(app):
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for key in (None, "sbk_not-a-key", "", hosted.token_a):
                answer = hosted.call(method, _url(rule, hosted), key, json={"name": "x"})
                assert answer.status_code == 401, (method, rule.rule, key, answer.get_data(as_text=True)[:200])
                body = answer.get_json()
                assert body["error"] == "unauthorized" and "X-Sandbox-Key" in body["message"]
                checked += 1
    assert checked > 150
    assert _snapshot(hosted) == before


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(st.text(st.characters(min_codepoint=33, max_codepoint=255), max_size=80),
                     st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60).map("sbk_".__add__)))
def test_no_made_up_key_is_ever_accepted(hosted, key):
    answer = hosted.call("GET", "/_sandbox/sessions", key)
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"


def test_health_stays_public_and_a_revoked_key_answers_401(hosted):
    assert hosted.client.get("/_sandbox/health").status_code == 200
    assert hosted.call("GET", "/_sandbox/sessions", hosted.key_a).status_code == 200
    revoked = _admin(hosted.client, "DELETE", f"/_sandbox/tenants/{hosted.tenant_a}")
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    answer = hosted.call("GET", "/_sandbox/sessions", hosted.key_a)
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"
    listed = _admin(hosted.client, "GET", "/_sandbox/tenants").get_json()["tenants"]
    assert [t["name"] for t in listed] == ["Alpha Health", "Beta Systems"]
    assert not any("key" in k for t in listed for k in t), "keys are shown once, at creation, never listed"


def test_only_the_admin_manages_tenants_and_assessors(hosted):
    for key in (hosted.key_a, hosted.assessor_key):
        for method, path in (("GET", "/_sandbox/tenants"), ("POST", "/_sandbox/tenants"),
                             ("DELETE", f"/_sandbox/tenants/{hosted.tenant_a}"), ("GET", "/_sandbox/assessors"),
                             ("POST", "/_sandbox/assessors")):
            answer = hosted.call(method, path, key, json={"name": "Mallory"})
            assert answer.status_code == 403, (key, method, path)
            assert answer.get_json()["error"] == "forbidden"
    assert len(_admin(hosted.client, "GET", "/_sandbox/tenants").get_json()["tenants"]) == 2
    missing = _admin(hosted.client, "DELETE", "/_sandbox/assessors/asr-nothing")
    assert missing.status_code == 404 and "no assessor 'asr-nothing'" in missing.get_json()["message"]
    unnamed = _admin(hosted.client, "POST", "/_sandbox/tenants", json={})
    assert unnamed.status_code == 400 and unnamed.get_json()["field"] == "name"


# --- another tenant ---------------------------------------------------------------------------------------------
# Endpoints that are not any tenant's (the synthetic population, the catalogues, the mock identity providers) or
# that act only on the caller's own (creating a session, listing): they may answer, but never with A's data.
GLOBAL = {"control.services", "control.patients", "control.patient", "control.scenarios", "control.requirements",
          "assurance.plans", "assurance.plan", "assurance.sessions", "assurance.new_session",
          "oauth-control.list_apps", "oauth-control.provider_jwks", "oauth-control.cis2_users",
          "oauth-control.cis2_id_token", "oauth-control.nhs_login_id_token", "oauth-control.demo",
          "spine-control.interactions", "gp2gp-control.practice", "gp2gp-control.sending_practice"}


def test_tenant_b_cannot_reach_any_of_tenant_as_resources_through_any_control_endpoint(hosted):
    """Walks every control route with tenant B's key against tenant A's session, application, exchange, token and
    tenant id: 401/403/404 everywhere, or (for the global endpoints) nothing of A's in the answer; A unchanged."""
    before = _snapshot(hosted)
    body = {"session": hosted.session_a, "advance": "60s", "wait": 0, "name": "Mallory", "keys": [],
            "requirement": MANUAL, "verdict": "pass", "by": "Mallory", "note": "self-certified", "plan": PLAN,
            "supplier": "Mallory", "system": "x", "ods": "A20047", "asid": "200000001234",
            "party_key": "A20047-0000001", "endpoint": "https://example.org/", "interactions": []}
    answered = []
    for rule in _rules(hosted.client.application):
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            global_ = rule.endpoint in GLOBAL  # echoes its query in "next" links: not asked with A's session
            answer = hosted.call(method, _url(rule, hosted, query=not global_), hosted.key_b, json=body)
            text = answer.get_data(as_text=True)
            if global_ and answer.status_code < 500:
                for secret in (hosted.session_a, hosted.app_a, hosted.exchange_a, hosted.token_a):
                    assert secret not in text, (method, rule.rule, text[:300])
                continue
            assert answer.status_code in (401, 403, 404), (method, rule.rule, answer.status_code, text[:300])
            assert set(answer.get_json()) >= {"error", "message"}
            answered.append((method, rule.rule))
    assert len(answered) > 25
    assert _snapshot(hosted) == before


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/_sandbox/sessions/{s}", None),
    ("GET", "/_sandbox/sessions/{s}/report", None),
    ("GET", "/_sandbox/exchanges?session={s}", None),
    ("GET", "/_sandbox/exchanges/{x}", None),
    ("GET", "/_sandbox/oauth/apps/{a}", None),
    ("PUT", "/_sandbox/oauth/apps/{a}/jwks", {"keys": []}),
    ("DELETE", "/_sandbox/oauth/apps/{a}", None),
    ("GET", "/_sandbox/oauth/tokens/{t}", None),
    ("POST", "/_sandbox/oauth/tokens/{t}/revoke", None),
    ("POST", "/_sandbox/oauth/apps", {"name": "hijack", "session": "{s}"}),
    ("POST", "/_sandbox/mesh/reset?session={s}", None),
    ("POST", "/_sandbox/mesh/clock?session={s}", {"advance": "1d"}),
    ("PUT", "/_sandbox/mesh/config?session={s}", {"mailboxes": {}}),
    ("GET", "/_sandbox/mesh/messages?session={s}", None),
    ("POST", "/_sandbox/spine/clock?session={s}", {"advance": "1d"}),
    ("GET", "/_sandbox/spine/deliveries?session={s}", None),
    ("GET", "/_sandbox/sds/registrations?session={s}", None),
    ("DELETE", "/_sandbox/sds/registrations/A20047-0000001?session={s}", None),
])
def test_cross_tenant_attacks_answer_404_exactly_as_for_what_does_not_exist(hosted, method, path, body):
    """Another tenant's session, application, exchange or token is indistinguishable from one never made."""
    before = _snapshot(hosted)

    def fill(text: str, session: str, app: str, exchange: str, token: str) -> str:
        for mark, value in (("{s}", session), ("{a}", app), ("{x}", exchange), ("{t}", token)):
            text = text.replace(mark, value)
        return text

    def attack(*names):
        filled = json.loads(fill(json.dumps(body), *names)) if body is not None else None
        return hosted.call(method, fill(path, *names), hosted.key_b, json=filled)

    theirs = attack(hosted.session_a, hosted.app_a, hosted.exchange_a, hosted.token_a)
    assert theirs.status_code == 404, theirs.get_json()
    nothing = attack("sess-000000000000", "app-none", "00000000-0000-0000-0000-000000000000", "sst_none")
    assert nothing.status_code == 404
    mask = re.compile("|".join(re.escape(v) for v in (hosted.session_a, hosted.app_a, hosted.exchange_a,
                                                      hosted.token_a, "sess-000000000000", "app-none",
                                                      "00000000-0000-0000-0000-000000000000", "sst_none")))
    assert mask.sub("…", theirs.get_data(as_text=True)) == mask.sub("…", nothing.get_data(as_text=True))
    assert _snapshot(hosted) == before


def test_listings_show_only_the_callers_own_and_admin_sees_everything(hosted):
    mine = hosted.call("GET", "/_sandbox/sessions", hosted.key_b).get_json()["sessions"]
    assert [s["session"] for s in mine] == [hosted.session_b]
    assert hosted.call("GET", "/_sandbox/oauth/apps", hosted.key_b).get_json()["applications"] == []
    own = hosted.call("GET", f"/_sandbox/oauth/apps?session={hosted.session_a}", hosted.key_a).get_json()
    assert [a["api_key"] for a in own["applications"]] == [hosted.app_a]
    unnamed = hosted.call("GET", "/_sandbox/exchanges", hosted.key_b)
    assert unnamed.status_code == 400 and "name your session" in unnamed.get_json()["message"]
    assert hosted.call("GET", f"/_sandbox/exchanges?session={hosted.session_b}",
                       hosted.key_b).get_json()["exchanges"] == []
    theirs = hosted.call("GET", f"/_sandbox/exchanges?session={hosted.session_a}", hosted.key_a).get_json()
    assert [e["id"] for e in theirs["exchanges"]] == [hosted.exchange_a]
    everyone = {s["session"] for s in _admin(hosted.client, "GET", "/_sandbox/sessions").get_json()["sessions"]}
    assert {hosted.session_a, hosted.session_b} <= everyone
    assert {s["session"] for s in hosted.call("GET", "/_sandbox/sessions",
                                              hosted.assessor_key).get_json()["sessions"]} == everyone


def test_a_tenant_changes_its_own_session_and_must_name_it(hosted):
    s = hosted.session_a
    advanced = hosted.call("POST", f"/_sandbox/spine/clock?session={s}", hosted.key_a, json={"advance": "60s"})
    assert advanced.status_code == 200 and advanced.get_json()["offset_seconds"] == 60
    assert hosted.call("GET", f"/_sandbox/sessions/{s}", hosted.key_a).status_code == 200
    default = hosted.call("GET", "/_sandbox/mesh/messages", hosted.key_a)
    assert default.status_code == 400 and "no shared default session" in default.get_json()["message"]
    hidden = hosted.call("GET", "/_sandbox/mesh/messages?session=default", hosted.key_a)
    assert hidden.status_code == 404


def test_sessions_with_no_tenant_are_seen_by_admin_and_assessors_only(hosted):
    PdsClient(hosted.client).get("/Patient/9000000009")  # no credential: no tenant's session
    rows = _admin(hosted.client, "GET", "/_sandbox/exchanges?limit=1000").get_json()["exchanges"]
    orphans = {r["session"] for r in rows} - {hosted.session_a}
    assert orphans
    for session in orphans:
        for key in (hosted.key_a, hosted.key_b):
            assert hosted.call("GET", f"/_sandbox/exchanges?session={session}", key).status_code == 404
        assert hosted.call("GET", f"/_sandbox/exchanges?session={session}", hosted.assessor_key).status_code == 200


# --- attestations ---------------------------------------------------------------------------------------------
def _attest(h: Hosted, key: str, session: str, by: str = "Anyone"):
    return h.call("POST", f"/_sandbox/sessions/{session}/attestations", key,
                  json={"requirement": MANUAL, "verdict": "pass", "by": by, "note": "Checked the NHS number shown."})


def test_a_tenant_cannot_attest_even_its_own_session(hosted):
    before = _snapshot(hosted)
    own = _attest(hosted, hosted.key_a, hosted.session_a)
    assert own.status_code == 403 and own.get_json()["error"] == "forbidden"
    assert "suppliers cannot certify themselves" in own.get_json()["message"]
    assert _attest(hosted, hosted.key_b, hosted.session_a).status_code == 404
    assert _snapshot(hosted) == before


def test_an_assessor_reads_everything_and_attests_but_changes_nothing_else(hosted):
    s = hosted.session_a
    key = hosted.assessor_key
    assert hosted.call("GET", f"/_sandbox/sessions/{s}", key).status_code == 200
    assert hosted.call("GET", f"/_sandbox/exchanges/{hosted.exchange_a}", key).status_code == 200
    before = _snapshot(hosted)
    for method, path, body in (("POST", f"/_sandbox/mesh/reset?session={s}", None),
                               ("POST", f"/_sandbox/spine/clock?session={s}", {"advance": "1d"}),
                               ("DELETE", f"/_sandbox/oauth/apps/{hosted.app_a}", None),
                               ("PUT", f"/_sandbox/oauth/apps/{hosted.app_a}/jwks", {"keys": []}),
                               ("POST", "/_sandbox/sessions", {"plan": PLAN, "supplier": "x", "system": "y"})):
        answer = hosted.call(method, path, key, json=body)
        assert answer.status_code == 403, (method, path)
        assert "may read everything and attest" in answer.get_json()["message"]
    assert _snapshot(hosted) == before
    made = _attest(hosted, key, s, by="Mallory pretending")
    assert made.status_code == 201 and made.get_json()["by"] == "Jo Assessor"


def test_the_report_names_the_assessor_in_every_rendering(hosted):
    assert _attest(hosted, hosted.assessor_key, hosted.session_a, by="Somebody Else").status_code == 201
    for fmt in ("json", "html", "junit", "markdown"):
        answer = hosted.call("GET", f"/_sandbox/sessions/{hosted.session_a}/report?format={fmt}", hosted.key_a)
        assert answer.status_code == 200, fmt
        text = answer.get_data(as_text=True)
        assert "Jo Assessor" in text and "Somebody Else" not in text, fmt
    report = hosted.call("GET", f"/_sandbox/sessions/{hosted.session_a}/report", hosted.key_a).get_json()
    row = next(r for r in report["requirements"] if r["id"] == MANUAL)
    assert row["verdict"] == "pass" and row["attestations"][-1]["by"] == "Jo Assessor"


def test_the_admin_attests_in_the_name_it_gives(hosted):
    made = _attest(hosted, ADMIN_KEY, hosted.session_a, by="A. Assessor")
    assert made.status_code == 201 and made.get_json()["by"] == "A. Assessor"


# --- not hosted: unchanged ----------------------------------------------------------------------------------------
def test_without_hosted_mode_no_key_is_asked_and_every_session_is_seen(client):
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Dev", "system": "Laptop"})
    assert made.status_code == 201
    assert client.get("/_sandbox/mesh/messages").status_code == 200  # the default session, as before
    assert client.get("/_sandbox/exchanges").status_code == 200
    attested = client.post(f"/_sandbox/sessions/{made.get_json()['session']}/attestations",
                           json={"requirement": MANUAL, "verdict": "pass", "by": "Me", "note": "Looked."})
    assert attested.status_code == 201 and attested.get_json()["by"] == "Me"


def test_the_admin_creates_a_session_for_a_tenant_and_the_credentials_name_only_the_token(hosted):
    body = {"plan": PLAN, "supplier": "Alpha Health", "system": "PAS 2", "tenant": hosted.tenant_a}
    made = _admin(hosted.client, "POST", "/_sandbox/sessions", json=body)
    assert made.status_code == 201
    creds = made.get_json()
    assert creds["headers"] == {"X-Sandbox-Session": creds["token"]}, "a hosted sandbox takes no plain session id"
    mine = {s["session"] for s in hosted.call("GET", "/_sandbox/sessions", hosted.key_a).get_json()["sessions"]}
    assert creds["session"] in mine
    assert hosted.call("GET", f"/_sandbox/sessions/{creds['session']}", hosted.key_b).status_code == 404
    by_tenant = hosted.call("POST", "/_sandbox/sessions", hosted.key_b, json=body)
    assert by_tenant.status_code == 403 and "only the admin" in by_tenant.get_json()["message"]
    unknown = _admin(hosted.client, "POST", "/_sandbox/sessions", json={**body, "tenant": "tnt-nobody"})
    assert unknown.status_code == 400 and unknown.get_json()["field"] == "tenant"
