"""No row can break the journal: large bodies live beside their rows and are read back whole; a damaged row is shown
as damaged, with its id, while every query, report and later request keeps working; no integer from a request
overflows SQLite or the state database."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

from sandbox.journal import bodies
from sandbox.journal import sqlite as journal_sqlite
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter
from tests.conftest import PdsClient
from tests.mesh_helpers import Mesh

PLAN = "pds-application-restricted"


def journal_db(sandbox) -> sqlite3.Connection:
    sandbox.store.journal.catch_up()
    return sqlite3.connect(sandbox.store.journal.path)


def test_a_large_body_is_kept_beside_its_row_and_read_back_whole(client, sandbox):
    data = ("A large MESH message. " * 40_000).encode()  # 880 KB, over the journal's inline limit
    assert len(data) > bodies.INLINE_LIMIT
    sent = Mesh(client).send(data=data)
    assert sent.status_code == 202
    exchange_id = sent.headers["X-Sandbox-Exchange"]
    shown = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
    assert shown["request"]["body"] == data.decode() and shown["request"]["body_size"] == len(data)
    assert "damaged" not in shown
    with journal_db(sandbox) as db:
        kind, reference = db.execute("SELECT typeof(request_body), request_body FROM exchanges WHERE id = ?",
                                     (exchange_id,)).fetchone()
    assert kind == "text" and reference.startswith("sha256:") and reference.endswith(f":{len(data)}")
    assert len(list(Path(sandbox.store.journal.path + ".bodies").rglob("*"))) == 2  # one folder, one file
    # The same bytes again are kept once.
    assert Mesh(client).send(data=data).status_code == 202
    assert len(list(Path(sandbox.store.journal.path + ".bodies").rglob("*"))) == 2


def test_a_damaged_row_is_shown_as_damaged_and_everything_else_keeps_working(client, sandbox):
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
    pds = PdsClient(client)
    auth = {"Authorization": f"Bearer {made['token']}"}
    ids = [pds.get(f"/Patient/{n}", headers=auth).headers["X-Sandbox-Exchange"]
           for n in ("9000000009", "9000000000", "9000000025")]
    big = Mesh(client).send(data=b"x" * (bodies.INLINE_LIMIT + 1)).headers["X-Sandbox-Exchange"]
    with journal_db(sandbox) as db:
        db.execute("UPDATE exchanges SET request_headers = '[[\"X-Request-ID\"', findings = '[[\"PDS' WHERE id = ?",
                   (ids[1],))
        # Indexed as they were imported: the index is made again from the rows, as if damaged before then.
        db.execute("DELETE FROM exchange_findings")
        db.execute("UPDATE journal_meta SET value = 0 WHERE name = ?", (journal_sqlite.INDEXED_THROUGH,))
        reference = db.execute("SELECT request_body FROM exchanges WHERE id = ?", (big,)).fetchone()[0]
    digest, _ = bodies.parse(reference)
    next(Path(sandbox.store.journal.path + ".bodies").rglob(digest)).unlink()  # a body file lost

    damaged = client.get(f"/_sandbox/exchanges/{ids[1]}")
    assert damaged.status_code == 200
    shown = damaged.get_json()
    assert shown["id"] == ids[1] and "request headers" in shown["damaged"] and "findings" in shown["damaged"]
    assert shown["request"]["path"].endswith("/Patient/9000000000") and shown["findings"] == []
    lost = client.get(f"/_sandbox/exchanges/{big}").get_json()
    assert "request body" in lost["damaged"] and digest in lost["damaged"] and lost["request"]["body"] == ""
    for exchange_id in (ids[0], ids[2]):
        whole = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
        assert "damaged" not in whole and whole["findings"]

    listed = client.get(f"/_sandbox/exchanges?session={made['session']}")
    assert listed.status_code == 200 and len(listed.get_json()["exchanges"]) == 3
    by_requirement = client.get(f"/_sandbox/exchanges?session={made['session']}&requirement=PDS-GET-001")
    assert by_requirement.status_code == 200  # the finding index skips findings that do not parse
    assert ids[1] not in {e["id"] for e in by_requirement.get_json()["exchanges"]}
    report = client.get(f"/_sandbox/sessions/{made['session']}/report")
    assert report.status_code == 200 and report.get_json()["requirements"]
    assert client.get(f"/_sandbox/sessions/{made['session']}/report?format=html").status_code == 200
    after = pds.get("/Patient/9000000009", headers=auth)  # and the next request is answered and journaled
    assert after.status_code == 200
    assert client.get(f"/_sandbox/exchanges/{after.headers['X-Sandbox-Exchange']}").status_code == 200


def exchange(n: int, headers: list[tuple[str, str]] | None = None) -> Exchange:
    return Exchange(new_exchange_id(), "s", "pds", "get-patient", 1000.0 + n, 1.0,
                    RecordedRequest("GET", f"/Patient/{n}", headers=headers or [("X-Request-ID", str(uuid.uuid4()))]),
                    RecordedResponse(200, [("Content-Type", "application/json")], b"{}"))


def test_a_row_over_sqlites_limits_is_kept_as_a_damaged_placeholder(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    try:
        store.journal._db().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 50_000)  # SQLite's limit is 10^9 bytes: a smaller one here
        rows = [exchange(1), exchange(2, [("X-Huge", "h" * 100_000)]), exchange(3)]
        assert store.journal.record_many(rows) == 3
        placeholder = store.journal.exchange(rows[1].id)
        assert placeholder.request.path == "/Patient/2" and placeholder.request.headers == []
        assert "could not be journaled whole" in placeholder.damage
        assert [e.damage for e in (store.journal.exchange(rows[0].id), store.journal.exchange(rows[2].id))] == [None, None]
        listed = store.journal.exchanges(ExchangeFilter(session="s"))
        assert [e["id"] for e in listed] == [r.id for r in rows[::-1]] and "damaged" in listed[1]
    finally:
        store.close()


def test_a_spooled_row_over_sqlites_limits_does_not_stop_the_import_of_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_sqlite, "IMPORT_EVERY_S", 3600)  # imported here, by this thread's connection only
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    try:
        store.journal._db().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 50_000)
        rows = [exchange(1), exchange(2, [("X-Huge", "h" * 100_000)]), exchange(3)]
        for row in rows:
            store.journal.record(row)
        assert store.journal.catch_up() == 3
        assert [store.journal.exchange(r.id).damage is not None for r in rows] == [False, True, False]
        store.journal.record(exchange(4))  # and the journal goes on importing
        assert store.journal.count_exchanges(ExchangeFilter(session="s")) == 4
    finally:
        store.close()


def test_over_large_integers_never_reach_sqlite_or_the_state_database(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    try:
        store.journal.record_many([exchange(1)])
        assert store.journal.exchanges(ExchangeFilter(status=10**30, since=1e999), limit=10**30, before=10**40) == []
        assert len(store.journal.exchanges(ExchangeFilter(session="s"), limit=10**30, before=10**40)) == 1
        assert store.journal.count_exchanges(ExchangeFilter(status=-(10**30))) == 0
        assert store.journal.exchanges_by_seq([10**30, 1])[0].seq == 1
        assert store.state.claim("s", "ns", "forever", float("inf")) and not store.state.claim("s", "ns", "forever", 0)
        assert store.state.claim("s", "ns", "huge", 10**400) and store.state.claimed("s", "ns", "huge")
        assert store.state.claim("s", "ns", "nan", float("nan"))
        assert store.state.next_counter("s", "c", start=10**30) == (1 << 63) - 1
        assert store.state.next_counter("s", "c") == (1 << 63) - 1  # stays at the largest value it can hold
    finally:
        store.close()


def test_a_repeated_body_is_kept_once_and_read_back_whole_until_no_session_holds_it(client, sandbox):
    pds = PdsClient(client)
    sessions = [client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
                for _ in range(2)]
    ids = {made["session"]: [pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {made['token']}"})
                             .headers["X-Sandbox-Exchange"] for _ in range(3)] for made in sessions}
    first, second = (ids[made["session"]] for made in sessions)
    record = client.get(f"/_sandbox/exchanges/{first[0]}").get_json()["response"]["body"].encode()
    assert len(record) >= bodies.REPEATED_MIN
    with journal_db(sandbox) as db:
        kinds = {exchange_id: db.execute("SELECT typeof(response_body), response_body FROM exchanges WHERE id = ?",
                                         (exchange_id,)).fetchone() for exchange_id in first + second}
    assert kinds[first[0]][0] == "blob"  # seen once: in the row
    references = {kinds[exchange_id][1] for exchange_id in first[1:] + second}
    assert {kinds[exchange_id][0] for exchange_id in first[1:] + second} == {"text"} and len(references) == 1
    body_files = Path(sandbox.store.journal.path + ".bodies")
    assert len([path for path in body_files.rglob("*") if path.is_file()]) == 1
    for exchange_id in first + second:
        shown = client.get(f"/_sandbox/exchanges/{exchange_id}").get_json()
        assert "damaged" not in shown and shown["response"]["body"].encode() == record

    sandbox.store.forget([sessions[0]["session"]])  # the other session still refers to the file: it stays
    assert len([path for path in body_files.rglob("*") if path.is_file()]) == 1
    assert client.get(f"/_sandbox/exchanges/{second[2]}").get_json()["response"]["body"].encode() == record
    sandbox.store.forget([sessions[1]["session"]])
    assert not [path for path in body_files.rglob("*") if path.is_file()]


def test_a_repeated_body_whose_file_went_with_a_forgotten_session_is_kept_again(client, sandbox):
    """The process remembers where a repeated body's file is, and finds it gone once no session refers to it."""
    pds = PdsClient(client)
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
    for _ in range(2):
        assert pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200
    body_files = Path(sandbox.store.journal.path + ".bodies")
    assert len([path for path in body_files.rglob("*") if path.is_file()]) == 1
    sandbox.store.forget([made["session"]])
    assert not [path for path in body_files.rglob("*") if path.is_file()]

    again = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
    answer = pds.get("/Patient/9000000009", headers={"Authorization": f"Bearer {again['token']}"})
    assert len([path for path in body_files.rglob("*") if path.is_file()]) == 1
    shown = client.get(f"/_sandbox/exchanges/{answer.headers['X-Sandbox-Exchange']}").get_json()
    assert "damaged" not in shown and shown["response"]["body"].encode() == answer.data


