"""Stores are closed by whoever opened them: a mock_spine() block, the pytest plugin's run, the `app` fixture, a
start that fails. Counted in /proc/self/fd: no file handle outlives its owner (the suite runs under
`ulimit -n 1024` in CI)."""

from __future__ import annotations

import gc
import os
import uuid
from pathlib import Path

import pytest
import requests

from sandbox.inprocess import mock_spine
from sandbox.runtime import Sandbox, StartupError
from tests.conftest import PDS_BASE, TEST_POPULATION

if not Path("/proc/self/fd").is_dir():
    pytest.skip("counting file handles needs /proc/self/fd", allow_module_level=True)

pytest_plugins = ["pytester"]

PATIENT = "https://int.api.service.nhs.uk" + PDS_BASE + "/Patient/9000000009"


def open_files() -> list[str]:
    """What this process has open, by target (sockets and pipes by kind)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return sorted(targets)


def growth(before: list[str]) -> list[str]:
    gc.collect()
    after = open_files()
    for target in before:
        if target in after:
            after.remove(target)
    return after


def read_patient(spine, timeout=None) -> int:
    return requests.get(PATIENT, headers={"X-Request-ID": str(uuid.uuid4()), **spine.auth_headers},
                        timeout=timeout).status_code


def blocks(settings, count: int) -> list[str]:
    """`count` mock_spine() blocks, each answering from several threads (each thread opens its own connection and
    lock file), one of them with a plan and a report read after the block."""
    from concurrent.futures import ThreadPoolExecutor

    with mock_spine(settings=settings):  # warm: imports, the shared population
        pass
    before = open_files()
    for n in range(count):
        plan = "pds-application-restricted" if n == 0 else None
        with mock_spine(settings=settings.replace(data_dir=settings.data_dir / str(n)), plan=plan) as spine:
            with ThreadPoolExecutor(3) as pool:
                assert list(pool.map(lambda _: read_patient(spine), range(3))) == [200] * 3
            assert read_patient(spine, timeout=5) == 200  # answered in the mock's own thread pool
        assert len(spine.exchanges) == 4  # evidence outlives the block: the store opens for the read, and closes
        if plan:
            assert spine.report()["metadata"]["span"]["exchanges"] == 4
    return growth(before)


def test_mock_spine_blocks_leave_no_file_open(settings):
    assert blocks(settings, 5) == []


@pytest.mark.slow
def test_fifty_mock_spine_blocks_leave_no_file_open(settings):
    assert blocks(settings, 50) == []


def test_a_decorated_function_called_twice_reopens_its_store(settings):
    mock = mock_spine(settings=settings)

    @mock
    def client_call() -> int:
        return read_patient(mock)

    before = open_files()
    assert [client_call(), client_call()] == [200, 200]
    assert growth(before) == [] and len(mock.exchanges) == 2


def test_a_mock_refused_at_construction_closes_what_it_opened(settings):
    from sandbox.assurance.sessions import SessionError

    with mock_spine(settings=settings):
        pass
    before = open_files()
    with pytest.raises(SessionError, match="no assurance plan 'missing'"):
        mock_spine(settings=settings, plan="missing")
    assert growth(before) == []


def test_a_start_that_fails_after_opening_the_store_closes_it(settings):
    Sandbox.build(settings).close()
    before = open_files()
    with pytest.raises(StartupError, match="not the MIM's schema folder"):
        Sandbox.build(settings.replace(hl7v3_schemas=str(settings.data_dir)))  # the spine service's start refuses
    assert growth(before) == []


def test_the_app_fixture_closes_its_store_at_teardown(pytester):
    pytester.makeconftest("from tests.conftest import app, client, database_url, settings  # noqa: F401  (not the guards)")
    pytester.makepyfile(test_many="""
import pytest

@pytest.mark.parametrize("n", range(5))
def test_uses_an_app(client, n):
    assert client.get("/_sandbox/health").status_code == 200
""")
    before = open_files()
    pytester.runpytest_inprocess("-q", "-p", "no:randomly", "-p", "no:cacheprovider").assert_outcomes(passed=5)
    assert growth(before) == []


def test_the_pytest_plugin_closes_the_runs_store(pytester):
    pytester.makeconftest(f"""
import pytest
from sandbox.settings import Settings

@pytest.fixture(scope="session")
def spine_settings(tmp_path_factory):
    return Settings.load(environ={{}}, data_dir=tmp_path_factory.mktemp("spine"), population={TEST_POPULATION})
""")
    pytester.makepyfile(test_supplier="""
import uuid

import pytest
import requests

@pytest.mark.parametrize("n", range(50))
def test_reads(spine, n):
    url = "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4/Patient/9000000009"
    assert requests.get(url, headers={"X-Request-ID": str(uuid.uuid4()), **spine.auth_headers}).ok
""")
    before = open_files()
    result = pytester.runpytest_inprocess("-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                                          "--spine-plan", "pds-application-restricted",
                                          "--spine-report", str(pytester.path / "reports"))
    result.assert_outcomes(passed=50)
    assert growth(before) == []
    assert (pytester.path / "reports" / "report.json").is_file()  # judged after the store closed: reopened for it
