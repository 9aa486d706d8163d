"""The real server as a child process on a free loopback port: for test suites (the pytest plugin's spine_server)
and benchmarks, where a client must reach the sandbox over a socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sandbox.healthcheck import probe
from sandbox.settings import Settings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalServer:
    """`spine-sandbox serve` with the given settings on 127.0.0.1; start() waits until /_sandbox/health answers."""

    def __init__(self, settings: Settings, port: int | None = None, workers: int = 1):
        self.settings = settings.replace(host="127.0.0.1", port=port or free_port(), workers=workers)
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.log_path = Path(self.settings.data_dir) / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> LocalServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_environ()}
        with open(self.log_path, "ab") as log:
            # Its own process group, so stopping it stops Granian's workers too; output to a file, never a pipe
            # nobody drains.
            self.process = subprocess.Popen([sys.executable, "-c", "from sandbox.cli import main; main()", "serve"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"spine-sandbox serve exited with {self.process.returncode}: {self.log_tail()}")
            healthy, seen = probe("127.0.0.1", self.settings.port, timeout=1)
            if healthy:
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"spine-sandbox serve was not healthy within {timeout} s ({seen}): {self.log_tail()}")

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (a graceful Granian shutdown), SIGKILL if it has not exited within timeout; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            return self.process.wait()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
