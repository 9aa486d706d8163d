"""Storage backends side by side: the embedded default (SQLite + LMDB) and PostgreSQL with one replica, then two, in
one run on this machine, on PDS GET, PDS PATCH and MESH send; and the database round trips each request makes.

    python benchmarks/storage_backends.py [--rounds 3] [--seconds 10] [--connections 16] [--workers 2]
                                          [--cases pds-get,pds-patch,mesh-send] [--setups embedded,postgres-x1,...]
                                          [--database-url postgresql://postgres@localhost/spine_sandbox_bench]
                                          [--pin | --cpus-per-replica 0.5]

Each round starts every setup on a fresh data dir (and a fresh database, dropped and made again): `embedded` is one
`spine-sandbox serve`; `postgres x1` is one on the database; `postgres x2` is two on the same database, each loaded
by its own wrk at the same time (the per-replica figure is the total over two). Every request is one a supplier
could send: GET reads one patient; PATCH changes a different patient each time (If-Match of its version), so
no request is refused; MESH send posts 1 KiB with a fresh NHSMESH token each time, in one session (mesh-send) or
spread over 16 sessions (mesh-sessions, as a hosted sandbox's tenants send). wrk: 2 threads per target, N
connections, every request line read from a file made beforehand (scripts in the Lua below).

Round trips per request are counted in-process on the same code path (the Flask app over PostgreSQL, 200 requests
per case; sandbox.journal.postgres counts every statement and pipeline sync). Reported: medians over rounds, the
spread, and each PostgreSQL figure as a ratio of the embedded one measured in the same round. CPU per request is
the replicas' processes' and PostgreSQL's, from /proc, over each case's load: on this machine the database server
shares the replicas' cores, which a deployment would not make it do. --pin gives the replicas half the CPUs and
wrk and PostgreSQL the other half (taskset; PostgreSQL's processes moved with sched_setaffinity, and moved back at
the end), so that a replica's figure is what it does with CPUs of its own, as in a deployment. --cpus-per-replica F
puts each replica (its server and workers) in a cgroup allowed F CPUs, so that one replica and two get the same
CPU each and the rest of the machine is PostgreSQL's and wrk's: on 2 CPUs, 0.5 shows what a second replica adds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import free_port, stop, wait_up  # noqa: E402

from sandbox.services.mesh.auth import make_token  # noqa: E402
from sandbox.synthetic.population import Population  # noqa: E402

PDS = "/personal-demographics/FHIR/R4/Patient"
POPULATION = 60_000  # enough standard patients for every PATCH of a round to change one of its own
SEED = 42
MESH_BODY = "0123456789abcdef" * 64  # 1 KiB
PATCH_BODY = json.dumps({"patches": [{"op": "replace", "path": "/gender", "value": "unknown"}]})
FIELD, HEADER = "\t", "\x1f"
THREADS = 2  # wrk threads per target, each reading its own file of requests
# Requests made per second of load, more than any setup answers (a MESH token or a PATCH is never sent twice); PATCH
# uses up patients, 2,000 a second per replica at most.
CASES = ("pds-get", "pds-patch", "mesh-send", "mesh-sessions")
SESSIONS = 16  # mesh-sessions: sends spread over this many sessions, as tenants of a hosted sandbox make them
SETUPS = ("embedded", "postgres x1", "postgres x2")
PER_SECOND = {"pds-get": 5000, "pds-patch": 2000, "mesh-send": 5000, "mesh-sessions": 5000}

# Each wrk thread reads its own file of requests: METHOD \t PATH \t Name: value \x1f Name: value ... \t BODY
LUA = r"""
counter = 0
local lines, n, i = {}, 0, 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  for line in io.lines(args[1] .. "." .. id) do
    n = n + 1
    lines[n] = line
  end
