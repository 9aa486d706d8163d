"""PostgreSQL storage, for several replicas on one database (SANDBOX_DATABASE_URL=postgresql://…): the journal,
totals, sessions and session state of sandbox.journal.store, each a class of its own over one connection pool per
process. Replicas share nothing but the database, so every guarantee is kept by the database itself: a unique key,
a conditional upsert, a transaction behind an advisory lock.

psycopg is an optional dependency (the `postgres` extra): it is imported only when a store is opened.
"""

from __future__ import annotations

import hashlib

from sandbox.journal.store import Store

MISSING = "PostgreSQL needs the postgres extra: pip install 'spine-sandbox[postgres]'"


def open_postgres(url: str, threads: int = 1) -> Store:
    """Connect, create or migrate the tables, and return the store (its pool opens on first use, in each process).
    Raises ValueError or ConnectionError (an OSError) with one line that says where and what to do."""
    try:
        import psycopg  # noqa: F401 - the extra is installed
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ValueError(MISSING) from None
    from sandbox.journal.postgres.database import Database, connect, conninfo, execute, first_line
    from sandbox.journal.postgres.journal import PostgresJournal
    from sandbox.journal.postgres.schema import migrate
    from sandbox.journal.postgres.sessions import PostgresSessions
    from sandbox.journal.postgres.state import PostgresState
    from sandbox.journal.postgres.totals import PostgresTotals

    info, where = conninfo(url)
    conn = connect(info, where)
    try:
        encoding = conn.info.parameter_status("server_encoding")
        if encoding != "UTF8":
            raise ValueError(f"{where} is encoded {encoding}; the journal needs a UTF8 "
                             "database (createdb -E UTF8 -T template0 …)")
        schema = execute(conn, "SELECT current_schema()").fetchone()[0]
        if schema is None:
            raise ValueError(f"{where} has no schema on its search_path to create the tables in")
        migrate(conn, _lock_key("schema", schema))
    except psycopg.OperationalError as error:
        raise ConnectionError(f"{where}: {first_line(error)}") from None
    except psycopg.Error as error:  # e.g. no permission to create tables
        raise ValueError(f"cannot prepare the tables in {where}: {first_line(error)}") from None
    finally:
        conn.close()
    db = Database(info, _lock_key("transaction", schema), threads)
    return Store(PostgresJournal(db), PostgresTotals(db), PostgresSessions(db), PostgresState(db), on_close=db.close,
                 held=db.held)


def round_trips() -> int:
    """Statements this thread has sent to PostgreSQL so far (benchmarks read it before and after a call)."""
    from sandbox.journal.postgres import database

    return database.sent()


def _lock_key(purpose: str, schema: str) -> int:
    """An advisory lock key of this sandbox's (advisory locks are per database): one per purpose and schema, so
    sandboxes in different schemas of one database never wait for each other."""
    digest = hashlib.blake2b(f"spine-sandbox {purpose} {schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
