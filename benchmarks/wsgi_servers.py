"""Which WSGI server serves the sandbox: Granian, gunicorn (sync and gthread) and waitress, same app, same run.

Every request goes through the whole path (session, checks, scenario selection, FHIR rendering, a journal
commit). Two loads: a plain PDS retrieval at 32 connections, and the same while 4 other connections ask for
the 3-second slow-answer scenario (a server that blocks a worker per slow request collapses there).
Servers are interleaved over several rounds; medians are reported, ratios to Granian alongside.

    pip install -e '.[bench]' && python benchmarks/wsgi_servers.py [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import REQUEST_ID, free_port, start, stop, wrk

SERVERS = {
    "granian 2w x2t": lambda port: ["granian", "--interface", "wsgi", "--workers", "2", "--blocking-threads", "2",
                                    "--no-ws", "--host", "127.0.0.1", "--port", str(port), "--factory",
                                    "sandbox.wsgi:create"],
    "granian 2w x1t": lambda port: ["granian", "--interface", "wsgi", "--workers", "2", "--blocking-threads", "1",
                                    "--no-ws", "--host", "127.0.0.1", "--port", str(port), "--factory",
                                    "sandbox.wsgi:create"],
    "gunicorn 2 sync": lambda port: ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "sandbox.wsgi:app"],
    "gunicorn 2w x2t gthread": lambda port: ["gunicorn", "-w", "2", "--threads", "2", "-k", "gthread", "-b",
                                             f"127.0.0.1:{port}", "sandbox.wsgi:app"],
    "waitress 4t": lambda port: ["waitress-serve", "--listen", f"127.0.0.1:{port}", "--threads", "4",
                                 "sandbox.wsgi:app"],
}
PATIENT = "/personal-demographics/FHIR/R4/Patient/9990000107"
SLOW = "/personal-demographics/FHIR/R4/Patient/9999000037"
HEADERS = {"X-Request-ID": REQUEST_ID, "Authorization": "Bearer benchmark"}


def measure(name: str, seconds: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"SANDBOX_DATA_DIR": tempfile.mkdtemp(prefix="bench-"), "SANDBOX_POPULATION": "10000",
           "SANDBOX_LOG_LEVEL": "warning"}
    process, _ = start(SERVERS[name](port), env, base + "/_sandbox/health")
    try:
        wrk(base + PATIENT, connections=8, seconds=2, headers=HEADERS)  # warm-up
        plain = wrk(base + PATIENT, seconds=seconds, headers=HEADERS)
        slow_load = threading.Thread(target=wrk, args=(base + SLOW,),
                                     kwargs={"connections": 4, "seconds": seconds + 2, "headers": HEADERS,
                                             "threads": 1})
        slow_load.start()
        time.sleep(1)
        mixed = wrk(base + PATIENT, seconds=seconds, headers=HEADERS)
        slow_load.join()
    finally:
        stop(process)
    return {"plain": plain, "mixed": mixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--servers", nargs="*", default=list(SERVERS))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in args.servers}
    for round_no in range(args.rounds):
        for name in args.servers:
            try:
                results[name].append(measure(name, args.seconds))
            except (FileNotFoundError, subprocess.CalledProcessError, RuntimeError) as exc:
                print(f"  {name}: skipped ({exc})", file=sys.stderr)
            print(f"round {round_no + 1}: {name} done", file=sys.stderr)
    print(f"\nPDS retrieval, 32 connections, {args.seconds}s, median of {args.rounds} rounds "
          f"(mixed: while 4 connections ask for the 3 s slow answer)\n")
    print(f"{'server':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}   {'mixed req/s':>11}{'p99 ms':>9}")
    baseline = None
    for name, runs in results.items():
        if not runs:
            continue
        row = {load: {k: statistics.median(r[load][k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
               for load in ("plain", "mixed")}
        baseline = baseline or row["plain"]["rps"]
        print(f"{name:<26}{row['plain']['rps']:>9.0f}{row['plain']['p50_ms']:>9.1f}{row['plain']['p99_ms']:>9.1f}"
              f"   {row['mixed']['rps']:>11.0f}{row['mixed']['p99_ms']:>9.1f}   "
              f"({row['plain']['rps'] / baseline:.2f}x)")


if __name__ == "__main__":
    main()
