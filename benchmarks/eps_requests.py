"""EPS requests through the whole sandbox against a bare Flask echo of the same size: what the checks, the signature
verification, the HL7v3 translation (validated against the schemas), the session's prescriptions and the journal
cost per request.

Two requests: a signed prescription order (`$process-message`, prescription-order) and a release by prescription id
(`Task/$release`), both as a healthcare worker with a real CIS2 access token from the sandbox's identity service,
with every check and the journal on, as `spine-sandbox serve` runs them (Granian, 2 workers x 2 threads). The peer
is a bare Flask app under the same Granian settings that reads the request and answers the very bytes the sandbox
answered (same size, same content type).

Each order needs a new prescription id and a valid signature over its own digest, and each release a prescription
still To be Dispensed, so no request can be replayed: the bodies are made before each round (the prescription
prepared through the sandbox's `$prepare`, its digest signed with a certificate of the sandbox's test CA from
`spine-sandbox eps certificate`) and wrk cycles through them with a Lua script (each wrk thread takes every n-th
body, and a new X-Request-ID per request), so the load generator stays wrk, the same C client for both servers and
as the e-RS benchmark uses, rather than a Python generator that would compete for the same two cores. A release
round releases the prescriptions the order rounds made (only those sent before the last in-flight ones), topped up
beforehand (ordered outside the measured runs) to the number the last round's rate needs; a round that runs out of
them says so. Both servers stay up; each round loads one then the other with the same script, so
machine drift hits both. Printed: per round and over the rounds (median, min-max), sandbox/echo for requests per
second, p50 and p99 latency.

    apt-get install wrk
    python benchmarks/eps_requests.py [--rounds 5] [--seconds 10] [--release-seconds 4] [--connections 16]
                                       [--hl7v3-schemas ../shared/specs/spine-hl7v3-xsd/omvt]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, _ms, free_port, granian, recorded_echo, start, stop

sys.path.insert(0, str(ROOT))
from tests.test_eps_plans import (  # noqa: E402
    DISPENSER,
    DISPENSING_BASE,
    FHIR,
    PRESCRIBER,
    PRESCRIBING_BASE,
    Actor,
    DispensingSystem,
    Http,
    Identity,
    PrescribingSystem,
    Prescription,
    Smartcard,
)

SESSION = "bench-eps"
ORDER_PATH = f"{PRESCRIBING_BASE}{FHIR}/$process-message"
RELEASE_PATH = f"{DISPENSING_BASE}{FHIR}/Task/$release"
BODIES_VARIABLE = "EPS_ECHO_BODIES"
LUA = r"""
local bodies, headers_file = {}, "%(headers)s"
local step = %(threads)d
local created = 0
counter = 0  -- globals: setup() names each thread's id, done() reads each thread's counter
threads_list = {}
function setup(thread)
  thread:set("id", created)
  created = created + 1
  table.insert(threads_list, thread)
end
function init(args)
  for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
  wrk.method = "POST"
  for line in io.lines(headers_file) do
    local name, value = line:match("^([^:]+): (.*)$")
    wrk.headers[name] = value
  end
end
function request()
  local index = id + counter * step + 1
  counter = counter + 1
  if index > #bodies then index = #bodies end  -- ran out: the last body again (refused, counted as an error)
  wrk.headers["X-Request-ID"] = string.format("%%08x-0000-4000-8000-%%012x", id, counter)
  return wrk.format(nil, nil, nil, bodies[index])
end
refused, refusal = 0, ""
function response(status, headers, body)
  if status >= 300 then
    refused = refused + 1
    refusal = status .. " " .. string.sub(body or "", 1, 300):gsub("\n", " ")
  end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads_list) do
    io.write(string.format("SENT %%d %%d\n", thread:get("id"), thread:get("counter")))
    if thread:get("refused") > 0 then
      io.write(string.format("REFUSED %%d %%s\n", thread:get("refused"), thread:get("refusal")))
    end
  end
