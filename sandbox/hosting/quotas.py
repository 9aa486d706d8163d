"""Per-tenant quotas of a hosted sandbox, so one tenant cannot exhaust the host for the others.

- Sessions created per minute per tenant (SANDBOX_QUOTA_SESSIONS_PER_MINUTE): 429 with Retry-After, in the control
  API's JSON error shape.
- Stored bytes per tenant (SANDBOX_QUOTA_STORED_BYTES): the request and response bodies of every exchange in the
  tenant's sessions (what the journal keeps; payloads a service holds, such as MESH messages and Spine outbox
  bodies, arrive as request bodies and are counted with them). Over it: 507 in the service's own error shape.
- Exchanges per session (SANDBOX_QUOTA_EXCHANGES_PER_SESSION): 429 in the service's own error shape.

A request refused by a quota is answered but not journaled (header X-Sandbox-Journal says so): journaling it would
grow exactly what the quota bounds. Sessions no tenant holds (`anonymous`, the admin's) share one byte budget.
"""

from __future__ import annotations

import math
import time

from flask import Response, after_this_request, jsonify
from werkzeug.exceptions import abort

from sandbox.conformance.findings import SpineError
from sandbox.hosting.keys import HOSTING_SESSION
from sandbox.hosting.ownership import owner_of
from sandbox.journal.store import Store, VersionConflict
from sandbox.web import current

CREATED = "quota.sessions-created"  # _hosting state, key: tenant -> creation times within the last minute
USAGE = "quota.stored-bytes"  # _hosting state, key: tenant (or NO_TENANT) -> bytes
EXCHANGES = "quota.exchanges"  # a counter of each session
NO_TENANT = "-"
WINDOW_S = 60.0
STORAGE_RETRY_S = 3600  # stored bytes do not free themselves: a long Retry-After
CODES = {429: "TOO_MANY_REQUESTS", 507: "INSUFFICIENT_STORAGE"}


def admit_new_session(sandbox, tenant: str | None) -> None:
    """Count a session a tenant is creating now; over the per-minute quota, answer 429 (control JSON shape, with
    Retry-After) instead. Nothing to count outside hosted mode or for admin's sessions."""
    if not sandbox.settings.hosted or tenant is None:
        return
    limit = sandbox.settings.quota_sessions_per_minute
    store = sandbox.store
    while True:
        now = time.time()
        item = store.state.get(HOSTING_SESSION, CREATED, tenant)
        recent = [t for t in (item.value if item else []) if now - t < WINDOW_S]
        if len(recent) >= limit:
            wait = max(1, math.ceil(WINDOW_S - (now - min(recent))))
            response = jsonify(error="too_many_requests", message=(
                f"this tenant created {len(recent)} sessions in the last minute, its quota "
                f"(SANDBOX_QUOTA_SESSIONS_PER_MINUTE={limit}); retry after {wait} s, or reuse a session you have "
                "(GET /_sandbox/sessions lists them)"))
            response.status_code = 429
            response.headers["Retry-After"] = str(wait)
            abort(response)  # answered as it is: the Retry-After header stays
        try:
            if item is None:
                store.state.put(HOSTING_SESSION, CREATED, tenant, [now], create_only=True)
            else:
                store.state.put(HOSTING_SESSION, CREATED, tenant, [*recent, now], expect_version=item.version)
            return
        except VersionConflict:
            continue  # another request of the tenant at the same moment: count again


def admit_exchange(sandbox, ex) -> Response | None:
    """At the pipeline's open step, in hosted mode: the answer when the exchange's session or tenant is over its
    quota (not journaled), else None, having counted the exchange and arranged for its bodies to be counted."""
    store = sandbox.store
    settings = sandbox.settings
    bucket = owner_of(store, ex.session) or NO_TENANT
    used = stored_bytes(store, bucket)
    if used >= settings.quota_stored_bytes:
        who = "this tenant's sessions" if bucket != NO_TENANT else "sessions of no tenant"
        return _refuse(ex, 507, f"The sandbox stores no more for {who}: they hold {used} bytes, the quota "
                       f"(SANDBOX_QUOTA_STORED_BYTES={settings.quota_stored_bytes}). Ask the sandbox's operator to "
                       "raise it or to clear old sessions.", STORAGE_RETRY_S)
    count = store.state.next_counter(ex.session, EXCHANGES, 1)
    limit = settings.quota_exchanges_per_session
    if count > limit:
        return _refuse(ex, 429, f"Session {ex.session} has had {limit} exchanges, its quota "
                       f"(SANDBOX_QUOTA_EXCHANGES_PER_SESSION={limit}); create a new session to go on.",
                       STORAGE_RETRY_S)

    @after_this_request
    def _charge(response: Response) -> Response:
        size = len(ex.body) + (0 if response.is_streamed else len(response.get_data()))
        charge(store, bucket, size)
        return response

    return None


def stored_bytes(store: Store, bucket: str) -> int:
    item = store.state.get(HOSTING_SESSION, USAGE, bucket)
    return int(item.value) if item else 0


def charge(store: Store, bucket: str, size: int) -> None:
    while True:
        item = store.state.get(HOSTING_SESSION, USAGE, bucket)
        try:
            if item is None:
                store.state.put(HOSTING_SESSION, USAGE, bucket, size, create_only=True)
            else:
                store.state.put(HOSTING_SESSION, USAGE, bucket, int(item.value) + size, expect_version=item.version)
            return
        except VersionConflict:
            continue


def _refuse(ex, status: int, message: str, retry_after: int) -> Response:
    """The refusal in the service's own error shape, outside the exchange so that it is not journaled."""
    service = ex.service
    code = (service.http_error_codes.get(status) if service else None) or CODES[status]
    error = SpineError(status, code, message)
    current.set_exchange(None)
    if service is not None:
        response = service.render_error(error)
    else:
        response = jsonify(error=code, message=message)
        response.status_code = status
    response.headers["Retry-After"] = str(retry_after)
    response.headers["X-Sandbox-Journal"] = "not journaled: over a hosted-mode quota"
    return response
