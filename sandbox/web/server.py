"""Serving for real: Granian worker processes, each building the sandbox from the same SANDBOX_* settings.

Granian was chosen by measurement (benchmarks/wsgi_servers.py): on the PDS retrieval path with checks and a
journal commit per request it served ~1.9k req/s at p99 ~35 ms on two cores, ahead of gunicorn (~1.55k sync,
~0.86k gthread) and waitress (~0.86k); and it runs on Windows, where suppliers' laptops often are.
"""

from __future__ import annotations

import os

from sandbox.settings import Settings


def worker_count(settings: Settings) -> int:
    return settings.workers or max(1, min(os.cpu_count() or 1, 8))


def tls_options(settings: Settings) -> dict:
    """With --tls: HTTPS, and every client must present a certificate signed by the sandbox CA (mutual TLS)."""
    if not settings.tls:
        return {}
    from sandbox.web import tls

    folder = settings.tls_path
    server = tls.server_pair(folder)
    tls.client_pair(folder, "sandbox", "spine-sandbox-client")  # for the control API and tools
    return {"ssl_cert": server.cert, "ssl_key": server.key, "ssl_ca": tls.authority(folder).cert,
            "ssl_client_verify": True}


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    os.environ.update(settings.to_environ())
    Granian(
        "sandbox.wsgi:create",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=worker_count(settings),
        blocking_threads=max(1, settings.threads),
        factory=True,
        log_level=LogLevels(settings.log_level),
        respawn_failed_workers=True,
        websockets=False,
        **tls_options(settings),
    ).serve()
