"""Hosted mode on the command line: tenants and assessors commands, the admin key file, the banner, `attest`."""

from __future__ import annotations

import json
import stat
import time

import pytest
import requests
from click.testing import CliRunner

from sandbox.app import create_app
from sandbox.cli import _admin_key_note, main
from sandbox.local_server import LocalServer
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION

PLAN = "pds-healthcare-worker"


def cli(*args: str, code: int = 0, env: dict | None = None) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def data(tmp_path):
    return str(tmp_path / "data")


def _app(data: str, **overrides):
    return create_app(Settings.load(environ={}, data_dir=data, population=TEST_POPULATION, hosted=True,
                                    **overrides))


@pytest.mark.parametrize("kind, role", [("tenants", "tenant"), ("assessors", "assessor")])
def test_create_list_and_revoke_keys_that_the_control_api_honours(data, kind, role):
    made = json.loads(cli(kind, "create", "--name", "Alpha Health", "--data-dir", data, "--json"))
    assert set(made) == {role, "key", "name"} and made["name"] == "Alpha Health"
    assert made["key"].startswith("sbk_") and len(made["key"]) > 30
    listed = json.loads(cli(kind, "list", "--data-dir", data, "--json"))
    assert [(p["id"], p["name"], p["revoked_at"]) for p in listed] == [(made[role], "Alpha Health", None)]
    assert made["key"] not in json.dumps(listed), "a key is shown once, when made"
    journal = (data + "/journal.sqlite3")
    with open(journal, "rb") as stored:
        assert made["key"].encode() not in stored.read(), "only the key's SHA-256 is stored"
    app = _app(data)
    try:
        client = app.test_client()
        assert client.get("/_sandbox/sessions", headers={"X-Sandbox-Key": made["key"]}).status_code == 200
        assert "active" in cli(kind, "list", "--data-dir", data)
        revoked = cli(kind, "revoke", made[role], "--data-dir", data)
        assert f"Revoked {role} {made[role]} (Alpha Health)" in revoked
        answer = client.get("/_sandbox/sessions", headers={"X-Sandbox-Key": made["key"]})
        assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"
    finally:
        app.extensions["sandbox"].close()
    assert "revoked" in cli(kind, "list", "--data-dir", data)


def test_keys_errors_are_one_line(data):
    assert "needs a name" in cli("tenants", "create", "--name", " ", "--data-dir", data, code=1)
    assert "no tenant 'tnt-nope'" in cli("tenants", "revoke", "tnt-nope", "--data-dir", data, code=1)


def test_the_admin_key_is_made_once_with_mode_0600_and_shown_only_then(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", hosted=True)
    first = "\n".join(_admin_key_note(settings))
    key_file = tmp_path / "data" / "admin.key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key.startswith("sbk_") and key in first and "shown this once" in first
    again = "\n".join(_admin_key_note(settings))
    assert key not in again and str(key_file) in again and "not shown again" in again
    given = Settings.load(environ={"SANDBOX_ADMIN_KEY": "sbk_from-the-environment"}, data_dir=tmp_path / "other",
                          hosted=True)
    assert "from SANDBOX_ADMIN_KEY" in "\n".join(_admin_key_note(given))
    assert not (tmp_path / "other" / "admin.key").exists()


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("::", True), ("192.0.2.7", True),
                                          ("127.0.0.1", False), ("::1", False), ("localhost", False)])
def test_the_banner_warns_when_listening_beyond_loopback_without_hosted(tmp_path, host, warned):
    lines = _admin_key_note(Settings.load(environ={}, data_dir=tmp_path, host=host))
    warning = (f"WARNING: listening on {host} without --hosted: anyone who can reach this port can read and change "
               "every session; use --hosted to host for several suppliers")
    assert lines == ([warning] if warned else [])
    assert _admin_key_note(Settings.load(environ={}, data_dir=tmp_path, host=host, hosted=True))[0].startswith(
        "  Hosted mode")


