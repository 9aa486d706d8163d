"""Identity service timings, in process (Flask test client, SQLite journal): prints numbers, asserts nothing.

    python benchmarks/oauth_tokens.py [--requests N]

- token: POST /oauth2/token with a fresh RS512 client assertion (decode, 19 rules, jti write, signature check,
  token write, journal write); signing the assertion is done before the clock starts;
- PDS GET with a real token vs a made-up one (what token resolution adds to an API request).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.app import create_app  # noqa: E402
from sandbox.settings import Settings  # noqa: E402
from tests.oauth_helpers import KeyPair, assertion, cc_form, jwks, register  # noqa: E402


def timed(call, n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return n / sum(samples), statistics.quantiles(samples, n=100)[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    n = parser.parse_args().requests
    app = create_app(Settings.load(environ={}, data_dir=Path(tempfile.mkdtemp()), population=2000))
    client = app.test_client()
    key = KeyPair("bench-1")
    api_key = register(client, keys=jwks(key))["api_key"]
    forms = [cc_form(assertion(key, api_key)) for _ in range(n)]
    tokens = []

    def issue(i):
        response = client.post("/oauth2/token", data=forms[i])
        assert response.status_code == 200
        tokens.append(response.get_json()["access_token"])

    rate, p99 = timed(issue, n)
    print(f"POST /oauth2/token (client credentials, RS512): {rate:7.0f} req/s, p99 {p99:5.1f} ms")
    for label, bearer in (("real token", lambda i: tokens[i]), ("made-up token", lambda i: "made-up")):
        def get(i, bearer=bearer):
            client.get("/personal-demographics/FHIR/R4/Patient/9000000009",
                       headers={"X-Request-ID": str(uuid.uuid4()), "Authorization": f"Bearer {bearer(i)}"})
        rate, p99 = timed(get, n)
        print(f"GET PDS Patient with a {label + ':':<15}          {rate:7.0f} req/s, p99 {p99:5.1f} ms")


if __name__ == "__main__":
    main()
