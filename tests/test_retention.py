"""Retention: `spine-sandbox purge` and `serve --retain-days` forget idle sessions whole, and nothing else."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from sandbox.cli import main
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.store import ExchangeFilter
from sandbox.retention import DAY_S, RetentionRounds, purge
from sandbox.services.mesh import mailboxes

PATIENT = "9000000009"


def old_exchange(session: str, days_ago: float) -> Exchange:
    return Exchange(new_exchange_id(), session, "pds", "get-patient", time.time() - days_ago * DAY_S, 1.0,
                    RecordedRequest("GET", f"/Patient/{PATIENT}", headers=[("X-Request-ID", "1")]),
                    RecordedResponse(200, [("Content-Type", "application/fhir+json")], b"{}"), [])


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_purge_forgets_idle_sessions_whole_and_keeps_the_rest(app, client, settings, tmp_path):
    sandbox = app.extensions["sandbox"]
    made = client.post("/_sandbox/mesh/mailboxes", headers={"X-Sandbox-Session": "old"}, json={"count": 1})
    assert made.status_code == 201, made.get_data(as_text=True)
    mailbox = made.get_json()["mailboxes"][0]["id"]
    sandbox.store.journal.record_many([old_exchange("old", 40), old_exchange("old", 35)])
    assert client.get(f"/personal-demographics/FHIR/R4/Patient/{PATIENT}",
                      headers={"X-Sandbox-Session": "recent", "X-Request-ID": "8a6c4b2e-1f0d-4c7e-9a3b-2d5e6f7a8b9c"}
                      ).status_code in (200, 404)
    report_dir = tmp_path / "report"
    cli("report", "old", "--plan", "pds-application-restricted", "--out-dir", str(report_dir), "--format", "json",
        "--data-dir", str(settings.data_dir))
    report = (report_dir / "report.json").read_bytes()

    dry = json.loads(cli("purge", "--older-than-days", "30", "--dry-run", "--json", "--data-dir",
                         str(settings.data_dir)))
    assert dry == {"sessions": ["old"], "exchanges": 0, "dry_run": True}
    assert sandbox.store.journal.count_exchanges(ExchangeFilter(session="old")) == 2  # a dry run purges nothing

    said = cli("purge", "--older-than-days", "30", "--data-dir", str(settings.data_dir))
    assert said.startswith("1 sessions idle for over 30 days purged, with 2 exchanges")
    assert sandbox.store.journal.count_exchanges(ExchangeFilter(session="old")) == 0
    assert sandbox.store.journal.count_exchanges(ExchangeFilter(session="recent")) == 1
    assert sandbox.store.state.get("old", "mesh.session", "config") is None
    assert mailboxes.owner(sandbox.store, mailbox) is None  # the mailbox id is no session's any more
    assert (report_dir / "report.json").read_bytes() == report  # reports already produced are unaffected
    assert json.loads(cli("purge", "--older-than-days", "30", "--json", "--data-dir", str(settings.data_dir))
                      )["sessions"] == []


def test_a_created_session_without_exchanges_is_idle_from_its_creation(client, app):
    made = client.post("/_sandbox/sessions", json={"plan": "pds-application-restricted", "supplier": "Acme",
                                                   "system": "PAS 1"})
    assert made.status_code == 201, made.get_data(as_text=True)
    session = made.get_json()["session"]
    sandbox = app.extensions["sandbox"]
    assert purge(sandbox, 1) == ([], 0)
    assert purge(sandbox, -1) == ([session], 0)  # idle since "tomorrow minus a day": now
    assert sandbox.store.sessions.get(session) is None
    assert client.get(f"/_sandbox/sessions/{session}").status_code == 404


def test_retention_rounds_purge_once_per_hour_across_processes(app, settings):
    sandbox = app.extensions["sandbox"]
    sandbox.store.journal.record(old_exchange("stale", 10))
    sandbox.settings = settings.replace(retain_days=5)
    rounds = RetentionRounds(sandbox)
    deadline = time.monotonic() + 10
    while sandbox.store.journal.count_exchanges(ExchangeFilter(session="stale")) and time.monotonic() < deadline:
        time.sleep(0.05)
    rounds.stop()
    assert sandbox.store.journal.count_exchanges(ExchangeFilter(session="stale")) == 0
    sandbox.store.journal.record(old_exchange("stale-again", 10))
    RetentionRounds(sandbox).stop()  # this hour's round is taken: another process (or replica) purges next hour
    assert sandbox.store.journal.count_exchanges(ExchangeFilter(session="stale-again")) == 1


def test_purge_refuses_a_data_dir_without_a_journal(tmp_path):
    result = CliRunner().invoke(main, ["purge", "--older-than-days", "1", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code != 0
    assert "no sandbox data" in result.output


def test_purge_on_postgresql_through_the_cli(tmp_path):
    from sandbox.journal.store import open_store
    from tests.postgres_db import fresh_schema, unavailable

    if unavailable():
        import pytest

        pytest.skip(unavailable())
    with fresh_schema() as url:
        store = open_store(url)
        try:
            store.journal.record_many([old_exchange("old", 40), old_exchange("kept", 1)])
            store.state.put("old", "pds", "9000000009", {"gender": "male"})
            said = json.loads(cli("purge", "--older-than-days", "30", "--json", "--database-url", url,
                                  "--data-dir", str(tmp_path)))
            assert said == {"sessions": ["old"], "exchanges": 1, "dry_run": False}
            assert store.journal.last_activity().keys() == {"kept"}
            assert store.state.get("old", "pds", "9000000009") is None
        finally:
            store.close()


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    url = "postgresql://sandbox:hunter2@127.0.0.1:1/nowhere"
    result = CliRunner().invoke(main, ["purge", "--older-than-days", "1", "--database-url", url])
    assert result.exit_code != 0
    said = result.output.strip()
    assert len(said.splitlines()) == 1 and "hunter2" not in said
    assert said.startswith("spine-sandbox: cannot open the journal at postgresql://sandbox:***@127.0.0.1:1/nowhere")
