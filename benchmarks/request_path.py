"""What one request costs on the sandbox's own path, stage by stage, without a server or a load generator.

    python benchmarks/request_path.py [--requests 2000] [--cases inbox send patient]
    python benchmarks/request_path.py --profile inbox          # cProfile: the functions the time goes to
    python benchmarks/request_path.py --instructions           # CPU instructions per request (valgrind)
    python benchmarks/request_path.py --syscalls               # system calls per request, by name (strace)
    python benchmarks/request_path.py --database-url postgresql://postgres@localhost/spine_sandbox_bench …
    python benchmarks/request_path.py --instructions --cases send --waiting 100000   # with a full inbox

The WSGI app is called directly with the environ a server would build (Flask's test client would add its own
cost), against a fresh SQLite journal in a temporary folder, as `spine-sandbox serve` runs it (--database-url: on
that PostgreSQL database instead, as it is; the database server's own work is not in these figures).
  inbox:   GET /messageexchange/X26ABC2/inbox (Accept v2), 20 messages waiting, a new NHSMESH token each time
  send:    POST /messageexchange/X26ABC1/outbox, 1 KiB, Mex-To X26ABC2, a new token each time
  patient: GET /personal-demographics/FHIR/R4/Patient/9990000107, as benchmarks/wsgi_servers.py asks
  retrieval: GET /personal-demographics/FHIR/R4/Patient/9000000009 with a new X-Request-ID each time, as
           benchmarks/pds_vs_prism.py asks
The same requests as benchmarks/mesh_vs_nhs_sandbox.py and benchmarks/wsgi_servers.py send.
--waiting N: N messages waiting in X26ABC2's inbox before the requests (inbox and send), put there by the post
office's own send as benchmarks/mesh_inbox_growth.py does (instead of the inbox case's 20 sent over the app); with
--instructions they are sent once, natively, into a folder each valgrind run starts from a copy of.

Times are this thread's CPU time (user and system), which other work on the machine hardly moves (--wall: elapsed
time); totals are the median of several batches, with the spread. "journal.record" is the append to the journal's
spool; importing spooled exchanges into SQLite is the journal's background thread's work (about 15 µs an
exchange, in batches), not in these times.
The stage table comes from a second, instrumented pass: each stage's own time (its callees' stages subtracted), so
the rows add up to the instrumented total; "wsgi+flask" is what is left: routing, request and response objects, and
the timers' own cost (about 1 µs per timed call, hence the instrumented total above the plain one).
Between requests another thread commits a state write, as the other worker process does under load (--alone: no
such writes).
--instructions runs each case under `valgrind --tool=callgrind` twice (with and without the measured requests)
and prints the difference per request: a count that other load on the machine does not change; --syscalls does
the same under `strace -f -c`.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.app import create_app  # noqa: E402
from sandbox.services.mesh.auth import make_token  # noqa: E402
from sandbox.settings import Settings  # noqa: E402

KEY = "TestKey"
BODY = b"0123456789abcdef" * 64  # 1 KiB
V2 = "application/vnd.mesh.v2+json"
REQUEST_ID = "60e0b220-8136-4ca5-ae46-1d97ef59d068"
CASES = ("inbox", "send", "patient", "retrieval")
database_url = ""  # --database-url: PostgreSQL rather than the embedded store
waiting: int | None = None  # --waiting: messages waiting in X26ABC2's inbox, sent by the post office itself
template = ""  # --template: a data folder (with `waiting` seeded) each app starts from a copy of
clock = time.thread_time  # CPU time of this thread: what other load on the machine does not inflate (--wall: elapsed)


def environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict:
    """The WSGI environ a server builds for one request."""
    env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9000", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
           "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:9000", "HTTP_USER_AGENT": "wrk"}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[key] = value
        else:
            env["HTTP_" + key] = value
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def call(app, env: dict) -> int:
    status = []
    chunks = app(env, lambda s, h, exc_info=None: status.append(s))
    for _ in chunks:
        pass
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0][:3])


class Case:
    """Makes the environ of the n-th request of one kind; tokens are made beforehand (client work, not ours)."""

    def __init__(self, name: str, count: int):
        self.name = name
        if name in ("patient", "retrieval"):
            self.tokens = []
        else:
            mailbox = "X26ABC2" if name == "inbox" else "X26ABC1"
            self.tokens = [make_token(mailbox, "password", KEY, nonce_count=n) for n in range(count)]

    def environ(self, n: int) -> dict:
        if self.name == "inbox":
            return environ("GET", "/messageexchange/X26ABC2/inbox", {"Authorization": self.tokens[n], "Accept": V2})
        if self.name == "send":
            return environ("POST", "/messageexchange/X26ABC1/outbox",
                           {"Authorization": self.tokens[n], "Accept": V2, "Mex-To": "X26ABC2",
                            "Mex-WorkflowID": "BENCH_WORKFLOW", "Content-Type": "application/octet-stream"}, BODY)
        if self.name == "retrieval":  # a request id of its own, the same in every run (instruction counts repeat)
            return environ("GET", "/personal-demographics/FHIR/R4/Patient/9000000009",
                           {"X-Request-ID": f"{n:08x}-0000-4000-8000-{n:012x}", "Authorization": "Bearer benchmark",
                            "Accept": "application/fhir+json"})
        return environ("GET", "/personal-demographics/FHIR/R4/Patient/9990000107",
                       {"X-Request-ID": REQUEST_ID, "Authorization": "Bearer benchmark"})

    def expected(self) -> int:
        return 202 if self.name == "send" else 200


def build_app(folder: Path, case: str):
    if template:
        shutil.copytree(template, folder, dirs_exist_ok=True)
    settings = Settings.load(environ={}, data_dir=folder, population=1000, log_level="warning",
                             **({"database_url": database_url} if database_url else {}))
    app = create_app(settings)
    if waiting is not None:
        if not template:
            from mesh_inbox_growth import seed_waiting

            seed_waiting(app.extensions["sandbox"], waiting)
    elif case == "inbox":  # 20 messages waiting, as in the MESH benchmark
        seeding = Case("send", 20)
        for n in range(20):
            assert call(app, seeding.environ(n)) == 202
    return app


def run(app, case: Case, start: int, count: int, other=None) -> float:
    """Seconds the app took over `count` requests; `other` runs between requests, untimed."""
    expected = case.expected()
    spent = 0.0
    for n in range(start, start + count):
        env = case.environ(n)
        began = clock()
        status = call(app, env)
        spent += clock() - began
        if status != expected:
            raise SystemExit(f"{case.name}: answered {status}, expected {expected}")
        if other is not None:
            other()
    return spent


def other_writer(app):
    """A state commit from another thread, as the other worker process makes under load."""
    write = app.extensions["sandbox"].store.state.next_counter  # taken now: the stage timers never see it
    pool = ThreadPoolExecutor(1)
    return lambda: pool.submit(write, "other-writer", "n").result()


# --- stages ----------------------------------------------------------------------------------------------------
class Stages:
    """Own time per stage: a stage's time less the time of the stages it calls."""

    def __init__(self):
        self.own: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self._children: list[float] = []

    def wrap(self, name: str, func):
        def timed(*args, **kwargs):
            began = clock()
            self._children.append(0.0)
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = clock() - began
                self.own[name] += elapsed - self._children.pop()
                self.calls[name] += 1
                if self._children:
                    self._children[-1] += elapsed

        timed.__wrapped__ = func
        return timed

    def wrap_context(self, name: str, factory):
        """A context manager's enter and exit (a transaction's BEGIN and COMMIT) as two stages."""
        stages = self

        class Timed:
            def __init__(self, *args, **kwargs):
                self.inner = factory(*args, **kwargs)

            def __enter__(self):
                return stages.wrap(f"{name} enter", self.inner.__enter__)()

            def __exit__(self, *exc):
                return stages.wrap(f"{name} exit (commit)", self.inner.__exit__)(*exc)

        return Timed


