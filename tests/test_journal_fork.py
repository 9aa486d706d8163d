"""No journal handle crosses a fork: a closed store holds nothing open (the server's parent closes its store before
Granian forks the workers), and a child forked from a process with an open store writes through handles of its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.journal.sqlite import open_embedded
from sandbox.journal.store import ExchangeFilter

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from /proc (Linux)")


def open_files_under(folder: Path) -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def exchange(session: str) -> Exchange:
    return Exchange(new_exchange_id(), session, "pds", "get-patient", time.time(), 1.0,
                    RecordedRequest("GET", "/Patient/9000000009"), RecordedResponse(200, [], b"{}"))


def test_close_leaves_nothing_of_the_journal_open_in_any_thread(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    store.journal.record(exchange("s"))
    used, done = threading.Event(), threading.Event()

    def other_thread():  # still alive when the store closes: its connection and lock file close all the same
        store.journal.record_many([exchange("s")])
        used.set()
        done.wait(10)

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        assert used.wait(10)
        assert store.journal.count_exchanges(ExchangeFilter(session="s")) == 2
        assert open_files_under(tmp_path)
        store.close()
        assert open_files_under(tmp_path) == []
    finally:
        done.set()
        thread.join()


def test_a_child_forked_with_the_store_open_writes_through_handles_of_its_own(tmp_path):
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    try:
        store.journal.record_many([exchange("parent")])  # the parent holds a connection and the writers' lock file
        lock = str(tmp_path / "journal.sqlite3.lock")
        assert lock in open_files_under(tmp_path)
        pid = os.fork()
        if pid == 0:  # the child: exits 0 only if it never saw the parent's lock file and could write
            code = 1
            try:
                inherited = lock in open_files_under(tmp_path)
                store.journal.record(exchange("child"))
                store.journal.record_many([exchange("child")])
                code = 3 if inherited else 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung on the journal")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(status) == 0, "the child kept the parent's lock file, or could not write"
        assert store.journal.count_exchanges(ExchangeFilter(session="child")) == 2
        store.journal.record_many([exchange("parent")])
        assert store.journal.count_exchanges(ExchangeFilter(session="parent")) == 2
    finally:
        store.close()


def test_what_a_worker_records_is_in_the_other_workers_history_at_once(tmp_path):
    """History checks read the newest exchange under a key from the index the state file keeps (journal/recent.py),
    not from the SQLite journal, which imports what workers spool only in the background: an exchange another worker
    process has just answered must still be there, bodies included."""
    store = open_embedded(str(tmp_path / "journal.sqlite3"))
    try:
        answered = exchange("s")
        answered.response.body = b'{"resourceType": "Patient", "id": "9000000009"}'
        pid = os.fork()
        if pid == 0:  # the other worker: records and exits at once, before any import could have run
            code = 1
            try:
                store.journal.record(answered, ["pds:patient:9000000009"])
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        found = store.journal.related("s", "pds:patient:9000000009")
        assert [e.id for e in found] == [answered.id]
        assert found[0].response.status == 200 and found[0].request.path == "/Patient/9000000009"
        assert found[0].response.body == answered.response.body  # read from the journal when asked for
        assert store.journal.latest("s", "pds")[0].id == answered.id
    finally:
        store.close()
