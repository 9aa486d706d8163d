"""Report generation over a large session: N synthetic exchanges written straight into a fresh journal, then the
session judged and rendered in every format. Prints timings and sizes.

    python benchmarks/report_generation.py [--exchanges 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.assurance.reports import FILES, make_report, render  # noqa: E402
from sandbox.assurance.sessions import create_session  # noqa: E402
from sandbox.conformance.findings import Finding, SpineError  # noqa: E402
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id  # noqa: E402
from sandbox.runtime import Sandbox  # noqa: E402
from sandbox.settings import Settings  # noqa: E402
from sandbox.synthetic.fhir import patient_resource  # noqa: E402

PDS = "/personal-demographics/FHIR/R4"
SCENARIOS = ["pds-get-patient-exists", "pds-get-sensitive-patient", "pds-superseded-patient", "pds-rate-limited",
             "pds-service-unavailable-once", "pds-timeout", None, None, None, None]


def synthetic_exchanges(sandbox: Sandbox, session: str, count: int, seed: int = 7):
    """A busy supplier: mostly good retrievals, a sprinkling of every kind of failure, passes recorded too."""
    rng = random.Random(seed)
    bodies = [json.dumps(patient_resource(sandbox.population.person(i))).encode() for i in range(50)]
    start = time.time() - count * 0.05
    for n in range(count):
        at = start + n * 0.05
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        number = f"99900{n % 100000:05d}"
        roll = rng.random()
        findings = [Finding.passed("PDS-HDR-001", "X-Request-ID header is present.", "header:X-Request-ID"),
                    Finding.passed("PDS-HDR-002", f"X-Request-ID {rid!r} is a UUID.", "header:X-Request-ID"),
                    Finding.passed("PDS-HDR-003", "X-Request-ID is a version 4 UUID.", "header:X-Request-ID"),
                    Finding.passed("PDS-HDR-005", "Authorization carries a bearer token.", "header:Authorization"),
                    Finding.info("PDS-HDR-006", "NHSD-End-User-Organisation-ODS not sent.",
                                 "header:NHSD-End-User-Organisation-ODS"),
                    Finding.passed("PDS-HDR-008", f"X-Request-ID {rid} is new in this session.",
                                   "header:X-Request-ID")]
        status, body = 200, bodies[n % len(bodies)]
        if roll < 0.02:
            findings.append(Finding.failed("PDS-GET-001", f"NHS number {number!r} fails the Modulus 11 check.",
                                           "path:id", reject=SpineError(400, "INVALID_RESOURCE_ID")))
            status, body = 400, b'{"resourceType": "OperationOutcome"}'
        else:
            findings.append(Finding.passed("PDS-GET-001", f"{number} is a valid NHS number.", "path:id"))
        if 0.02 <= roll < 0.03:
            findings.append(Finding.failed("PDS-ERR-002", "Sent 0.05 s after a 429; back off for at least 1 s."))
        elif 0.03 <= roll < 0.05:
            findings.append(Finding.passed("PDS-ERR-001", "Waited 2.10 s before retrying (Retry-After: 2).",
                                           "header:Retry-After"))
        elif 0.05 <= roll < 0.06:
            findings.append(Finding.passed("PDS-GET-002", "Uses the superseding NHS number.", "path:id"))
        yield Exchange(
            id=new_exchange_id(at), session=session, service="pds", operation="get-patient",
            scenario=SCENARIOS[n % len(SCENARIOS)], started_at=at, duration_ms=rng.uniform(2, 40),
            request=RecordedRequest("GET", f"{PDS}/Patient/{number}", "", [
                ("X-Request-ID", rid), ("Authorization", "Bearer sst_benchmark-token"),
                ("Accept", "application/fhir+json"), ("User-Agent", "supplier-benchmark/1.0")], b"", "127.0.0.1"),
            response=RecordedResponse(status, [("Content-Type", "application/fhir+json"), ("ETag", 'W/"1"'),
                                               ("X-Request-ID", rid)], body),
            findings=findings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the reports here")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="report-bench-"))
    sandbox = Sandbox.build(Settings.load(environ={}, data_dir=data, population=2000))
    record, _ = create_session(sandbox.store, sandbox.plans, "pds-application-restricted", "Benchmark Ltd", "Bench 1")

    started = time.perf_counter()
    batch, written = [], 0
    for exchange in synthetic_exchanges(sandbox, record.id, args.exchanges):
        batch.append(exchange)
        if len(batch) == 5000:
            written += sandbox.store.journal.record_many(batch)
            batch = []
    written += sandbox.store.journal.record_many(batch)
    took = time.perf_counter() - started
    journal = data / "journal.sqlite3"
    print(f"generated   {written:>8} exchanges in {took:6.2f} s straight into the journal "
          f"({journal.stat().st_size / 1e6:.0f} MB)")

    timings = {}
    started = time.perf_counter()
    report = make_report(sandbox, record.id)
    timings["model (judge, aggregate, evidence, seal)"] = time.perf_counter() - started
    sizes = {}
    for fmt in FILES:
        started = time.perf_counter()
        text = render(report, fmt)
        timings[f"render {fmt}"] = time.perf_counter() - started
        sizes[fmt] = len(text.encode("utf-8"))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / FILES[fmt]).write_text(text, encoding="utf-8")
    for step, seconds in timings.items():
        print(f"{step:<42} {seconds:6.2f} s")
    print(f"{'total, every format':<42} {sum(timings.values()):6.2f} s")
    for fmt, size in sizes.items():
        print(f"size {FILES[fmt]:<37} {size / 1e6:6.2f} MB")
    print(f"verdict {report['verdict']}; findings {report['summary']['findings']}")
    sandbox.store.close()
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
