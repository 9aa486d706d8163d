"""MESH send throughput as the recipient's inbox grows: the same sends with 20 and with 100,000 messages already
waiting in it, in one run, several rounds.

    python benchmarks/mesh_inbox_growth.py [--waiting 20 100000] [--rounds 3] [--seconds 8] [--connections 32]
                                           [--workers 2]

Each round, for each --waiting count, this sandbox gets a fresh data dir with that many messages waiting in X26ABC2's
inbox, is served by `spine-sandbox serve` (--workers processes), and wrk sends to it for --seconds, as
benchmarks/mesh_vs_nhs_sandbox.py does (POST /messageexchange/X26ABC1/outbox, 1 KiB, Mex-To X26ABC2, a new token per
request). Prints each run's rate, each round's ratio (the largest count's rate over the smallest's), and the median
ratio with its spread; the goal is a ratio within 10% of 1.

The waiting messages are sent before the server starts, through the post office's own send (PostOffice.send, what
a send request commits, in batches of a thousand per transaction), so the inbox, the messages, their bodies and the
session's next expiry are exactly what sends over HTTP leave; only their exchanges and used tokens are not in the
journal (a send costs the same whatever the journal holds). 100,000 take a few seconds rather than minutes.
The sends of the run itself land in the same inbox, so the smaller count ends its run with that many more waiting.

The embedded instruction count of one send with N waiting (valgrind; no server, no load generator):
    python benchmarks/request_path.py --instructions --cases send --waiting 20
    python benchmarks/request_path.py --instructions --cases send --waiting 100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import free_port, stop, wait_up  # noqa: E402
from mesh_vs_nhs_sandbox import BODY, LUA, SHARED_KEY, start_ours, token_files, wrk  # noqa: E402

from sandbox.services.mesh.auth import make_token  # noqa: E402

SENDER, RECIPIENT, WORKFLOW = "X26ABC1", "X26ABC2", "BENCH_WORKFLOW"
SEED_BATCH = 1000  # messages per transaction while seeding


def seed_waiting(sandbox, count: int, session: str = "default") -> None:
    """`count` messages from SENDER waiting in RECIPIENT's inbox, as that many sends of BENCH_WORKFLOW leave them."""
    from sandbox.services.mesh import session as mesh_session
    from sandbox.services.mesh.post_office import PostOffice

    office = PostOffice(mesh_session.load(sandbox, session))
    metadata = {"workflow_id": WORKFLOW, "content_type": "application/octet-stream"}  # what the send headers give
    done = 0
    while done < count:
        with sandbox.store.state.transaction(session):
            for n in range(done, min(done + SEED_BATCH, count)):
                office.send(SENDER, RECIPIENT, dict(metadata), BODY + str(n).encode(), 1)
        done = min(done + SEED_BATCH, count)


def seed_data_dir(folder: Path, count: int) -> None:
    """A data dir whose default session has `count` messages waiting in RECIPIENT's inbox (the store closed after)."""
    from sandbox.runtime import Sandbox
    from sandbox.settings import Settings

    sandbox = Sandbox.build(Settings.load(environ={}, data_dir=folder, population=1000, log_level="warning"))
    try:
        seed_waiting(sandbox, count)
    finally:
        sandbox.close()


def waiting_in(base: str) -> int:
    """What the server says RECIPIENT's inbox holds (its v2 listing's approx_inbox_count)."""
    headers = {"Authorization": make_token(RECIPIENT, "password", SHARED_KEY),
               "Accept": "application/vnd.mesh.v2+json"}
    response = requests.get(f"{base}/messageexchange/{RECIPIENT}/inbox", headers=headers, timeout=120)
    response.raise_for_status()
    return response.json()["approx_inbox_count"]


def measure(args, work: Path, waiting: int, n: int, script: Path) -> dict:
    data = work / f"data-{waiting}-{n}"
    began = time.perf_counter()
    seed_data_dir(data, waiting)
    seeded = time.perf_counter() - began
    port = free_port()
    server = start_ours(port, data, args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/_sandbox/health")
        found = waiting_in(base)  # also reads the inbox once, as a receiver would
        if found != waiting:
            raise SystemExit(f"seeded {waiting} messages but the inbox lists {found}")
        stem = work / f"send-{waiting}-{n}"
        token_files(stem, SENDER, 6000 * args.seconds, 2)
        result = wrk(base, "POST", f"/messageexchange/{SENDER}/outbox", stem, args.seconds, args.connections, script)
    finally:
        stop(server)
        shutil.rmtree(data, ignore_errors=True)
    print(f"  {waiting:>7} waiting  send {result['ok_per_s']:8.0f}/s ok   p50 {result['p50']:6.1f} ms  p99 "
          f"{result['p99']:6.1f} ms  non-2xx {result['errors']}  (seeded in {seeded:.1f} s) {result['socket_errors']}",
          flush=True)
    return result


def summarise(rates: dict[int, list[float]]) -> None:
    smallest, largest = min(rates), max(rates)
    ratios = [big / max(small, 0.001) for small, big in zip(rates[smallest], rates[largest], strict=True)]
    median = statistics.median(ratios)
    print(f"send rate with {largest} waiting over the rate with {smallest}: median {median:.3f} over "
          f"{len(ratios)} round(s), spread {min(ratios):.3f}-{max(ratios):.3f} "
          f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}); "
          f"{'within' if abs(median - 1) <= 0.10 else 'NOT within'} 10%")
    for count, each in sorted(rates.items()):
        print(f"  {count:>7} waiting: median {statistics.median(each):6.0f}/s (runs: "
              f"{', '.join(f'{r:.0f}' for r in each)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, nargs="+", default=[20, 100_000],
                        help="messages waiting in the recipient's inbox when a run starts (one run each per round)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="this sandbox's worker processes")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="mesh-growth-"))
    script = work / "mesh.lua"
    script.write_text("counter = 0\n" + LUA)
    print(f"{args.connections} connections, {args.seconds} s per run, wrk 2 threads; this sandbox {args.workers} "
          f"workers; waiting: {', '.join(map(str, args.waiting))}", flush=True)
    rates: dict[int, list[float]] = {count: [] for count in args.waiting}
    try:
        for n in range(1, args.rounds + 1):
            print(f"round {n} of {args.rounds}", flush=True)
            # Alternate the order, so a machine that slows down during the run does not favour one count.
            for count in (args.waiting if n % 2 else list(reversed(args.waiting))):
                rates[count].append(measure(args, work, count, n, script)["ok_per_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(rates) > 1:
        summarise(rates)


if __name__ == "__main__":
    main()