def test_serve_hosted_prints_the_admin_key_once_and_asks_for_keys(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, hosted=True)
    server = LocalServer(settings).start()
    try:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        deadline = time.monotonic() + 30
        while key not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert key in server.log_path.read_text()
        assert requests.get(server.url + "/_sandbox/sessions", timeout=5).status_code == 401
        made = requests.post(server.url + "/_sandbox/tenants", json={"name": "Alpha"},
                             headers={"X-Sandbox-Key": key}, timeout=5)
        assert made.status_code == 201 and made.json()["key"].startswith("sbk_")
        assert requests.get(server.url + "/_sandbox/health", timeout=5).status_code == 200
    finally:
        server.stop()
    server.log_path.unlink()
    again = LocalServer(settings).start()
    try:
        deadline = time.monotonic() + 30
        while "not shown again" not in again.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "not shown again" in again.log_path.read_text() and key not in again.log_path.read_text()
    finally:
        again.stop()


def test_attest_on_a_hosted_data_dir_needs_an_assessor_key_and_records_its_name(data):
    app = _app(data)  # makes the admin key: the data dir is a hosted sandbox's from now on
    app.extensions["sandbox"].close()
    session = json.loads(cli("sessions", "create", "--plan", PLAN, "--supplier", "Alpha", "--system", "PAS",
                             "--data-dir", data, "--json"))["session"]
    tenant = json.loads(cli("tenants", "create", "--name", "Alpha", "--data-dir", data, "--json"))["key"]
    assessor = json.loads(cli("assessors", "create", "--name", "Jo Assessor", "--data-dir", data, "--json"))["key"]
    args = ["attest", session, "PDS-GET-003", "--verdict", "pass", "--note", "Checked.", "--data-dir", data]
    assert "give an assessor or admin key with --key" in cli(*args, "--by", "Me", code=1)
    assert "suppliers cannot certify themselves" in cli(*args, "--key", tenant, code=1)
    assert "not a valid key" in cli(*args, "--key", "sbk_wrong", code=1)
    made = json.loads(cli(*args, "--by", "Somebody Else", "--json", env={"SANDBOX_KEY": assessor}))
    assert made["by"] == "Jo Assessor"
    shown = json.loads(cli("sessions", "show", session, "--data-dir", data, "--json"))
    assert next(r for r in shown["requirements"] if r["id"] == "PDS-GET-003")["reason"] == "attested pass by Jo Assessor"


def test_attest_outside_hosted_mode_is_unchanged(data):
    session = json.loads(cli("sessions", "create", "--plan", PLAN, "--supplier", "Dev", "--system", "PAS",
                             "--data-dir", data, "--json"))["session"]
    args = ["attest", session, "PDS-GET-003", "--verdict", "pass", "--note", "Checked.", "--data-dir", data]
    assert "--by is required" in cli(*args, code=1)
    assert "Recorded: PDS-GET-003 pass by A. Assessor" in cli(*args, "--by", "A. Assessor")


def test_sessions_create_for_a_tenant_on_a_hosted_data_dir(data):
    app = _app(data)
    try:
        tenant = json.loads(cli("tenants", "create", "--name", "Alpha", "--data-dir", data, "--json"))
        made = json.loads(cli("sessions", "create", "--plan", PLAN, "--supplier", "Alpha", "--system", "PAS",
                              "--tenant", tenant["tenant"], "--data-dir", data, "--json"))
        assert made["headers"] == {"X-Sandbox-Session": made["token"]}, "a hosted sandbox takes no plain session id"
        listed = app.test_client().get("/_sandbox/sessions", headers={"X-Sandbox-Key": tenant["key"]}).get_json()
        assert [s["session"] for s in listed["sessions"]] == [made["session"]]
    finally:
        app.extensions["sandbox"].close()
    assert "no active tenant 'tnt-nope'" in cli("sessions", "create", "--plan", PLAN, "--supplier", "A", "--system",
                                                "B", "--tenant", "tnt-nope", "--data-dir", data, code=1)
