"""A broad, deterministic corpus of hostile and malformed requests across PDS, OAuth, MESH and the control API, sent
byte for byte over a socket to a running sandbox (shared by tests/test_hostile_server.py and
benchmarks/hostile_corpus.py).

Each request is sent exactly as written (no client library tidies the URL, the headers or the encoding) on its own
connection. `run_round(url)` sends the whole corpus once and says, per request, the status, whether a service
request carried `X-Sandbox-Exchange`, and whether that exchange is in the journal. Some requests depend on an
earlier answer (a MESH message id for its chunks, the gzip bomb's download), so the corpus is a generator that is
sent each answer.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import json
import socket
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from sandbox.services.mesh.auth import make_token

PDS = "/personal-demographics/FHIR/R4"
ERS = "/referrals/FHIR"
MESH = "/messageexchange"
SENDER, RECIPIENT = "X26ABC1", "X26ABC2"
MESH_PASSWORD, MESH_KEY = "password", "TestKey"
PATIENT = "9000000009"
MAX_READ = 64 * 1024 * 1024  # an answer larger than this is itself a finding (the gzip bomb expanded): stop reading
TIMEOUT_S = 60.0

HeaderValue = str | bytes | Callable[[], str]


@dataclass(frozen=True)
class Case:
    """One request. `area` is pds, oauth, mesh, ers, control or http; service requests (not under /_sandbox/) are
    expected to come back with X-Sandbox-Exchange naming a journaled exchange."""

    name: str
    area: str
    method: str
    target: str | bytes
    headers: tuple[tuple[str, HeaderValue], ...] = ()
    body: bytes = b""
    parser: bool = False  # not valid HTTP/1.1 (raw non-ASCII in the request line, an absurd Content-Length): the
    #                       HTTP server may refuse it before the app sees it, so without an exchange

    @property
    def journaled(self) -> bool:
        path = self.target if isinstance(self.target, str) else self.target.decode("latin-1")
        return not path.startswith("/_sandbox/")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    truncated: bool = False

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def exchange(self) -> str | None:
        return self.headers.get("x-sandbox-exchange")


@dataclass
class Outcome:
    case: Case
    answer: Answer
    journaled: bool | None = None  # None: not a service request (the control API is not journaled)


@dataclass
class RoundResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def server_errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.answer.status >= 500 or o.answer.status == 0]

    @property
    def without_exchange(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.case.journaled and not o.case.parser and not o.answer.exchange]

    @property
    def refused_by_parser(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.case.parser and not o.answer.exchange]

    @property
    def not_in_journal(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.answer.exchange and o.journaled is False]

    @property
    def max_seconds(self) -> float:
        return max((o.answer.seconds for o in self.outcomes), default=0.0)

    def slowest(self) -> Outcome | None:
        return max(self.outcomes, key=lambda o: o.answer.seconds, default=None)


# --- sending ------------------------------------------------------------------------------------------------------


def send(host: str, port: int, case: Case, timeout: float = TIMEOUT_S) -> Answer:
    """The case's bytes on a fresh connection; the answer read to the end (status 0: no answer at all)."""
    target = _bytes(case.target)
    lines = [case.method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + f"{host}:{port}".encode(),
             b"Connection: close"]
    names = set()
    for name, value in case.headers:
        value = value() if callable(value) else value
        lines.append(name.encode("latin-1") + b": " + _bytes(value))
        names.add(name.lower())
    if (case.body or case.method in ("POST", "PUT", "PATCH")) and not names & {"content-length", "transfer-encoding"}:
        lines.append(b"Content-Length: " + str(len(case.body)).encode())
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            # Answered (e.g. 413) and closed before the whole body was sent: read what it said.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + case.body)
            raw, truncated = _read_all(sock)
    except OSError as exc:
        return Answer(0, {}, f"no answer: {exc}".encode(), time.perf_counter() - started)
    answer = _parse(raw, time.perf_counter() - started)
    answer.truncated = truncated
    return answer


def _bytes(text: str | bytes) -> bytes:
    """As sent on the wire: latin-1 where it fits (one byte per character, as HTTP/1.1 has it), else UTF-8."""
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _read_all(sock: socket.socket) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while size < MAX_READ:
        try:
            data = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not data:
            return b"".join(chunks), False
        chunks.append(data)
        size += len(data)
    return b"".join(chunks), size >= MAX_READ


def _parse(raw: bytes, seconds: float) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ")[1])
    except (IndexError, ValueError):
        return Answer(0, {}, raw[:200], seconds)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body, seconds)


