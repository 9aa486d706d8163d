"""MESH throughput side by side: this sandbox and the NHS's own `mesh-sandbox` (PyPI), same load generator, same run.

    python benchmarks/mesh_vs_nhs_sandbox.py [--seconds 15] [--rounds 3] [--connections 32] [--workers 2]

The NHS sandbox (a pinned version, so that runs on different days compare the same peer) is installed from PyPI into
a virtualenv of its own (~/.cache/spine-sandbox/mesh-sandbox-venv, made on first run) and served by uvicorn, as its
Docker image does, with real token checking (AUTH_MODE=full) and its file store (a store that survives a restart, as
ours does). This sandbox runs `spine-sandbox serve` with a fresh data dir, journaling every exchange. Both listen on
loopback only.

Load: wrk (Debian package `wrk`), 2 threads, N connections. Every request carries its own valid NHSMESH token,
made here beforehand (this sandbox refuses a replayed token, as MESH does); each wrk thread reads its own list.
  inbox: GET /messageexchange/X26ABC2/inbox (Accept v2) with --inbox-messages waiting (default 20; MESH lists
         at most 500 per page, and a busy mailbox holds hundreds);
  send:  POST /messageexchange/X26ABC1/outbox, 1 KiB body, Mex-To X26ABC2, an unrestricted workflow.
Prints requests per second, latency percentiles and error counts per run. Each of --rounds rounds (default 3) runs
both servers on fresh stores, one after the other; the summary is each side's median over the rounds and the ratio
of the medians, with every round's own ratio beside it (on a shared machine one run of either side can be 30% off).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import free_port, stop, wait_up  # noqa: E402

from sandbox.services.mesh.auth import make_token  # noqa: E402

# The peer's own virtualenv, outside the repository (it is a benchmark tool, not a project dependency).
PEER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spine-sandbox" / "mesh-sandbox-venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_VERSION = "1.0.137"
SHARED_KEY = "TestKey"
BODY = (b"0123456789abcdef" * 64)  # 1 KiB

LUA = r"""
local tokens = {}
local n = 0
local method, path, body, extra

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  method, path, body = args[1], args[2], args[3]
  for line in io.lines(args[4] .. "." .. id) do
    n = n + 1
    tokens[n] = line
  end
  i = 0
end

