"""Helpers the benchmarks share: free ports, starting a command and waiting for health, running wrk."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUEST_ID = "60e0b220-8136-4ca5-ae46-1d97ef59d068"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict, health_url: str, timeout: float = 60) -> tuple[subprocess.Popen, float]:
    """Start a server in its own process group; return it and the seconds it took to answer health."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    wait_up(health_url, timeout, process)
    return process, time.perf_counter() - started


def wait_up(url: str, timeout: float = 60, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers at all; stop the process (if given) and raise when it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    if process is not None:
        stop(process)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def wrk(url: str, connections: int = 32, seconds: int = 10, headers: dict | None = None,
        threads: int = 2, script: Path | None = None) -> dict:
    """Load `url` with wrk; `script` is a Lua file for what headers alone cannot say (a method, a body)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed as the load generator: apt-get install wrk")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            *(["-s", str(script)] if script is not None else [])]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
            "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
            "errors": "Non-2xx" in out or "Socket errors" in out}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def recorded_echo(variable: str, name: str):
    """The peer of the service benchmarks: a bare Flask app that reads each request's body, as the sandbox does, and
    answers its path with the body and content type recorded in the JSON file `variable` names ({path: [body,
    content type]}), so both servers send the very same bytes."""
    import json

    from flask import Flask, Response, request

    recorded = json.loads(Path(os.environ[variable]).read_text())
    app = Flask(name)

    @app.route("/<path:path>", methods=["GET", "POST"])
    def echo(path: str) -> Response:
        request.get_data()
        body, content_type = recorded.get("/" + path, ["", "text/plain"])
        return Response(body.encode("latin-1"), content_type=content_type)

    return app


def granian(port: int, target: str, factory: bool, workers: int, threads: int) -> list[str]:
    """The command that serves a WSGI app as `spine-sandbox serve` does (Granian, the same workers and threads)."""
    return ["granian", "--interface", "wsgi", "--workers", str(workers), "--blocking-threads", str(threads),
            "--no-ws", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            *(["--factory"] if factory else []), target]
