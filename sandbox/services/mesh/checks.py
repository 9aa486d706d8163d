"""MESH request checks, in the order MESH applies its rules: the first one that refuses is the answer."""

from __future__ import annotations

import functools
import re
import time

from sandbox.conformance.checks import CheckContext, CheckSet, Claim, RequestView
from sandbox.conformance.findings import Finding
from sandbox.conformance.parsing import parse_int
from sandbox.services.mesh import auth, compression
from sandbox.services.mesh.context import gzip_state, mailbox_of, mesh, message_in_path, post_office
from sandbox.services.mesh.errors import MeshError, api_version
from sandbox.synthetic.identifiers import is_valid_nhs_number

checks = CheckSet("mesh")

AUTHENTICATED = ("handshake", "list-inbox", "count-inbox", "download-message", "head-message", "download-chunk",
                 "acknowledge-message", "send-message", "send-chunk", "track-message", "track-by-local-id")
VERSIONED = AUTHENTICATED + ("endpoint-lookup", "workflow-search")
RECEIVING = ("download-message", "head-message", "download-chunk")
CHUNK_RANGE = re.compile(r"\s*([0-9]{1,20})\s*:\s*([0-9]{1,20})\s*")  # ASCII digits: \d admits other scripts'
NHS_NUMBER_LIKE = re.compile(r"(?<![0-9])([0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4})(?![0-9])")
# maxLength of each send header in the specification
HEADER_LIMITS = {"Mex-To": 100, "Mex-WorkflowID": 300, "Mex-Chunk-Range": 20, "Mex-Subject": 500,
                 "Mex-LocalID": 300, "Mex-FileName": 300, "Mex-Content-Checksum": 100}
TOKENS = "mesh.tokens"  # claims: the NHSMESH tokens used


def _refuse(detail: str) -> MeshError:
    return MeshError(403, "AUTH", detail)


# Findings made once per text: findings are immutable, and most requests pass (or earn a warning) in the same words.
# Only texts built from the configuration and bounded values (mailbox ids, times, sizes) are kept, so the cache stays
# small; a text quoting what a client sent, or naming a message or an exchange, is made each time.
@functools.lru_cache(maxsize=1024)
def _passed(requirement: str, message: str, location: str = "") -> Finding:
    return Finding.passed(requirement, message, location)


@functools.lru_cache(maxsize=256)
def _warning(requirement: str, message: str, location: str = "") -> Finding:
    return Finding.warning(requirement, message, location)


# --- authentication ------------------------------------------------------------------------------------------
@checks.register("MESH-AUTH-001", "MESH-AUTH-002", "MESH-AUTH-003", "MESH-AUTH-004", "MESH-AUTH-005",
                 "MESH-AUTH-006", operations=AUTHENTICATED)
