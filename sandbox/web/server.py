"""Serving for real: Granian worker processes, each building the sandbox from the same SANDBOX_* settings.

Granian was chosen by measurement (benchmarks/wsgi_servers.py): on the PDS retrieval path with checks and a
journal commit per request it served ~1.9k req/s at p99 ~35 ms on two cores, ahead of gunicorn (~1.55k sync,
~0.86k gthread) and waitress (~0.86k); and it runs on Windows, where suppliers' laptops often are.

The listening sockets are the sandbox's own, bound here and handed to Granian's workers. First a socket without
SO_REUSEPORT is bound, which fails while anything at all listens on the port (with or without SO_REUSEPORT): a port
in use is refused, never shared, and every address problem (port taken, foreign host, port out of range) is one
sentence before anything else starts. On Linux that socket is then closed and replaced by one SO_REUSEPORT socket
per worker, so that the kernel spreads connections over the workers (workers sharing one socket do not: whichever
is waiting takes nearly every connection, and the other idles while its clients queue). A small socket-filter
program (SO_ATTACH_REUSEPORT_CBPF) picks one of those sockets at random for each new connection, and never a socket
another program of the same user might add to the group later. Elsewhere the one socket is shared. Handing sockets
over overrides private Granian methods (`_init_shared_socket`, `_spawn_worker`, `_drop_shared_socket`), hence the
pin to Granian 2.8 and later 2.x in setup.cfg.

With one worker for each CPU the process may use (the default on up to 8 CPUs), each worker is pinned to a CPU of its
own (SANDBOX_PIN_WORKERS, on by default; Linux): a worker's threads hand its interpreter lock and its requests to each
other on one CPU instead of waking each other across CPUs, which on two CPUs served 7% more PDS retrievals and cut the
p99 from 23-27 ms to 15-17 ms (docs/services/pds.md, Performance). A worker pins itself as it starts, before it makes
any thread, to the CPU the server named for it in WORKER_CPU, and takes the batch scheduling policy (SCHED_BATCH),
which every thread it makes inherits. Under the default policy each hand-over of the interpreter lock wakes the
waiting thread, which then preempts the one that let go: six context switches a PDS retrieval. Under the batch policy
a thread woken does not preempt; the running thread finishes its turn. Context switches fell to one a retrieval and
PDS retrievals served 12-14% more on two CPUs. The batch policy changes nothing for other programs: they still preempt
the workers as they would any busy process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable

from sandbox.settings import Settings

BACKLOG = 1024
SO_ATTACH_REUSEPORT_CBPF = 51  # Linux, <asm-generic/socket.h>
# What Granian's HTTP/1 parser (hyper) accepts in one request head; the services judge anything longer than the
# live service allows themselves (sandbox.web.limits), so those requests are journaled and answered in the
# service's own error shape. Beyond this the parser answers 431 with an empty body; a URL over 64 KB gets 414 and
# more than 100 header fields 431, both from the parser (docs/running.md, "Limits").
MAX_HEAD_BYTES = 128 * 1024
READY_TIMEOUT = 120.0
WORKER_CPU = "SPINE_SANDBOX_WORKER_CPU"  # the CPU the worker forked next pins itself to (sandbox.wsgi.create)

# OpenSSL 3 has no fork handlers: a thread inside it when Granian forks a worker leaves the locks it held locked for
# good in the worker, whose first TLS client call (a Spine delivery to a supplier's MHS) then waits for ever. The
# readiness probe is this process's only OpenSSL user: it starts once the workers are forked, holds this lock while
# it uses OpenSSL, and any later fork (a worker respawned) waits for it.
_OPENSSL_IN_USE = threading.Lock()
os.register_at_fork(before=_OPENSSL_IN_USE.acquire, after_in_parent=_OPENSSL_IN_USE.release,
                    after_in_child=_OPENSSL_IN_USE.release)


class ServeError(Exception):
    """The server cannot start; the message is one sentence saying what to change."""


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (a container's cpuset or taskset can leave fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def worker_count(settings: Settings) -> int:
    return settings.workers or max(1, min(len(usable_cpus()), 8))


def worker_cpus(settings: Settings) -> list[int]:
    """The CPU each worker is pinned to, by worker index: one each where there are exactly as many usable CPUs as
    workers (a CPU shared by two pinned workers, or one left idle, would serve less than the scheduler does); none
    otherwise, with SANDBOX_PIN_WORKERS off, or where processes cannot be pinned."""
    cpus = usable_cpus()
    if not settings.pin_workers or not hasattr(os, "sched_setaffinity") or len(cpus) < 2:
        return []
    return cpus if worker_count(settings) == len(cpus) else []


def tls_options(settings: Settings) -> dict:
    """With --tls: HTTPS, and every client must present a certificate signed by the sandbox CA (mutual TLS)."""
    if not settings.tls:
        return {}
    from sandbox.web import tls

    folder = settings.tls_path
    try:
        server = tls.server_pair(folder)
        tls.client_pair(folder, "sandbox", "spine-sandbox-client")  # for the control API and tools
        authority = tls.authority(folder)
    except OSError as exc:
        raise ServeError(f"cannot write the TLS certificates in {folder}: {exc.strerror or exc}; choose a "
                         f"writable folder with --tls-dir or SANDBOX_TLS_DIR") from None
    return {"ssl_cert": server.cert, "ssl_key": server.key, "ssl_ca": authority.cert, "ssl_client_verify": True}


def listen(settings: Settings) -> list[socket.socket]:
    """The listening sockets, one per worker on Linux (see the module docstring); a port anyone holds is refused."""
    host, port = settings.host, settings.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(f"{host!r} is not an address or host name this machine can resolve ({exc}); choose "
                         f"another with --host or SANDBOX_HOST") from None

    def bind(share: bool) -> socket.socket:
        sock = socket.socket(family, kind, proto)
        try:
            if os.name == "nt":  # Windows' SO_REUSEADDR would let another server take the port over
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:  # a restart right after a stop may bind despite TIME_WAIT; a live listener still refuses
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if share:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise ServeError(_bind_failure(host, port, exc)) from None
        sock.set_inheritable(True)  # the worker processes accept on it
        return sock

    guard = bind(share=False)  # fails while anything at all listens on the port, with or without SO_REUSEPORT
    count = worker_count(settings)
    if sys.platform != "linux" or count == 1:
        return [guard]
    guard.close()
    listeners: list[socket.socket] = []
    try:
        while len(listeners) < count:
            listeners.append(bind(share=True))
    except ServeError:
        for listener in listeners:
            listener.close()
        raise
    _spread_at_random(listeners[0], count)
    return listeners


def _spread_at_random(listener: socket.socket, count: int) -> None:
    """Each new connection goes to one of the first `count` sockets of the listener's group, at random: never to a
    socket another program binds later with SO_REUSEPORT (the kernel would otherwise hash connections onto it too)."""
    program = b"".join(struct.pack("HBBI", *instruction) for instruction in (
        (0x20, 0, 0, (-0x1000 + 56) & 0xFFFFFFFF),  # ld [SKF_AD_OFF + SKF_AD_RANDOM]: a random 32-bit number
        (0x94, 0, 0, count),  # mod #count
        (0x16, 0, 0, 0),  # ret a: the index of the socket in the group
    ))
    buffer = ctypes.create_string_buffer(program)
    with contextlib.suppress(OSError):  # a kernel without it (before 4.5) spreads connections by their addresses
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                            struct.pack("HP", len(program) // 8, ctypes.addressof(buffer)))


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) == 10048:
        return (f"port {port} on {host} is already in use (another sandbox?); choose another with --port or "
                f"SANDBOX_PORT")
    if exc.errno == errno.EADDRNOTAVAIL or getattr(exc, "winerror", None) == 10049:
        return (f"{host} is not an address of this machine, so the sandbox cannot listen on it; use 127.0.0.1, "
                f"0.0.0.0 (every interface) or one of this machine's addresses with --host or SANDBOX_HOST")
    if exc.errno == errno.EACCES:
        return (f"port {port} on {host} needs privileges this user does not have; choose a port above 1023 with "
                f"--port or SANDBOX_PORT")
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def _granian_class():
    from granian import Granian

    class SandboxGranian(Granian):
        """Granian serving sockets the sandbox bound itself, one per worker where there are several (see the module
        docstring)."""

        def __init__(self, *args, listeners: list[socket.socket], cpus: list[int], **kwargs):
            super().__init__(*args, **kwargs)
            self.listeners = listeners
            self.cpus = cpus
            self.workers_forked = threading.Event()

        def _spawn_workers(self, *args, **kwargs):
            with self._naming_cpus():
                super()._spawn_workers(*args, **kwargs)
            self.workers_forked.set()

        def _respawn_workers(self, *args, **kwargs):
            with self._naming_cpus():
                super()._respawn_workers(*args, **kwargs)

        @contextlib.contextmanager
        def _naming_cpus(self):
            """While workers are forked, _spawn_worker names each one's CPU in WORKER_CPU; none is named after."""
            try:
                yield
            finally:
                os.environ.pop(WORKER_CPU, None)

        def _init_shared_socket(self):
            self._ssp = None
            self._use_listener(0)

        def _spawn_worker(self, idx, *args, **kwargs):
            self._use_listener(idx)  # a respawned worker accepts on the socket its predecessor had
            if self.cpus:  # and runs on its CPU: the worker is forked (or spawned) right after this returns
                os.environ[WORKER_CPU] = str(self.cpus[idx % len(self.cpus)])
            return super()._spawn_worker(idx, *args, **kwargs)

        def _use_listener(self, idx: int) -> None:
            from granian._granian import SocketHolder

            listener = self.listeners[idx % len(self.listeners)]
            self._sfd = listener.fileno()
            self._shd = SocketHolder(self._sfd, False, BACKLOG)  # (fd, is a Unix socket, backlog)
            self._sso = listener

        def _drop_shared_socket(self):
            for listener in self.listeners:
                listener.close()

    return SandboxGranian


