"""`python -m sandbox.healthcheck`: exit 0 when the local sandbox answers GET /_sandbox/health with 200, else 1.

The container's HEALTHCHECK runs it every few seconds, so it stays small: a raw socket, no HTTP library imports.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys

HEALTH_PATH = "/_sandbox/health"


def probe(host: str = "127.0.0.1", port: int | None = None, timeout: float = 2.0,
          context: ssl.SSLContext | None = None) -> tuple[bool, str]:
    """(healthy, what was seen): the status line of the answer, or why there was none. With `context`, over TLS."""
    port = port or int(os.environ.get("SANDBOX_PORT") or 9000)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            conn = context.wrap_socket(raw, server_hostname=host) if context else raw
            conn.settimeout(timeout)
            conn.sendall(f"GET {HEALTH_PATH} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError as exc:
        return False, f"no answer from {host}:{port}{HEALTH_PATH}: {exc}"
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    return len(parts) >= 2 and parts[1] == "200", status_line or "empty answer"


def main() -> int:
    healthy, seen = probe()
    print(seen)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