def nhsmesh_token(req: RequestView, ctx: CheckContext):
    where = "header:Authorization"
    try:
        token = auth.parse(req.header("Authorization"))
    except auth.TokenProblem as exc:
        yield Finding.failed("MESH-AUTH-001", f"{str(exc)[:1].upper()}{str(exc)[1:]}; MESH expects 'NHSMESH "
                             "mailbox_id:nonce:nonce_count:timestamp:hash'.", where, reject=_refuse(str(exc)))
        return
    yield _passed("MESH-AUTH-001", "Authorization is an NHSMESH token with five fields.", where)
    mailbox_id = mailbox_of(req.params)
    session = mesh(ctx.session)
    mailbox = session.config.mailbox(mailbox_id)
    if token.mailbox != mailbox_id:
        why = (f"the token's mailbox id {token.mailbox!r} is not upper case" if token.mailbox.upper() == mailbox_id
               else f"the token is for mailbox {token.mailbox[:40]!r} but the path names {mailbox_id!r}")
        yield Finding.failed("MESH-AUTH-002", f"Mailbox id does not match token: {why}.", where,
                             reject=_refuse(f"Mailbox id does not match token: {why}"))
        return
    if mailbox is None:
        known = ", ".join(session.config.mailboxes)
        yield Finding.failed("MESH-AUTH-002", f"No mailbox {mailbox_id!r} in this session (mailboxes: {known}).",
                             where, reject=_refuse(f"No mailbox matched: {mailbox_id} is not a mailbox here "
                                                   f"(see /_sandbox/mesh/config)"))
        return
    yield _passed("MESH-AUTH-002", f"The token's mailbox {mailbox_id} matches the path.", where)
    window = session.config.limits.token_window_seconds
    try:
        made = auth.token_time(token).timestamp()
    except auth.TokenProblem as exc:
        yield Finding.failed("MESH-AUTH-003", str(exc), where, reject=_refuse(str(exc)))
        return
    skew = made - time.time()
    if abs(skew) > window:
        text = (f"token timestamp {token.timestamp} is {abs(skew) / 3600:.1f} hours "
                f"{'behind' if skew < 0 else 'ahead of'} the server's UTC time; MESH accepts "
                f"{window // 3600} hours either way (use the current UTC time, yyyyMMddHHmm)")
        yield Finding.failed("MESH-AUTH-003", text[0].upper() + text[1:] + ".", where, reject=_refuse(text))
        return
    yield _passed("MESH-AUTH-003", f"Token timestamp {token.timestamp} is within {window // 3600} hours "
                  "of the server's time.", where)
    if not auth.digest_matches(token, session.config.shared_key, mailbox.password):
        text = ("Invalid Authentication Token: the hash is not HMAC-SHA256(shared key, "
                "'mailbox_id:nonce:nonce_count:password:timestamp'); check the environment's shared key and the "
                "mailbox password")
        yield Finding.failed("MESH-AUTH-004", text + ".", where, reject=_refuse(text))
        return
    yield _passed("MESH-AUTH-004", "The token's HMAC-SHA256 hash is right for the shared key and password.",
                  where)
    if auth.nonce_is_guid(token.nonce):
        yield _passed("MESH-AUTH-006", "The nonce is a GUID.", where)
    else:
        yield Finding.warning("MESH-AUTH-006", f"The nonce {token.nonce[:40]!r} is not a GUID; MESH documents a "
                              "GUID so that tokens never repeat.", where)
    # Used up with the request's other changes, or refused then, before anything else, if it was used already (a
    # replay is rare: asking first would cost every request a round trip to the store).
    yield _passed("MESH-AUTH-005", "The token has not been used before.", where)
    ctx.facts["authorised"] = mailbox_id
    # Kept while the token could still pass the timestamp check: after that it is refused for its age anyway.
    ctx.claim_with_record(Claim(TOKENS, token.key, made + window + 60, REPLAYED))


_REPLAYED_TEXT = ("Error Duplicated Authentication Token: this exact token was already used; every request needs a "
                  "new token (a new nonce, or the same nonce with the next nonce_count)")
# The refusal every claim carries, made once (a token is rarely replayed, and the finding is immutable).
REPLAYED = Finding.failed("MESH-AUTH-005", _REPLAYED_TEXT + ".", "header:Authorization",
                          reject=_refuse(_REPLAYED_TEXT))


@checks.register("MESH-API-001", operations=VERSIONED)
def accept_header(req: RequestView, ctx: CheckContext):
    accept = req.header("Accept")
    if api_version(accept) is None:
        yield Finding.failed("MESH-API-001", f"Accept {accept[:80]!r} names a MESH media type MESH does not have; "
                             "use application/vnd.mesh.v2+json, application/vnd.mesh.v1+json or application/json.",
                             "header:Accept", reject=MeshError.invalid("header", "accept",
                                                                       "Accept header api format incorrect"))


