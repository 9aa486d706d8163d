"""One PDS read (GET /Patient/{id}, valid headers, checks and a journal commit) in-process through mock_spine() and
over loopback to `spine-sandbox serve`: median and p99 per call.

    python benchmarks/inprocess_vs_server.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import requests

from sandbox.inprocess import mock_spine
from sandbox.local_server import LocalServer
from sandbox.settings import Settings

PATIENT = "/personal-demographics/FHIR/R4/Patient/9000000009"


def timed_calls(http: requests.Session, url: str, calls: int, token: str) -> list[float]:
    """`token`: a sandbox session token, so every call passes the access-token check as a real client's would."""
    times = []
    for _ in range(calls):
        headers = {"X-Request-ID": str(uuid.uuid4()), "Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        response = http.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return times


def summary(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{label:<34} median {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   ({len(ordered)} calls)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    warmup = max(20, args.calls // 20)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(environ={}, data_dir=Path(tmp) / "inprocess")
        with mock_spine(settings=settings) as spine, requests.Session() as http:
            url = "https://int.api.service.nhs.uk" + PATIENT
            timed_calls(http, url, warmup, spine.token)
            inprocess = timed_calls(http, url, args.calls, spine.token)
        with LocalServer(settings.replace(data_dir=Path(tmp) / "server")) as server, requests.Session() as http:
            token = http.post(server.url + "/_sandbox/sessions", json={
                "plan": "pds-application-restricted", "supplier": "Benchmark", "system": "in-process vs server"
            }).json()["token"]
            timed_calls(http, server.url + PATIENT, warmup, token)
            served = timed_calls(http, server.url + PATIENT, args.calls, token)
    print(summary("in-process (mock_spine, requests)", inprocess))
    print(summary("live local server (1 worker)", served))
    print(f"in-process / server median: {statistics.median(inprocess) / statistics.median(served):.2f}")


if __name__ == "__main__":
    main()