def _unchunk(data: bytes) -> bytes:
    out, at = [], 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            break
        try:
            size = int(data[at:end].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(data[end + 2:end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(out)


def run_round(url: str, cases: Callable[[], Generator[Case, Answer, None]] | None = None) -> RoundResult:
    """Send the corpus once to the sandbox at `url`; then look every exchange id up in the journal."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    result = RoundResult()
    corpus = (cases or hostile_corpus)()
    answer = None
    while True:
        try:
            case = corpus.send(answer)
        except StopIteration:
            break
        answer = send(host, port, case)
        result.outcomes.append(Outcome(case, answer))
    for outcome in result.outcomes:
        if outcome.answer.exchange:
            found = send(host, port, Case("journal", "control", "GET",
                                          "/_sandbox/exchanges/" + quote(outcome.answer.exchange, safe="")))
            outcome.journaled = found.status == 200
    return result


def describe(outcome: Outcome) -> str:
    """One line for a report: the case, what was sent, and what came back."""
    case, answer = outcome.case, outcome.answer
    target = case.target if isinstance(case.target, str) else case.target.decode("latin-1")
    body = answer.body[:160].decode("utf-8", "replace").replace("\n", " ")
    return (f"[{case.area}] {case.name}: {case.method} {target[:80]} -> {answer.status} "
            f"{answer.exchange or 'no exchange'} {body}")


# --- building blocks ------------------------------------------------------------------------------------------------


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_text(payload: bytes | str, header: bytes | str = '{"alg":"RS512","typ":"JWT","kid":"test-1"}') -> str:
    """A JWT-shaped string with the given (raw) header and payload and a signature of junk."""
    return f"{_b64(header)}.{_b64(payload)}.{_b64(b'not-a-signature')}"


def mesh_token(mailbox: str = SENDER) -> Callable[[], str]:
    """A fresh, valid MESH Authorization value at send time (each token's nonce is single use)."""
    return lambda: make_token(mailbox, MESH_PASSWORD, MESH_KEY)


def pds_headers(**extra: HeaderValue) -> tuple[tuple[str, HeaderValue], ...]:
    base: dict[str, HeaderValue] = {"X-Request-ID": lambda: str(uuid.uuid4()), "Authorization": "Bearer hostile-corpus",
                                    "Accept": "application/fhir+json"}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return tuple((k, v) for k, v in base.items() if v is not None)


def mesh_headers(mailbox: str = SENDER, **extra: HeaderValue) -> tuple[tuple[str, HeaderValue], ...]:
    base: dict[str, HeaderValue] = {"Authorization": mesh_token(mailbox), "Accept": "application/vnd.mesh.v2+json"}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return tuple((k, v) for k, v in base.items() if v is not None)


JSON = (("Content-Type", "application/json"),)


def _path(segment: str) -> str:
    """A path segment as a client sends it: percent-encoded, except escapes already written as such."""
    return quote(segment, safe="%.")


@functools.cache
def gzip_bomb(expanded_mib: int = 1000) -> bytes:
    """About 1 MB of gzip that expands to `expanded_mib` MiB of zeros: one gzip member of 1 MiB of zeros, repeated
    (gzip readers read consecutive members as one stream)."""
    return gzip.compress(bytes(1024 * 1024), 9) * expanded_mib


# Values that broke parsers: non-ASCII digits, huge and non-finite numbers, lone surrogates, odd text.
ODD_NUMBERS = ["²", "١٠", "1_0", "9" * 400, "-1", "1e999", "nan", "0x10", "99999999999999999999", " 5 ", ""]
HOSTILE_JSON = [
    b"", b"null", b"[]", b"1e999", b"9" * 400, b'"\\ud800"', b"\xff\xfe\xfd", b"{", b"NaN",
    b"[" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b'{"\\udfff": 1}', b'{"a": 1e999}',
    b'{"a": ' + b"1" * 400 + b"}",
]


# --- the corpus -----------------------------------------------------------------------------------------------------


def hostile_corpus() -> Generator[Case, Answer, None]:
    yield from _http()
    yield from _pds()
    yield from _oauth()
    yield from _mesh()
    yield from _ers()
    yield from _eps()
    yield from _control()


def _http() -> Iterable[Case]:
    """What an HTTP parser sees first: long URLs and headers within the limits, odd bytes, odd methods."""
    base = f"{PDS}/Patient/{PATIENT}"
    yield Case("url 16 KB", "http", "GET", f"{PDS}/Patient?family={'a' * (16 * 1024 - 60)}", pds_headers())
    yield Case("url 8 KB path segment", "http", "GET", f"{PDS}/Patient/{'9' * 8000}", pds_headers())
    yield Case("header 60 KB", "http", "GET", base, pds_headers(X_Correlation_ID="c" * 60_000))
    yield Case("90 headers", "http", "GET", base, pds_headers() + tuple((f"X-Extra-{n}", "v" * 100)
                                                                        for n in range(90)))
    yield Case("non-UTF-8 bytes in the path", "http", "GET", f"{PDS}/Patient/".encode() + b"\xff\xfe", pds_headers(),
               parser=True)
    yield Case("raw non-ASCII digits in the path", "http", "GET", f"{MESH}/{SENDER}/inbox/²", mesh_headers(),
               parser=True)
    yield Case("non-UTF-8 percent escapes", "http", "GET", f"{PDS}/Patient/%ff%fe%ed%a0%80", pds_headers())
    yield Case("encoded surrogate in the query", "http", "GET", f"{PDS}/Patient?family=%ED%A0%80", pds_headers())
    yield Case("bad percent escape", "http", "GET", f"{PDS}/Patient/%zz%", pds_headers())
    yield Case("NUL in the path", "http", "GET", f"{PDS}/Patient/%00", pds_headers())
    yield Case("dot segments", "http", "GET", f"{PDS}/Patient/../../../_sandbox/health", pds_headers())
    yield Case("latin-1 header value", "http", "GET", base, pds_headers(X_Correlation_ID=b"\xe9\xff\xfe"))
    yield Case("unknown method", "http", "BREW", base, pds_headers())
    yield Case("TRACE", "http", "TRACE", base, pds_headers())
    yield Case("DELETE a patient", "http", "DELETE", base, pds_headers())
    yield Case("PUT a patient", "http", "PUT", base, pds_headers(Content_Type="application/fhir+json"), b"{}")
    yield Case("chunked body", "http", "POST", f"{PDS}/Patient",
               pds_headers(Content_Type="application/fhir+json", Transfer_Encoding="chunked"),
               b"2\r\n{}\r\n0\r\n\r\n")
    yield Case("unknown service", "http", "GET", "/no-such-service/" + "x" * 200)
    yield Case("control path, odd bytes", "http", "GET", b"/_sandbox/exchanges/\xff\xfe", parser=True)
    yield Case("absurd Content-Length", "http", "POST", f"{MESH}/{SENDER}/outbox",
               mesh_headers(Content_Length="9" * 30), parser=True)


def _pds() -> Iterable[Case]:
    patient = f"{PDS}/Patient/{PATIENT}"
    yield Case("read a patient", "pds", "GET", patient, pds_headers())
    for odd in ["²", "9" * 400, "%00", "%ff", "ü", "1e999", "-1", " ", "900000000%39", "9000000009" * 50]:
        yield Case(f"read id {odd[:12]!r}", "pds", "GET", f"{PDS}/Patient/{quote(odd, safe='%')}", pds_headers())
        yield Case(f"related id {odd[:12]!r}", "pds", "GET", f"{PDS}/Patient/{quote(odd, safe='%')}/RelatedPerson",
                   pds_headers())
    for name in ("_max-results", "birthdate", "family", "gender", "address-postalcode", "_fuzzy-match", "_exact-match",
                 "_history", "death-date", "email", "phone", "given", "general-practitioner"):
        for value in ("²", "9" * 400, "1e999", "eq²⁰²⁰-01-01", "%ED%A0%80", "true" * 500, "ge9999999999-99-99"):
            query = f"family=Smith&gender=female&birthdate=eq2010-10-22&{name}={quote(value, safe='%')}"
            yield Case(f"search {name}={value[:12]!r}", "pds", "GET", f"{PDS}/Patient?{query}", pds_headers())
    for header, value in (("X-Request-ID", "²"), ("X-Request-ID", "9" * 400), ("X-Request-ID", ""),
                          ("X-Correlation-ID", "\udcff".encode("utf-8", "surrogatepass")),
                          ("Authorization", "bearer hostile"), ("Authorization", "Bearer " + "t" * 30_000),
                          ("Authorization", jwt_text('{"exp": 1e999}')), ("Accept", "application/fhir+json;q=²"),
                          ("NHSD-End-User-Organisation-ODS", "Y" * 5000), ("NHSD-Session-URID", "²" * 20),
                          ("X-Sandbox-Session", "../../etc"), ("X-Sandbox-Session", "s" * 500),
                          ("X-Sandbox-Scenario", "x" * 2000), ("Authorization", "Bearer sst_" + "x" * 40)):
        yield Case(f"header {header}: {str(value)[:16]!r}", "pds", "GET", patient, pds_headers(**{header: value}))
    patch_headers = pds_headers(Content_Type="application/json-patch+json", If_Match='W/"1"')
    for body in HOSTILE_JSON + [b'{"patches": {}}', b'{"patches": [1, 2]}', b'{"patches": [{"op": 1, "path": []}]}',
                                b'{"patches": [{"op": "replace", "path": "/gender", "value": "\\ud800"}]}',
                                b'{"patches": [{"op": "replace", "path": "/name/' + b"9" * 400 + b'/given/0", '
                                b'"value": "A"}]}', b'{"patches": [{"op": "add", "path": "/birthDate", "value": 1e308}]}',
                                b'[{"op": "replace", "path": "/gender", "value": {"a": [1]}}]']:
        yield Case(f"patch body {body[:24]!r}", "pds", "PATCH", patient, patch_headers, body)
    for etag in ('W/"²"', 'W/"' + "9" * 400 + '"', "W/", '"1"', "*", 'W/"-1"'):
        yield Case(f"patch If-Match {etag[:12]!r}", "pds", "PATCH", patient,
                   pds_headers(Content_Type="application/json-patch+json", If_Match=etag),
                   b'{"patches": [{"op": "replace", "path": "/gender", "value": "male"}]}')
    create = pds_headers(Content_Type="application/fhir+json")
    for body in HOSTILE_JSON + [b'{"resourceType": 5}', b'{"name": "x", "gender": [], "birthDate": 7}',
                                '{"resourceType": "Patient", "name": [{"given": [1e308]}], "birthDate": "²⁰²⁰-01-01"}'.encode(),
                                b'{"resourceType": "Patient", "address": [{"postalCode": {"a": {}}}]}']:
        yield Case(f"create body {body[:24]!r}", "pds", "POST", f"{PDS}/Patient", create, body)
    yield Case("create 11 MB", "pds", "POST", f"{PDS}/Patient", create, b"{" + b" " * (11 * 1024 * 1024) + b"}")
    yield Case("coverage search odd", "pds", "GET", f"{PDS}/Coverage?subscriber%3Aidentifier=%C2%B2", pds_headers())


def _oauth() -> Iterable[Case]:
    form = (("Content-Type", "application/x-www-form-urlencoded"),)
    cc = "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type" \
         "%3Ajwt-bearer&client_assertion="
    payloads = [b'{"exp": 1e999}', b'{"exp": ' + b"9" * 400 + b"}", b'{"iss": "\\ud800", "sub": "\\udfff"}',
                b'{"iss": [], "sub": {}, "aud": 5, "jti": 7, "exp": "soon"}', b"[" * 50_000, b"[]", b"null",
                b"\xff\xfe", b'{"exp": "\xc2\xb2"}', b'{"iss": "a", "sub": "a", "aud": ["x", 1], "jti": "j", '
                b'"exp": 9999999999999999999}', b'{"exp": -99999999999999999999}']
    headers = ['{"alg": 1}', '{"alg": "RS512", "kid": {"a": []}}', '{"alg": "none"}', "[" * 1000, '"\\ud800"']
    for payload in payloads:
        yield Case(f"client assertion {payload[:20]!r}", "oauth", "POST", "/oauth2/token", form,
                   (cc + jwt_text(payload)).encode())
    for header in headers:
        yield Case(f"assertion header {header[:16]!r}", "oauth", "POST", "/oauth2/token", form,
                   (cc + jwt_text('{"exp": 1}', header)).encode())
    for body in (b"", b"grant_type=%ff%fe", b"grant_type=" + b"x" * 100_000, b'{"grant_type": "client_credentials"}',
                 b"\xff\xfe\xfd", cc.encode() + b"a.b", cc.encode() + b"....", cc.encode() + b"%ED%A0%80.e30.x",
                 b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token="
                 + jwt_text(b'{"exp": 1e999}').encode() + b"&subject_token_type=urn:ietf:params:oauth:token-type:id_token"
                 b"&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                 b"&client_assertion=" + jwt_text(b'{"iss": 1}').encode(),
                 b"grant_type=authorization_code&code=%C2%B2&redirect_uri=http%3A%2F%2F%5B%3A%3A1&client_id=x"):
        yield Case(f"token form {body[:24]!r}", "oauth", "POST", "/oauth2/token", form, body)
    yield Case("token as JSON", "oauth", "POST", "/oauth2/token", JSON, b'{"grant_type": 1}')
    yield Case("token GET", "oauth", "GET", "/oauth2/token")
    yield Case("token DELETE", "oauth", "DELETE", "/oauth2/token")
    yield Case("mock token odd", "oauth", "POST", "/oauth2-mock/token", form, b"grant_type=%C2%B2&code=" + b"9" * 400)
    for query in ("response_type=code&client_id=%C2%B2&redirect_uri=http%3A%2F%2F%5B%3A%3A1&state=" + "s" * 5000,
                  "client_id=" + "x" * 8000, "response_type=%ff&client_id=%ED%A0%80", ""):
        yield Case(f"authorize {query[:20]!r}", "oauth", "GET", f"/oauth2/authorize?{query}")
    yield Case("simulated auth odd", "oauth", "POST", "/oauth2/simulated_auth", form,
               b"state=%C2%B2&username=" + b"9" * 400 + b"&auth_method=%ff")


def _mesh() -> Generator[Case, Answer, None]:
    box = f"{MESH}/{SENDER}"
    yield Case("handshake", "mesh", "POST", box, mesh_headers(mex_ClientVersion="corpus==1", mex_OSName="Linux",
                                                               mex_OSVersion="6"))
    for token in ("NHSMESH " + "x" * 5000, "NHSMESH X26ABC1:²:0:202401010000:abc", "NHSMESH X26ABC1:n:²:²:²",
                  "NHSMESH X26ABC1:n:" + "9" * 400 + ":202401010000:x", "nhsmesh ", "Basic Zm9vOmJhcg==", ""):
        yield Case(f"inbox token {token[:24]!r}", "mesh", "GET", f"{box}/inbox",
                   (("Authorization", token), ("Accept", "application/vnd.mesh.v2+json")))
    yield Case("inbox token latin-1", "mesh", "GET", f"{box}/inbox",
               (("Authorization", b"NHSMESH \xe9\xff"), ("Accept", "application/vnd.mesh.v2+json")))
    for value in ODD_NUMBERS:
        query = f"max_results={quote(value)}"
        yield Case(f"inbox v2 max_results={value[:12]!r}", "mesh", "GET", f"{box}/inbox?{query}", mesh_headers())
        yield Case(f"inbox v1 max_results={value[:12]!r}", "mesh", "GET", f"{box}/inbox?{query}",
                   mesh_headers(Accept="application/json"))
    for value in ("²", "%ff", "x" * 3000):
        yield Case(f"inbox continue_from {value[:8]!r}", "mesh", "GET", f"{box}/inbox?continue_from={quote(value)}",
                   mesh_headers())
    send = mesh_headers(Mex_To=RECIPIENT, Mex_WorkflowID="HOSTILE_CORPUS", Content_Type="application/octet-stream")
    for name, value in (("Mex-Chunk-Range", "²:3"), ("Mex-Chunk-Range", "1:" + "9" * 400), ("Mex-Chunk-Range", "3:1"),
                        ("Mex-Chunk-Range", "1:1e999"), ("Mex-Chunk-Range", "0:0"), ("Mex-To", "X" * 5000),
                        ("Mex-To", "²"), ("Mex-WorkflowID", "W" * 20_000), ("Mex-LocalID", "\udcff"),
                        ("Mex-Subject", "s" * 60_000), ("Mex-Content-Checksum", "md5:" + "z" * 400),
                        ("Content-Encoding", "gzip"), ("Content-Encoding", "br, gzip, x-unknown"),
                        ("Mex-Content-Compressed", "maybe")):
        value = value.encode("utf-8", "surrogatepass") if isinstance(value, str) and "\udcff" in value else value
        headers = tuple((k, v) for k, v in send if k.lower() != name.lower()) + ((name, value),)
        yield Case(f"send {name}: {str(value)[:16]!r}", "mesh", "POST", f"{box}/outbox", headers, b"hostile")
    # The absurd chunk range of the issue: announce 10,000,000 chunks, then upload the last one.
    answer = yield Case("send chunk range 1:10000000", "mesh", "POST", f"{box}/outbox",
                        send + (("Mex-Chunk-Range", "1:10000000"),), b"first")
    message_id = (answer.json() or {}).get("message_id") or "20240101000000000000_ABCDEF"
    yield Case("upload chunk 10000000", "mesh", "POST", f"{box}/outbox/{message_id}/10000000",
               mesh_headers(Mex_Chunk_Range="10000000:10000000", Content_Type="application/octet-stream"), b"last")
    for number in ("²", "9" * 400, "0", "-1", "%ff"):
        yield Case(f"upload chunk {number[:8]!r}", "mesh", "POST", f"{box}/outbox/{message_id}/{_path(number)}",
                   mesh_headers(Mex_Chunk_Range=f"{number}:2", Content_Type="application/octet-stream"), b"x")
    # The gzip bomb of the issue: 1 MB that expands to 1000 MiB, downloaded without Accept-Encoding: gzip.
    answer = yield Case("send gzip bomb", "mesh", "POST", f"{box}/outbox",
                        send + (("Content-Encoding", "gzip"), ("Mex-Content-Compressed", "Y")), gzip_bomb())
    bomb_id = (answer.json() or {}).get("message_id") or "20240101000000000000_BOMB00"
    yield Case("download gzip bomb", "mesh", "GET", f"{MESH}/{RECIPIENT}/inbox/{bomb_id}", mesh_headers(RECIPIENT))
    yield Case("ack gzip bomb", "mesh", "PUT", f"{MESH}/{RECIPIENT}/inbox/{bomb_id}/status/acknowledged",
               mesh_headers(RECIPIENT))
    yield Case("garbage gzip", "mesh", "POST", f"{box}/outbox", send + (("Content-Encoding", "gzip"),),
               b"\x1f\x8b\x08\x00garbage")
    for raw in ("²", "x" * 3000, "%00", "..", "%ff"):
        odd = _path(raw)
        yield Case(f"download {odd[:8]!r}", "mesh", "GET", f"{MESH}/{RECIPIENT}/inbox/{odd}", mesh_headers(RECIPIENT))
        yield Case(f"download chunk {odd[:8]!r}", "mesh", "GET", f"{MESH}/{RECIPIENT}/inbox/{bomb_id}/{odd}",
                   mesh_headers(RECIPIENT))
        yield Case(f"ack {odd[:8]!r}", "mesh", "PUT", f"{MESH}/{RECIPIENT}/inbox/{odd}/status/acknowledged",
                   mesh_headers(RECIPIENT))
        yield Case(f"tracking {odd[:8]!r}", "mesh", "GET", f"{box}/outbox/tracking?messageID={odd}", mesh_headers())
        yield Case(f"tracking local {odd[:8]!r}", "mesh", "GET", f"{box}/outbox/tracking/{odd}", mesh_headers())
        yield Case(f"lookup {odd[:8]!r}", "mesh", "GET", f"{MESH}/endpointlookup/{odd}/{odd}", mesh_headers())
        yield Case(f"mailbox {odd[:8]!r}", "mesh", "GET", f"{MESH}/{odd}/inbox", mesh_headers())
    yield Case("count odd", "mesh", "GET", f"{box}/count?x=%C2%B2", mesh_headers())
    yield Case("inbox DELETE", "mesh", "DELETE", f"{box}/inbox", mesh_headers())
    yield Case("outbox GET", "mesh", "GET", f"{box}/outbox", mesh_headers())
    # The absurd clock change of the issue, then a send in the same session must still be answered.
    yield Case("mesh clock 99999999999d", "control", "POST", "/_sandbox/mesh/clock", JSON,
               b'{"advance": "99999999999d"}')
    yield Case("send after the clock change", "mesh", "POST", f"{box}/outbox", send, b"after the clock")
    yield Case("inbox after the clock change", "mesh", "GET", f"{MESH}/{RECIPIENT}/inbox", mesh_headers(RECIPIENT))


CONTROL_POSTS = ["/_sandbox/sessions", "/_sandbox/sessions/default/attestations", "/_sandbox/oauth/apps",
                 "/_sandbox/oauth/cis2/id-token", "/_sandbox/oauth/nhs-login/id-token", "/_sandbox/sds/registrations",
                 "/_sandbox/spine/flush", "/_sandbox/spine/clock", "/_sandbox/mesh/clock", "/_sandbox/mesh/reset",
                 "/_sandbox/oauth/tokens/x/revoke", "/_sandbox/spine/deliveries/x/retry"]
CONTROL_PUTS = ["/_sandbox/mesh/config", "/_sandbox/oauth/apps/x/jwks"]
CONTROL_GETS = ["/_sandbox/exchanges", "/_sandbox/patients", "/_sandbox/sessions/default/report",
                "/_sandbox/spine/deliveries", "/_sandbox/mesh/messages", "/_sandbox/scr/summaries",
                "/_sandbox/sds/registrations", "/_sandbox/spine/interactions", "/_sandbox/scenarios"]


def ers_headers(function: str = "REFERRING_CLINICIAN", **extra: HeaderValue) -> tuple[tuple[str, HeaderValue], ...]:
    base = {"Authorization": "Bearer hostile-corpus", "NHSD-eRS-Business-Function": function,
            "NHSD-End-User-Organisation-ODS": "R69", "X-Correlation-ID": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json"}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return tuple(base.items())


def _ers() -> Iterable[Case]:
    """e-RS in its default (live) mode: odd ids, queries, headers and bodies on every kind of call."""
    for odd in ["²", "9" * 400, "%00", "%ff", "constructor", "000000070000" * 30, "-1", "1e999"]:
        encoded = quote(odd, safe="%")
        yield Case(f"referral {odd[:12]!r}", "ers", "GET", f"{ERS}/STU3/ReferralRequest/{encoded}", ers_headers())
        yield Case(f"referral history {odd[:12]!r}", "ers", "GET",
                   f"{ERS}/STU3/ReferralRequest/000000070000/_history/{encoded}", ers_headers())
        yield Case(f"appointment {odd[:12]!r}", "ers", "GET", f"{ERS}/STU3/Appointment/{encoded}", ers_headers())
        yield Case(f"binary {odd[:12]!r}", "ers", "GET", f"{ERS}/R4/Binary/{encoded}", ers_headers())
        yield Case(f"service {odd[:12]!r}", "ers", "GET", f"{ERS}/R4/HealthcareService/{encoded}", ers_headers())
        yield Case(f"object store {odd[:12]!r}", "ers", "GET", f"/referrals/ObjectStore/{encoded}")
    for query in ("schedule.actor%3AHealthcareService=%C2%B2&_count=1e999&page=-1", "_count=" + "9" * 400,
                  "page=%ED%A0%80&_count=5&status=free&appointmentType=ROUTINE"):
        yield Case(f"slots {query[:20]!r}", "ers", "GET", f"{ERS}/STU3/Slot?{query}", ers_headers())
    for path in ("/STU3/Task?focus=ReferralRequest/%C2%B2/_history/1e999&intent=proposal&status=ready",
                 "/STU3/Communication?based-on=" + "C" * 5000, "/R4/ServiceRequest?identifier=%7C%7C%7C",
                 "/R4/HealthcareService?_id=%00,%ff", "/R4/Practitioner?_query=onBehalfOf"):
        yield Case(f"search {path[:28]!r}", "ers", "GET", ERS + path, ers_headers())
    for header, value in (("NHSD-eRS-Business-Function", "²"), ("NHSD-eRS-Business-Function", "R" * 5000),
                          ("NHSD-eRS-On-Behalf-Of-User-ID", "\udcff".encode("utf-8", "surrogatepass")),
                          ("If-Match", 'W/"' + "9" * 400 + '"'), ("Accept-Encoding", "gzip;q=²"),
                          ("If-None-Match", "W/" * 2000), ("Range", "bytes=9999999999999999999-"),
                          ("If-Modified-Since", "²"), ("x-ers-sandbox-baseurl", "javascript:alert(1)")):
        yield Case(f"header {header}: {str(value)[:16]!r}", "ers", "GET", f"{ERS}/STU3/ReferralRequest/000000070000",
                   ers_headers(**{header: value}))
    posts = ("/STU3/ReferralRequest/$ers.createReferral", "/STU3/ReferralRequest/$ers.fetchworklist",
             "/STU3/HealthcareService/$ers.searchHealthcareServicesForPatient", "/STU3/Appointment",
             "/STU3/ReferralRequest/000000070000/$ers.cancelReferral",
             "/STU3/CommunicationRequest/$ers.createAdviceAndGuidance")
    for path in posts:
        for body in HOSTILE_JSON + [b'{"resourceType": "Parameters", "parameter": [{"name": 1}]}',
                                    b'{"resourceType": "Parameters", "parameter": {"a": []}}']:
            yield Case(f"post {path.rsplit('/', 1)[-1][:20]} {body[:20]!r}", "ers", "POST", ERS + path,
                       ers_headers(If_Match='W/"1"'), body)
    yield Case("provider post hostile", "ers", "POST", f"{ERS}/STU3/ReferralRequest/000000070000/$ers.acceptReferral",
               ers_headers("SERVICE_PROVIDER_CLINICIAN", If_Match='W/"²"'), b'{"a": 1e999}')
    yield Case("appointment update hostile", "ers", "PUT", f"{ERS}/STU3/Appointment/%ff",
               ers_headers(If_Match='W/"1"'), b'{"resourceType": "Appointment", "status": []}')
    yield Case("upload odd type", "ers", "POST", f"{ERS}/STU3/Binary",
               ers_headers(Content_Type="image/png; x=²", NHSD_eRS_File_Name="../../etc/passwd",
                           NHSD_eRS_Referral_ID="%00"), b"\x89PNG")
    yield Case("upload 6 MB", "ers", "POST", f"{ERS}/STU3/Binary",
               ers_headers(Content_Type="application/pdf", NHSD_eRS_File_Name="a.pdf"), b"%PDF-" + b"x" * 6_000_000)


EPS = ("/electronic-prescriptions/FHIR/R4", "/fhir-prescribing/FHIR/R4", "/fhir-dispensing/FHIR/R4")
EPS_BUNDLES = [
    b'{"resourceType": "Bundle", "entry": "x"}', b'{"resourceType": "Bundle", "entry": [null, 1, {"resource": []}]}',
    b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": []}}]}',
    b'{"resourceType": "Bundle", "type": "message", "entry": [{"fullUrl": "urn:uuid:1", "resource": '
    b'{"resourceType": "MessageHeader", "eventCoding": {"code": "prescription-order"}}}, {"resource": '
    b'{"resourceType": "MedicationRequest", "intent": ["plan"], "groupIdentifier": {"system": '
    b'"https://fhir.nhs.uk/Id/prescription-order-number", "value": "\\u00b2\\u00b2\\u00b2"}, "requester": '
    b'{"reference": 5}, "dispenseRequest": "x", "dosageInstruction": {}}}]}',
    b'{"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader", '
    b'"eventCoding": {"code": "prescription-order-update"}}}, {"resource": {"resourceType": "MedicationRequest", '
    b'"status": {}, "statusReason": null}}]}',
    b'{"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader", '
    b'"eventCoding": {"code": "dispense-notification"}}}, {"resource": {"resourceType": "MedicationDispense", '
    b'"performer": [{"actor": {"reference": "#x"}}], "contained": "x"}}]}',
]
EPS_OTHERS = [
    ("/Task/$release", b'{"resourceType": "Parameters", "parameter": {"a": []}}'),
    ("/Task/$release", b'{"resourceType": "Parameters", "parameter": [{"name": "agent", "resource": []}, '
                       b'{"name": "group-identifier", "valueIdentifier": "x"}]}'),
    ("/Task", b'{"resourceType": "Task", "status": ["rejected"]}'),
    ("/Task", b'{"resourceType": "Task", "status": "in-progress", "code": "abort", "statusReason": []}'),
    ("/Claim", b'{"resourceType": "Claim", "item": [{"detail": "x"}], "provider": {"reference": []}}'),
    ("/$verify-signature", b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Provenance", '
                           b'"signature": [{"data": "\\u00b2"}]}}]}'),
    ("/$convert", b'{"resourceType": "Task"}'),
]


def eps_headers(**extra: HeaderValue) -> tuple[tuple[str, HeaderValue], ...]:
    base = {"Authorization": "Bearer hostile-corpus", "X-Request-ID": str(uuid.uuid4()),
            "NHSD-Session-URID": "555021936103", "Content-Type": "application/fhir+json"}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return tuple(base.items())


def _eps() -> Iterable[Case]:
    """EPS on its three base paths: hostile JSON on every body-taking endpoint, FHIR of the right type but odd shape
    (which the checks let through to the handlers when they do not refuse it), odd headers and tracker queries."""
    posts = ("/$prepare", "/$process-message", "/Task/$release", "/Task", "/Claim", "/$verify-signature",
             "/$convert", "/$validate")
    for base in EPS:
        for path in posts:
            for body in HOSTILE_JSON[:9] + HOSTILE_JSON[11:]:
                yield Case(f"eps {base[1:12]} {path} {body[:16]!r}", "eps", "POST", base + path, eps_headers(), body)
        for body in EPS_BUNDLES:
            for path in ("/$prepare", "/$process-message", "/$validate"):
                yield Case(f"eps bundle {base[1:12]} {path} {body[30:50]!r}", "eps", "POST", base + path,
                           eps_headers(), body)
        for path, body in EPS_OTHERS:
            yield Case(f"eps {base[1:12]} {path} {body[:30]!r}", "eps", "POST", base + path, eps_headers(), body)
    for header, value in (("X-Request-ID", "9" * 4000), ("X-Request-ID", "\u00b2"), ("NHSD-Session-URID", "\u00b2"),
                          ("NHSD-Session-URID", "1" * 400), ("X-Correlation-ID", "." * 2000),
                          ("Content-Type", "application/fhir+json; charset=\u00b2"), ("Content-Type", "text/plain")):
        yield Case(f"eps header {header}: {value[:12]!r}", "eps", "POST", EPS[1] + "/$prepare",
                   eps_headers(**{header: value.encode("utf-8", "surrogatepass")}), EPS_BUNDLES[3])
    for query in ("focus%3Aidentifier=%C2%B2", "identifier=" + "A" * 5000, "focus%3Aidentifier=%ff&identifier=%00",
                  "patient=1e999&_count=-1"):
        yield Case(f"eps tracker {query[:20]!r}", "eps", "GET", f"{EPS[2]}/Task?{query}", eps_headers())


def _control() -> Iterable[Case]:
    for path in CONTROL_POSTS:
        for body in HOSTILE_JSON[:11]:
            yield Case(f"control {path} {body[:16]!r}", "control", "POST", path, JSON, body)
    for path in CONTROL_PUTS:
        for body in HOSTILE_JSON[:11]:
            yield Case(f"control PUT {path} {body[:16]!r}", "control", "PUT", path, JSON, body)
    for body in (b'{"advance": "99999999999d"}', '{"advance": "٣d"}'.encode(), b'{"advance": 1e308}',
                 b'{"advance": ["1d"]}', b'{"wait": "1e999"}', b'{"advance": "1d", "wait": -1}'):
        yield Case(f"spine clock {body[:24]!r}", "control", "POST", "/_sandbox/spine/clock", JSON, body)
    for body in (b'{"plan": {}, "supplier": [], "system": 7}', b'{"plan": "x", "supplier": "\\ud800", "system": "s"}',
                 b'{"name": 1, "jwks": [], "redirect_uris": "x"}', b'{"user_id": [], "aal": 3, "audience": {}}',
                 b'{"ods": "ABC12", "asid": "200000009999", "party_key": "ABC12-1", "endpoint": "http://[::1", '
                 b'"interactions": ["REPC_IN150016UK05"], "retries": "\xc2\xb2"}'):
        for path in ("/_sandbox/sessions", "/_sandbox/oauth/apps", "/_sandbox/oauth/cis2/id-token",
                     "/_sandbox/sds/registrations"):
            yield Case(f"control {path} wrong types {body[:16]!r}", "control", "POST", path, JSON, body)
    for path in CONTROL_GETS:
        for name in ("limit", "offset", "before", "since", "status", "evidence", "max_results", "wait"):
            for value in ("²", "9" * 400, "1e999"):
                yield Case(f"control {path}?{name}={value[:8]!r}", "control", "GET",
                           f"{path}?{name}={quote(value)}")
    for odd in ("²", "9" * 400, "%00", "%ff", "a" * 3000):
        for path in ("/_sandbox/exchanges/{}", "/_sandbox/patients/{}", "/_sandbox/sessions/{}",
                     "/_sandbox/oauth/apps/{}", "/_sandbox/oauth/tokens/{}", "/_sandbox/sds/registrations/{}",
                     "/_sandbox/spine/deliveries/{}", "/_sandbox/mesh/token/{}", "/_sandbox/plans/{}"):
            yield Case(f"control {path.format(odd[:8])}", "control", "GET", path.format(quote(odd, safe="%")))
    yield Case("control wrong method", "control", "DELETE", "/_sandbox/exchanges")
    yield Case("control unknown", "control", "GET", "/_sandbox/" + "x" * 3000)
    yield Case("control session header odd", "control", "GET", "/_sandbox/spine/deliveries",
               (("X-Sandbox-Session", "../" * 50),))
