"""Start to searchable: seconds from `spine-sandbox serve` to the first PDS search that finds a synthetic patient.

    python benchmarks/startup.py [--population 10000] [--runs 5]

The issue asks for a default population of at least 10,000 patients searchable within 2 s of start.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

from common import ROOT, free_port, start, stop

sys.path.insert(0, str(ROOT))
from sandbox.synthetic import Population  # noqa: E402


def one_run(population: int) -> tuple[float, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    person = next(Population(42, population).of_kind("standard"))
    query = urllib.parse.urlencode({"family": person.family, "birthdate": f"eq{person.birth_date.isoformat()}"})
    started = time.perf_counter()
    process, healthy = start([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir",
                              tempfile.mkdtemp(prefix="startup-"), "--population", str(population)],
                             {"SANDBOX_LOG_LEVEL": "warning"}, base + "/_sandbox/health")
    try:
        while True:
            request = urllib.request.Request(f"{base}/personal-demographics/FHIR/R4/Patient?{query}",
                                             headers={"X-Request-ID": str(uuid.uuid4())})
            with urllib.request.urlopen(request, timeout=10) as response:
                if person.nhs_number.encode() in response.read():
                    return healthy, time.perf_counter() - started
            time.sleep(0.02)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(args.population) for _ in range(args.runs)]
    healthy = [h for h, _ in runs]
    searchable = [s for _, s in runs]
    print(f"population {args.population}, {args.runs} runs: healthy after median {statistics.median(healthy):.2f} s "
          f"(max {max(healthy):.2f}); first successful search after median {statistics.median(searchable):.2f} s "
          f"(max {max(searchable):.2f})")


if __name__ == "__main__":
    main()