end
"""


# ---- the peer: a bare Flask app answering recorded bytes (run by Granian from this file) ---------------------------
def echo_app():
    """Granian factory (run from this file): the recorded answers, byte for byte."""
    return recorded_echo(BODIES_VARIABLE, "eps-echo")


# ---- the supplier's side: users, a smartcard, signed orders -------------------------------------------------------------
class Supplier:
    def __init__(self, base: str, card: Smartcard):
        self.http = Http(SESSION, base_url=base)
        self.identity = Identity(self.http, "EPS benchmark")
        self.card = card
        self.refresh()

    def refresh(self) -> None:
        """New CIS2 tokens (they live 10 minutes)."""
        self.prescriber = PrescribingSystem(Actor(self.http, self.identity, PRESCRIBER, PRESCRIBING_BASE), self.card)
        self.dispenser = DispensingSystem(Actor(self.http, self.identity, DISPENSER, DISPENSING_BASE), DISPENSER.ods)

    def headers(self, actor: Actor) -> dict[str, str]:
        sent = actor.headers("-")
        del sent["X-Request-ID"]  # one per request, from the Lua script
        sent["X-Correlation-ID"] = "bench-eps"
        return sent

    def signed_orders(self, count: int, workers: int = 4) -> list[tuple[Prescription, str]]:
        def one(_):
            rx = Prescription.new(PRESCRIBER, DISPENSER.ods)
            return rx, json.dumps(self.prescriber.signed_order(rx), separators=(",", ":"))

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(count)))

    def order(self, count: int, workers: int = 4) -> list[Prescription]:
        """Prescriptions ordered (prepared, signed, sent) outside the measured runs, for the releases."""
        def one(pair):
            rx, body = pair
            reply = self.prescriber.order(rx, body=json.loads(body))
            return rx if reply.status == 200 else None

        with ThreadPoolExecutor(workers) as pool:
            return [rx for rx in pool.map(one, self.signed_orders(count, workers)) if rx is not None]

    def release_body(self, short_form: str) -> str:
        return json.dumps(self.dispenser._release_body(short_form), separators=(",", ":"))


def issue_card(data_dir: Path, folder: Path) -> Smartcard:
    out = folder / "card"
    subprocess.run([sys.executable, "-m", "sandbox.cli", "eps", "certificate", "--user", PRESCRIBER.user_id,
                    "--out", str(out), "--data-dir", str(data_dir)], cwd=ROOT, check=True, capture_output=True)
    return Smartcard(next(out.glob("*.crt.pem")).read_text(), next(out.glob("*.key.pem")).read_text())


# ---- load ---------------------------------------------------------------------------------------------------------------
def run_wrk(url: str, bodies: list[str], headers: dict[str, str], folder: Path, name: str, connections: int,
            seconds: float, threads: int = 2) -> dict:
    """wrk over `bodies` (each thread every `threads`-th one); returns rps, p50, p99, errors and the indexes sent."""
    body_file, header_file, script = (folder / f"{name}.bodies", folder / f"{name}.headers", folder / f"{name}.lua")
    body_file.write_text("\n".join(bodies) + "\n")
    header_file.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    script.write_text(LUA % {"bodies": body_file, "headers": header_file, "threads": threads})
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
            url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    sent = {int(a): int(b) for a, b in re.findall(r"^SENT (\d+) (\d+)$", out, flags=re.M)}
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
            "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
            "errors": "Non-2xx" in out or "Socket errors" in out, "sent": sent,
            "refused": re.findall(r"^REFUSED (\d+) (.*)$", out, flags=re.M),
            "exhausted": any(thread + (count - 1) * threads >= len(bodies) for thread, count in sent.items())}


def settled(sent: dict[int, int], threads: int, in_flight: int, total: int) -> list[int]:
    """The body indexes wrk sent, less the last `in_flight` of each thread (wrk makes a connection's next request
    before it sends it, and stops with requests in flight: those may not have been answered)."""
    indexes = []
    for thread, count in sent.items():
        indexes += [thread + n * threads for n in range(max(0, count - in_flight)) if thread + n * threads < total]
    return sorted(indexes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--headroom", type=float, default=2.0, help="bodies made per round: expected requests x this")
    parser.add_argument("--release-seconds", type=int, default=0,
                        help="length of each release run (default --seconds); each needs that many seconds' worth of "
                             "prescriptions ordered beforehand")
    parser.add_argument("--hl7v3-schemas", default=str(ROOT.parent / "shared" / "specs" / "spine-hl7v3-xsd" / "omvt"),
                        help="the official Spine schemas the order's translation is validated against (skipped, and "
                             "said, when the folder is absent)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed as the load generator: apt-get install wrk")
    folder = Path(tempfile.mkdtemp(prefix="bench-eps-"))
    data_dir = folder / "data"
    env = {"SANDBOX_DATA_DIR": str(data_dir), "SANDBOX_POPULATION": "10000", "SANDBOX_LOG_LEVEL": "warning",
           "SANDBOX_WORKERS": str(args.workers), "SANDBOX_THREADS": str(args.threads)}
    if Path(args.hl7v3_schemas).is_dir():
        env["SANDBOX_HL7V3_SCHEMAS"] = args.hl7v3_schemas
    else:
        print(f"{args.hl7v3_schemas} is absent: translations are checked by the sandbox's own rules only",
              file=sys.stderr)
    card = issue_card(data_dir, folder)
    sandbox_port, echo_port = free_port(), free_port()
    sandbox, _ = start([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(sandbox_port)], env,
                       f"http://127.0.0.1:{sandbox_port}/_sandbox/health")
    echo = None
    base = f"http://127.0.0.1:{sandbox_port}"
    results = {"order": {"sandbox": [], "echo": []}, "release": {"sandbox": [], "echo": []}}
    notes: list[str] = []
    try:
        supplier = Supplier(base, card)
        # One of each, to record the answers the echo gives back.
        rx, body = supplier.signed_orders(1)[0]
        ordered = supplier.http.send("POST", ORDER_PATH, supplier.headers(supplier.prescriber.actor) | {
            "X-Request-ID": "60e0b220-8136-4ca5-ae46-1d97ef59d068"}, json.loads(body))
        released = supplier.dispenser.release(rx.short_form)
        assert ordered.status == 200 and released.status == 200, (ordered.body[:300], released.body[:300])
        recorded = folder / "answers.json"
        recorded.write_text(json.dumps({ORDER_PATH: [ordered.body.decode("latin-1"), ordered.header("Content-Type")],
                                        RELEASE_PATH: [released.body.decode("latin-1"),
                                                       released.header("Content-Type")]}))
        echo, _ = start(granian(echo_port, "eps_requests:echo_app", True, args.workers, args.threads) +
                        ["--working-dir", str(Path(__file__).parent)], {BODIES_VARIABLE: str(recorded)},
                        f"http://127.0.0.1:{echo_port}/none")
        print(f"order: POST {ORDER_PATH} {len(body)} bytes -> {len(ordered.body)} bytes; release: POST "
              f"{RELEASE_PATH} -> {len(released.body)} bytes", file=sys.stderr)
        expected = {"order": 30.0, "release": 300.0}  # requests/s, updated from each round
        pool: list[Prescription] = []  # ordered, not yet released
        for round_no in range(args.rounds + 1):  # round 0: warm-up, not counted
            seconds = 2 if round_no == 0 else args.seconds
            supplier.refresh()
            count = int(expected["order"] * seconds * args.headroom) + args.connections * 2
            made = supplier.signed_orders(count)
            bodies = [b for _, b in made]
            for label, port in (("sandbox", sandbox_port), ("echo", echo_port)):
                measured = run_wrk(f"http://127.0.0.1:{port}{ORDER_PATH}", bodies,
                                   supplier.headers(supplier.prescriber.actor), folder, f"order-{label}",
                                   args.connections, seconds)
                if label == "sandbox":
                    expected["order"] = max(measured["rps"], 1.0)
                    pool += [made[i][0] for i in settled(measured["sent"], 2, 2 * args.connections, len(made))]
                    if measured["exhausted"]:
                        notes.append(f"round {round_no}: the orders ran out (raise --headroom)")
                if measured["errors"]:
                    print(f"  order {label}: errors under load {measured['refused'][:1]}", file=sys.stderr)
                if round_no:
                    results["order"][label].append(measured)
            release_seconds = 2 if round_no == 0 else args.release_seconds or args.seconds
            wanted = int(expected["release"] * release_seconds * args.headroom) + args.connections * 2
            if len(pool) < wanted:  # more prescriptions To be Dispensed, ordered outside the measured runs
                pool += supplier.order(wanted - len(pool))
            supplier.refresh()  # the top-up may have taken minutes: tokens live 10
            bodies = [supplier.release_body(p.short_form) for p in pool]
            for label, port in (("sandbox", sandbox_port), ("echo", echo_port)):
                measured = run_wrk(f"http://127.0.0.1:{port}{RELEASE_PATH}", bodies,
                                   supplier.headers(supplier.dispenser.actor), folder, f"release-{label}",
                                   args.connections, release_seconds)
                if label == "sandbox":
                    expected["release"] = max(measured["rps"], 1.0)
                    used = set(settled(measured["sent"], 2, 0, len(pool)))
                    pool = [p for n, p in enumerate(pool) if n not in used]
                    if measured["exhausted"]:
                        notes.append(f"round {round_no}: the releases ran out")
                if measured["errors"]:
                    print(f"  release {label}: errors under load {measured['refused'][:1]}", file=sys.stderr)
                if round_no:
                    results["release"][label].append(measured)
            print(f"round {round_no} done" + (" (warm-up)" if round_no == 0 else ""), file=sys.stderr)
    finally:
        stop(sandbox)
        if echo is not None:
            stop(echo)
    report(results, args, notes)


def report(results: dict, args, notes: list[str]) -> None:
    print(f"\nEPS through the sandbox vs a bare Flask echo of the same bytes: Granian {args.workers} workers x "
          f"{args.threads} threads, wrk 2 threads x {args.connections} connections, {args.seconds} s, "
          f"{args.rounds} rounds; checks, signatures, HL7v3 translation and journal on\n")
    print(f"{'request':<10}{'round':>6}{'sandbox rps':>13}{'echo rps':>10}{'rps ratio':>11}"
          f"{'p50 ms s/e':>16}{'p99 ms s/e':>18}")
    for name, runs in results.items():
        ratios = {"rps": [], "p50_ms": [], "p99_ms": []}
        for n, (s, e) in enumerate(zip(runs["sandbox"], runs["echo"], strict=True)):
            for key in ratios:
                ratios[key].append(s[key] / e[key] if e[key] else float("nan"))
            flag = "  * ran out: refusals counted" if s["exhausted"] else ""
            print(f"{name:<10}{n + 1:>6}{s['rps']:>13.0f}{e['rps']:>10.0f}{ratios['rps'][-1]:>11.3f}"
                  f"{s['p50_ms']:>8.2f}/{e['p50_ms']:<7.2f}{s['p99_ms']:>9.2f}/{e['p99_ms']:<8.2f}{flag}")
        if ratios["rps"]:
            summary = "  ".join(f"{key} ratio {statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
                                for key, v in ratios.items())
            p99 = [s["p99_ms"] for s in runs["sandbox"]]
            print(f"{name:<10}{'all':>6}  {summary}  sandbox p99 {statistics.median(p99):.1f} ms "
                  f"({min(p99):.1f}-{max(p99):.1f})\n")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