# Functions on the path of a request, as (module, attribute): each becomes a stage. Missing ones are skipped, so the
# harness outlives refactoring (add the new names here).
STAGE_FUNCTIONS = [
    ("sandbox.web.pipeline", "_open"),
    ("sandbox.web.pipeline", "resolve_session"),
    ("sandbox.web.pipeline", "RequestView"),
    ("sandbox.web.pipeline", "resolve_access"),
    ("sandbox.web.pipeline", "_choose_scenario"),
    ("sandbox.web.pipeline", "_record"),
    ("sandbox.web.pipeline", "judge_history"),
    ("sandbox.web.pipeline", "Exchange"),
    ("sandbox.services.mesh.session", "load"),
    ("sandbox.services.mesh.post_office", "PostOffice.sweep"),
    ("sandbox.services.mesh.post_office", "PostOffice.send"),
    ("sandbox.services.mesh.post_office", "PostOffice.inbox"),
]
STORE_METHODS = {"journal": ("record", "related", "latest"), "sessions": ("for_token", "get"),
                 "state": ("get", "put", "items", "delete", "next_counter", "put_blob", "get_blob", "claim", "claimed")}


def _owner(module: str, attribute: str) -> tuple[object, str]:
    """The object that holds the attribute ("Class.method" names a method) and the attribute's own name."""
    owner = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def instrument(stages: Stages) -> None:
    """Wrap the stage functions; call before create_app (the pipeline registers its hooks by reference)."""
    for module, attribute in STAGE_FUNCTIONS:
        owner, name = _owner(module, attribute)
        func = getattr(owner, name, None)
        if func is not None:
            setattr(owner, name, stages.wrap(attribute, func))


