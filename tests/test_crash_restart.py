"""kill -9 under load, then start again on the same data dir: the server always comes up and answers, and every
exchange answered before the kill is in the journal afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from sandbox.journal import open_store
from sandbox.local_server import LocalServer
from sandbox.settings import Settings
from tests.conftest import PDS_BASE, TEST_POPULATION, pds_headers

LOAD_THREADS = 6
HEALTHY_WITHIN_S = 20  # a restart that hangs (it used to wait in SQLite's busy handler for ever) fails here


class Load:
    """Threads calling PDS until stopped; keeps every exchange id the server answered with."""

    def __init__(self, url: str):
        self.url = url
        self.answered: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self) -> None:
        session = requests.Session()
        numbers = ("9000000009", "9000000017", "9000000025")
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                response = session.get(f"{self.url}{PDS_BASE}/Patient/{numbers[n % len(numbers)]}",
                                       headers=pds_headers(), timeout=10)
            except requests.RequestException:  # the server was killed mid-request: not answered, not counted
                continue
            if "X-Sandbox-Exchange" in response.headers:
                self.answered.append(response.headers["X-Sandbox-Exchange"])

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.answered) >= count, f"only {len(self.answered)} answers under load"


def start(settings: Settings) -> LocalServer:
    started = time.monotonic()
    server = LocalServer(settings, workers=2)
    try:
        server.start(timeout=HEALTHY_WITHIN_S)
    except TimeoutError as error:
        pytest.fail(f"restart {time.monotonic() - started:.1f} s without answering: {error}")
    return server


def kill_group(server: LocalServer) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def workers_of(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def assert_journaled(settings: Settings, answered: list[str]) -> None:
    store = open_store(settings.journal_url)
    try:
        missing = [ex_id for ex_id in answered if store.journal.exchange(ex_id) is None]
    finally:
        store.close()
    assert not missing, f"{len(missing)} of {len(answered)} answered exchanges are not in the journal: {missing[:5]}"


@pytest.fixture
def crash_settings(tmp_path) -> Settings:
    return Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION)


def kill_and_restart(settings: Settings, rounds: int) -> list[str]:
    answered: list[str] = []
    for _ in range(rounds):
        server = start(settings)
        with Load(server.url) as load:
            load.wait_for(50)
            kill_group(server)  # while the load is still running: requests are cut off mid-flight
        answered += load.answered
    server = start(settings)
    try:
        response = requests.get(f"{server.url}{PDS_BASE}/Patient/9000000009", headers=pds_headers(), timeout=10)
        assert response.status_code == 200  # not only healthy: it answers, and journals, a real request
        answered.append(response.headers["X-Sandbox-Exchange"])
    finally:
        kill_group(server)
    return answered


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups (POSIX)")
def test_every_restart_after_kill_9_of_the_whole_server_answers_and_loses_nothing(crash_settings):
    answered = kill_and_restart(crash_settings, rounds=3)
    assert_journaled(crash_settings, answered)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups (POSIX)")
def test_twenty_kill_9_restarts_in_a_row(crash_settings):
    answered = kill_and_restart(crash_settings, rounds=20)
    assert_journaled(crash_settings, answered)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_a_worker_killed_under_load_is_replaced_and_nothing_answered_is_lost(crash_settings):
    server = start(crash_settings)
    try:
        with Load(server.url) as load:
            load.wait_for(50)
            workers = workers_of(server.process.pid)
            assert len(workers) == 2
            victim = sorted(workers)[0]
            os.kill(victim, signal.SIGKILL)
            # The other worker keeps answering; Granian starts a new one in the dead one's place.
            deadline = time.monotonic() + HEALTHY_WITHIN_S
            while time.monotonic() < deadline and len(workers_of(server.process.pid) - {victim}) < 2:
                time.sleep(0.1)
            replaced = workers_of(server.process.pid) - {victim}
            assert len(replaced) == 2, "the killed worker was not replaced"
            count = len(load.answered)
            load.wait_for(count + 100)  # both workers answer after the replacement
        response = requests.get(f"{server.url}/_sandbox/health", timeout=5)
        assert response.ok
    finally:
        kill_group(server)
    answered = load.answered
    kill_group(start(crash_settings))  # and after a kill -9 of the whole group on top, it comes up again
    assert_journaled(crash_settings, answered)
