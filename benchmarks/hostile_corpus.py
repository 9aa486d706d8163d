"""The hostile corpus (tests/hostile_corpus.py) against the real server, round after round.

    python benchmarks/hostile_corpus.py [--rounds 5] [--workers 2] [--population 10000] [--data-dir DIR]

Starts `spine-sandbox serve` (sandbox.local_server.LocalServer: Granian, `--workers` processes, a temporary data
dir), sends the whole corpus (several hundred hostile or malformed requests across PDS, OAuth, MESH and the control
API, sent byte for byte, one connection each) `--rounds` times, and prints per round: requests, answers 5xx (or no
answer at all), service answers without X-Sandbox-Exchange, exchange ids missing from the journal
(/_sandbox/exchanges/<id>), the slowest answer, and the resident memory (VmRSS) of the server's processes after the
round, to show it stays flat ("parser": requests that are not valid HTTP/1.1, which the HTTP server may refuse
before the app, so without an exchange). Then every request that answered 5xx or went unjournaled, with the server log's
explanation. Exits 1 when any answer was a 5xx or an exchange id was not journaled.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.local_server import LocalServer  # noqa: E402
from sandbox.settings import Settings  # noqa: E402
from tests.hostile_corpus import RoundResult, describe, run_round  # noqa: E402


def group_rss_mib(leader: int) -> tuple[float, int]:
    """Total VmRSS (MiB) of every process in the server's process group, and how many there are."""
    total_kib, count = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != leader:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except (OSError, ProcessLookupError):
            continue  # exited meanwhile
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if match:
            total_kib += int(match.group(1))
            count += 1
    return total_kib / 1024, count


def log_causes(log: str, limit: int = 40) -> list[str]:
    """The server log's tracebacks, each as its last line (the exception) and the request it was answering."""
    causes, request = [], ""
    for line in log.splitlines():
        if "unexpected error answering" in line or "failed" in line.lower() and "exchange" in line:
            request = line.strip()[-160:]
        elif re.match(r"^[A-Za-z_.]+(Error|Exception|Conflict|Full)\b", line):
            causes.append(f"{line.strip()[:200]}  <- {request}")
    return causes[-limit:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder, removed afterwards")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="hostile-corpus-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        settings = Settings.load(environ={}, data_dir=data_dir, population=args.population)
        server = LocalServer(settings, workers=args.workers)
        started = time.perf_counter()
        server.start()
        print(f"server {server.url}, {args.workers} workers, population {args.population}, data {data_dir} "
              f"(up in {time.perf_counter() - started:.1f} s)")
        rss, processes = group_rss_mib(server.process.pid)
        print(f"before: {processes} processes, {rss:.0f} MiB resident\n")
        print(f"{'round':>5} {'requests':>8} {'5xx':>5} {'no exchange':>11} {'not journaled':>13} {'parser':>6} "
              f"{'max s':>7} {'round s':>7} {'RSS MiB':>8}  slowest")
        rounds: list[RoundResult] = []
        try:
            for n in range(1, args.rounds + 1):
                began = time.perf_counter()
                result = run_round(server.url)
                took = time.perf_counter() - began
                rounds.append(result)
                rss, processes = group_rss_mib(server.process.pid)
                slowest = result.slowest()
                print(f"{n:>5} {len(result.outcomes):>8} {len(result.server_errors):>5} "
                      f"{len(result.without_exchange):>11} {len(result.not_in_journal):>13} "
                      f"{len(result.refused_by_parser):>6} "
                      f"{result.max_seconds:>7.2f} {took:>7.1f} {rss:>8.0f}  {slowest.case.name if slowest else ''}")
        finally:
            server.stop()
        log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    first = rounds[0] if rounds else RoundResult()
    for title, items in (("answered 5xx (or not at all)", first.server_errors),
                         ("service answers without X-Sandbox-Exchange", first.without_exchange),
                         ("exchange ids missing from the journal", first.not_in_journal),
                         ("not valid HTTP, refused by the HTTP server before the app", first.refused_by_parser)):
        if items:
            print(f"\nround 1, {title}: {len(items)}")
            for outcome in items:
                print("  " + describe(outcome))
    causes = log_causes(log)
    if causes:
        print(f"\nserver log, last {len(causes)} exceptions:")
        for cause in causes:
            print("  " + cause)
    failed = any(r.server_errors or r.not_in_journal for r in rounds)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
