"""e-RS requests through the whole sandbox against a bare Flask echo of the same size: what the checks, the session's
referral lifecycle and the journal cost per request.

Two requests a providing system sends most: a worklist fetch (A008, POST /referrals/FHIR/STU3/ReferralRequest/
$ers.fetchworklist, REFERRALS_FOR_REVIEW) and a referral read (A005, GET /referrals/FHIR/STU3/ReferralRequest/<ubrn>),
both about referrals a session made (answered by its lifecycle, not the published examples), with every check, the
behavioural checks over the session's history and the journal on, as `spine-sandbox serve` runs them (Granian,
2 workers x 2 threads). The peer is a bare Flask app under the same Granian settings that reads the request and
answers the very bytes the sandbox answered (same size, same content type). Both servers stay up; each round loads
one then the other with wrk (same script, same connections), so machine drift hits both. Printed: per round and over
the rounds (median, min-max), sandbox/echo for requests per second, p50 and p99 latency.

    apt-get install wrk
    python benchmarks/ers_requests.py [--rounds 5] [--seconds 10] [--connections 16] [--referrals 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from common import ROOT, free_port, granian, recorded_echo, start, stop, wrk

sys.path.insert(0, str(ROOT))
from tests.test_ers_plans import CS, RC, SPC, STU3, Actor, Http, Provider, Referrer, coding, parameters  # noqa: E402

SESSION = "bench-ers"
WORKLIST = f"{STU3}/ReferralRequest/$ers.fetchworklist"
BODIES_VARIABLE = "ERS_ECHO_BODIES"


# ---- the peer: a bare Flask app answering recorded bytes (run by Granian from this file) ---------------------------
def echo_app():
    """Granian factory (run from this file): the recorded answers, byte for byte."""
    return recorded_echo(BODIES_VARIABLE, "ers-echo")


# ---- set-up: a session with referrals awaiting the provider's review ----------------------------------------------------
def prepare(base: str, referrals: int) -> tuple[dict[str, str], dict]:
    """Referrals booked into one directly bookable service; returns the provider's headers and, per benchmarked
    path, the sandbox's answer (body, content type) and how to request it."""
    http = Http(base_url=base + "/referrals")
    patient = _patient(base)
    practice = _practice()
    referrer = Referrer(Actor(http, "benchmark", RC, practice), patient)
    services = referrer.services()
    made = []
    for _ in range(referrals):
        ubrn = referrer.create(services.bookable)
        referrer.book(ubrn, services.bookable)
        made.append(ubrn)
    provider = Actor(http, "benchmark", SPC, services.providers[services.bookable])
    headers = {k: v for k, v in provider.headers().items() if k != "X-Correlation-ID"}
    headers["X-Correlation-ID"] = "bench-0001"
    worklist = parameters("eRS-FetchWorklist-Parameters-1", {
        "name": "listType", "valueCodeableConcept": {"coding": [coding(CS + "eRS-ReferralListSelector-1",
                                                                       "REFERRALS_FOR_REVIEW")]}})
    listed = Provider(provider).worklist("REFERRALS_FOR_REVIEW")
    assert set(made) <= set(listed), "the worklist does not show the session's referrals"
    read_path = f"{STU3}/ReferralRequest/{made[0]}"
    requests = {"A008 worklist": ("POST", WORKLIST, json.dumps(worklist)), "A005 read": ("GET", read_path, None)}
    answers = {}
    for name, (method, path, body) in requests.items():
        sent = {**headers, **({"Content-Type": "application/fhir+json"} if body else {})}
        request = urllib.request.Request(base + "/referrals" + path, data=body.encode() if body else None,
                                         headers=sent, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            answers[name] = {"method": method, "path": "/referrals" + path, "body": body, "headers": sent,
                             "answer": answer.read().decode("latin-1"),
                             "content_type": answer.headers["Content-Type"]}
    return headers, answers


def _patient(base: str) -> str:
    with urllib.request.urlopen(base + "/_sandbox/patients?kind=standard&limit=1", timeout=30) as answer:
        listed = json.loads(answer.read())
    return listed["patients"][0]["nhs_number"]


def _practice() -> str:
    """A referring practice of the e-RS world (deterministic from the seed and population, as in the server)."""
    from sandbox.app import create_app
    from sandbox.services.ers.world import current_world
    from sandbox.settings import Settings

    app = create_app(Settings.load(environ={"SANDBOX_POPULATION": os.environ["SANDBOX_POPULATION"]},
                                   data_dir=tempfile.mkdtemp(prefix="bench-world-")))
    try:
        with app.app_context():
            return current_world().practices[0].ods
    finally:
        app.extensions["sandbox"].close()


# ---- load ---------------------------------------------------------------------------------------------------------------
def wrk_script(case: dict, folder: Path) -> Path:
    script = folder / f"{abs(hash(case['path']))}.lua"
    lines = [f'wrk.method = "{case["method"]}"']
    for name, value in case["headers"].items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    if case["body"]:
        body_file = script.with_suffix(".json")
        body_file.write_text(case["body"])
        lines.append(f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()')
    script.write_text("\n".join(lines) + "\n")
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--referrals", type=int, default=10, help="referrals in the worklist")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed as the load generator: apt-get install wrk")
    folder = Path(tempfile.mkdtemp(prefix="bench-ers-"))
    env = {"SANDBOX_DATA_DIR": str(folder / "data"), "SANDBOX_POPULATION": "10000", "SANDBOX_LOG_LEVEL": "warning",
           "SANDBOX_WORKERS": str(args.workers), "SANDBOX_THREADS": str(args.threads)}
    os.environ["SANDBOX_POPULATION"] = env["SANDBOX_POPULATION"]
    sandbox_port, echo_port = free_port(), free_port()
    sandbox, _ = start([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(sandbox_port)], env,
                       f"http://127.0.0.1:{sandbox_port}/_sandbox/health")
    echo = None
    try:
        base = f"http://127.0.0.1:{sandbox_port}"
        _, answers = prepare(base, args.referrals)
        recorded = folder / "answers.json"
        recorded.write_text(json.dumps({c["path"]: [c["answer"], c["content_type"]] for c in answers.values()}))
        echo, _ = start(granian(echo_port, "ers_requests:echo_app", True, args.workers, args.threads) +
                        ["--working-dir", str(Path(__file__).parent)], {BODIES_VARIABLE: str(recorded)},
                        f"http://127.0.0.1:{echo_port}/referrals{STU3}/ReferralRequest/none")
        for name, case in answers.items():
            print(f"{name}: {case['method']} {case['path']} -> {len(case['answer'].encode('latin-1'))} bytes, "
                  f"{case['content_type']}", file=sys.stderr)
        results = {name: {"sandbox": [], "echo": []} for name in answers}
        for round_no in range(args.rounds):
            for name, case in answers.items():
                script = wrk_script(case, folder)
                for label, port in (("sandbox", sandbox_port), ("echo", echo_port)):
                    if round_no == 0:  # warm-up, not counted
                        wrk(f"http://127.0.0.1:{port}{case['path']}", 4, 2, script=script)
                    measured = wrk(f"http://127.0.0.1:{port}{case['path']}", args.connections, args.seconds,
                                   script=script)
                    if measured["errors"]:
                        print(f"  {name} {label}: errors under load", file=sys.stderr)
                    results[name][label].append(measured)
            print(f"round {round_no + 1} done", file=sys.stderr)
    finally:
        stop(sandbox)
        if echo is not None:
            stop(echo)
    report(results, args)


def report(results: dict, args) -> None:
    print(f"\ne-RS through the sandbox vs a bare Flask echo of the same bytes: Granian {args.workers} workers x "
          f"{args.threads} threads, wrk 2 threads x {args.connections} connections, {args.seconds} s, "
          f"{args.rounds} rounds\n")
    print(f"{'request':<15}{'round':>6}{'sandbox rps':>13}{'echo rps':>10}{'rps ratio':>11}"
          f"{'p50 ms s/e':>16}{'p99 ms s/e':>18}")
    for name, runs in results.items():
        ratios = {"rps": [], "p50_ms": [], "p99_ms": []}
        for n, (s, e) in enumerate(zip(runs["sandbox"], runs["echo"], strict=True)):
            for key in ratios:
                ratios[key].append(s[key] / e[key] if e[key] else float("nan"))
            print(f"{name:<15}{n + 1:>6}{s['rps']:>13.0f}{e['rps']:>10.0f}{ratios['rps'][-1]:>11.3f}"
                  f"{s['p50_ms']:>8.2f}/{e['p50_ms']:<7.2f}{s['p99_ms']:>9.2f}/{e['p99_ms']:<8.2f}")
        summary = "  ".join(f"{key} ratio {statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
                            for key, v in ratios.items())
        print(f"{name:<15}{'all':>6}  {summary}\n")


if __name__ == "__main__":
    main()