@checks.register("MESH-ERR-001", operations=AUTHENTICATED)
def backs_off(req: RequestView, ctx: CheckContext):
    """After a 429 or 503, the client waits at least Retry-After before calling again."""
    mailbox = mailbox_of(req.params)
    session = mesh(ctx.session)
    record = session.item(f"backoff:{mailbox}")
    if record is None:
        return
    early = record["until"] - time.time()
    if early > 0:
        yield Finding.failed("MESH-ERR-001", f"Called again {record['wait'] - early:.1f} s after a "
                             f"{record['status']} (exchange {record['exchange']}) that asked it to wait "
                             f"{record['wait']} s (Retry-After); back off before retrying.", "header:Retry-After")
    else:
        yield Finding.passed("MESH-ERR-001", f"Waited at least {record['wait']} s after the {record['status']} "
                             f"(exchange {record['exchange']}) before calling again.", "header:Retry-After")
        session.forget(f"backoff:{mailbox}")


# --- handshake -----------------------------------------------------------------------------------------------
@checks.register("MESH-HSK-001", operations=("handshake",))
def handshake_headers(req: RequestView, ctx: CheckContext):
    missing = [h for h in ("mex-ClientVersion", "mex-OSName", "mex-OSVersion") if not req.header(h)]
    if missing:
        yield Finding.failed("MESH-HSK-001", f"The handshake lacks {', '.join(missing)}; MESH requires the client "
                             "version and operating system name and version.", f"header:{missing[0]}",
                             reject=MeshError.invalid("header", missing[0].lower(), "field required",
                                                      "value_error.missing"))
    else:
        yield _passed("MESH-HSK-001", "The handshake names the client version and operating system.")


# --- sending -------------------------------------------------------------------------------------------------
@checks.register("MESH-SND-001", "MESH-SND-002", "MESH-SND-010", operations=("send-message",))
def send_headers(req: RequestView, ctx: CheckContext):
    if not (req.header("Mex-To") or "").strip():
        yield Finding.failed("MESH-SND-001", "Mex-To (the recipient's mailbox id) is missing.", "header:Mex-To",
                             reject=MeshError.of(400, "08", "send the recipient's mailbox id in Mex-To"))
        return
    yield _passed("MESH-SND-001", "Mex-To names the recipient.", "header:Mex-To")
    if not (req.header("Mex-WorkflowID") or "").strip():
        yield Finding.failed("MESH-SND-002", "Mex-WorkflowID is missing; every message names its workflow.",
                             "header:Mex-WorkflowID", reject=MeshError.invalid(
                                 "header", "mex-workflowid", "field required", "value_error.missing"))
        return
    yield _passed("MESH-SND-002", "Mex-WorkflowID is present.", "header:Mex-WorkflowID")
    yield from _header_lengths(req)


def _header_lengths(req: RequestView):
    for name, limit in HEADER_LIMITS.items():
        value = req.header(name)
        if value is not None and len(value) > limit:
            yield Finding.failed("MESH-SND-010", f"{name} is {len(value)} characters; MESH allows {limit}.",
                                 f"header:{name}", reject=MeshError.invalid(
                                     "header", name.lower(), f"ensure this value has at most {limit} characters",
                                     "value_error.any_str.max_length"))
            return


@checks.register("MESH-SND-003", operations=("send-message",))
def from_matches(req: RequestView, ctx: CheckContext):
    sender = req.header("Mex-From")
    mailbox = mailbox_of(req.params)
    if sender is None:
        return
    if sender.strip().upper() != mailbox:
        yield Finding.failed("MESH-SND-003", f"Mex-From {sender[:40]!r} is not the sending mailbox {mailbox}.",
                             "header:Mex-From", reject=MeshError.of(
                                 417, "07", f"Mex-From {sender[:40]!r} is not the authenticated mailbox {mailbox}"))
    else:
        yield _passed("MESH-SND-003", "Mex-From is the sending mailbox.", "header:Mex-From")


def parse_chunk_range(value: str | None) -> tuple[int, int] | None:
    match = CHUNK_RANGE.fullmatch(value or "")
    if not match:
        return None
    number, total = int(match.group(1)), int(match.group(2))
    return (number, total) if 1 <= number <= total else None