def instrument_app(app, stages: Stages):
    """Wrap what exists only once the app is built: view functions, checks, the store, service hooks. Returns the
    undo for what outlives the app (check sets and services are module-level)."""
    sandbox = app.extensions["sandbox"]
    for endpoint, view in list(app.view_functions.items()):
        app.view_functions[endpoint] = stages.wrap("handler (facts, service logic, response)", view)
    undo = []
    for service in sandbox.services.values():
        checks = service.checks._checks
        undo.append((checks, list(checks), service, service.finish_response))
        for n, check in enumerate(checks):
            listed = stages.wrap(f"check {check.name}", lambda *a, func=check.func: list(func(*a)))
            checks[n] = type(check)(listed, check.requirements, check.operations)
        if service.finish_response:
            service.finish_response = stages.wrap(f"{service.name} finish_response", service.finish_response)
    for part, methods in STORE_METHODS.items():
        interface = getattr(sandbox.store, part)
        for method in methods:
            setattr(interface, method, stages.wrap(f"{part}.{method}", getattr(interface, method)))
    state = sandbox.store.state
    state.transaction = stages.wrap_context("state.transaction", state.transaction)

    def restore():
        for checks, original, service, finish in undo:
            checks[:] = original
            service.finish_response = finish

    return restore


# --- reports ---------------------------------------------------------------------------------------------------
def prepared(folder: str, case_name: str, requests: int, alone: bool):
    """A warmed-up app, its request maker, and the other connection's write (None when alone)."""
    app = build_app(Path(folder), case_name)
    case = Case(case_name, requests + 200)
    other = None if alone else other_writer(app)
    run(app, case, 0, 200, other)  # warm-up: imports, caches, the population's patient
    return app, case, other


def measure(case_name: str, requests: int, batches: int, alone: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="request-path-") as folder:
        app, case, other = prepared(folder, case_name, requests * batches, alone)
        times = [run(app, case, 200 + b * requests, requests, other) / requests * 1e6 for b in range(batches)]
    stages = Stages()
    instrument(stages)
    try:
        with tempfile.TemporaryDirectory(prefix="request-path-") as folder:
            app, case, other = prepared(folder, case_name, requests, alone)
            restore = instrument_app(app, stages)
            stages.own.clear()
            stages.calls.clear()
            total = run(app, case, 200, requests, other) / requests * 1e6
            restore()
    finally:
        _uninstrument()
    median = statistics.median(times)
    print(f"\n{case_name}: {median:.0f} µs {'elapsed' if clock is time.perf_counter else 'CPU'} per request (median of {batches} batches of {requests}; "
          f"spread {min(times):.0f}-{max(times):.0f}); instrumented {total:.0f} µs")
    print(f"  {'stage':<52}{'µs/req':>9}{'calls/req':>11}")
    rows = {name: own / requests * 1e6 for name, own in stages.own.items()}
    rows["wsgi+flask (the rest)"] = total - sum(rows.values())
    for name, us in sorted(rows.items(), key=lambda r: -r[1]):
        calls = stages.calls.get(name, requests) / requests
        print(f"  {name:<52}{us:9.1f}{calls:11.2f}")


def _uninstrument() -> None:
    for module, attribute in STAGE_FUNCTIONS:
        owner, name = _owner(module, attribute)
        func = getattr(owner, name, None)
        if func is not None and hasattr(func, "__wrapped__"):
            setattr(owner, name, func.__wrapped__)


def profile(case_name: str, requests: int, alone: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="request-path-") as folder:
        app, case, other = prepared(folder, case_name, requests, alone)
        profiler = cProfile.Profile()
        profiler.enable()
        run(app, case, 200, requests, other)
        profiler.disable()
    for key in ("tottime", "cumulative"):
        print(f"\n{case_name}: top functions by {key} ({requests} requests)")
        pstats.Stats(profiler).sort_stats(key).print_stats(30)


def plain(case_name: str, requests: int, alone: bool, skip: bool) -> None:
    """The measured loop alone, for valgrind; with `skip`, the same but without the requests themselves."""
    with tempfile.TemporaryDirectory(prefix="request-path-") as folder:
        app, case, other = prepared(folder, case_name, requests, alone)
        if not skip:
            run(app, case, 200, requests, other)
        elif other is not None:
            for _ in range(requests):
                other()