end
local function split(text, sep)
  local parts = {}
  for part in (text .. sep):gmatch("(.-)" .. sep) do parts[#parts + 1] = part end
  return parts
end
function request()
  i = i + 1
  local f = split(lines[(i - 1) % n + 1], "\t")
  local headers = {}
  for _, h in ipairs(split(f[3], "\31")) do
    local name, value = h:match("^(.-): (.*)$")
    if name then headers[name] = value end
  end
  return wrk.format(f[1], f[2], headers, f[4])
end
"""


def standard_patients() -> list[tuple[str, int]]:
    """(NHS number, version) of every standard patient: PATCH names the version in If-Match."""
    population = Population.shared(SEED, POPULATION)
    return [(person.nhs_number, person.version) for person in population.of_kind("standard")]


def line(method: str, path: str, headers: dict, body: str = "") -> str:
    return FIELD.join((method, path, HEADER.join(f"{k}: {v}" for k, v in headers.items()), body))


def pds_headers(**extra) -> dict:
    return {"X-Request-ID": str(uuid.uuid4()), "Authorization": "Bearer sandbox-bench-token",
            "Accept": "application/fhir+json", **extra}


def requests_for(case: str, count: int, patients: list[tuple[str, int]]) -> list[str]:
    """`count` requests of the case; PATCH takes its patients from `patients` (used up: each is changed once)."""
    if case == "pds-get":
        return [line("GET", f"{PDS}/{patients[n % 100][0]}", pds_headers()) for n in range(count)]
    if case == "pds-patch":
        taken, patients[:count] = patients[:count], []
        return [line("PATCH", f"{PDS}/{number}", pds_headers(**{"If-Match": f'W/"{version}"',
                                                                   "Content-Type": "application/json-patch+json"}),
                     PATCH_BODY) for number, version in taken]
    # MESH wants each nonce's counts in order: one nonce per wrk thread (write_requests deals line n to thread n % 2).
    nonces = [str(uuid.uuid4()) for _ in range(THREADS)]
    return [line("POST", "/messageexchange/X26ABC1/outbox",
                 {"Authorization": make_token("X26ABC1", "password", "TestKey", nonce=nonces[n % THREADS],
                                              nonce_count=n // THREADS),
                  "Accept": "application/vnd.mesh.v2+json", "Mex-To": "X26ABC2", "Mex-WorkflowID": "BENCH_WORKFLOW",
                  "Content-Type": "application/octet-stream",
                  **({"X-Sandbox-Session": f"bench-{n // THREADS % SESSIONS}"} if case == "mesh-sessions" else {})},
                 MESH_BODY) for n in range(count)]


def write_requests(stem: Path, lines: list[str]) -> None:
    for thread in range(THREADS):
        Path(f"{stem}.{thread}").write_text("\n".join(lines[thread::THREADS]) + "\n")


# --pin: the CPUs the replicas run on, and those wrk and PostgreSQL run on (None: wherever the kernel puts them)
PINNED: tuple[set[int], set[int]] | None = None


def pinned(command: list[str], replicas: bool) -> list[str]:
    if PINNED is None:
        return command
    return ["taskset", "-c", ",".join(map(str, sorted(PINNED[0 if replicas else 1]))), *command]


def pin_database(cpus: set[int]) -> None:
    """Move PostgreSQL's processes (the server and its backends; new backends inherit the server's) onto `cpus`."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(entry.path, "comm").read_text().startswith("postgres"):
                    os.sched_setaffinity(int(entry.name), cpus)
            except OSError:  # gone meanwhile, or not ours to move
                continue


# --cpus-per-replica: the CPU time each replica may use (a cgroup's quota), None for no limit
CPU_QUOTA: float | None = None
PERIOD_US = 100_000
GROUPS: list[Path] = []  # the cgroups made for the replicas running now


def cpu_group(name: str) -> Path:
    """A new cgroup allowed CPU_QUOTA CPUs: cgroup v1's cpu controller, or v2's where its root offers cpu."""
    quota = int(CPU_QUOTA * PERIOD_US)
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    if (v1 / "cpu.cfs_quota_us").exists():
        group = v1 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
    elif "cpu" in (v2 / "cgroup.subtree_control").read_text().split():
        group = v2 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
    else:
        sys.exit("--cpus-per-replica needs a cgroup cpu controller this user may write to")
    GROUPS.append(group)
    return group


def start(port: int, data: Path, workers: int, database_url: str) -> subprocess.Popen:
    env = {**os.environ, "SANDBOX_POPULATION": str(POPULATION), "SANDBOX_SEED": str(SEED), "SANDBOX_LOG_LEVEL": "warning",
           "SANDBOX_DATABASE_URL": database_url}
    command = pinned([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir", str(data),
                      "--workers", str(workers)], replicas=True)
    if CPU_QUOTA:  # the server and the workers it forks, in a cgroup of their own
        group = cpu_group(f"spine-sandbox-bench-{port}")
        command = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *command]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    wait_up(f"http://127.0.0.1:{port}/_sandbox/health", timeout=120, process=process)
    return process


