"""The Docker image: build time, size, cold start to healthy, and SIGTERM stop time.

    python benchmarks/docker_image.py [--starts N] [--base IMAGE]

Uses the same engine and registry-free base as the Docker test (tests/dockerenv.py): a running engine, or one it
starts and stops; the base from docker/debian-base.sh unless --base names another (e.g. python:3.11-slim where a
registry is reachable). Everything it creates is removed afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.local_server import free_port  # noqa: E402
from tests import dockerenv  # noqa: E402


def http_ready(port: int, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1):
                return time.time()
        except OSError:
            time.sleep(0.01)
    raise TimeoutError("the container's health endpoint did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--base", help="base image (default: the local Debian base made by docker/debian-base.sh)")
    args = parser.parse_args()
    engine = dockerenv.start_engine()
    tag = dockerenv.unique("spine-sandbox-bench")
    try:
        base = args.base or dockerenv.ensure_base_image()
        build_s = dockerenv.build_image(tag, base)
        size_mb = dockerenv.inspect(tag)["Size"] / 1e6
        runs = [cold_start(tag) for _ in range(args.starts)]
    finally:
        dockerenv.remove_image(tag)
        dockerenv.stop_engine(engine)
    print(f"base image {base}, build {build_s:.0f} s (both stages, no layer cache)")
    print(f"image size {size_mb:.0f} MB")
    for label, key in (("docker run -> /_sandbox/health answers", "run_to_http"),
                       ("container start -> /_sandbox/health answers", "start_to_http"),
                       ("container start -> Docker status healthy", "start_to_healthy"),
                       ("docker stop (SIGTERM) -> exited", "stop")):
        values = [r[key] for r in runs]
        print(f"{label:<46} median {statistics.median(values):5.2f} s   max {max(values):5.2f} s   ({len(values)} runs)")
    print(f"exit codes after SIGTERM: {sorted({r['exit_code'] for r in runs})}")


def cold_start(tag: str) -> dict:
    name, volume, port = dockerenv.unique("spine-sandbox-bench"), dockerenv.unique("spine-sandbox-bench-data"), free_port()
    try:
        began = time.time()
        dockerenv.docker("run", "--detach", "--name", name, "--network", "host", "-e", f"SANDBOX_PORT={port}",
                         "--volume", f"{volume}:/data", tag)
        ready = http_ready(port)
        started = dockerenv.docker_time(dockerenv.inspect(name)["State"]["StartedAt"])
        healthy = dockerenv.wait_healthy(name)
        stopping = time.monotonic()
        dockerenv.docker("stop", "--time", "30", name)
        stop = time.monotonic() - stopping
        return {"run_to_http": ready - began, "start_to_http": ready - started, "start_to_healthy": healthy,
                "stop": stop, "exit_code": dockerenv.inspect(name)["State"]["ExitCode"]}
    finally:
        dockerenv.docker("rm", "--force", name, check=False)
        dockerenv.docker("volume", "rm", "--force", volume, check=False)


if __name__ == "__main__":
    main()
