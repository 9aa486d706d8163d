"""The storage contract (sandbox.journal.store), run against every backend: the embedded one (SQLite and LMDB) and
PostgreSQL (a fresh schema per test; skipped when no server is reachable, see tests/postgres_db.py). Written against
the interfaces only: what one backend guarantees, the other must too."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.conformance.findings import Finding, Outcome, SpineError
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.store import (
    Attestation,
    ClaimTaken,
    CoverageCell,
    ExchangeFilter,
    FindingTotal,
    SessionRecord,
    SessionSpan,
    StateItem,
    Store,
    VersionConflict,
    open_store,
)
from tests import postgres_db

T0 = 1_700_000_000.0
HOUR = 3600.0


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "journal.sqlite3")
        return
    yield from _postgres_schema()


@pytest.fixture
def postgres_url():
    """PostgreSQL alone: a fresh schema of the test database."""
    yield from _postgres_schema()


def _postgres_schema():
    reason = postgres_db.unavailable()
    if reason:
        pytest.skip(reason)
    with postgres_db.fresh_schema() as url:
        yield url


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def backend(store_url) -> str:
    return store_url.split(":", 1)[0]


def exchange(session="s", service="pds", operation="get-patient", *, scenario=None, status=200, findings=(),
             started_at=None, path="/Patient/9000000009", body=b"{}") -> Exchange:
    return Exchange(new_exchange_id(), session, service, operation, T0 if started_at is None else started_at, 2.5,
                    RecordedRequest("GET", path, "", [("Accept", "application/json")], b"", "127.0.0.1"),
                    RecordedResponse(status, [("Content-Type", "application/json")], body), list(findings), scenario)


def record_all(store: Store, exchanges: list[Exchange]) -> list[Exchange]:
    for each in exchanges:
        store.journal.record(each)
    return exchanges


def ids_of(store: Store, where: ExchangeFilter, **kwargs) -> list[str]:
    return [row["id"] for row in store.journal.exchanges(where, **kwargs)]


# --- the journal -------------------------------------------------------------------------------------------------
def test_a_complete_exchange_reads_back_exactly_as_recorded(store):
    findings = [Finding.failed("PDS-HDR-001", "X-Request-ID is missing", "header:X-Request-ID",
                               reject=SpineError(400, "MISSING_VALUE", "diagnostics are not kept")),
                Finding.passed("PDS-GET-001", "found"), Finding.warning("PDS-GET-002", "slow", ""),
                Finding.info("PDS-GET-003", "note \u00e9\u4e2d\U0001f600")]
    original = Exchange(
        new_exchange_id(), "sess-1", "pds", "get-patient", T0 + 0.123456789, 12.3456789,
        RecordedRequest("POST", "/Patient/\x00%00/\u00e9", "a=1&a=2&b=\x01\x00", [
            ("Accept", "application/fhir+json"), ("X-Dup", "one"), ("X-Dup", "two"), ("X-Nul", "a\x00b")],
            bytes(range(256)) * 3, "10.0.0.1"),
        RecordedResponse(201, [("Set-Thing", "1"), ("Set-Thing", "2")], b"\x00\xff\xfe binary \x00"),
        findings, scenario=None)
    store.journal.record(original)
    back = store.journal.exchange(original.id)
    assert back == dataclasses.replace(original, seq=back.seq) and back.seq is not None and back.damage is None
    assert [(f.reject.status, f.reject.code) if f.reject else None for f in back.findings] == [
        (400, "MISSING_VALUE"), None, None, None]
    assert back.findings[0].outcome is Outcome.FAIL and back.scenario is None
    assert store.journal.exchanges_by_seq([back.seq, back.seq, 10**30]) == [back]
    assert list(store.journal.iter_exchanges("sess-1")) == [back]
    assert store.journal.exchange("no-such-id") is None


def test_a_recorded_exchange_is_seen_at_once_by_another_store_on_the_same_database(store_url):
    writer, reader = open_store(store_url), open_store(store_url)  # as two replicas (or worker processes) would
    try:
        for n in range(5):
            writer.journal.record(exchange())
            assert reader.journal.count_exchanges(ExchangeFilter(session="s")) == n + 1
            assert reader.totals.span("s").exchanges == n + 1
    finally:
        writer.close()
        reader.close()


def test_an_exchange_recorded_twice_is_kept_once(store):
    once = exchange()
    store.journal.record(once)
    store.journal.record(once)
    assert store.journal.count_exchanges(ExchangeFilter(session="s")) == 1


def test_summaries_are_newest_first_and_page_by_seq(store):
    made = record_all(store, [exchange(started_at=T0 + n, findings=[Finding.failed("R", "x")] * n) for n in range(5)])
    rows = store.journal.exchanges(ExchangeFilter(session="s"), limit=2)
    assert [r["id"] for r in rows] == [made[4].id, made[3].id]
    assert rows[0] == {"seq": rows[0]["seq"], "id": made[4].id, "session": "s", "service": "pds",
                       "operation": "get-patient", "scenario": None, "started_at": T0 + 4, "duration_ms": 2.5,
                       "method": "GET", "path": "/Patient/9000000009", "status": 200,
                       "findings": {"pass": 0, "fail": 4, "warning": 0, "info": 0}}
    assert rows[0]["seq"] > rows[1]["seq"]
    rest = store.journal.exchanges(ExchangeFilter(session="s"), limit=10, before=rows[-1]["seq"])
    assert [r["id"] for r in rest] == [made[2].id, made[1].id, made[0].id]
    assert store.journal.exchanges(ExchangeFilter(session="s"), limit=10, before=rest[-1]["seq"]) == []
    assert len(store.journal.exchanges(ExchangeFilter(session="s"), limit=10**30, before=10**30)) == 5


def test_every_filter_selects_what_it_names(store):
    a = exchange(service="pds", operation="get-patient", scenario="sc-1", status=200, started_at=T0,
                 findings=[Finding.passed("PDS-1", "ok")])
    b = exchange(service="pds", operation="search", status=404, started_at=T0 + 10,
                 findings=[Finding.failed("PDS-2", "no"), Finding.warning("PDS-1", "hm")])
    c = exchange(service="mesh", operation="send", scenario="sc-1", status=202, started_at=T0 + 20,
                 findings=[Finding.info("MESH-1", "fyi")])
    d = exchange(session="other", service="pds", status=200, started_at=T0 + 30, findings=[Finding.failed("PDS-2", "x")])
    record_all(store, [a, b, c, d])
    cases = [
        (ExchangeFilter(session="s"), [c, b, a]),
        (ExchangeFilter(), [d, c, b, a]),
        (ExchangeFilter(session="s", service="pds"), [b, a]),
        (ExchangeFilter(operation="search"), [b]),
        (ExchangeFilter(scenario="sc-1"), [c, a]),
        (ExchangeFilter(status=200), [d, a]),
        (ExchangeFilter(outcome="fail"), [d, b]),
        (ExchangeFilter(outcome="pass"), [a]),
        (ExchangeFilter(outcome="warning"), [b]),
        (ExchangeFilter(outcome="info"), [c]),
        (ExchangeFilter(outcome="nonsense"), []),
        (ExchangeFilter(requirement="PDS-2"), [d, b]),
        (ExchangeFilter(session="s", requirement="PDS-2"), [b]),
        (ExchangeFilter(requirement="PDS-1"), [b, a]),
        (ExchangeFilter(since=T0 + 5), [d, c, b]),
        (ExchangeFilter(until=T0 + 10), [a]),
        (ExchangeFilter(since=T0 + 5, until=T0 + 30, service="pds"), [b]),
        (ExchangeFilter(since=T0 + 20, until=T0 + 30.5), [d, c]),
        (ExchangeFilter(session="s", service="pds", status=404, outcome="fail", requirement="PDS-2"), [b]),
        (ExchangeFilter(status=10**30), []),  # out of every integer range: matches nothing, raises nothing
        (ExchangeFilter(status=-(10**30)), []),
        (ExchangeFilter(since=float("inf")), []),
        (ExchangeFilter(until=1e400), [d, c, b, a]),
        (ExchangeFilter(session="s\x00"), []),
    ]
    for where, expected in cases:
        assert ids_of(store, where) == [e.id for e in expected], where
        assert store.journal.count_exchanges(where) == len(expected), where


def test_related_and_latest_are_newest_first_without_findings(store):
    a = exchange(findings=[Finding.failed("R", "x")], started_at=T0)
    b = exchange(service="mesh", started_at=T0 + 1)
    c = exchange(started_at=T0 + 2)
    long_key = "message-id:" + "x" * 5000
    store.journal.record(a, ["patient:1", long_key])
    store.journal.record(b, ["patient:1", "patient:1"])
    store.journal.record(c, ["patient:2"])
    store.journal.record(exchange(session="other"), ["patient:1"])
    related = store.journal.related("s", "patient:1", limit=10)
    assert [e.id for e in related] == [b.id, a.id] and all(e.findings == [] for e in related)
    assert related[1].request == a.request and related[1].response == a.response
    assert [e.id for e in store.journal.related("s", "patient:1")] == [b.id]
    assert [e.id for e in store.journal.related("s", long_key, limit=5)] == [a.id]
    assert store.journal.related("s", "patient:3", limit=5) == []
    latest = store.journal.latest("s", "pds", limit=2)
    assert [e.id for e in latest] == [c.id, a.id] and latest[1].findings == []
    assert len(store.journal.latest("s", "pds", limit=10**30)) == 2 and store.journal.latest("s", "ers") == []


def test_newest_reads_the_newest_exchange_of_each_key_and_of_the_service_at_once(store):
    a = exchange(findings=[Finding.failed("R", "x")], started_at=T0)
    b = exchange(started_at=T0 + 1)
    long_key = "message-id:" + "y" * 5000
    store.journal.record(a, ["patient:1", long_key])
    store.journal.record(b, ["patient:1"])
    store.journal.record(exchange(service="mesh", started_at=T0 + 2), ["patient:2"])
    found, latest = store.journal.newest("s", "pds", ["patient:1", long_key, "patient:3"])
    assert {key: e.id for key, e in found.items()} == {"patient:1": b.id, long_key: a.id}
    assert found[long_key].findings == [] and found[long_key].request == a.request
    assert latest.id == b.id
    assert store.journal.newest("nobody", "pds", ["patient:1"]) == ({}, None)


def test_a_newest_only_key_finds_the_newest_exchange_under_it(store):
    """A key recorded newest_only (a request id: new on almost every exchange) is asked only for its newest exchange,
    by related with a limit of 1 and by newest; the other keys of the same exchanges keep their whole history."""
    first, second = exchange(started_at=T0), exchange(started_at=T0 + 1)
    store.journal.record(first, ["patient:1"], newest_only=["request-id:a"])
    store.journal.record(second, ["patient:1"], newest_only=["request-id:a", "request-id:b"])
    assert [e.id for e in store.journal.related("s", "request-id:a")] == [second.id]
    found, latest = store.journal.newest("s", "pds", ["request-id:a", "request-id:b", "request-id:c"])
    assert {key: e.id for key, e in found.items()} == {"request-id:a": second.id, "request-id:b": second.id}
    assert found["request-id:a"].request == second.request and latest.id == second.id
    assert [e.id for e in store.journal.related("s", "patient:1", limit=5)] == [second.id, first.id]
    assert store.journal.exchange(first.id).request == first.request


def test_an_exchange_no_history_will_ask_for_is_in_every_other_query(store):
    """Recorded with history=False (its service has no behavioural checks): related, latest and newest need not find
    it, every other query does, with its keys."""
    quiet = exchange(service="mesh", findings=[Finding.passed("R", "ok")], started_at=T0)
    store.journal.record(quiet, ["mailbox:X26ABC1"], history=False)
    assert store.journal.exchange(quiet.id).findings == quiet.findings
    assert [e.id for e in store.journal.iter_exchanges("s")] == [quiet.id]
    assert ids_of(store, ExchangeFilter(session="s", requirement="R")) == [quiet.id]
    assert store.journal.related("s", "mailbox:X26ABC1", limit=5)[0].id == quiet.id  # beyond the newest: the journal


def test_record_many_commits_them_all_and_iter_exchanges_reads_them_oldest_first(store):
    many = [exchange(started_at=T0 + n, findings=[Finding.passed("R", str(n))]) for n in range(1200)]
    assert store.journal.record_many(iter(many)) == 1200
    read = list(store.journal.iter_exchanges("s"))
    assert [e.id for e in read] == [e.id for e in many]
    assert read[-1].findings == many[-1].findings and read[0].response.body == b"{}"
    assert store.journal.count_exchanges(ExchangeFilter(requirement="R")) == 1200
    assert store.totals.findings("s") == [FindingTotal("R", "pass", 1200)]


def test_a_row_the_database_cannot_hold_is_kept_as_a_damaged_placeholder(store):
    odd = exchange(status=10**30)  # no database integer holds it: recorded all the same, marked damaged
    store.journal.record(odd)
    back = store.journal.exchange(odd.id)
    assert back is not None and back.damage and back.session == "s"
    assert store.journal.count_exchanges(ExchangeFilter(session="s")) == 1
    good, bad, also_good = exchange(started_at=T0 + 1), exchange(status=-(10**30), started_at=T0 + 2), \
        exchange(started_at=T0 + 3, findings=[Finding.passed("R", "ok")])
    assert store.journal.record_many([good, bad, also_good]) == 3  # one bad row spoils none of the others
    assert [e.damage is not None for e in store.journal.iter_exchanges("s")] == [True, False, True, False]
    assert store.journal.exchange(also_good.id).findings == also_good.findings


def test_last_activity_and_forget(store):
    record_all(store, [exchange("a", started_at=T0), exchange("a", started_at=T0 + 5, findings=[Finding.failed("R", "")]),
                       exchange("b", started_at=T0 + 1)])
    store.journal.record(exchange("a", started_at=T0 + 2), ["k"])
    assert store.journal.last_activity() == {"a": T0 + 5, "b": T0 + 1}
    assert store.journal.forget(["a", "nobody"]) == 3
    assert store.journal.last_activity() == {"b": T0 + 1}
    assert store.journal.count_exchanges(ExchangeFilter(requirement="R")) == 0
    assert store.journal.related("a", "k") == [] and store.totals.findings("a") == []
    assert store.journal.forget([]) == 0


# --- totals ------------------------------------------------------------------------------------------------------
def test_totals_count_what_was_recorded(store):
    made = []
    for n in range(40):
        findings = [Finding.passed("R1", f"p{n}")]
        if n % 3 == 0:
            findings.append(Finding.failed("R2", f"f{n}", reject=SpineError(400, "BAD") if n % 2 else None))
        if n % 5 == 0:
            findings += [Finding.warning("R2", f"w{n}"), Finding.failed("R2", f"f{n}b")]
        made.append(exchange(service="pds" if n % 2 else "mesh", operation=f"op{n % 3}", status=200 + n % 2,
                             scenario=None if n % 4 else f"sc{n % 8}", started_at=T0 + n * 90, findings=findings))
    record_all(store, made)
    record_all(store, [exchange("other", findings=[Finding.failed("R1", "elsewhere")])])
    flat = [(e, i, f) for e in made for i, f in enumerate(e.findings)]

    expected_totals = Counter((f.requirement, str(f.outcome)) for _, _, f in flat)
    assert store.totals.findings("s") == [FindingTotal(r, o, n) for (r, o), n in sorted(expected_totals.items())]
    expected_cells = Counter((f.requirement, e.scenario, str(f.outcome)) for e, _, f in flat)
    assert sorted(store.totals.coverage("s"), key=_cell_order) == sorted(
        (CoverageCell(r, s, o, n) for (r, s, o), n in expected_cells.items()), key=_cell_order)
    assert store.totals.scenarios("s") == dict(Counter(e.scenario for e in made))
    assert store.totals.span("s") == SessionSpan(40, T0, T0 + 39 * 90, sum(e.failed for e in made))
    assert store.totals.span("nobody") == SessionSpan(0, None, None, 0)
    expected_buckets = {}
    for e in made:
        bucket = int((e.started_at - T0) // HOUR)
        total, failed = expected_buckets.get(bucket, (0, 0))
        expected_buckets[bucket] = (total + 1, failed + e.failed)
    assert store.totals.timeline("s", T0, HOUR) == [(b, t, f) for b, (t, f) in sorted(expected_buckets.items())]
    operations = Counter((e.service, e.operation, e.response.status) for e in made)
    assert store.totals.operations("s") == [(*key, n) for key, n in sorted(operations.items())]

    failed_r2 = [(e, i, f) for e, i, f in flat if f.requirement == "R2" and f.outcome == Outcome.FAIL]
    samples = store.totals.samples("s", "R2", "fail", 2, 3)
    seq_of = {e.id: e.seq for e in store.journal.iter_exchanges("s")}
    wanted = failed_r2[:2] + failed_r2[-3:]
    assert [(seq, f.message) for seq, f in samples] == [(seq_of[e.id], f.message) for e, _, f in wanted]
    assert [f.reject.code if f.reject else None for _, f in samples] == [
        f.reject.code if f.reject else None for _, _, f in wanted]
    everything = store.totals.samples("s", "R2", "fail", 100, 100)  # overlapping ends: each finding once
    assert [f.message for _, f in everything] == [f.message for _, _, f in failed_r2]
    assert store.totals.samples("s", "R9", "fail", 5, 5) == []


def test_timeline_with_odd_widths_never_fails(store):
    record_all(store, [exchange(started_at=T0), exchange(started_at=T0 + 1)])
    assert sum(n for _, n, _ in store.totals.timeline("s", T0, 0)) == 2
    assert sum(n for _, n, _ in store.totals.timeline("s", -1e308, 1e-300)) == 2
    assert sum(n for _, n, _ in store.totals.timeline("s", T0, float("nan"))) == 2


def _cell_order(cell: CoverageCell):
    return cell.requirement, cell.scenario or "", cell.outcome


# --- sessions ----------------------------------------------------------------------------------------------------
def test_sessions_are_created_once_found_by_id_and_token_and_listed_oldest_first(store):
    store.sessions.create(SessionRecord("b", T0 + 1, None, "Acme", "PAS", "hash-b"))
    store.sessions.create(SessionRecord("a", T0 + 1, "plan-1", "Acme", "PAS 2", None))
    store.sessions.create(SessionRecord("c", T0, None, "", "", None))
    with pytest.raises(VersionConflict):
        store.sessions.create(SessionRecord("a", T0 + 9, None, "Other", "", "hash-new"))
    with pytest.raises(VersionConflict):
        store.sessions.create(SessionRecord("d", T0 + 9, None, "Other", "", "hash-b"))
    assert store.sessions.get("a") == SessionRecord("a", T0 + 1, "plan-1", "Acme", "PAS 2", None)
    assert store.sessions.get("d") is None and store.sessions.get("nobody") is None
    assert store.sessions.for_token("hash-b").id == "b" and store.sessions.for_token("nope") is None
    assert [r.id for r in store.sessions.all()] == ["c", "a", "b"]


def test_attestations_are_kept_in_order_with_their_seq(store):
    first = store.sessions.attest(Attestation("s", "R1", "fail", "A. Assessor", "not yet", T0))
    second = store.sessions.attest(Attestation("s", "R1", "pass", "A. Assessor", "fixed \u00e9", T0 + 1))
    store.sessions.attest(Attestation("other", "R1", "pass", "B", "", T0))
    assert first.seq is not None and second.seq > first.seq
    assert store.sessions.attestations("s") == [first, second]
    store.sessions.forget(["s"])
    assert store.sessions.attestations("s") == [] and len(store.sessions.attestations("other")) == 1


# --- session state -----------------------------------------------------------------------------------------------
def test_put_is_compare_and_set(store):
    state = store.state
    assert state.get("s", "ns", "k") is None
    assert state.put("s", "ns", "k", {"v": 1}) == 1
    assert state.put("s", "ns", "k", {"v": 2}) == 2
    assert state.put("s", "ns", "k", {"v": 3}, expect_version=2) == 3
    with pytest.raises(VersionConflict) as conflict:
        state.put("s", "ns", "k", {"v": 9}, expect_version=2)
    assert (conflict.value.expected, conflict.value.actual) == (2, 3)
    with pytest.raises(VersionConflict) as conflict:
        state.put("s", "ns", "k", {"v": 9}, create_only=True)
    assert (conflict.value.expected, conflict.value.actual) == (None, 3)
    with pytest.raises(VersionConflict) as conflict:
        state.put("s", "ns", "missing", 1, expect_version=1)
    assert (conflict.value.expected, conflict.value.actual) == (1, None)
    with pytest.raises(VersionConflict):
        state.put("s", "ns", "k", 1, expect_version=10**30)
    assert state.put("s", "ns", "new", [1], create_only=True) == 1
    assert state.get("s", "ns", "k") == StateItem({"v": 3}, 3)
    assert state.get("s", "other-ns", "k") is None and state.get("other", "ns", "k") is None


def test_write_is_a_put_nobody_reads_back(store):
    state = store.state
    state.write("s", "ns", "k", {"v": 1})
    state.write("s", "ns", "k", {"v": 2})
    assert state.get("s", "ns", "k") == StateItem({"v": 2}, 2)
    state.write("s", "ns", "new", [1], create_only=True)
    assert state.get("s", "ns", "new") == StateItem([1], 1)
    with pytest.raises(VersionConflict):
        state.write("s", "ns", "k", "again", create_only=True)
    with pytest.raises(VersionConflict), state.transaction():  # raised at the call or when the block ends
        state.write("s", "ns", "in-block", 1)
        state.write("s", "ns", "k", "again", create_only=True)
    assert state.get("s", "ns", "in-block") is None and state.get("s", "ns", "k") == StateItem({"v": 2}, 2)
    with state.transaction():
        state.write("s", "ns", "k", {"v": 3})
        state.write("s", "ns", "fresh", "made", create_only=True)
        assert state.get("s", "ns", "k") == StateItem({"v": 3}, 3)  # the block reads its own writes
    assert state.get("s", "ns", "fresh") == StateItem("made", 1)


def test_compare_and_set_lets_exactly_one_of_many_writers_win(store):
    store.state.put("s", "ns", "k", 0)

    def write(n: int) -> bool:
        try:
            store.state.put("s", "ns", "k", n, expect_version=1)
            return True
        except VersionConflict as conflict:
            assert conflict.actual == 2
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(write, range(32))) == 1


VALUES = ["", "text", "nul \x00 inside", "\x01\x02 control", "\u00e9\u4e2d\U0001f600", "lone \ud800 surrogate", 0, -1,
          2**63, -(2**63) - 1, 10**40, 0.1, 1e308, -2.5e-308, True, False, None, [], {}, [1, "two", [3.0, None]],
          {"z": 1, "a": {"nested": [True, {"k\x00": "v"}]}, "": 0, "m": "x" * 100_000}]


def test_values_round_trip_exactly_as_json_does(store):
    for n, value in enumerate(VALUES):
        store.state.put("s", "ns", f"k{n:02}", value)
    for n, value in enumerate(VALUES):
        got = store.state.get("s", "ns", f"k{n:02}").value
        assert got == json.loads(json.dumps(value)) and type(got) is type(value), value
        assert json.dumps(got) == json.dumps(value)  # dict key order and float spelling included
    assert [item.value for item in store.state.items("s", "ns").values()] == VALUES


def test_keys_with_any_characters_and_of_any_length(store):
    long_key = "k" * 5000
    keys = ["plain", "with\x00nul", "\u00e9", "%_like*?", long_key, "with\x01escape"]
    for n, key in enumerate(keys):
        store.state.put("s", "ns", key, n)
    assert store.state.items("s", "ns") == {key: StateItem(n, 1) for n, key in enumerate(keys)}
    assert store.state.put("s", "ns", long_key, "again", expect_version=1) == 2
    assert store.state.get("s", "ns", "with\x00nul") == StateItem(1, 1)
    assert store.state.get("s", "ns", "with") is None
    store.state.delete("s", "ns", long_key)
    assert store.state.get("s", "ns", long_key) is None and len(store.state.items("s", "ns")) == len(keys) - 1
    assert store.state.claim("s", "jti", long_key, time.time() + 60) is True
    assert store.state.claim("s", "jti", long_key, time.time() + 60) is False
    assert store.state.claim("s", "jti", "k" * 4999, time.time() + 60) is True


def test_long_blob_keys_and_counter_names(store, backend):
    if backend == "sqlite":
        pytest.skip("the embedded backend's LMDB keys are limited to 511 bytes")
    key = "mesh/" + "m" * 5000
    store.state.put_blob("s", key + "/1", b"one")
    store.state.put_blob("s", key + "/2", b"two")
    assert store.state.get_blob("s", key + "/1") == b"one"
    store.state.delete_blobs("s", key + "/1")
    assert (store.state.get_blob("s", key + "/1"), store.state.get_blob("s", key + "/2")) == (None, b"two")
    store.state.delete_blobs("s", "mesh/")
    assert store.state.get_blob("s", key + "/2") is None
    assert [store.state.next_counter("s", "c" * 5000, start=7), store.state.next_counter("s", "c" * 5000)] == [7, 8]


def test_items_delete_and_clear_take_exactly_what_they_name(store):
    state = store.state
    for session, namespace in (("s", "mesh.inbox.A"), ("s", "mesh.inbox.AB"), ("s", "mesh.message"),
                               ("s2", "mesh.inbox.A"), ("s", "mesh.inbox"), ("s", "mesh%inbox")):
        state.put(session, namespace, "k2", 2)
        state.put(session, namespace, "k1", 1)
    assert state.items("s", "mesh.inbox.A") == {"k1": StateItem(1, 1), "k2": StateItem(2, 1)}
    assert list(state.items("s", "mesh.inbox.A")) == ["k1", "k2"]
    state.delete("s", "mesh.inbox.A", "k1")
    state.delete("s", "mesh.inbox.A", "never-there")
    assert state.items("s", "mesh.inbox.A") == {"k2": StateItem(2, 1)}
    state.delete("s", "mesh.inbox.A")
    assert state.items("s", "mesh.inbox.A") == {} and len(state.items("s2", "mesh.inbox.A")) == 2
    state.clear("s", "mesh.inbox")
    assert [state.items("s", ns) for ns in ("mesh.inbox", "mesh.inbox.AB")] == [{}, {}]
    assert len(state.items("s", "mesh.message")) == 2 and len(state.items("s", "mesh%inbox")) == 2
    assert len(state.items("s2", "mesh.inbox.A")) == 2
    state.clear("s", "")
    assert state.items("s", "mesh.message") == {} and len(state.items("s2", "mesh.inbox.A")) == 2


def test_counters_count_from_their_start_per_session_and_name(store):
    state = store.state
    assert [state.next_counter("s", "nhs", start=5), state.next_counter("s", "nhs", start=100),
            state.next_counter("s", "nhs"), state.next_counter("s", "other"), state.next_counter("s2", "nhs")] == [
        5, 6, 7, 0, 0]
    assert state.next_counter("s", "big", start=2**70) == 2**63 - 1  # clamped to 64 bits, and stays there
    assert state.next_counter("s", "big") == 2**63 - 1
    assert state.next_counter("s", "small", start=-(2**70)) == -(2**63)

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: state.next_counter("s", "shared", start=1), range(64)))
    assert sorted(got) == list(range(1, 65))


def test_blobs_replace_and_delete_by_literal_prefix(store):
    state = store.state
    data = bytes(range(256)) * 100
    state.put_blob("s", "mesh/M1/1", data)
    assert state.get_blob("s", "mesh/M1/1") == data
    state.put_blob("s", "mesh/M1/1", b"replaced")
    assert state.get_blob("s", "mesh/M1/1") == b"replaced"
    for key in ("mesh/M10/1", "mesh/M%/1", "mesh/MX/1", "mesh/M_/1", "nul\x00/1"):
        state.put_blob("s", key, key.encode())
    state.put_blob("s2", "mesh/M1/1", b"other session")
    state.put_blob("s", "empty", b"")
    assert state.get_blob("s", "empty") == b"" and state.get_blob("s", "missing") is None
    state.delete_blobs("s", "mesh/M1/")
    state.delete_blobs("s", "mesh/M%")  # a literal prefix: no wildcards
    state.delete_blobs("s", "mesh/M_")
    state.delete_blobs("s", "nul\x00")
    assert [state.get_blob("s", k) for k in ("mesh/M1/1", "mesh/M10/1", "mesh/M%/1", "mesh/MX/1", "mesh/M_/1",
                                             "nul\x00/1")] == [None, b"mesh/M10/1", None, b"mesh/MX/1", None, None]
    state.delete_blobs("s", "")
    assert state.get_blob("s", "mesh/M10/1") is None and state.get_blob("s", "empty") is None
    assert state.get_blob("s2", "mesh/M1/1") == b"other session"


def test_a_claim_is_used_once_until_it_expires(store):
    state = store.state
    now = time.time()
    assert state.claimed("s", "jti", "a") is False
    assert state.claim("s", "jti", "a", now + 60) is True
    assert state.claim("s", "jti", "a", now + 60) is False
    assert state.claimed("s", "jti", "a") is True
    assert state.claim("s", "other-ns", "a", now + 60) is True and state.claim("s2", "jti", "a", now + 60) is True
    assert state.claim("s", "jti", "past", now - 10) is True  # already expired: it may be used again
    assert state.claimed("s", "jti", "past") is False
    assert state.claim("s", "jti", "past", now + 60) is True
    assert state.claim("s", "jti", "for-ever", 10**400) is True and state.claim("s", "jti", "nan", float("nan"))
    assert state.claim("s", "jti", "old", now - 20) is True
    assert state.forget_expired_claims(now) == 1
    assert state.claim("s", "jti", "a", now + 60) is False
    assert state.forget_expired_claims(now + 120) >= 3
    assert state.claim("s", "jti", "a", now + 60) is True


def test_a_claim_is_won_exactly_once_among_many_threads(store):
    keys = [f"jti-{n}" for n in range(50)]
    barrier = threading.Barrier(8)

    def claim_all(_):
        barrier.wait()
        return [key for key in keys if store.state.claim("s", "jti", key, time.time() + 60)]

    with ThreadPoolExecutor(8) as pool:
        won = [key for keys_won in pool.map(claim_all, range(8)) for key in keys_won]
    assert sorted(won) == sorted(keys)


def _replica(url: str, keys: list[str], increments: int, start: float) -> list[str]:
    """A replica of its own (a spawned process, its own store): claims keys and increments a shared value."""
    store = open_store(url)
    try:
        time.sleep(max(0.0, start - time.time()))  # every replica starts claiming at the same moment
        won = [key for key in keys if store.state.claim("s", "jti", key, time.time() + 600)]
        store.journal.record(exchange(session="replicas"))
        for _ in range(increments):
            with store.state.transaction():
                item = store.state.get("s", "ns", "total")
                store.state.put("s", "ns", "total", (item.value if item else 0) + 1)
        return won
    finally:
        store.close()


def test_claims_and_transactions_hold_across_processes(store, store_url):
    keys = [f"jti-{n}" for n in range(100)]
    replicas = 3
    with multiprocessing.get_context("spawn").Pool(replicas) as pool:
        results = pool.starmap(_replica, [(store_url, keys, 20, time.time() + 3)] * replicas)
    won = [key for keys_won in results for key in keys_won]
    assert sorted(won) == sorted(keys)  # each key exactly once, whichever replica won it
    assert store.state.get("s", "ns", "total") == StateItem(60, 60)
    assert store.journal.count_exchanges(ExchangeFilter(session="replicas")) == replicas


def _record_in_another_process(url: str, recorded: list[tuple[str, float, list[str]]]) -> None:
    store = open_store(url)
    try:
        for exchange_id, started_at, keys in recorded:
            made = exchange(started_at=started_at)
            store.journal.record(dataclasses.replace(made, id=exchange_id), keys)
    finally:
        store.close()


def test_newest_finds_what_every_process_recorded(store, store_url, backend):
    """Exchanges recorded by other processes, several at once: a reader sees every process's exchanges, the newest
    under each key, and forgets them all with the session. The embedded store takes the one that began last even when
    it was recorded first (two workers may record in the other order)."""
    mine_first, mine_last = exchange(started_at=T0), exchange(started_at=T0 + 30)
    theirs, theirs_later, elsewhere = new_exchange_id(), new_exchange_id(), new_exchange_id()
    store.journal.record(mine_first, ["patient:1", "patient:2"])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(_record_in_another_process, [
            (store_url, [(theirs, T0 + 5, ["patient:1", "patient:3"]), (theirs_later, T0 + 20, ["patient:2"])]),
            (store_url, [(elsewhere, T0 + 6, ["patient:4"])])])
    store.journal.record(mine_last, ["patient:3"])
    keys = ["patient:1", "patient:2", "patient:3", "patient:4", "patient:5"]
    found, latest = store.journal.newest("s", "pds", keys)
    assert {key: e.id for key, e in found.items()} == {
        "patient:1": theirs, "patient:2": theirs_later, "patient:3": mine_last.id, "patient:4": elsewhere}
    assert latest.id == mine_last.id
    if backend == "sqlite":
        store.journal.record(exchange(started_at=T0 + 10), ["patient:2"])  # began before theirs_later, recorded after
        assert store.journal.newest("s", "pds", ["patient:2"])[0]["patient:2"].id == theirs_later
    store.journal.forget(["s"])
    assert store.journal.newest("s", "pds", keys) == ({}, None)


def test_a_failed_transaction_leaves_nothing_and_gives_its_claims_back(store):
    state = store.state
    state.put("s", "ns", "kept", "before")
    now = time.time()
    with pytest.raises(RuntimeError), state.transaction():
        state.put("s", "ns", "kept", "during")
        state.put("s", "ns", "new", 1)
        assert state.get("s", "ns", "kept").value == "during"  # the block sees its own writes
        assert state.claim("s", "jti", "once", now + 60) is True
        state.put_blob("s", "b", b"x")
        state.delete("s", "ns", "kept")
        raise RuntimeError("rolled back")
    assert state.get("s", "ns", "kept") == StateItem("before", 1)
    assert (state.get("s", "ns", "new"), state.get_blob("s", "b")) == (None, None)
    assert state.claimed("s", "jti", "once") is False
    assert state.claim("s", "jti", "once", now + 60) is True  # given back: usable once more

    with state.transaction():
        state.put("s", "ns", "committed", 1)
        assert state.claim("s", "jti", "in-tx", now + 60) is True
    assert state.get("s", "ns", "committed") == StateItem(1, 1) and state.claim("s", "jti", "in-tx", now + 60) is False


def test_use_claims_a_key_with_its_block_and_a_key_used_already_fails_the_whole_block(store):
    state = store.state
    now = time.time()
    state.use("s", "jti", "alone", now + 60)  # outside a block: claim(), raising when it is claimed already
    with pytest.raises(ClaimTaken):
        state.use("s", "jti", "alone", now + 60)
    with state.transaction("s"):
        state.write("s", "ns", "kept", 1)
        state.use("s", "jti", "in-block", now + 60)
    assert state.claimed("s", "jti", "in-block") and state.get("s", "ns", "kept") == StateItem(1, 1)
    with pytest.raises(ClaimTaken), state.transaction("s"):  # raised at the call or when the block ends
        state.write("s", "ns", "lost", 1)
        state.put_blob("s", "lost", b"x")
        state.use("s", "jti", "in-block", now + 60)
    assert (state.get("s", "ns", "lost"), state.get_blob("s", "lost")) == (None, None)
    with pytest.raises(RuntimeError), state.transaction("s"):
        state.use("s", "jti", "given-back", now + 60)
        raise RuntimeError("rolled back")
    assert state.claimed("s", "jti", "given-back") is False
    state.use("s", "jti", "expired", now - 10)
    with state.transaction("s"):  # an expired claim is no claim: the key may be used again
        state.use("s", "jti", "expired", now + 60)
        state.put_blob("s", "big", b"\x00" * 600_000)  # more than a backend may send in one statement's text
    assert state.claimed("s", "jti", "expired") and state.get_blob("s", "big") == b"\x00" * 600_000
    with pytest.raises(ClaimTaken), state.transaction("s"):
        state.put_blob("s", "big-lost", b"\x01" * 600_000)
        state.use("s", "jti", "expired", now + 60)
    assert state.get_blob("s", "big-lost") is None


def test_use_in_blocks_over_many_sessions_wins_a_key_exactly_once(store):
    barrier = threading.Barrier(8)

    def use(n: int) -> bool:
        barrier.wait()
        try:
            with store.state.transaction(f"supplier-{n}"):
                store.state.write(f"supplier-{n}", "ns", "k", n)
                store.state.use("shared", "tokens", "one", time.time() + 60)
        except ClaimTaken:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        won = [n for n, ok in enumerate(pool.map(use, range(8))) if ok]
    assert len(won) == 1
    assert [n for n in range(8) if store.state.get(f"supplier-{n}", "ns", "k")] == won


def test_a_nested_transaction_joins_the_outer_one(store):
    state = store.state
    with pytest.raises(RuntimeError), state.transaction():
        state.put("s", "ns", "outer", 1)
        with state.transaction():
            state.put("s", "ns", "inner", 1)
        assert state.get("s", "ns", "inner") == StateItem(1, 1)
        raise RuntimeError("the outer block fails after the inner one ended")
    assert (state.get("s", "ns", "outer"), state.get("s", "ns", "inner")) == (None, None)

    with state.transaction():
        with pytest.raises(VersionConflict), state.transaction():
            state.put("s", "ns", "a", 1)
            state.put("s", "ns", "a", 2, create_only=True)
        state.put("s", "ns", "b", 1)  # the outer block carries on: it decides
    assert state.get("s", "ns", "a") == StateItem(1, 1) and state.get("s", "ns", "b") == StateItem(1, 1)


def test_transactions_serialise_read_modify_write(store):
    threads = 16

    def increment(_):
        with store.state.transaction():
            item = store.state.get("s", "ns", "n")
            time.sleep(0.002)  # widen the window a racing transaction would need
            store.state.put("s", "ns", "n", (item.value if item else 0) + 1)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(increment, range(threads * 3)))
    assert store.state.get("s", "ns", "n") == StateItem(threads * 3, threads * 3)


def test_transactions_over_a_session_serialise_with_each_other_and_with_the_whole_store(store):
    def increment(n):
        with store.state.transaction(None if n % 3 == 0 else "s"):
            item = store.state.get("s", "ns", "n")
            time.sleep(0.002)
            store.state.put("s", "ns", "n", (item.value if item else 0) + 1)
            with store.state.transaction("s"):  # joins: the outer block covers the same session
                store.state.write("s", "ns", f"done-{n}", True)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(increment, range(30)))
    assert store.state.get("s", "ns", "n").value == 30 and len(store.state.items("s", "ns")) == 31


def test_a_block_joins_only_an_outer_one_that_covers_it(store):
    state = store.state
    with state.transaction("a"):
        with pytest.raises(ValueError, match="cannot join one over session 'a'"), state.transaction("b"):
            pass
        with pytest.raises(ValueError, match="over the whole store cannot join"), state.transaction():
            pass
        state.put("a", "ns", "k", 1)
    with state.transaction(), state.transaction("b"):
        state.put("b", "ns", "k", 1)
    assert state.get("a", "ns", "k") == StateItem(1, 1) and state.get("b", "ns", "k") == StateItem(1, 1)


def terminate_connections(killer) -> None:
    """End every connection the store has, as a database restart does, and wait until they are gone (the server
    ends them a moment after it is asked)."""
    pids = [pid for pid, in killer.execute(
        "WITH store AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        "AND datname = current_database() AND application_name = 'spine-sandbox') "
        "SELECT pid FROM store WHERE pg_terminate_backend(pid)")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and killer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
        time.sleep(0.01)


def test_postgres_a_request_carries_on_after_its_connection_broke(postgres_url):
    import psycopg

    store, killer = open_store(postgres_url), psycopg.connect(postgres_url, autocommit=True)
    try:
        with store.held():
            store.state.put("s", "ns", "k", 1)
            terminate_connections(killer)
            with pytest.raises(psycopg.OperationalError):
                store.state.get("s", "ns", "k")  # the call that finds the connection gone fails
            assert store.state.get("s", "ns", "k") == StateItem(1, 1)  # the next ones take a fresh connection
            with store.state.transaction("s"):
                store.state.put("s", "ns", "k", 2)
            terminate_connections(killer)
            with pytest.raises(psycopg.OperationalError), store.state.transaction("s"):
                store.state.get("s", "ns", "k")  # lost inside a transaction: the block fails, nothing is kept
            store.state.put("s", "ns", "k", 3)
        assert store.state.get("s", "ns", "k") == StateItem(3, 3)
    finally:
        killer.close()
        store.close()


def test_postgres_transactions_over_other_sessions_do_not_wait_for_each_other(postgres_url):
    store = open_store(postgres_url)
    held, release = threading.Event(), threading.Event()

    def hold(scope):
        with store.state.transaction(scope):
            store.state.put("a", "ns", "k", 1)
            held.set()
            release.wait(10)

    def in_transaction(scope) -> threading.Event:
        done = threading.Event()

        def run():
            with store.state.transaction(scope):
                store.state.put(scope or "whole", "ns", "k", 1)
            done.set()
        threading.Thread(target=run, daemon=True).start()
        return done

    try:
        holder = threading.Thread(target=hold, args=("a",))
        holder.start()
        assert held.wait(10)
        assert in_transaction("b").wait(10)  # another session: at once, while "a" is held
        same, whole = in_transaction("a"), in_transaction(None)
        assert not same.wait(0.5) and not whole.is_set()  # the same session and the whole store wait
        release.set()
        holder.join()
        assert same.wait(10) and whole.wait(10)
    finally:
        release.set()
        store.close()


def test_another_store_on_the_same_database_sees_a_transaction_only_once_committed(store_url):
    one, two = open_store(store_url), open_store(store_url)
    try:
        started, release = threading.Event(), threading.Event()

        def writer():
            with one.state.transaction():
                one.state.put("s", "ns", "k", "new")
                started.set()
                release.wait(10)

        thread = threading.Thread(target=writer)
        thread.start()
        assert started.wait(10)
        assert two.state.get("s", "ns", "k") is None  # another thread: not part of the transaction
        release.set()
        thread.join()
        assert two.state.get("s", "ns", "k") == StateItem("new", 1)
    finally:
        one.close()
        two.close()


# --- the store ---------------------------------------------------------------------------------------------------
def test_every_call_works_while_the_store_is_held_for_a_request(store):
    with store.held():
        with store.held():  # nested: the outer block's
            store.state.put("s", "ns", "k", 1)
        with pytest.raises(RuntimeError), store.state.transaction():
            store.state.put("s", "ns", "k", 2)
            assert store.journal.count_exchanges(ExchangeFilter()) == 0  # not the transaction's: any connection
            raise RuntimeError("rolled back")
        assert store.state.get("s", "ns", "k") == StateItem(1, 1)
        with store.state.transaction():
            store.state.put("s", "ns", "k", 3)
        record_all(store, [exchange()])
        assert store.state.get("s", "ns", "k") == StateItem(3, 2) and store.journal.count_exchanges(ExchangeFilter()) == 1
    assert store.state.get("s", "ns", "k") == StateItem(3, 2)


def test_idle_sessions_are_found_and_forgotten_whole(store):
    old, recent = T0, T0 + 10 * HOUR
    record_all(store, [exchange("idle", started_at=old), exchange("idle", started_at=old + 1),
                       exchange("busy", started_at=old), exchange("busy", started_at=recent)])
    for name, created in (("idle", old), ("busy", old), ("empty-old", old), ("empty-new", recent)):
        store.sessions.create(SessionRecord(name, created, None, "", "", f"token-{name}"))
        store.sessions.attest(Attestation(name, "R", "pass", "A", "", created))
        store.state.put(name, "ns", "k", 1)
        store.state.put_blob(name, "b", b"x")
        store.state.next_counter(name, "c", start=10)
    idle = store.idle(T0 + HOUR)
    assert idle == ["empty-old", "idle"]  # idle from the newest exchange, or from creation when there is none
    assert store.forget(idle) == 2
    assert store.journal.last_activity() == {"busy": recent}
    assert [r.id for r in store.sessions.all()] == ["busy", "empty-new"]
    assert store.sessions.for_token("token-idle") is None and store.sessions.attestations("idle") == []
    assert (store.state.get("idle", "ns", "k"), store.state.get_blob("idle", "b")) == (None, None)
    assert store.state.next_counter("idle", "c", start=10) == 10
    assert store.state.get("empty-old", "ns", "k") is None
    assert store.state.get("busy", "ns", "k") == StateItem(1, 1) and store.state.get_blob("busy", "b") == b"x"
    assert store.state.next_counter("busy", "c") == 11


def test_close_is_once_and_says_so(store_url):
    store = open_store(store_url)
    store.journal.record(exchange())
    assert not store.closed
    store.close()
    store.close()
    assert store.closed
    again = open_store(store_url)
    try:
        assert again.journal.count_exchanges(ExchangeFilter(session="s")) == 1
    finally:
        again.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_connections_of_its_own(store):
    store.journal.record(exchange())  # the parent's connections are open when it forks
    store.state.put("s", "ns", "k", 1)
    pid = os.fork()
    if pid == 0:  # the child: writes through the same store object, then ends without closing the parent's handles
        code = 1
        try:
            store.journal.record(exchange(session="child"))
            store.state.put("s", "ns", "k", 2, expect_version=1)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.journal.record(exchange())  # the parent's own connections still work
    assert store.journal.count_exchanges(ExchangeFilter()) == 3
    assert store.state.get("s", "ns", "k") == StateItem(2, 2)


# --- PostgreSQL only ---------------------------------------------------------------------------------------------
def test_postgres_open_errors_say_where_in_one_line():
    pytest.importorskip("psycopg")
    with pytest.raises((ValueError, OSError)) as error:
        open_store("postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2")
    message = str(error.value)
    assert "127.0.0.1:1" in message and "nowhere" in message and "\n" not in message
    with pytest.raises(ValueError, match="not a PostgreSQL connection URL"):
        open_store("postgresql://localhost/db?no_such_option=1")


def test_postgres_missing_database_says_how_to_create_it():
    if postgres_db.unavailable():
        pytest.skip(postgres_db.unavailable())
    url = postgres_db.database_url().rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(OSError, match="no_such_database_here.*createdb"):
        open_store(url)


def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install 'spine-sandbox\[postgres\]'"):
        open_store("postgresql://localhost/db")


def test_postgres_replicas_starting_together_create_the_schema_once(postgres_url):
    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: open_store(postgres_url), range(6)))
    try:
        stores[0].journal.record(exchange())
        assert all(s.journal.count_exchanges(ExchangeFilter()) == 1 for s in stores)
    finally:
        for each in stores:
            each.close()


def test_postgres_calls_take_one_round_trip(postgres_url):
    from sandbox.journal.postgres import round_trips

    def trips(call) -> int:
        call()  # the first use of a statement may prepare it; the steady state is what counts
        before = round_trips()
        call()
        return round_trips() - before

    store = open_store(postgres_url)
    try:
        findings = [Finding.passed(f"R{n}", "ok") for n in range(10)]
        assert trips(lambda: store.journal.record(exchange(findings=findings), ["k1", "k2"])) == 1
        assert trips(lambda: store.state.put("s", "ns", "k", 1)) == 1
        assert trips(lambda: store.state.get("s", "ns", "k")) == 1
        assert trips(lambda: store.state.claim("s", "jti", new_exchange_id(), time.time() + 60)) == 1
        assert trips(lambda: store.state.next_counter("s", "c")) == 1

        def send():  # as a MESH send: the token used up and writes nobody reads back, all sent at the block's end
            with store.state.transaction("s"):
                store.state.use("s", "tokens", new_exchange_id(), time.time() + 60)
                store.state.put_blob("s", new_exchange_id(), b"body")
                store.state.write("s", "inbox", new_exchange_id(), {"t": 1})
                store.state.write("s", "messages", new_exchange_id(), {"m": 1}, create_only=True)

        def read_then_write():  # BEGIN, the lock and the read together; the write with the COMMIT
            with store.state.transaction("s"):
                store.state.get("s", "messages", "m")
                store.state.write("s", "messages", "m", {"m": 2})

        assert trips(send) == 1
        assert trips(read_then_write) == 2

        def nothing():
            with store.state.transaction("s"):
                pass

        assert trips(nothing) == 0
    finally:
        store.close()