def test_a_body_file_another_session_is_referring_to_right_now_outlives_a_forget(client, sandbox, monkeypatch):
    pds = PdsClient(client)
    made = [client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme", "system": "PAS"}).get_json()
            for _ in range(2)]
    auth = [{"Authorization": f"Bearer {m['token']}"} for m in made]
    for _ in range(2):  # the second read makes the body file, referred to by the first session only
        assert pds.get("/Patient/9000000009", headers=auth[0]).status_code == 200
    journal = sandbox.store.journal
    spooling, go_on = threading.Event(), threading.Event()
    spool_or_insert = journal._spool_or_insert

    def slow_spool(exchange, row):  # the row refers to the file, and is not spooled yet
        spooling.set()
        go_on.wait(10)
        spool_or_insert(exchange, row)

    monkeypatch.setattr(journal, "_spool_or_insert", slow_spool)
    answers = []
    reader = threading.Thread(target=lambda: answers.append(pds.get("/Patient/9000000009", headers=auth[1])))
    reader.start()
    assert spooling.wait(10)
    monkeypatch.setattr(journal, "_spool_or_insert", spool_or_insert)
    forgetting = threading.Thread(target=sandbox.store.forget, args=([made[0]["session"]],))
    forgetting.start()
    forgetting.join(0.5)
    assert forgetting.is_alive()  # the file's removal waits for the row being recorded
    go_on.set()
    reader.join(10)
    forgetting.join(10)
    shown = client.get(f"/_sandbox/exchanges/{answers[0].headers['X-Sandbox-Exchange']}").get_json()
    assert "damaged" not in shown and shown["response"]["body"] == answers[0].get_data(as_text=True)
