"""The tables, created and migrated when a store opens. MIGRATIONS[n] takes the schema from version n to n+1; a
change to the schema is a new entry at the end (never an edit of one already released). Steps run under a
session-level advisory lock, so replicas starting together apply each step once, and each step commits together
with its row in schema_version.

Text columns are COLLATE "C": ordered by code point, as the embedded journal orders them, whatever the database's
locale. JSON is kept as TEXT, as Python wrote it: JSONB would reorder object keys and refuse \\u0000.
"""

from __future__ import annotations

import psycopg

from sandbox.journal.postgres.database import execute

T = 'TEXT COLLATE "C"'

MIGRATIONS = [
    f"""
CREATE TABLE exchanges (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id {T} NOT NULL UNIQUE,
    session {T} NOT NULL,
    service {T} NOT NULL,
    operation {T} NOT NULL,
    scenario {T},
    started_at DOUBLE PRECISION NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    method {T} NOT NULL,
    path {T} NOT NULL,
    query_string {T} NOT NULL,
    client {T} NOT NULL,
    request_headers TEXT NOT NULL,  -- JSON [[name, value], ...]
    request_body BYTEA NOT NULL,
    status BIGINT NOT NULL,
    response_headers TEXT NOT NULL,
    response_body BYTEA NOT NULL,
    n_pass INTEGER NOT NULL, n_fail INTEGER NOT NULL, n_warning INTEGER NOT NULL, n_info INTEGER NOT NULL,
    findings TEXT,  -- JSON [[requirement, outcome, message, location, rejected_status, rejected_code], ...]; NULL: none
    damage TEXT  -- NULL, or why the row could not be stored whole
);
CREATE INDEX exchanges_session ON exchanges (session, seq);
CREATE INDEX exchanges_service ON exchanges (session, service, seq);  -- latest(): one index step, whatever the stats
CREATE TABLE finding_index (
    session {T} NOT NULL,
    requirement {T} NOT NULL,
    outcome {T} NOT NULL,
    exchange_seq BIGINT NOT NULL,
    position INTEGER NOT NULL,  -- the finding's place in its exchange's findings
    PRIMARY KEY (session, requirement, outcome, exchange_seq, position)
);
CREATE TABLE exchange_keys (
    session {T} NOT NULL,
    key {T} NOT NULL,  -- a long key: its digest
    exchange_seq BIGINT NOT NULL
);
CREATE INDEX exchange_keys_lookup ON exchange_keys (session, key, exchange_seq);
CREATE TABLE sessions (
    id {T} PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    plan {T},
    supplier {T} NOT NULL,
    system {T} NOT NULL,
    token_hash {T} UNIQUE
);
CREATE TABLE attestations (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session {T} NOT NULL,
    requirement {T} NOT NULL,
    verdict {T} NOT NULL,
    attested_by {T} NOT NULL,
    note {T} NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX attestations_session ON attestations (session, seq);
CREATE TABLE state (
    session {T} NOT NULL,
    namespace {T} NOT NULL,
    key {T} NOT NULL,  -- a long key: its digest, with the key itself in long_key
    long_key {T},
    value TEXT NOT NULL,  -- JSON
    version BIGINT NOT NULL,
    PRIMARY KEY (session, namespace, key)
);
CREATE TABLE counters (
    session {T} NOT NULL,
    name {T} NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (session, name)
);
CREATE TABLE blobs (
    session {T} NOT NULL,
    key {T} NOT NULL,
    long_key {T},
    data BYTEA NOT NULL,
    PRIMARY KEY (session, key)
);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;  -- chunks are mostly compressed already: not again
CREATE TABLE claims (
    session {T} NOT NULL,
    namespace {T} NOT NULL,
    key {T} NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session, namespace, key)
);
CREATE INDEX claims_expiry ON claims (expires_at);
""",
]


def migrate(conn: psycopg.Connection, lock_key: int) -> int:
    """Bring the schema up to date; returns its version. Refuses a schema newer than this code knows."""
    execute(conn, "SELECT pg_advisory_lock(%s)", (lock_key,))
    try:
        execute(conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                      "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        current = execute(conn, "SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise ValueError(f"the database's schema is at version {current}, newer than this sandbox's "
                             f"({len(MIGRATIONS)}): upgrade spine-sandbox")
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            with conn.transaction():
                execute(conn, step)
                execute(conn, "INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return len(MIGRATIONS)
    finally:
        execute(conn, "SELECT pg_advisory_unlock(%s)", (lock_key,))
