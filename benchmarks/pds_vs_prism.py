"""PDS retrieval side by side: this sandbox and Prism mocking the same PDS OpenAPI specification, same load, same run.

    python benchmarks/pds_vs_prism.py [--seconds 10] [--rounds 3] [--connections 32]
                                      [--spec ../shared/specs/pds-fhir/specification/personal-demographics.yaml]
                                      [--python INTERPRETER ...]

Prism (Stoplight's OpenAPI mock, `@stoplight/prism-cli` from npm, pinned so that runs on different days compare the same
peer) is installed into a folder of its own (~/.cache/spine-sandbox/prism, made on first run and again when the pin
changes; needs node and npm) and run two ways: as `prism mock <spec>` runs by default (a log line per request, to a
discarded stdout), and as it runs fastest, with `-m` (its HTTP server forked from its logger) and `-v warn` (no line per
request). It validates each request against the specification and answers the specification's example. This sandbox runs
`spine-sandbox serve` (two workers) with a fresh data dir: checks, scenario selection, history checks and the journal
all on, every exchange journaled. It is served by the Python running this script, or by each --python given (an
interpreter whose environment has the sandbox installed: `python3 -m venv V && V/bin/pip install -e .`), so that
interpreters compare in one run: how CPython was built matters (the Docker image's Debian python3 served 11-13% more
than a CPython built from source with pyenv's defaults: a shared libpython, no --enable-optimizations).

Load: wrk (Debian package `wrk`), 2 threads, N connections, GET Patient/9000000009 (the specification's example
patient) with a new X-Request-ID on every request (this sandbox judges a re-used one) and a bearer token. Each of
--rounds rounds runs both servers one after the other; the summary is each side's median over the rounds, the ratio of
the medians, and every round's own ratio (one run of either side can be 30% off on a shared machine).
The goal: at least 3 times Prism's requests per second, with a p99 of at most 25 ms at 32 connections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, free_port, start, stop, wrk

PEER_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spine-sandbox" / "prism"
PEER_PACKAGE = "@stoplight/prism-cli"
PEER_VERSION = "5.14.2"
SPEC = ROOT.parent / "shared" / "specs" / "pds-fhir" / "specification" / "personal-demographics.yaml"
NHS_NUMBER = "9000000009"
OURS_PATH = f"/personal-demographics/FHIR/R4/Patient/{NHS_NUMBER}"
PRISM_PATH = f"/Patient/{NHS_NUMBER}"  # Prism serves the specification's paths without its server's base path
PRISM_MODES = {"prism": [], "prism -m -v warn": ["-m", "-v", "warn"]}

# A new version 4 UUID as X-Request-ID on every request. The request is formatted once per thread, around the id: the
# load generator shares the machine, and a cheaper script leaves more of it to the server measured (32 Lua callbacks a
# request took wrk to 17-18% of a core at 4,000 requests a second; one format call, 13-15%).
LUA = r"""
local random, format = math.random, string.format
local head, tail
function setup(thread) thread:set("id", tostring(thread)) end
function init(args)
  math.randomseed(os.time() + tonumber(string.sub(id, -6), 16))
  local whole = wrk.format("GET", nil, {["X-Request-ID"] = "@ID@", ["Authorization"] = "Bearer benchmark",
                                        ["Accept"] = "application/fhir+json"})
  local at = string.find(whole, "@ID@", 1, true)
  head, tail = string.sub(whole, 1, at - 1), string.sub(whole, at + 4)
end
local function word() return random(0, 0xffff) end  -- 16 random bits
function request()
  return head .. format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", word(), word(), word(), random(0, 0xfff),
                        random(0x8000, 0xbfff), word(), word(), word()) .. tail
