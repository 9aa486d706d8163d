"""A Docker engine and a registry-free base image, for the Docker test and the image benchmark.

Where no engine runs, one is started the way a CI machine without systemd allows (Debian's docker.io:
`dockerd --storage-driver=vfs --iptables=false --bridge=none`), and stopped again afterwards. No registry is reachable
here, so the image is built on a Debian base made by docker/debian-base.sh (debootstrap + docker import), cached
between runs under ~/.cache/spine-sandbox-docker; on a normal machine the Dockerfile's default python:3.11-slim works.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "spine-sandbox-base:bookworm"
CACHE = Path(os.environ.get("SPINE_SANDBOX_CACHE", Path.home() / ".cache" / "spine-sandbox-docker"))


class DockerUnavailable(Exception):
    """Docker cannot run on this machine at all; the message says why."""


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def engine_running() -> bool:
    return shutil.which("docker") is not None and docker("info", check=False, timeout=30).returncode == 0


def start_engine(timeout: float = 60) -> subprocess.Popen | None:
    """None when an engine already runs; else the dockerd this call started (stop it with stop_engine)."""
    if engine_running():
        return None
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if shutil.which("docker") is None or dockerd is None:
        raise DockerUnavailable("no Docker engine is running and Docker is not installed "
                                "(Debian: apt-get install docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker engine is running, and starting dockerd needs root")
    CACHE.mkdir(parents=True, exist_ok=True)
    log = open(CACHE / "dockerd.log", "ab")  # noqa: SIM115 - dockerd writes to it for as long as it runs
    process = subprocess.Popen([dockerd, "--storage-driver=vfs", "--iptables=false", "--bridge=none"],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerUnavailable(f"dockerd exited with {process.returncode} at start: {_tail(CACHE / 'dockerd.log')}")
        if engine_running():
            return process
        time.sleep(0.5)
    stop_engine(process)
    raise DockerUnavailable(f"dockerd did not answer within {timeout} s: {_tail(CACHE / 'dockerd.log')}")


def stop_engine(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_base_image() -> str:
    """The local Debian + Python base (made once, then re-imported from the cached tarball when missing)."""
    result = subprocess.run(["bash", str(ROOT / "docker" / "debian-base.sh"), BASE_IMAGE], capture_output=True,
                            text=True, timeout=1800, env={**os.environ, "SPINE_SANDBOX_CACHE": str(CACHE)})
    if result.returncode != 0:
        raise RuntimeError(f"docker/debian-base.sh failed:\n{result.stderr}")
    return BASE_IMAGE


def build_image(tag: str, base: str = BASE_IMAGE) -> float:
    """Build the project image as `tag`, and its build stage as `tag`-build (so removing both leaves nothing
    behind); --network host lets pip reach the package index where the engine has no bridge network."""
    started = time.monotonic()
    options = ["--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
    docker("build", *options, "--target", "build", "-t", f"{tag}-build", str(ROOT))
    docker("build", *options, "-t", tag, str(ROOT))
    return time.monotonic() - started


def remove_image(tag: str) -> None:
    for name in (tag, f"{tag}-build"):
        docker("rmi", "--force", name, check=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def wait_healthy(container: str, timeout: float = 60) -> float:
    """Seconds from the container's start until Docker reports it healthy (its HEALTHCHECK passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = inspect(container)["State"]
        if state["Health"]["Status"] == "healthy":
            return time.time() - docker_time(state["StartedAt"])
        if not state["Running"]:
            raise RuntimeError(f"container {container} exited ({state['ExitCode']}): "
                               f"{docker('logs', container, check=False).stderr[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"container {container} not healthy within {timeout} s: {inspect(container)['State']}")


def docker_time(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds, as a Unix time."""
    from datetime import datetime

    head, _, rest = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (rest or "0"))


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
