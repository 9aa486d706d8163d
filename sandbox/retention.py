"""Retention: sessions idle for longer than --retain-days are forgotten whole (exchanges, findings, records,
attestations, state, and what services index about them), so a hosted sandbox does not grow for ever. Report files
already produced are files of their own and stay as they are.

Every worker process of every replica runs a round an hour; a claim per hour lets exactly one of them purge.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.assurance.sessions import ACCESS_TOKEN_STATE, ACCESS_TOKENS
from sandbox.hosting import ownership
from sandbox.journal.store import Store

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

log = logging.getLogger(__name__)

DAY_S = 86_400
ROUND_EVERY_S = 3_600
RETENTION_SESSION = "_retention"  # reserved (session ids cannot start with '_'): one claim per round
ROUNDS = "rounds"


def purge(sandbox: Sandbox, older_than_days: float, dry_run: bool = False) -> tuple[list[str], int]:
    """Forget the sessions idle for longer than `older_than_days`; returns them and how many exchanges went (with
    `dry_run`, what would go: the sessions, and 0)."""
    store = sandbox.store
    sessions = store.idle(time.time() - older_than_days * DAY_S)
    if dry_run or not sessions:
        return sessions, 0
    exchanges = store.forget(sessions)
    for service in sandbox.services.values():
        if service.forget:
            service.forget(sandbox, sessions)
    ownership.forget(store, sessions)
    forget_entries(store, ACCESS_TOKEN_STATE, ACCESS_TOKENS, sessions, lambda _key, grant: grant.get("session"))
    return sessions, exchanges


def forget_entries(store: Store, reserved: str, namespace: str, sessions: list[str],
                   session_of: Callable[[str, Any], str | None]) -> None:
    """Delete the entries of a shared index (a reserved session's namespace) that belong to purged sessions;
    `session_of(key, value)` says whose an entry is."""
    purged = set(sessions)
    for key, item in store.state.items(reserved, namespace).items():
        if session_of(key, item.value) in purged:
            store.state.delete(reserved, namespace, key)


class RetentionRounds:
    """A daemon thread purging once at start and then every hour, while the sandbox is open."""

    def __init__(self, sandbox: Sandbox):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=_rounds, args=(weakref.ref(sandbox), self._stopped), daemon=True,
                                        name="retention")
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


def _rounds(ref: weakref.ref, stopped: threading.Event) -> None:
    wait = 0.0
    while not stopped.wait(wait):
        wait = ROUND_EVERY_S
        sandbox = ref()
        if sandbox is None or sandbox.store.closed:
            return
        try:
            now = time.time()
            if sandbox.store.state.claim(RETENTION_SESSION, ROUNDS, str(int(now // ROUND_EVERY_S)),
                                         now + 2 * ROUND_EVERY_S):
                sessions, exchanges = purge(sandbox, sandbox.settings.retain_days)
                if sessions:
                    log.info("retention: %d sessions idle for over %d days purged, with %d exchanges", len(sessions),
                             sandbox.settings.retain_days, exchanges)
        except Exception:
            log.exception("retention round failed; the next runs in %d s", ROUND_EVERY_S)
        del sandbox