def missing_chunks(chunks: dict[str, int], before: int, show: int = 10) -> tuple[int, list[int]]:
    """How many of chunks 2..before-1 have not arrived, and the first few of them: worked out from the chunks that
    did arrive, never by walking the declared range (which may be huge)."""
    arrived = sum(1 for k in chunks if k.isascii() and k.isdigit() and 2 <= int(k) < before)
    count = max(0, before - 2 - arrived)
    first: list[int] = []
    n = 2
    while len(first) < min(count, show) and n < before:
        if str(n) not in chunks:
            first.append(n)
        n += 1
    return count, first


def _too_many_chunks(total: int, ctx: CheckContext) -> str | None:
    limit = mesh(ctx.session).config.limits.max_chunks
    return f"declares {total} chunks; this sandbox takes at most {limit} in one message" if total > limit else None


@checks.register("MESH-CHK-001", operations=("send-message",))
def first_chunk_range(req: RequestView, ctx: CheckContext):
    value = req.header("Mex-Chunk-Range")
    if value is None or not value.strip():
        return
    parsed = parse_chunk_range(value)
    why = ("is not n:m with 1 <= n <= m" if parsed is None else "must start at 1 on the first request"
           if parsed[0] != 1 else _too_many_chunks(parsed[1], ctx))
    if why:
        yield Finding.failed("MESH-CHK-001", f"Mex-Chunk-Range {value[:20]!r} {why}; the first part of a chunked "
                             "message is sent to /outbox with 1:<total>.", "header:Mex-Chunk-Range",
                             reject=MeshError.of(417, "InvalidHeaderChunks", f"{value[:20]!r} {why}"))
    else:
        yield Finding.passed("MESH-CHK-001", f"Mex-Chunk-Range {value} is well formed.", "header:Mex-Chunk-Range")