end
"""


def prism_command() -> Path:
    prism = PEER_DIR / "node_modules" / ".bin" / "prism"
    if installed_version() != PEER_VERSION:
        if shutil.which("npm") is None:
            raise SystemExit("Prism is installed with npm, which is missing: apt-get install nodejs npm")
        PEER_DIR.mkdir(parents=True, exist_ok=True)
        print(f"installing {PEER_PACKAGE}@{PEER_VERSION} into {PEER_DIR} ...", file=sys.stderr)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEER_DIR),
                        f"{PEER_PACKAGE}@{PEER_VERSION}"], check=True, stdout=subprocess.DEVNULL)
    return prism


def installed_version() -> str | None:
    try:
        return json.loads((PEER_DIR / "node_modules" / PEER_PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def run_prism(options: list[str], spec: Path, script: Path, seconds: int, connections: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, _ = start([str(prism_command()), "mock", *options, "-h", "127.0.0.1", "-p", str(port), str(spec)], {},
                       base + PRISM_PATH)
    try:
        return load(base + PRISM_PATH, script, seconds, connections)
    finally:
        stop(process)


def run_ours(python: Path, script: Path, seconds: int, connections: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="pds-bench-")
    process, _ = start([str(python), "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir", data_dir],
                       {"SANDBOX_LOG_LEVEL": "warning"}, base + "/_sandbox/health")
    try:
        return load(base + OURS_PATH, script, seconds, connections)
    finally:
        stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


def load(url: str, script: Path, seconds: int, connections: int) -> dict:
    wrk(url, connections=8, seconds=2, script=script)  # warm-up: first requests compile and fill caches
    result = wrk(url, connections=connections, seconds=seconds, script=script)
    if result["errors"]:
        raise SystemExit(f"{url} answered errors under load: the comparison would not be like for like")
    return result


def interpreter(python: Path) -> str:
    """The Python version and path, as the summary names a sandbox run."""
    found = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                           text=True)
    if found.returncode != 0:
        raise SystemExit(f"--python {python} does not run: {found.stderr.strip() or found.returncode}")
    return f"Python {found.stdout.strip()} ({python})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--spec", type=Path, default=SPEC, help="the PDS FHIR OpenAPI specification Prism mocks")
    parser.add_argument("--python", type=Path, action="append", metavar="INTERPRETER",
                        help="serve the sandbox with this Python (repeat to compare; default: this one)")
    args = parser.parse_args()
    if not args.spec.is_file():
        raise SystemExit(f"no PDS specification at {args.spec}: pass --spec with the path to personal-demographics.yaml")
    pythons = args.python or [Path(sys.executable)]
    ours = {"sandbox" if len(pythons) == 1 else f"sandbox {n + 1}": python for n, python in enumerate(pythons)}
    named = {name: interpreter(python) for name, python in ours.items()}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder, "request.lua")
        script.write_text(LUA)
        rounds = []
        for n in range(args.rounds):
            found = {name: run_prism(options, args.spec, script, args.seconds, args.connections)
                     for name, options in PRISM_MODES.items()}
            found.update({name: run_ours(python, script, args.seconds, args.connections) for name, python in ours.items()})
            rounds.append(found)
            print(f"round {n + 1}: " + "; ".join(f"{name} {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms"
                                                 for name, r in found.items())
                  + "; ratios " + ", ".join(f"{found[name]['rps'] / found[peer]['rps']:.2f}"
                                            for name in ours for peer in PRISM_MODES),
                  flush=True)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\nGET Patient/{NHS_NUMBER}, {args.connections} connections, {args.rounds} rounds of {args.seconds} s "
          f"(medians; the p99 range over rounds); Prism {installed_version()} on Node {node}")
    for name in (*PRISM_MODES, *ours):
        p99 = sorted(r[name]["p99_ms"] for r in rounds)
        served_by = f"  {named[name]}" if name in named else ""
        print(f"  {name:18} {statistics.median(r[name]['rps'] for r in rounds):7.0f}/s  p99 "
              f"{statistics.median(p99):6.1f} ms ({p99[0]:.1f}-{p99[-1]:.1f}){served_by}")
    for name in ours:
        rps = statistics.median(r[name]["rps"] for r in rounds)
        for peer in PRISM_MODES:
            ratios = sorted(r[name]["rps"] / r[peer]["rps"] for r in rounds)
            print(f"  {name} / {peer}: {rps / statistics.median(r[peer]['rps'] for r in rounds):.2f} "
                  f"(per round {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
