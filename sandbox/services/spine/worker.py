"""The delivery worker: one thread per sandbox per process that claims due deliveries from the outbox and sends
each in a thread of its own; restarted in a forked child."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
import weakref
from typing import TYPE_CHECKING

from sandbox.journal import process
from sandbox.services.spine import journaling, outbox, sending

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

log = logging.getLogger(__name__)
STOP_WAIT_S = 10.0  # how long closing a sandbox waits for deliveries under way (each send has its own timeout)


def start(sandbox: Sandbox) -> Runner:
    """This process's delivery worker for the sandbox, started if it is not running (again after a fork). Called by
    the spine service's start hook; idempotent."""
    runner = sandbox.extensions.get(sending.EXTENSION)
    if runner is None or runner.stopped:
        runner = sandbox.extensions[sending.EXTENSION] = Runner(sandbox)
    runner.ensure_running()
    return runner


def wake(sandbox: Sandbox) -> None:
    """Something is due: wake this process's worker (started if there is none; a stopped one stays stopped)."""
    runner = sandbox.extensions.get(sending.EXTENSION)
    if runner is None:
        runner = start(sandbox)
    runner.ensure_running()
    runner.wake.set()


def stop(sandbox: Sandbox) -> None:
    """Stop this process's worker and wait (boundedly) for its sends, before the sandbox closes its store: a thread
    still inside the journal when its connection is closed would crash the process."""
    runner = sandbox.extensions.get(sending.EXTENSION)
    if runner is not None:
        runner.stop(wait_s=STOP_WAIT_S)


_runners: weakref.WeakSet[Runner] = weakref.WeakSet()