function request()
  i = i + 1
  local headers = {["Authorization"] = tokens[(i - 1) % n + 1], ["Accept"] = "application/vnd.mesh.v2+json"}
  if method == "POST" then
    headers["Mex-To"] = "X26ABC2"
    headers["Mex-WorkflowID"] = "BENCH_WORKFLOW"
    headers["Content-Type"] = "application/octet-stream"
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers)
end
"""




def install_peer() -> None:
    if not PEER_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    if peer_version() != PEER_VERSION:
        subprocess.run([str(PEER_PYTHON), "-m", "pip", "install", "-q", f"mesh-sandbox=={PEER_VERSION}", "uvicorn"],
                       check=True)


def peer_version() -> str | None:
    found = subprocess.run([str(PEER_PYTHON), "-c", "from importlib.metadata import version; "
                            "print(version('mesh-sandbox'))"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def start_peer(port: int, store: Path, workers: int, quiet: bool = False) -> subprocess.Popen:
    """As its Docker image runs it (entrypoint.sh: `uvicorn mesh_sandbox.api:app --workers 1`, default logging,
    which the container runtime collects: here, a log file); --peer-quiet silences its logging instead."""
    env = {**os.environ, "AUTH_MODE": "full", "STORE_MODE": "file", "SHARED_KEY": SHARED_KEY,
           "MAILBOXES_DATA_DIR": str(store)}
    args = ["--log-level", "warning", "--no-access-log"] if quiet else []
    log = open(store.parent / "mesh-sandbox.log", "ab")  # noqa: SIM115 - the server process owns it
    return subprocess.Popen([str(PEER_PYTHON), "-m", "uvicorn", "mesh_sandbox.api:app", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def start_ours(port: int, data: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "SANDBOX_POPULATION": "1000", "SANDBOX_LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir", str(data),
                             "--workers", str(workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)



def token_files(stem: Path, mailbox: str, per_thread: int, threads: int) -> None:
    for thread in range(threads):
        nonce = str(uuid.uuid4())
        with open(f"{stem}.{thread}", "w") as out:
            for count in range(per_thread):
                out.write(make_token(mailbox, "password", SHARED_KEY, nonce=nonce, nonce_count=count) + "\n")


def seed(base: str, messages: int) -> None:
    for n in range(messages):
        headers = {"Authorization": make_token("X26ABC1", "password", SHARED_KEY), "Mex-To": "X26ABC2",
                   "Mex-WorkflowID": "BENCH_WORKFLOW", "Content-Type": "application/octet-stream",
                   "Accept": "application/vnd.mesh.v2+json"}
        response = requests.post(f"{base}/messageexchange/X26ABC1/outbox", data=BODY + str(n).encode(),
                                 headers=headers, timeout=10)
        response.raise_for_status()


def wrk(base: str, method: str, path: str, tokens: Path, seconds: int, connections: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          base + path, "--", method, path, BODY.decode(), str(tokens)],
                         capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "errors": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0}
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        result[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = socket_errors.group(1) if socket_errors else ""
    result["ok_per_s"] = (result["requests"] - result["errors"]) / seconds
    return result


def run(name: str, base: str, args, work: Path, script: Path) -> dict:
    seed(base, args.inbox_messages)
    per_thread = 6000 * args.seconds  # more than either server can use: a token is never repeated
    results = {}
    for label, method, path, mailbox in (("inbox", "GET", "/messageexchange/X26ABC2/inbox", "X26ABC2"),
                                         ("send", "POST", "/messageexchange/X26ABC1/outbox", "X26ABC1")):
        stem = work / f"{name}-{label}"
        token_files(stem, mailbox, per_thread, 2)
        results[label] = wrk(base, method, path, stem, args.seconds, args.connections, script)
        r = results[label]
        print(f"  {name:<14} {label:<6} {r['ok_per_s']:8.0f}/s ok   p50 {r['p50']:7.1f} ms  p90 {r['p90']:7.1f} ms  "
              f"p99 {r['p99']:7.1f} ms  non-2xx {r['errors']}  {r['socket_errors']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="this sandbox's worker processes")
    parser.add_argument("--peer-workers", type=int, default=1, help="uvicorn workers for mesh-sandbox")
    parser.add_argument("--only", choices=["ours", "peer"], help="run one side only")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of both sides, each on fresh stores; medians and the ratio of medians reported")
    parser.add_argument("--inbox-messages", type=int, default=20, help="messages waiting in the listed inbox")
    parser.add_argument("--peer-quiet", action="store_true",
                        help="silence mesh-sandbox's logging (its image logs every request; default: as the image)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="mesh-bench-"))
    script = work / "mesh.lua"
    script.write_text("counter = 0\n" + LUA)
    if args.only != "ours":
        install_peer()  # before anything is timed; each round then starts it as installed
    print(f"{args.connections} connections, {args.seconds} s per run, wrk 2 threads; this sandbox "
          f"{args.workers} workers, mesh-sandbox {peer_version()} on {args.peer_workers} uvicorn worker(s)",
          flush=True)
    rounds: dict[str, list[dict]] = {"ours": [], "peer": []}
    try:
        for n in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {n} of {args.rounds}", flush=True)
            if args.only != "peer":
                rounds["ours"].append(measure_ours(args, work, n, script))
            if args.only != "ours":
                rounds["peer"].append(measure_peer(args, work, n, script))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rounds["ours"] and rounds["peer"]:
        summarise(rounds)


def measure_ours(args, work: Path, n: int, script: Path) -> dict:
    port = free_port()
    server = start_ours(port, work / f"ours-{n}", args.workers)
    try:
        wait_up(f"http://127.0.0.1:{port}/_sandbox/health")
        return run("spine-sandbox", f"http://127.0.0.1:{port}", args, work, script)
    finally:
        stop(server)


def measure_peer(args, work: Path, n: int, script: Path) -> dict:
    port = free_port()
    peer = start_peer(port, work / f"peer-store-{n}", args.peer_workers, args.peer_quiet)
    try:
        wait_up(f"http://127.0.0.1:{port}/messageexchange/_ping")
        return run("mesh-sandbox", f"http://127.0.0.1:{port}", args, work, script)
    finally:
        stop(peer)


def summarise(rounds: dict[str, list[dict]]) -> None:
    """Medians over the rounds, and the ratio of the medians (each round's own ratio alongside: the spread shows
    what the machine's noise does to a single run)."""
    for label in ("inbox", "send"):
        ours = statistics.median(r[label]["ok_per_s"] for r in rounds["ours"])
        peer = statistics.median(r[label]["ok_per_s"] for r in rounds["peer"])
        each = [o[label]["ok_per_s"] / max(p[label]["ok_per_s"], 0.001)
                for o, p in zip(rounds["ours"], rounds["peer"], strict=True)]
        p99 = statistics.median(r[label]["p99"] for r in rounds["ours"])
        peer_p99 = statistics.median(r[label]["p99"] for r in rounds["peer"])
        print(f"  {label:<6} median of {len(each)}: spine-sandbox {ours:6.0f}/s (p99 {p99:.0f} ms), mesh-sandbox "
              f"{peer:5.0f}/s (p99 {peer_p99:.0f} ms): ratio {ours / max(peer, 0.001):4.1f}x "
              f"(rounds: {', '.join(f'{r:.1f}x' for r in each)})")


if __name__ == "__main__":
    main()
