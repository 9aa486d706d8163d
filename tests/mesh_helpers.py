"""A MESH client over the Flask test client: a fresh NHSMESH token per request, as a well-behaved client sends."""

from __future__ import annotations

import gzip

from sandbox.services.mesh.auth import make_token

BASE = "/messageexchange"
V2 = "application/vnd.mesh.v2+json"
KEY = "TestKey"


class Mesh:
    def __init__(self, client, mailbox: str = "X26ABC1", session: str | None = None, version: int = 2,
                 password: str = "password", key: str = KEY):
        self.client = client
        self.mailbox = mailbox
        self.session = session
        self.accept = V2 if version == 2 else "application/json"
        self.password = password
        self.key = key

    def as_(self, mailbox: str) -> Mesh:
        return Mesh(self.client, mailbox, self.session, 2 if self.accept == V2 else 1, self.password, self.key)

    def headers(self, extra: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": token or make_token(self.mailbox, self.password, self.key),
                   "Accept": self.accept}
        if self.session:
            headers["X-Sandbox-Session"] = self.session
        headers.update(extra or {})
        return {k: v for k, v in headers.items() if v is not None}

    def call(self, method: str, path: str, headers: dict | None = None, token: str | None = None, **kwargs):
        url = f"{BASE}/{self.mailbox}{path}"
        return self.client.open(url, method=method, headers=self.headers(headers, token), **kwargs)

    def handshake(self, **headers):
        base = {"mex-ClientVersion": "test==1.0", "mex-OSName": "Linux", "mex-OSVersion": "6.1"}
        return self.call("POST", "", {**base, **headers})

    def send(self, to: str = "X26ABC2", data: bytes = b"hello", workflow: str = "TEST_WORKFLOW", **headers):
        base = {"Mex-To": to, "Mex-WorkflowID": workflow, "Content-Type": "text/plain"}
        return self.call("POST", "/outbox", {**base, **headers}, data=data)

    def send_id(self, *args, **kwargs) -> str:
        response = self.send(*args, **kwargs)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["message_id"]

    def chunk(self, message_id: str, number: int, total: int, data: bytes = b"more", **headers):
        return self.call("POST", f"/outbox/{message_id}/{number}",
                         {"Mex-Chunk-Range": f"{number}:{total}", "Content-Type": "application/octet-stream",
                          **headers}, data=data)

    def inbox(self, **params):
        return self.call("GET", "/inbox", query_string=params)

    def download(self, message_id: str, chunk: int = 1, **headers):
        path = f"/inbox/{message_id}" + (f"/{chunk}" if chunk > 1 else "")
        return self.call("GET", path, headers)

    def ack(self, message_id: str):
        return self.call("PUT", f"/inbox/{message_id}/status/acknowledged")

    def track(self, message_id: str):
        return self.call("GET", "/outbox/tracking", query_string={"messageID": message_id})


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def finding_outcomes(client, response) -> dict[str, set[str]]:
    """requirement -> outcomes recorded for the exchange that gave this response."""
    record = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    found: dict[str, set[str]] = {}
    for f in record["findings"]:
        found.setdefault(f["requirement"], set()).add(f["outcome"])
    return found


def findings(client, response, requirement: str) -> list[dict]:
    record = client.get(f"/_sandbox/exchanges/{response.headers['X-Sandbox-Exchange']}").get_json()
    return [f for f in record["findings"] if f["requirement"] == requirement]