class Runner:
    """One per sandbox per process: a thread that claims due deliveries and sends each in a thread of its own."""

    def __init__(self, sandbox: Sandbox):
        self._sandbox = weakref.ref(sandbox)
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._parallel = sending.options_of(sandbox).max_parallel
        self._slots = threading.BoundedSemaphore(self._parallel)
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._under_way: dict[int, tuple[str, float]] = {}  # send thread's OS id -> (delivery id, monotonic start)
        self._reported_stuck: set[int] = set()
        _runners.add(self)

    @property
    def owner(self) -> str:
        return f"{socket.gethostname()}:{process.pid()}:{id(self):x}"

    def ensure_running(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            if self._pid == process.pid() and self._thread is not None and self._thread.is_alive():
                return
            sandbox = self._sandbox()
            if sandbox is None:
                return
            self._pid = process.pid()  # one per process: threads do not survive a fork
            self._parallel = sending.options_of(sandbox).max_parallel
            self._slots = threading.BoundedSemaphore(self._parallel)
            self._thread = threading.Thread(target=_run, args=(weakref.ref(self),), daemon=True,
                                            name="spine-delivery")
            self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self, wait_s: float = 0.0) -> None:
        """Stop claiming; with wait_s, wait that long for the thread and the sends under way to end."""
        self._stopped.set()
        self.wake.set()
        if wait_s <= 0 or self._pid != process.pid():
            return
        deadline = time.monotonic() + wait_s
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=wait_s)
        slots, taken = self._slots, 0
        try:  # every slot back means no send is under way
            while taken < self._parallel and slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                taken += 1
        finally:
            for _ in range(taken):
                slots.release()

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it at the fork: held for good here
        with self._lock:
            self._thread = None
            self.wake = threading.Event()
            inherited = sorted(delivery_id for delivery_id, _ in self._under_way.values())
            self._under_way.clear()
            self._reported_stuck.clear()
        if inherited and not self._stopped.is_set():
            # Their threads are not in this process, but a lock one held (OpenSSL's, mid-handshake) stays held here.
            log.warning("this process was forked while deliveries %s were being sent: a TLS send from it may hang; "
                        "fork before the sandbox starts sending, or close it first", ", ".join(inherited))
        self.ensure_running()

    # --- one round -----------------------------------------------------------------------------------------------
    def round(self, sandbox: Sandbox) -> float:
        """Claim and start what is due; return when to look again (epoch seconds)."""
        store = sandbox.store
        options = sending.options_of(sandbox)
        self._report_stuck(options)
        now = time.time()
        entries = sorted((item.value for item in store.state.items(outbox.OUTBOX_SESSION, outbox.OUTBOX).values()),
                         key=lambda e: (e["at"], e["id"]))
        next_at = now + options.poll_s
        for entry in entries:
            if entry["at"] > now:
                next_at = min(next_at, entry["at"])
                break
            slots = self._slots
            if not slots.acquire(blocking=False):
                return next_at  # every slot busy: a send that ends wakes the worker
            try:
                claimed = outbox.claim(store, entry["session"], entry["id"], now, options.lease_s, self.owner)
            except Exception:
                slots.release()
                raise
            if claimed is None:
                slots.release()
                continue
            action, record, version = claimed
            if action == "give-up":
                slots.release()
                journaling.give_up(sandbox, record)
                continue
            threading.Thread(target=self._send, args=(sandbox, record, version, slots), daemon=True,
                             name=f"spine-send-{record['id']}").start()
        return next_at

    def _send(self, sandbox: Sandbox, record: dict, version: int, slots: threading.BoundedSemaphore) -> None:
        me = threading.get_native_id()  # what py-spy names the thread by
        with self._lock:
            self._under_way[me] = (record["id"], time.monotonic())
        try:
            sending.attempt(sandbox, self, record, version)
        except Exception:
            if getattr(sandbox.store, "closed", False):  # closed mid-send: the lease ends and any worker sends again
                log.debug("the store closed while delivery %s was being sent", record["id"])
            else:
                log.exception("delivery %s of session %s failed unexpectedly; it is tried again after its lease",
                              record["id"], record["session"])
        finally:
            with self._lock:
                self._under_way.pop(me, None)
                self._reported_stuck.discard(me)
            slots.release()
            self.wake.set()

    def _report_stuck(self, options: sending.Options) -> None:
        """A send is cut off at its connect and response timeouts, so one still going after its lease is stuck off
        the network (on a lock: OpenSSL's, left held by a fork mid-handshake, hangs for good). Nothing else would
        tell: say so once per send, naming the thread to look at (py-spy dump --pid)."""
        now = time.monotonic()
        with self._lock:
            stuck = [(ident, delivery_id, now - began) for ident, (delivery_id, began) in self._under_way.items()
                     if now - began > options.lease_s and ident not in self._reported_stuck]
            self._reported_stuck.update(ident for ident, _, _ in stuck)
        for ident, delivery_id, age in stuck:
            log.error("the send of delivery %s (thread %s, process %s) has run for %.0f s, past its %g s lease: it "
                      "is stuck outside the network (py-spy dump --native shows where); the lease has ended, so the "
                      "delivery is sent again by another thread", delivery_id, ident, os.getpid(), age,
                      options.lease_s)

    def ssl_context(self, sandbox: Sandbox, ca_file: str | None) -> ssl.SSLContext:
        from sandbox.web import tls

        folder = sandbox.settings.tls_path
        key = (str(folder), ca_file)
        context = self._contexts.get(key)
        if context is None:
            authority = tls.authority(folder)
            client = tls.client_pair(folder, "spine", "spine-sandbox-spine")
            context = ssl.create_default_context(cafile=ca_file or str(authority.cert))
            context.load_cert_chain(str(client.cert), str(client.key))
            self._contexts[key] = context
        return context


def _run(runner_ref: weakref.ref) -> None:
    while True:
        runner = runner_ref()
        if runner is None or runner._stopped.is_set() or runner._pid != process.pid():
            return
        sandbox = runner._sandbox()
        if sandbox is None or getattr(sandbox.store, "closed", False):
            return
        wake = runner.wake
        try:
            next_at = runner.round(sandbox)
        except Exception:
            if getattr(sandbox.store, "closed", False):
                return
            log.exception("the spine delivery worker failed a round; it looks again shortly")
            next_at = time.time() + sending.options_of(sandbox).poll_s
        poll = sending.options_of(sandbox).poll_s
        del sandbox, runner
        wake.wait(max(0.0, min(next_at - time.time(), poll)))
        wake.clear()


def _after_fork_in_child() -> None:
    for runner in list(_runners):
        runner.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
