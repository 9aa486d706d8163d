"""The PostgreSQL database storage tests run against: SANDBOX_TEST_DATABASE_URL, or a local default, created when it
is missing. Each test gets a schema of its own in it (dropped after), so tests never see each other's rows."""

from __future__ import annotations

import atexit
import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_URL = "postgresql://postgres@localhost:5432/spine_sandbox_test"


def database_url() -> str:
    return os.environ.get("SANDBOX_TEST_DATABASE_URL") or DEFAULT_URL


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (a reason to skip with), or None once the database exists."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - the store needs it
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    url = database_url()
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return None
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            return f"PostgreSQL is not reachable at {_where(url)} (set SANDBOX_TEST_DATABASE_URL): {_line(error)}"
    try:  # the server answers, the database is missing: create it, through the server's maintenance database
        with psycopg.connect(_with_database(url, "postgres"), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{urlsplit(url).path.lstrip("/")}"')
    except psycopg.errors.DuplicateDatabase:
        pass  # another test run created it meanwhile
    except psycopg.Error as error:
        return f"cannot create the test database at {_where(url)}: {_line(error)}"
    return None


def fresh_database() -> str:
    """The URL of a new, empty database (for servers started as processes of their own), dropped when this process
    ends; skips the test when PostgreSQL cannot be used."""
    import pytest

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    url = database_url()
    name = f"spine_sandbox_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    _created.append(name)
    return _with_database(url, name)


_created: list[str] = []


@atexit.register
def _drop_created() -> None:
    if not _created:
        return
    import psycopg

    try:
        with psycopg.connect(database_url(), autocommit=True, connect_timeout=5) as admin:
            for name in _created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass  # the server went away: nothing left to tidy


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema (its search_path), dropped when the block ends."""
    import psycopg

    url = database_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _with_options(url, f"-csearch_path={schema}")
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _with_options(url: str, options: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
