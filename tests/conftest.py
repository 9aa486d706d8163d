"""Shared fixtures: an in-process app per test, a PDS client with valid headers, and a live server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from sandbox.app import create_app
from sandbox.journal.store import Store
from sandbox.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# The published specifications sit beside the repository (../shared/specs); a git worktree one level deeper
# (or SANDBOX_REFERENCE_SPECS) finds them too.
SPECS = next((p for p in (Path(os.environ.get("SANDBOX_REFERENCE_SPECS", "")), ROOT.parent / "shared" / "specs",
                          ROOT.parent.parent / "shared" / "specs") if str(p) != "." and p.is_dir()),
             ROOT.parent / "shared" / "specs")
PDS_BASE = "/personal-demographics/FHIR/R4"
TEST_POPULATION = 2_000  # small enough to index in a blink, large enough for every special kind


# Every journal store the suite opens, so the guards below close what a test (or a module's fixtures) left open:
# the suite runs under `ulimit -n 1024` in CI. What the sandbox itself opens it closes (mock_spine(), the pytest
# plugin, the `app` fixture; tests/test_store_lifecycle.py counts the file handles); this catches tests that open a
# store or build an app of their own and drop it (a store dropped unclosed keeps its handles even once collected, so
# these are strong references, until the test or module ends).
_OPENED: list[Store] = []
_open_store = Store.__init__


def _tracked_open(store, *args, **kwargs):
    _open_store(store, *args, **kwargs)
    _OPENED.append(store)


Store.__init__ = _tracked_open


def _close_opened_since(mark: int) -> None:
    for store in _OPENED[mark:]:
        if not store.closed:
            store.close()
    del _OPENED[mark:]


@pytest.fixture(autouse=True, scope="module")
def _close_module_stores():
    mark = len(_OPENED)
    yield
    _close_opened_since(mark)


@pytest.fixture(autouse=True)
def _close_test_stores():
    mark = len(_OPENED)
    yield
    _close_opened_since(mark)


@pytest.fixture(autouse=True, scope="session")
def _own_default_data_dir(tmp_path_factory):
    """The suite never touches the user's own default data dir (their journal, admin and report-signing keys) nor
    their cache (population index files): XDG_DATA_HOME and XDG_CACHE_HOME point at folders of the run's own, for
    this process and every server it starts."""
    before = {name: os.environ.get(name) for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME")}
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def spec_path(*parts: str) -> Path:
    """A published specification file, used only as an outside reference; skips the test when absent."""
    path = SPECS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference specification {path} is not available")
    return path


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION, database_url=database_url)


@pytest.fixture
def database_url():
    """The store the `app` fixture opens: the embedded one, or with SANDBOX_TEST_BACKEND=postgres a schema of the
    test's own on the test PostgreSQL (tests/postgres_db.py), so the services' own tests run on that backend too."""
    if os.environ.get("SANDBOX_TEST_BACKEND", "embedded") != "postgres":
        yield None
        return
    from tests import postgres_db

    reason = postgres_db.unavailable()
    if reason:
        pytest.fail(f"SANDBOX_TEST_BACKEND=postgres, but {reason}")
    with postgres_db.fresh_schema() as url:
        yield url


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["sandbox"].close()  # its store and every file handle (the suite runs under `ulimit -n 1024`)


@pytest.fixture
def sandbox(app):
    return app.extensions["sandbox"]


@pytest.fixture
def client(app):
    return app.test_client()


def pds_headers(**extra) -> dict:
    headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": "Bearer sandbox-test-token",
               "Accept": "application/fhir+json"}
    headers.update(extra)
    return {k: v for k, v in headers.items() if v is not None}


class PdsClient:
    """Calls PDS the way a well-behaved supplier does, unless told otherwise."""

    def __init__(self, client, session: str | None = None):
        self.client = client
        self.session = session

    def _headers(self, headers):
        base = pds_headers(**(headers or {}))
        if self.session:
            base.setdefault("X-Sandbox-Session", self.session)
        return {k: v for k, v in base.items() if v is not None}

    def get(self, path: str, headers: dict | None = None, **kwargs):
        return self.client.get(PDS_BASE + path, headers=self._headers(headers), **kwargs)

    def patch(self, path: str, json=None, headers: dict | None = None, **kwargs):
        merged = {"Content-Type": "application/json-patch+json", **(headers or {})}
        return self.client.patch(PDS_BASE + path, json=json, headers=self._headers(merged), **kwargs)

    def post(self, path: str, json=None, headers: dict | None = None, **kwargs):
        merged = {"Content-Type": "application/json", **(headers or {})}
        return self.client.post(PDS_BASE + path, json=json, headers=self._headers(merged), **kwargs)


@pytest.fixture
def pds(client) -> PdsClient:
    return PdsClient(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, data_dir: Path, port: int, extra_env: dict | None = None, args: list[str] | None = None):
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SANDBOX_POPULATION": str(TEST_POPULATION), "SANDBOX_WORKERS": "1",
               **(extra_env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir", str(data_dir), *(args or [])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)  # its own process group, so stopping it stops its workers too

    def wait(self, timeout: float = 30) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read()}")
            try:
                if requests.get(self.url + "/_sandbox/health", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still starting up
                time.sleep(0.1)
        raise TimeoutError("server did not become healthy")

    def stop(self, kill: bool = False) -> str:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            out, _ = self.process.communicate()
        return out or ""


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path / "live-data", free_port()).wait()
    yield server
    server.stop()