def wrk(base: str, stem: Path, seconds: int, connections: int, script: Path) -> subprocess.Popen:
    return subprocess.Popen(pinned(["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                                    str(script), base, "--", str(stem)], replicas=False), stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen, seconds: int) -> dict:
    out = process.communicate()[0]
    requests_made = int(re.search(r"(\d+) requests in", out).group(1))
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()
    return {"ok_per_s": (requests_made - errors) / seconds, "errors": errors,
            "p99_ms": float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]}


def cpu_seconds(sessions: set[int]) -> tuple[float, float]:
    """CPU time (user and system) so far of the processes in these process sessions (the replicas, each started in
    a session of its own), and of PostgreSQL's processes: from /proc, Linux only."""
    replicas = database = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if int(fields[3]) in sessions:
            replicas += ticks
        elif name.startswith("postgres"):
            database += ticks
    tick = os.sysconf("SC_CLK_TCK")
    return replicas / tick, database / tick


def fresh_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def measure(setup: str, args, work: Path, script: Path, standard: list[tuple[str, int]]) -> dict[str, dict]:
    patients = list(standard)  # each setup has a store of its own: only its replicas must change different patients
    replicas = 2 if setup == "postgres x2" else 1
    url = "" if setup == "embedded" else args.database_url
    if url:
        fresh_database(url)
    data = work / setup.replace(" ", "-")
    work.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(replicas)]
    servers = []
    try:
        for n, port in enumerate(ports):
            servers.append(start(port, data / f"replica-{n}", args.workers, url))
        found = {}
        for case in args.cases:
            stems = [work / f"{setup}-{case}-{n}".replace(" ", "-") for n in range(replicas)]
            for stem in stems:  # written before the load starts: no replica waits for another's file
                write_requests(stem, requests_for(case, args.seconds * PER_SECOND[case], patients))
            cpu_before = cpu_seconds({server.pid for server in servers})
            loads = [wrk(f"http://127.0.0.1:{port}", stem, args.seconds, args.connections, script)
                     for port, stem in zip(ports, stems, strict=True)]
            results = [result(load, args.seconds) for load in loads]
            cpu_after = cpu_seconds({server.pid for server in servers})
            cpu = [after - before for after, before in zip(cpu_after, cpu_before, strict=True)]
            answered = sum(r["ok_per_s"] for r in results) * args.seconds or 1
            found[case] = {"ok_per_s": sum(r["ok_per_s"] for r in results), "errors": sum(r["errors"] for r in results),
                           "p99_ms": max(r["p99_ms"] for r in results), "replicas": replicas,
                           "replica_cpu_us": cpu[0] / answered * 1e6, "database_cpu_us": cpu[1] / answered * 1e6}
            r = found[case]
            print(f"  {setup:<12} {case:<13} {r['ok_per_s']:7.0f}/s ({r['ok_per_s'] / replicas:6.0f} per replica)  "
                  f"p99 {r['p99_ms']:7.1f} ms  non-2xx {r['errors']}  CPU per request: replicas "
                  f"{r['replica_cpu_us']:5.0f} µs, database {r['database_cpu_us']:5.0f} µs", flush=True)
        return found
    finally:
        for server in servers:
            stop(server)
        while GROUPS:
            GROUPS.pop().rmdir()  # empty now: its processes have ended


def round_trips(database_url: str, work: Path, cases: list[str]) -> dict[str, float]:
    """Statements (and pipeline syncs) sent to PostgreSQL per request, in-process on the same code path."""
    from sandbox.app import create_app
    from sandbox.journal import postgres
    from sandbox.settings import Settings

    fresh_database(database_url)
    app = create_app(Settings.load(environ={}, data_dir=work / "trips", population=POPULATION, seed=SEED,
                                   database_url=database_url))
    client = app.test_client()
    patients = standard_patients()[-400:]
    counted = {}
    try:
        for case in cases:
            lines = requests_for(case, 210, patients)
            for n, text in enumerate(lines):
                method, path, headers, body = text.split(FIELD)
                if n == 10:  # the first few warm the caches (compiled schemas, the population index)
                    before = postgres.round_trips()
                response = client.open(path, method=method, data=body.encode(), headers=dict(
                    h.split(": ", 1) for h in headers.split(HEADER)))
                assert response.status_code < 300, (case, response.status_code, response.get_data(as_text=True))
            counted[case] = (postgres.round_trips() - before) / 200
    finally:
        app.extensions["sandbox"].close()
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16, help="per wrk (one wrk per replica)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per replica")
    parser.add_argument("--database-url", default="postgresql://postgres@localhost:5432/spine_sandbox_bench")
    parser.add_argument("--cases", type=_choices(CASES), default=list(CASES), help="comma-separated: " + ",".join(CASES))
    parser.add_argument("--setups", type=_choices(SETUPS), default=list(SETUPS),
                        help="comma-separated: " + ",".join(SETUPS) + " (ratios need embedded)")
    parser.add_argument("--cpus-per-replica", type=float, default=None,
                        help="limit each replica to this much CPU time (a cgroup quota, e.g. 0.5)")
    parser.add_argument("--pin", action="store_true",
                        help="the replicas on the first half of the CPUs, wrk and PostgreSQL on the other half")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    script = work / "requests.lua"
    script.write_text(LUA)
    setups = tuple(args.setups)
    print(f"{args.seconds} s per case, {args.connections} connections per replica, {args.workers} workers per "
          f"replica, {os.cpu_count()} CPUs", flush=True)
    rounds: list[dict] = []
    everywhere = os.sched_getaffinity(0)
    if args.cpus_per_replica:
        global CPU_QUOTA
        CPU_QUOTA = args.cpus_per_replica
        print(f"each replica limited to {CPU_QUOTA:g} CPUs (a cgroup quota)", flush=True)
    if args.pin:
        global PINNED
        cpus = sorted(everywhere)
        if len(cpus) < 2:
            sys.exit("--pin needs at least 2 CPUs")
        PINNED = set(cpus[:len(cpus) // 2]), set(cpus[len(cpus) // 2:])
        pin_database(PINNED[1])
        print(f"pinned: replicas on CPUs {sorted(PINNED[0])}, wrk and PostgreSQL on {sorted(PINNED[1])}", flush=True)
    try:
        trips = round_trips(args.database_url, work, args.cases)
        print("round trips to PostgreSQL per request: " + ", ".join(f"{case} {n:.2f}" for case, n in trips.items()))
        standard = standard_patients()
        for n in range(1, args.rounds + 1):
            print(f"round {n} of {args.rounds}", flush=True)
            rounds.append({setup: measure(setup, args, work / str(n), script, standard) for setup in setups})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.pin:
            pin_database(everywhere)
    summarise(rounds, setups, args.cases)


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        chosen = [part.strip().replace("-x", " x") for part in text.split(",") if part.strip()]
        unknown = [c for c in chosen if c not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(a.replace(' ', '-') for a in allowed)}")
        return chosen
    return parse


def summarise(rounds: list[dict], setups: tuple[str, ...], cases: list[str]) -> None:
    print("\nmedian over rounds (per replica), and per replica as a ratio of embedded in the same round "
          "(median, min-max):")
    for case in cases:
        for setup in setups:
            per_replica = [r[setup][case]["ok_per_s"] / r[setup][case]["replicas"] for r in rounds]
            p99 = [r[setup][case]["p99_ms"] for r in rounds]
            ratios = [r[setup][case]["ok_per_s"] / r[setup][case]["replicas"] / r["embedded"][case]["ok_per_s"]
                      for r in rounds if "embedded" in r] or [float("nan")]
            cpu = [statistics.median(r[setup][case][key] for r in rounds) for key in ("replica_cpu_us", "database_cpu_us")]
            print(f"  {case:<13} {setup:<12} {statistics.median(per_replica):7.0f}/s per replica  "
                  f"p99 {statistics.median(p99):7.1f} ms  ratio {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f})  CPU per request: replicas {cpu[0]:.0f} µs, "
                  f"database {cpu[1]:.0f} µs")


if __name__ == "__main__":
    main()
