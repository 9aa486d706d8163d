"""WSGI entry points. `app` for any WSGI server (`gunicorn sandbox.wsgi:app`); `create` is the factory the
`spine-sandbox serve` workers call. Both read their configuration from SANDBOX_* variables."""

from __future__ import annotations

import gc
import logging
import os
import time

from sandbox.app import create_app
from sandbox.settings import Settings

log = logging.getLogger("sandbox")


def create():
    settings = Settings.load()
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        log.addHandler(handler)
        log.setLevel(settings.log_level.upper())
    _pin_to_cpu()  # before any thread starts: each thread the worker makes inherits the CPU and the policy
    app = create_app(settings)
    sandbox = app.extensions["sandbox"]
    started = time.perf_counter()

    def ready(done: int, total: int) -> None:
        if done == total:
            log.info("population index ready: %d patients in %.2f s", total, time.perf_counter() - started)

    sandbox.warm(ready)
    sandbox.start_retention()
    # What start-up made lives as long as the worker: kept out of the collector's full passes, each of which would
    # otherwise walk it all (about 90 ms on a PDS worker) while every request on the worker waits.
    gc.freeze()
    return app


def _pin_to_cpu() -> None:
    """Run on the CPU `spine-sandbox serve` named for this worker, if it named one (sandbox.web.server.worker_cpus),
    under the batch scheduling policy: the worker's threads then take turns at its interpreter lock on that CPU
    without preempting each other at every hand-over (see sandbox.web.server)."""
    from sandbox.web.server import WORKER_CPU

    cpu = os.environ.pop(WORKER_CPU, None)  # for this process only: nothing it starts inherits it
    if not cpu:
        return
    try:
        os.sched_setaffinity(0, {int(cpu)})
    except (OSError, ValueError) as exc:  # e.g. the CPU was taken away since: the scheduler places the worker
        log.warning("worker %d is not pinned to CPU %s: %s", os.getpid(), cpu, exc)
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:  # e.g. a seccomp profile refuses it: pinned all the same
        log.warning("worker %d keeps the default scheduling policy: %s", os.getpid(), exc)


def __getattr__(name: str):
    # Built on first access only, so importing this module for `create` does not build a second sandbox.
    if name == "app":
        globals()["app"] = value = create()
        return value
    raise AttributeError(name)
