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
from weakref import WeakKeyDictionary

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
OwnConfig = mesh_config.MeshConfig | None  # a session's own configuration; None: the default serves
# Sessions this worker has read, by store and session: (the store's stamp of the namespace then, its items, the
# configuration they give). Every request reads its session; while nobody changes it, checking the stamp costs one
# lookup instead of reading, decoding and (for a session with its own configuration) matching every item again.
_read_sessions: WeakKeyDictionary[Store, dict[str, tuple[int, dict[str, StateItem], OwnConfig]]] = WeakKeyDictionary()


def load(sandbox, session: str) -> MeshSession:
    """The session as stored now; cached for the rest of the request so checks and the handler agree. `sandbox` may
    be a function that returns it (called only when the session must be read)."""
    ex = current.exchange()
    cache = ex.cache.setdefault("mesh.sessions", {}) if ex is not None else {}
    if session in cache:
        return cache[session]
    sandbox = sandbox() if callable(sandbox) else sandbox
    store = sandbox.store
    # Taken before the items are read: a change in between moves it, and the next request reads again.
    stamp = store.state.stamp(session, SESSION_NS)
    read = _read_sessions.setdefault(store, {})
    kept = read.get(session)
    if stamp is not None and kept is not None and kept[0] == stamp:
        items, own = dict(kept[1]), kept[2]  # a copy: put() and forget() change the request's own
    else:
        items = store.state.items(session, SESSION_NS)
        own = _own_config(session, items.get("config"))
        if stamp is not None:
            if len(read) >= 1024:
                read.clear()
            read[session] = (stamp, dict(items), own)
    config = own if own is not None else sandbox.extensions[EXTENSION]
    cache[session] = found = MeshSession(store, session, config, items)
    return found


def _own_config(session: str, override: StateItem | None) -> OwnConfig:
    """The session's own configuration; None when it has none (or a broken one): the default serves."""
    if override is None:
        return None
    text = json.dumps(override.value, sort_keys=True)
    config = _parsed.get(text)
    if config is None:
        if len(_parsed) > 256:
            _parsed.clear()
        try:
            config = _parsed[text] = mesh_config.parse(override.value, f"session {session} configuration")
        except mesh_config.ConfigError as exc:  # stored before a bound it breaks: the default serves instead
            _warn_once(session, "config", f"using the default MESH configuration: {exc}")
    return config


def forget_cached(session: str) -> None:
    ex = current.exchange()
    if ex is not None:
        ex.cache.setdefault("mesh.sessions", {}).pop(session, None)