@checks.register("MESH-SND-009", operations=("send-message", "send-chunk"))
def content_encoding(req: RequestView, ctx: CheckContext):
    encoding = (req.header("Content-Encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return
    if encoding != "gzip":
        yield Finding.failed("MESH-SND-009", f"Content-Encoding {encoding[:30]!r} is not supported; MESH takes "
                             "gzip or no encoding.", "header:Content-Encoding",
                             reject=MeshError.of(417, "UnsupportedContentEncoding", f"{encoding[:30]!r}; use gzip"))
        return
    limit = mesh(ctx.session).config.limits.max_expanded_bytes
    state, why = gzip_state(req.body, limit)
    if state == compression.NOT_GZIP:
        yield Finding.failed("MESH-SND-009", f"Content-Encoding is gzip but the body is not gzip data: {why}; the "
                             "recipient will fail to decompress it.", "body")
    elif state == compression.TOO_LARGE:
        yield Finding.warning("MESH-SND-009", f"The gzip body {why} (limits.max_expanded_bytes): a recipient that "
                              "does not send Accept-Encoding: gzip will be refused this chunk (406); compress "
                              "less data per chunk.", "body")
    else:
        yield _passed("MESH-SND-009", "The body is gzip data, as Content-Encoding says.", "body")


@checks.register("MESH-SND-004", "MESH-SND-005", "MESH-SND-006", operations=("send-message",))
def routing(req: RequestView, ctx: CheckContext):
    config = mesh(ctx.session).config
    sender = mailbox_of(req.params)
    recipient_id = (req.header("Mex-To") or "").strip().upper()
    workflow = (req.header("Mex-WorkflowID") or "").strip()
    if config.mailbox(recipient_id) is None:
        yield Finding.failed("MESH-SND-004", f"Mex-To {recipient_id!r} is not a registered mailbox (this session "
                             f"has {', '.join(config.mailboxes)}); use the endpoint lookup to find it.",
                             "header:Mex-To", reject=MeshError.of(
                                 417, "12", f"{recipient_id} is not a registered mailbox"))
        return
    yield _passed("MESH-SND-004", f"{recipient_id} is a registered mailbox.", "header:Mex-To")
    if workflow not in config.workflows:
        return
    if not config.may_send(workflow, sender):
        senders = ", ".join(sorted(config.workflows[workflow].senders)) or "none"
        yield Finding.failed("MESH-SND-005", f"Workflow {workflow} is restricted and {sender} is not one of its "
                             f"senders ({senders}).", "header:Mex-WorkflowID", reject=MeshError.of(
                                 417, "16", f"{sender} may not send workflow {workflow}"))
        return
    yield _passed("MESH-SND-005", f"{sender} may send workflow {workflow}.", "header:Mex-WorkflowID")
    if not config.may_receive(workflow, recipient_id):
        receivers = ", ".join(sorted(config.workflows[workflow].receivers)) or "none"
        yield Finding.failed("MESH-SND-006", f"Workflow {workflow} is restricted and {recipient_id} is not one of "
                             f"its receivers ({receivers}).", "header:Mex-WorkflowID", reject=MeshError.of(
                                 417, "17", f"{recipient_id} is not registered for workflow {workflow}"))
        return
    yield _passed("MESH-SND-006", f"{recipient_id} may receive workflow {workflow}.", "header:Mex-WorkflowID")


@checks.register("MESH-SND-007", "MESH-SND-008", operations=("send-message", "send-chunk"))
def payload_size(req: RequestView, ctx: CheckContext):
    limit = mesh(ctx.session).config.limits.max_request_bytes
    if not req.body:
        yield Finding.failed("MESH-SND-008", "The body is empty; a message (or chunk) carries its data in the body.",
                             "body", reject=MeshError.of(417, "02", "the request body is empty"))
        return
    if len(req.body) > limit:
        yield Finding.failed("MESH-SND-007", f"The body is {len(req.body)} bytes; MESH takes at most {limit} bytes "
                             "in one request: compress it, or send it in chunks.", "body",
                             reject=MeshError.of(413, "MessageTooLarge",
                                                 f"{len(req.body)} bytes in one request; the limit is {limit}"))
        return
    yield _passed("MESH-SND-007", f"{len(req.body)} bytes is within the {limit}-byte request limit.", "body")


@checks.register("MESH-SND-011", "MESH-SND-012", "MESH-SND-013", "MESH-CHK-010", operations=("send-message",))
def content_headers(req: RequestView, ctx: CheckContext):
    config = mesh(ctx.session).config
    workflow = config.workflows.get((req.header("Mex-WorkflowID") or "").strip())
    if workflow and workflow.required_headers:
        missing = [h for h in workflow.required_headers if not req.header(h)]
        if missing:
            yield Finding.failed("MESH-SND-011", f"Workflow {workflow.id} requires {', '.join(missing)}, which the "
                                 "message does not carry.", f"header:{missing[0]}")
        else:
            yield _passed("MESH-SND-011", f"The message carries every header workflow {workflow.id} requires "
                          f"({', '.join(workflow.required_headers)}).")
    local_id = req.header("Mex-LocalID")
    if local_id:
        numbers = [n for n in NHS_NUMBER_LIKE.findall(local_id) if is_valid_nhs_number(re.sub(r"\D", "", n))]
        if numbers:
            yield Finding.warning("MESH-SND-012", f"Mex-LocalID {local_id[:60]!r} appears to contain an NHS number "
                                  f"({numbers[0]}); the local id must not contain patient identifiable data.",
                                  "header:Mex-LocalID")
        else:
            yield _passed("MESH-SND-012", "Mex-LocalID carries no NHS number.", "header:Mex-LocalID")
    if not req.header("Content-Type"):
        yield _warning("MESH-SND-013", "No Content-Type; send the content type of the data, or "
                       "application/octet-stream.", "header:Content-Type")
    parsed = parse_chunk_range(req.header("Mex-Chunk-Range"))
    recipient = config.mailbox((req.header("Mex-To") or "").strip())
    if parsed and parsed[1] > 1 and recipient is not None and not recipient.chunking:
        yield Finding.failed("MESH-CHK-010", f"A chunked message (1:{parsed[1]}) to {recipient.id}, whose client "
                             "cannot receive chunked messages; check the receiver supports chunking first.",
                             "header:Mex-Chunk-Range")


@checks.register("MESH-CHK-008", operations=("send-message",))
def earlier_uploads_complete(req: RequestView, ctx: CheckContext):
    pending = post_office(ctx.session).uploads_pending(mailbox_of(req.params))
    for message_id, upload in sorted(pending.items()):
        yield Finding.warning("MESH-CHK-008", f"Chunked message {message_id} ({upload['of']} chunks) is still "
                              "incomplete; a client uploads every chunk of a message it starts.")


# --- chunks --------------------------------------------------------------------------------------------------
@checks.register("MESH-CHK-001", "MESH-CHK-002", "MESH-CHK-003", "MESH-CHK-004", "MESH-CHK-005", "MESH-CHK-006",
                 "MESH-CHK-007", "MESH-CHK-009", operations=("send-chunk",))
def chunk_upload(req: RequestView, ctx: CheckContext):
    where = "header:Mex-Chunk-Range"
    value = req.header("Mex-Chunk-Range")
    number_text = req.params.get("chunk_number", "")
    message_id = (req.params.get("message_id") or "").upper()
    parsed = parse_chunk_range(value)
    if parsed is None:
        why = "is missing" if not value else f"{value[:20]!r} is not n:m with 1 <= n <= m"
        yield Finding.failed("MESH-CHK-001", f"Mex-Chunk-Range {why}; each chunk says which it is (e.g. 2:3).",
                             where, reject=MeshError.of(417, "InvalidHeaderChunks", f"Mex-Chunk-Range {why}",
                                                        message_id=message_id))
        return
    number, total = parsed
    too_many = _too_many_chunks(total, ctx)
    if too_many:
        yield Finding.failed("MESH-CHK-001", f"Mex-Chunk-Range {value} {too_many}.", where, reject=MeshError.of(
            417, "InvalidHeaderChunks", f"{value} {too_many}", message_id=message_id))
        return
    try:
        path_number = parse_int(number_text, minimum=1)
    except ValueError:
        path_number = None
    if path_number != number:
        yield Finding.failed("MESH-CHK-002", f"The path says chunk {number_text[:10]!r} but Mex-Chunk-Range says "
                             f"{value}.", where, reject=MeshError.of(
                                 417, "InvalidHeaderChunks", f"path chunk {number_text[:10]} does not match {value}",
                                 message_id=message_id))
        return
    yield Finding.passed("MESH-CHK-002", f"Chunk {number} in the path matches Mex-Chunk-Range {value}.", where)
    found = message_in_path(ctx.session, req.params)
    mailbox = mailbox_of(req.params)
    if found is None or found.message["type"] != "DATA":
        yield Finding.failed("MESH-CHK-003", f"No message {message_id} was started from this mailbox.",
                             "path:message_id", reject=MeshError.of(404, "20", f"no message {message_id}",
                                                                    message_id=message_id))
        return
    message = found.message
    if message["sender"] != mailbox:
        yield Finding.failed("MESH-CHK-003", f"Message {message_id} was sent by {message['sender']}, not {mailbox}.",
                             "path:message_id", reject=MeshError.of(403, "Forbidden", f"message {message_id} "
                                                                    "belongs to another mailbox", message_id=message_id))
        return
    if message["status"] != "uploading":
        yield Finding.failed("MESH-CHK-005", f"Chunk {number} arrived after message {message_id} was complete "
                             f"({message['total_chunks']} chunks, status {message['status']}).", where,
                             reject=MeshError.of(423, "MessageFinalised", f"all {message['total_chunks']} chunks "
                                                 f"of {message_id} were already received", message_id=message_id))
        return
    yield Finding.passed("MESH-CHK-005", f"Message {message_id} is still waiting for chunks.", where)
    if total != message["total_chunks"]:
        yield Finding.failed("MESH-CHK-003", f"Mex-Chunk-Range {value} says {total} chunks but the message was "
                             f"started as 1:{message['total_chunks']}.", where, reject=MeshError.of(
                                 417, "InvalidHeaderChunks", f"{value} does not match 1:{message['total_chunks']}",
                                 message_id=message_id))
        return
    if number == 1:
        yield Finding.failed("MESH-CHK-003", "Chunk 1 is the message itself, sent to /outbox; later chunks are "
                             "2..n.", where, reject=MeshError.of(417, "InvalidHeaderChunks", "chunk 1 is sent to "
                                                                 "/outbox", message_id=message_id))
        return
    yield _passed("MESH-CHK-003", f"Chunk {number} of {total} is within the message.", where)
    encoding = (req.header("Content-Encoding") or "").strip().lower()
    if encoding != (message.get("content_encoding") or ""):
        yield Finding.failed("MESH-CHK-007", f"Content-Encoding {encoding or 'none'!r} differs from the first "
                             f"chunk's ({message.get('content_encoding') or 'none'}); compress every chunk the "
                             "same way.", "header:Content-Encoding", reject=MeshError.of(
                                 417, "UnsupportedContentEncoding", "cannot change content encoding between chunks",
                                 message_id=message_id))
        return
    size = sum(v for k, v in message["chunks"].items() if k != str(number)) + len(req.body)
    limit = mesh(ctx.session).config.limits.max_message_bytes
    if size > limit:
        yield Finding.failed("MESH-CHK-009", f"With this chunk the message is {size} bytes; MESH takes at most "
                             f"{limit} bytes in one chunked message.", "body",
                             reject=MeshError.of(413, "MessageTooLarge", f"{size} bytes in all; the limit is {limit}",
                                                 message_id=message_id))
        return
    if str(number) in message["chunks"]:
        yield Finding.warning("MESH-CHK-006", f"Chunk {number} of {message_id} was already uploaded; this copy "
                              "replaces it. Upload each chunk once (retry only a chunk that failed).", where)
    count, first = missing_chunks(message["chunks"], number)
    if count:
        more = f" and {count - len(first)} more" if count > len(first) else ""
        yield Finding.failed("MESH-CHK-004", f"Chunk {number} arrived before chunk(s) "
                             f"{', '.join(map(str, first))}{more}; upload chunks in order.", where)
    else:
        yield _passed("MESH-CHK-004", f"Chunk {number} follows the chunks before it.", where)


# --- receiving -----------------------------------------------------------------------------------------------
@checks.register("MESH-API-002", operations=("list-inbox",))
def inbox_parameters(req: RequestView, ctx: CheckContext):
    raw = req.arg("max_results")
    if raw is not None and not _whole_number(raw, 10, 5000):
        yield Finding.failed("MESH-API-002", f"max_results={raw[:20]!r} is not a whole number from 10 to 5000.",
                             "query:max_results", reject=MeshError.invalid(
                                 "query", "max_results", "ensure this value is an integer from 10 to 5000"))
    flt = req.arg("workflow_filter")
    if flt is not None and not 2 <= len(flt) <= 255:
        yield Finding.failed("MESH-API-002", f"workflow_filter has {len(flt)} characters; MESH takes 2 to 255.",
                             "query:workflow_filter", reject=MeshError.invalid(
                                 "query", "workflow_filter", "ensure this value has 2 to 255 characters"))
    cont = req.arg("continue_from")
    if cont is not None and not 1 <= len(cont) <= 1000:
        yield Finding.failed("MESH-API-002", "continue_from is empty or longer than 1000 characters; pass the "
                             "links.next URL back as MESH gave it.", "query:continue_from", reject=MeshError.invalid(
                                 "query", "continue_from", "ensure this value has at most 1000 characters"))


def _whole_number(text: str, minimum: int, maximum: int) -> bool:
    try:
        parse_int(text, minimum=minimum, maximum=maximum)
    except ValueError:
        return False
    return True


@checks.register("MESH-RCV-001", "MESH-RCV-003", operations=("list-inbox",))
def polling(req: RequestView, ctx: CheckContext):
    if req.arg("continue_from") is not None:
        return  # following links.next is paging through one poll, not a new poll
    mailbox = mailbox_of(req.params)
    session = mesh(ctx.session)
    last = session.item(f"poll:{mailbox}")
    interval = session.config.limits.poll_interval_seconds
    if last is not None:
        gap = session.now() - last["at"]
        if gap < interval and not last["full"]:
            yield _warning("MESH-RCV-001", f"Polled {mailbox}'s inbox {gap:.0f} s after the previous poll, which "
                           f"returned fewer than max_results messages; poll at most every {interval // 60} minutes "
                           "unless the last poll returned a full page.", "query")
        else:
            yield _passed("MESH-RCV-001", f"{gap:.0f} s since the previous poll of {mailbox}.")
    for message_id, entry in post_office(ctx.session).downloaded(mailbox):
        yield Finding.failed("MESH-RCV-003", f"Message {message_id} was downloaded {session.now() - entry['d']:.0f} s "
                             "ago but not acknowledged; acknowledge each message once it is safely stored.",
                             f"message:{message_id}")


@checks.register("MESH-RCV-006", operations=RECEIVING)
def downloads_only_unacknowledged(req: RequestView, ctx: CheckContext):
    found = message_in_path(ctx.session, req.params)
    if found is not None and found.message["status"] == "acknowledged" \
            and found.message["recipient"] == mailbox_of(req.params):
        yield Finding.failed("MESH-RCV-006", f"Message {found.message['id']} was already acknowledged; a client "
                             "downloads a message before acknowledging it, never after.", "path:message_id")


@checks.register("MESH-RCV-002", operations=("acknowledge-message",))
def acknowledges_what_it_downloaded(req: RequestView, ctx: CheckContext):
    found = message_in_path(ctx.session, req.params)
    if found is None or found.message["status"] != "accepted" or found.message["recipient"] != mailbox_of(req.params):
        return
    message = found.message
    missing = [n for n in range(1, message["total_chunks"] + 1) if str(n) not in message["downloaded"]]
    if missing:
        what = "was never downloaded" if len(missing) == message["total_chunks"] else \
            f"chunk(s) {', '.join(map(str, missing))} of {message['total_chunks']} were never downloaded"
        yield Finding.failed("MESH-RCV-002", f"Acknowledged {message['id']}, which {what}; acknowledge only what "
                             "has been downloaded and stored.", "path:message_id")
    else:
        yield Finding.passed("MESH-RCV-002", f"Every chunk of {message['id']} was downloaded before the "
                             "acknowledgement.", "path:message_id")


# --- tracking and deprecated endpoints -----------------------------------------------------------------------
@checks.register("MESH-TRK-001", operations=("track-message", "track-by-local-id", "count-inbox"))
def tracking(req: RequestView, ctx: CheckContext):
    if ctx.operation == "track-message" and not req.arg("messageID"):
        yield Finding.failed("MESH-TRK-001", "messageID query parameter is missing (tracking?messageID=<id>).",
                             "query:messageID", reject=MeshError.invalid("query", "messageID", "field required",
                                                                        "value_error.missing"))
    elif ctx.operation != "track-message":
        yield Finding.warning("MESH-TRK-001", f"{req.method} {req.path} is deprecated; use "
                              "outbox/tracking?messageID= to track and the inbox list to count.", "path")
    else:
        yield _passed("MESH-TRK-001", "Tracks by message id.", "query:messageID")