def serve(settings: Settings, listeners: list[socket.socket], on_ready: Callable[[], None] | None = None) -> None:
    """Serve on `listener` until stopped; `on_ready()` runs once /_sandbox/health answers through it."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels

    tls = tls_options(settings)
    os.environ.update(settings.to_environ())
    server = _granian_class()(
        "sandbox.wsgi:create",
        address=settings.host,
        port=settings.port,
        listeners=listeners,
        cpus=worker_cpus(settings),
        interface=Interfaces.WSGI,
        workers=worker_count(settings),
        blocking_threads=max(1, settings.threads),
        backlog=BACKLOG,
        http1_settings=HTTP1Settings(max_buffer_size=MAX_HEAD_BYTES),
        http2_settings=HTTP2Settings(max_headers_size=MAX_HEAD_BYTES),  # HTTP/2 (with --tls): the same bound
        factory=True,
        log_level=LogLevels(settings.log_level),
        respawn_failed_workers=True,
        websockets=False,
        **tls,
    )
    if on_ready is not None:
        threading.Thread(target=_announce, args=(settings, on_ready, server.workers_forked), name="sandbox-ready",
                         daemon=True).start()
    server.serve()


def _announce(settings: Settings, on_ready: Callable[[], None], workers_forked: threading.Event) -> None:
    from sandbox.healthcheck import probe

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else "::1" if settings.host == "::" else settings.host
    deadline = time.monotonic() + READY_TIMEOUT
    workers_forked.wait(READY_TIMEOUT)  # no OpenSSL here before then (see _OPENSSL_IN_USE)
    with _OPENSSL_IN_USE:
        context = _client_context(settings) if settings.tls else None
    seen = "the workers have not started"
    while time.monotonic() < deadline:
        with _OPENSSL_IN_USE:  # a probe waits at most its timeout
            healthy, seen = probe(host, settings.port, timeout=2, context=context)
        if healthy:
            on_ready()
            return
        time.sleep(0.1)
    print(f"spine-sandbox: listening, but /_sandbox/health has not answered within {READY_TIMEOUT:.0f} s "
          f"({seen}); see the log above", file=sys.stderr, flush=True)


def _client_context(settings: Settings) -> ssl.SSLContext:
    from sandbox.web import tls

    folder = settings.tls_path
    context = ssl.create_default_context(cafile=str(tls.authority(folder).cert))
    client = tls.client_pair(folder, "sandbox", "spine-sandbox-client")
    context.load_cert_chain(str(client.cert), str(client.key))
    context.check_hostname = False
    return context
