"""One session's MESH world as a request sees it: its configuration, its clock, and what it remembers about clients.

Everything lives in the sandbox's store, so worker processes agree and a restart loses nothing. The small
per-session items (configuration override, clock offset, next expiry, last poll, back-off) share one namespace, read
with one query per request.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from sandbox.journal.store import StateItem, Store
from sandbox.services.mesh import config as mesh_config
from sandbox.web import current

SESSION_NS = "mesh.session"
EXTENSION = "mesh"  # sandbox.extensions key: the default configuration
# How far a session's clock may be moved ahead: ten years is past every MESH expiry and purge, and far inside the
# dates Python can show.
MAX_CLOCK_OFFSET = 3660 * 86_400.0
log = logging.getLogger(__name__)


@dataclass
class MeshSession:
    store: Store
    session: str
    config: mesh_config.MeshConfig
    items: dict[str, StateItem]

    @property
    def offset(self) -> float:
        """The clock change stored for the session. One that is not a number within MAX_CLOCK_OFFSET (stored before it
        was bounded) is ignored with a warning, so the session keeps working; the next clock change replaces it."""
        item = self.items.get("clock")
        value = item.value.get("offset") if item and isinstance(item.value, dict) else 0.0
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not 0 <= value <= MAX_CLOCK_OFFSET:
            _warn_once(self.session, "clock", f"ignoring its stored MESH clock offset {str(value)[:40]!r} (not 0 to "
                       f"{MAX_CLOCK_OFFSET:g} s)")
            return 0.0
        return float(value)

    def now(self) -> float:
        """The session's clock: real time plus however far a test has advanced it."""
        return time.time() + self.offset

    def item(self, key: str) -> Any:
        found = self.items.get(key)
        return found.value if found else None

    def put(self, key: str, value: Any) -> None:
        self.store.state.put(self.session, SESSION_NS, key, value)
        self.items[key] = StateItem(value, (self.items[key].version + 1) if key in self.items else 1)

    def forget(self, key: str) -> None:
        if key in self.items:
            self.store.state.delete(self.session, SESSION_NS, key)
            del self.items[key]


_warned: set[tuple[str, str]] = set()


def _warn_once(session: str, what: str, text: str) -> None:
    if (session, what) not in _warned and len(_warned) < 10_000:
        _warned.add((session, what))
        log.warning("session %s: %s", session, text)


# Session configurations this worker has parsed, by their text (a version number can recur after a reset).
_parsed: dict[str, mesh_config.MeshConfig] = {}


def load(sandbox, session: str) -> MeshSession:
    """The session as stored now; cached for the rest of the request so checks and the handler agree. `sandbox` may
    be a function that returns it (called only when the session must be read)."""
    ex = current.exchange()
    cache = ex.cache.setdefault("mesh.sessions", {}) if ex is not None else {}
    if session in cache:
        return cache[session]
    sandbox = sandbox() if callable(sandbox) else sandbox
    items = sandbox.store.state.items(session, SESSION_NS)
    override = items.get("config")
    if override is None:
        config = sandbox.extensions[EXTENSION]
    else:
        text = json.dumps(override.value, sort_keys=True)
        config = _parsed.get(text)
        if config is None:
            if len(_parsed) > 256:
                _parsed.clear()
            try:
                config = _parsed[text] = mesh_config.parse(override.value, f"session {session} configuration")
            except mesh_config.ConfigError as exc:  # stored before a bound it breaks: the default serves instead
                _warn_once(session, "config", f"using the default MESH configuration: {exc}")
                config = sandbox.extensions[EXTENSION]
    cache[session] = found = MeshSession(sandbox.store, session, config, items)
    return found


def forget_cached(session: str) -> None:
    ex = current.exchange()
    if ex is not None:
        ex.cache.setdefault("mesh.sessions", {}).pop(session, None)