def _counted(tool: list[str], case_name: str, requests: int, alone: bool, skip: bool) -> str:
    command = [sys.executable, __file__, "--plain", case_name, "--requests", str(requests)]
    command += ["--alone"] if alone else []
    command += ["--skip"] if skip else []
    command += ["--database-url", database_url] if database_url else []
    command += ["--waiting", str(waiting), "--template", template] if waiting is not None else []
    done = subprocess.run([*tool, *command], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode:
        raise SystemExit(f"{tool[0]} failed for {case_name}:\n{done.stderr[-2000:]}")
    return done.stderr


def seeded_template(folder: Path) -> str:
    """A data folder with `waiting` messages seeded, made by a native process (sending 100,000 messages under
    valgrind would take an hour), which closes its store before the valgrind runs copy it."""
    command = [sys.executable, __file__, "--seed-into", str(folder), "--waiting", str(waiting)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"seeding {waiting} waiting messages failed:\n{done.stderr[-2000:]}")
    return str(folder)


def seed_into(folder: Path) -> None:
    from mesh_inbox_growth import seed_waiting

    settings = Settings.load(environ={}, data_dir=folder, population=1000, log_level="warning")
    app = create_app(settings)
    try:
        seed_waiting(app.extensions["sandbox"], waiting)
    finally:
        app.extensions["sandbox"].close()


def instructions(case_name: str, requests: int, alone: bool) -> float:
    """Instructions per request: a run with the requests less the same run without them (valgrind callgrind)."""
    tool = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    with_, without = (int(re.search(r"Collected : (\d+)", _counted(tool, case_name, requests, alone, skip)).group(1))
                      for skip in (False, True))
    return (with_ - without) / requests


def syscalls(case_name: str, requests: int, alone: bool) -> dict[str, float]:
    """System calls per request, by name, counted the same way (strace -c; both threads with --alone off)."""
    def count(skip: bool) -> Counter:
        report = _counted(["strace", "-f", "-c", "-U", "name,calls"], case_name, requests, alone, skip)
        return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*(\w+)\s+(\d+)\s*$", report, re.M)
                        if m.group(1) != "total"})

    with_, without = count(False), count(True)
    return {name: (with_[name] - without[name]) / requests for name in with_ if with_[name] > without[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--alone", action="store_true",
                        help="no other connection writes between requests (a single worker process, one thread)")
    parser.add_argument("--wall", action="store_true", help="elapsed time rather than this thread's CPU time")
    parser.add_argument("--profile", choices=CASES, help="cProfile one case instead")
    parser.add_argument("--instructions", action="store_true", help="count instructions per request (valgrind)")
    parser.add_argument("--syscalls", action="store_true", help="count system calls per request (strace)")
    parser.add_argument("--database-url", default="", help="PostgreSQL (postgresql://…) instead of the embedded store")
    parser.add_argument("--waiting", type=int, help="messages waiting in X26ABC2's inbox before the requests "
                        "(inbox and send; default: 20 for inbox, none for send)")
    parser.add_argument("--plain", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--skip", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--template", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seed-into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global database_url, waiting, template
    database_url = args.database_url
    waiting, template = args.waiting, args.template
    if waiting is not None and database_url:
        parser.error("--waiting seeds the embedded store only")
    if args.seed_into:
        seed_into(Path(args.seed_into))
        return
    if args.wall:
        global clock
        clock = time.perf_counter
    if args.plain:
        plain(args.plain, args.requests, args.alone, args.skip)
    elif args.profile:
        profile(args.profile, args.requests, args.alone)
    elif args.syscalls:
        requests = min(args.requests, 2000)
        print(f"system calls per request (strace; {requests} requests, less the same run without them)")
        for name in args.cases:
            counts = syscalls(name, requests, args.alone)
            shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= 0.05)
            print(f"  {name:<8} {sum(counts.values()):6.1f}: {shown}", flush=True)
    elif args.instructions:
        requests = min(args.requests, 500)
        print(f"instructions per request (valgrind callgrind; {requests} requests, less the same run without them)"
              + (f"; {waiting} messages waiting in X26ABC2's inbox" if waiting is not None else ""))
        with tempfile.TemporaryDirectory(prefix="request-path-seeded-") as folder:
            if waiting is not None:
                template = seeded_template(Path(folder))
            for name in args.cases:
                print(f"  {name:<8} {instructions(name, requests, args.alone) / 1e6:7.3f} M", flush=True)
    else:
        for name in args.cases:
            measure(name, args.requests, args.batches, args.alone)


if __name__ == "__main__":
    main()
