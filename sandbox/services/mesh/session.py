"""One session's MESH world as a request sees it: its configuration, its clock, and what it remembers about clients.

Everything lives in the sandbox's store, so worker processes agree and a restart loses nothing. The small
per-session items (configuration override, clock offset, next expiry, last poll, back-off) share one namespace, read
with one query per request.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sandbox.journal.store import StateItem, Store
from sandbox.services.mesh import config as mesh_config
from sandbox.web import current

SESSION_NS = "mesh.session"
EXTENSION = "mesh"  # sandbox.extensions key: the default configuration


@dataclass
class MeshSession:
    store: Store
    session: str
    config: mesh_config.MeshConfig
    items: dict[str, StateItem]

    @property
    def offset(self) -> float:
        item = self.items.get("clock")
        return float(item.value["offset"]) if item else 0.0

    def now(self) -> float:
        """The session's clock: real time plus however far a test has advanced it."""
        return time.time() + self.offset

    def item(self, key: str) -> Any:
        found = self.items.get(key)
        return found.value if found else None

    def put(self, key: str, value: Any) -> None:
        self.store.put_state(self.session, SESSION_NS, key, value)
        self.items[key] = StateItem(value, (self.items[key].version + 1) if key in self.items else 1)

    def forget(self, key: str) -> None:
        if key in self.items:
            self.store.delete_state(self.session, SESSION_NS, key)
            del self.items[key]


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
    items = sandbox.store.list_state(session, SESSION_NS)
    override = items.get("config")
    if override is None:
        config = sandbox.extensions[EXTENSION]
    else:
        text = json.dumps(override.value, sort_keys=True)
        config = _parsed.get(text)
        if config is None:
            if len(_parsed) > 256:
                _parsed.clear()
            config = _parsed[text] = mesh_config.parse(override.value, f"session {session} configuration")
    cache[session] = found = MeshSession(sandbox.store, session, config, items)
    return found


def forget_cached(session: str) -> None:
    ex = current.exchange()
    if ex is not None:
        ex.cache.setdefault("mesh.sessions", {}).pop(session, None)
