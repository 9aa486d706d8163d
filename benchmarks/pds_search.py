"""PDS patient search: index build time and search latency over the synthetic population.

    python benchmarks/pds_search.py [--population 10000] [--searches 300] [--seed 42]

Prints the index build time, then latency percentiles (ms) per kind of search for the matching engine alone
(population + session, no HTTP) and for the whole request through the app (checks, journal write included).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.app import create_app  # noqa: E402
from sandbox.services.pds.records import PatientRecords  # noqa: E402
from sandbox.services.pds.search import find_matches  # noqa: E402
from sandbox.services.pds.search_params import parse_search  # noqa: E402
from sandbox.settings import Settings  # noqa: E402

BASE = "/personal-demographics/FHIR/R4/Patient"


def queries(population, count: int, rng: random.Random) -> dict[str, list[dict]]:
    """Realistic searches built from random patients, by kind."""
    kinds: dict[str, list[dict]] = {"exact": [], "wildcard": [], "range": [], "fuzzy": [], "history": []}
    for _ in range(count):
        p = population.person(rng.randrange(population.size))
        born = p.birth_date.isoformat()
        kinds["exact"].append({"family": p.family, "gender": p.gender, "birthdate": f"eq{born}"})
        kinds["wildcard"].append({"family": p.family[:3] + "*", "birthdate": f"eq{born}"})
        kinds["range"].append({"family": p.family, "birthdate": [f"ge{p.birth_date.year - 5}-01-01",
                                                                 f"le{p.birth_date.year + 5}-12-31"]})
        kinds["fuzzy"].append({"family": p.family, "given": p.given[0], "birthdate": born, "_fuzzy-match": "true"})
        kinds["history"].append({"family": p.family, "birthdate": born, "_history": "true"})
    return kinds


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (f"p50 {at(0.50):7.3f}  p90 {at(0.90):7.3f}  p99 {at(0.99):7.3f}  max {ordered[-1]:7.3f}  "
            f"mean {statistics.fmean(ordered):7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings.load(environ={}, data_dir=Path(data), population=args.population, seed=args.seed))
        sandbox = app.extensions["sandbox"]
        started = time.perf_counter()
        index = sandbox.population.index()
        print(f"population {args.population:,} (seed {args.seed}): index built in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms ({len(index.family):,} family names, "
              f"{len(index.birth):,} birth dates)")
        records = PatientRecords(sandbox, "benchmark")
        client = app.test_client()
        for kind, batch in queries(sandbox.population, args.searches, random.Random(args.seed)).items():
            engine, http, found = [], [], []
            for params in batch:
                raw = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
                q, _ = parse_search(raw)
                t = time.perf_counter()
                found.append(len(find_matches(records, q, records.session_patients())))
                engine.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                response = client.get(f"{BASE}?{urlencode(params, doseq=True)}", headers={
                    "X-Request-ID": str(uuid.uuid4()), "Authorization": "Bearer benchmark"})
                http.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.get_json()
            print(f"{kind:9} engine ms {percentiles(engine)}   (mean {statistics.fmean(found):.1f} matches)")
            print(f"{'':9} http   ms {percentiles(http)}")


if __name__ == "__main__":
    main()
