"""MESH API endpoints under /messageexchange: thin handlers; authentication and the rules run as checks first."""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import math
import time
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from sandbox import __version__
from sandbox.conformance.parsing import Malformed, parse_int, parse_json
from sandbox.services.mesh import compression, views
from sandbox.services.mesh.checks import missing_chunks, parse_chunk_range
from sandbox.services.mesh.context import gzip_state, mailbox_of, message_in_path, post_office
from sandbox.services.mesh.errors import MeshError, json_response, request_version
from sandbox.services.mesh.post_office import PostOffice, iso
from sandbox.web.pipeline import current_exchange, operation

blueprint = Blueprint("mesh", __name__)
OCTET = "application/octet-stream"
V1_PAGE = 500
POLL_RESOLUTION_S = 1.0


# --- facts: what scenarios can trigger on; computing them also runs any expiry that is due ------------------------
def _office(view=None):
    office = post_office(current_exchange().session)
    office.sweep()
    return office


def _prepare(view) -> dict:
    _office()
    return {}


def _send_facts(view) -> dict:
    config = _office().mesh.config
    sender = mailbox_of(view.params)
    recipient = (view.header("Mex-To") or "").strip().upper()
    workflow = (view.header("Mex-WorkflowID") or "").strip()
    parsed = parse_chunk_range(view.header("Mex-Chunk-Range"))
    return {"recipient_registered": config.mailbox(recipient) is not None,
            "workflow_restricted": workflow in config.workflows,
            "workflow_permitted": config.may_send(workflow, sender) and config.may_receive(workflow, recipient),
            "too_large": len(view.body) > config.limits.max_request_bytes,
            "chunked": bool(parsed and parsed[1] > 1)}


def _chunk_facts(view) -> dict:
    _office()
    found = message_in_path(current_exchange().session, view.params)
    number = view.params.get("chunk_number", "")
    if found is None:
        return {"chunk": "unknown-message"}
    message = found.message
    try:
        n = parse_int(number, minimum=2, maximum=message["total_chunks"])
    except ValueError:
        n = None
    if message["status"] != "uploading":
        state = "after-final"
    elif n is None:
        state = "out-of-range"
    elif str(n) in message["chunks"]:
        state = "duplicate"
    elif missing_chunks(message["chunks"], n, show=0)[0]:
        state = "out-of-order"
    else:
        state = "next"
    return {"chunk": state}


def _download_facts(view) -> dict:
    _office()
    found = message_in_path(current_exchange().session, view.params)
    if found is None or found.message["status"] == "uploading":
        return {"message": "unknown"}
    status = found.message["status"]
    return {"message": {"accepted": "ready", "undeliverable": "expired"}.get(status, status),
            "message_type": found.message["type"]}


# --- handshake and ping --------------------------------------------------------------------------------------
@blueprint.get("/_ping")
@operation("ping")
def ping(ex):
    return json_response({"status": "ok", "version": __version__, "timestamp": iso(time.time())}, version=1)


@blueprint.route("/<mailbox_id>", methods=["POST", "GET"])
@operation("handshake", facts=_prepare)
def handshake(ex, mailbox_id: str):
    if request_version() >= 2:
        return Response(status=200)
    return json_response({"mailboxId": mailbox_of(ex.view.params)})


# --- inbox ---------------------------------------------------------------------------------------------------
def _workflow_filter(text: str | None):
    """MESH's filter grammar: WORKFLOW, !WORKFLOW, PREFIX*, !PREFIX*, *PART*, !*PART*. None: no filter."""
    if not text:
        return None
    negate = text.startswith("!")
    text = text[1:] if negate else text
    if text.startswith("*") and text.endswith("*") and len(text) >= 2:
        part = text[1:-1]
        test = lambda workflow: part in workflow  # noqa: E731
    elif text.endswith("*"):
        prefix = text[:-1]
        test = lambda workflow: workflow.startswith(prefix)  # noqa: E731
    else:
        test = lambda workflow: workflow == text  # noqa: E731
    return (lambda workflow: not test(workflow)) if negate else test


def _decode_continue(token: str) -> tuple[float, str]:
    try:
        data = parse_json(base64.urlsafe_b64decode(token.encode("ascii") + b"==="))
    except (Malformed, binascii.Error, ValueError):
        data = None
    mark, key = (data.get("t"), data.get("id")) if isinstance(data, dict) else (None, None)
    if isinstance(mark, bool) or not isinstance(mark, int | float) or not math.isfinite(mark) \
            or not isinstance(key, str):
        raise MeshError.invalid("query", "continue_from", "continue_from is not a value this inbox gave in "
                                "links.next")
    return float(mark), key


@blueprint.get("/<mailbox_id>/inbox")
@operation("list-inbox", facts=_prepare)
def list_inbox(ex, mailbox_id: str):
    office = post_office(ex.session)
    mailbox = mailbox_of(ex.view.params)
    now = office.mesh.now()
    version = request_version()
    arg = ex.view.arg
    after = arg("continue_from")
    # A client polls an unchanged inbox over and over: the same listing is rendered once.
    body, full = office.listing(mailbox, (version, arg("workflow_filter"), arg("max_results"), after), now,
                                lambda: _render_inbox(office, mailbox, now, version, arg))
    if not after:
        poll = {"at": now, "full": full}
        last = office.mesh.item(f"poll:{mailbox}")
        # Kept to the second: the polling rule (MESH-RCV-001) counts in minutes, and a client polling many times a
        # second would otherwise cost a write each time.
        if last is None or now - last["at"] >= POLL_RESOLUTION_S or last["full"] != poll["full"]:
            ex.write_with_record(lambda: office.mesh.put(f"poll:{mailbox}", poll))
    return json_response(body, version=version)


def _render_inbox(office: PostOffice, mailbox: str, now: float, version: int,
                  arg) -> tuple[tuple[str, bool], float]:
    """The listing's JSON text and whether its page is full, and when it stops being true (its first expiry). Work
    in proportion to the page, not to the inbox, where it can: a busy inbox holds many thousands."""
    entries = office.waiting(mailbox, now)
    if entries is office.inbox(mailbox):  # none has expired
        until = office.first_expiry(mailbox)
    else:
        until = min((v["x"] for _, v in entries), default=float("inf"))
    wanted = _workflow_filter(arg("workflow_filter"))
    limit = _page_size(arg("max_results")) if version >= 2 else V1_PAGE
    after = arg("continue_from")
    if after and version >= 2:  # resume after the last message of the previous page, even if it has gone since
        mark = _decode_continue(after)  # the entries are in (t, id) order: the rest begin after the mark
        entries_after = entries[bisect.bisect_right(entries, mark, key=lambda e: (e[1]["t"], e[0])):]
    elif after:  # v1 passes the last message id; ids begin with their time, so they sort in inbox order
        entries_after = [(k, v) for k, v in entries if k > after.upper()]
    else:
        entries_after = entries
    # One more than the page: enough to know whether there is a next page.
    matching = entries_after[:limit + 1] if wanted is None else \
        list(itertools.islice(((k, v) for k, v in entries_after if wanted(v["w"])), limit + 1))
    page = [k for k, _ in matching[:limit]]
    full = len(page) >= limit
    if version < 2:
        return (json.dumps({"messages": page}), full), until
    query = {k: v for k in ("max_results", "workflow_filter") if (v := arg(k))}
    base = f"/messageexchange/{mailbox}/inbox"
    links = {"self": base + (f"?{urlencode(query)}" if query else "")}
    if len(matching) > limit:
        last_id, last = matching[limit - 1]
        token = base64.urlsafe_b64encode(json.dumps({"t": last["t"], "id": last_id}).encode()).decode().rstrip("=")
        links["next"] = f"{base}?{urlencode({**query, 'continue_from': token})}"
    return (json.dumps({"messages": page, "links": links, "approx_inbox_count": len(entries)}), full), until


def _page_size(text: str | None) -> int:
    try:
        return parse_int(text, minimum=10, maximum=5000) if text else V1_PAGE
    except ValueError:  # refused by a check before the handler runs; a scripted answer may still get here
        return V1_PAGE


@blueprint.get("/<mailbox_id>/count")
@operation("count-inbox", facts=_prepare)
def count_inbox(ex, mailbox_id: str):
    office = post_office(ex.session)
    now = office.mesh.now()
    count = len(office.waiting(mailbox_of(ex.view.params), now))
    if request_version() >= 2:
        return json_response({"count": count})
    return json_response({"count": count, "internalID": ex.id, "allResultsIncluded": True})


def _chunk_number(text: str) -> int:
    try:
        return parse_int(text, minimum=1)
    except ValueError:
        raise MeshError.invalid("path", "chunk_number", "ensure this value is an integer of at least 1") from None


def _download(ex, number: int, head: bool = False) -> Response:
    office = post_office(ex.session)
    mailbox = mailbox_of(ex.view.params)
    message_id = (ex.view.params.get("message_id") or "").upper()
    found = message_in_path(ex.session, ex.view.params)
    message = office.readable(found, mailbox, message_id)
    if number > message["total_chunks"]:
        raise MeshError.of(404, "20", f"message {message_id} has {message['total_chunks']} chunk(s); there is no "
                           f"chunk {number}", message_id=message_id)
    headers = views.message_headers(message, number)
    if head:
        return Response(b"", 200, headers=headers, mimetype=OCTET)
    data = office.chunk(message["id"], number)
    if data is None:
        raise MeshError.of(404, "20", f"chunk {number} of message {message_id} is missing", message_id=message_id)
    if message.get("content_encoding") == "gzip":
        if "gzip" in (request.headers.get("Accept-Encoding") or "").lower():
            headers["Content-Encoding"] = "gzip"
        else:  # the client cannot take gzip: hand over the data as the sender had it before compressing
            data, encoding = _expanded(office, message, number, data)
            if encoding:
                headers["Content-Encoding"] = encoding
    office.record_download(found, number)  # once it is certain to be handed over (not refused as a bomb)
    content_type = message.get("content_type") if message["total_chunks"] == 1 else None
    status = 206 if number < message["total_chunks"] else 200
    return Response(data, status, headers=headers, mimetype=content_type or OCTET)


def _expanded(office, message: dict, number: int, data: bytes) -> tuple[bytes, str | None]:
    """A gzip chunk expanded for a client that does not accept gzip, with a bound: a chunk that expands past
    limits.max_expanded_bytes (a gzip bomb) is refused (406) rather than expanded in memory; one that is not gzip
    after all (a finding at send) is passed on as sent. The verdict made at upload answers without reading it again."""
    limit = office.limits.max_expanded_bytes
    state = (message.get("gzip") or {}).get(str(number))
    try:
        if state == compression.TOO_LARGE:
            raise compression.TooLarge(limit)
        if state == compression.NOT_GZIP:
            return data, "gzip"
        return compression.expand(data, limit), None
    except compression.NotGzip:
        return data, "gzip"
    except compression.TooLarge as exc:
        raise MeshError.of(406, "EncodingRequired", f"chunk {number} of message {message['id']} is gzip data that "
                           f"{exc}; download it with Accept-Encoding: gzip", message_id=message["id"]) from None


@blueprint.route("/<mailbox_id>/inbox/<message_id>", methods=["HEAD"])
@operation("head-message", facts=_download_facts)
def head_message(ex, mailbox_id: str, message_id: str):
    return _download(ex, 1, head=True)


@blueprint.get("/<mailbox_id>/inbox/<message_id>")
@operation("download-message", facts=_download_facts)
def download_message(ex, mailbox_id: str, message_id: str):
    return _download(ex, 1)


@blueprint.get("/<mailbox_id>/inbox/<message_id>/<chunk_number>")
@operation("download-chunk", facts=_download_facts)
def download_chunk(ex, mailbox_id: str, message_id: str, chunk_number: str):
    return _download(ex, _chunk_number(chunk_number))


@blueprint.put("/<mailbox_id>/inbox/<message_id>/status/acknowledged")
@operation("acknowledge-message", facts=_download_facts)
def acknowledge(ex, mailbox_id: str, message_id: str):
    office = post_office(ex.session)
    mailbox = mailbox_of(ex.view.params)
    message_id = message_id.upper()
    found = message_in_path(ex.session, ex.view.params)
    again = found is not None and found.message["status"] == "acknowledged" and found.message["recipient"] == mailbox
    if not again:  # acknowledging twice is harmless, as on MESH; anything else must be downloadable now
        office.readable(found, mailbox, message_id)
        office.acknowledge(found.message["id"], commit=ex.write_with_record)
    if request_version() >= 2:
        return Response(status=200)
    return json_response({"messageId": message_id})


# --- outbox --------------------------------------------------------------------------------------------------
SEND_HEADERS = {"workflow_id": "Mex-WorkflowID", "local_id": "Mex-LocalID", "subject": "Mex-Subject",
                "filename": "Mex-FileName", "checksum": "Mex-Content-Checksum", "compressed": "Mex-Content-Compressed",
                "encrypted": "Mex-Content-Encrypted", "partner_id": "Mex-PartnerID",
                "mex_content_type": "Mex-Content-Type", "content_type": "Content-Type"}


@blueprint.post("/<mailbox_id>/outbox")
@operation("send-message", facts=_send_facts)
def send_message(ex, mailbox_id: str):
    view = ex.view
    metadata = {key: value.strip() for key, name in SEND_HEADERS.items() if (value := view.header(name))}
    encoding = (view.header("Content-Encoding") or "").strip().lower()
    if encoding == "gzip":
        metadata["content_encoding"] = "gzip"
        metadata["gzip"] = {"1": _gzip_state(ex)}
    parsed = parse_chunk_range(view.header("Mex-Chunk-Range"))
    message = post_office(ex.session).send(mailbox_of(view.params), view.header("Mex-To").strip().upper(), metadata,
                                           ex.body, parsed[1] if parsed else 1, commit=ex.write_with_record)
    version = request_version()
    return json_response({"message_id" if version >= 2 else "messageID": message["id"]}, status=202, version=version)


@blueprint.post("/<mailbox_id>/outbox/<message_id>/<chunk_number>")
@operation("send-chunk", facts=_chunk_facts)
def send_chunk(ex, mailbox_id: str, message_id: str, chunk_number: str):
    found = message_in_path(ex.session, ex.view.params)
    number = parse_int(chunk_number, minimum=2)  # the checks made sure it is the header's, within the message
    gzip = _gzip_state(ex) if found.message.get("content_encoding") == "gzip" else None
    post_office(ex.session).add_chunk(found.message["id"], number, ex.body, gzip, commit=ex.write_with_record)
    if request_version() >= 2:
        return Response(status=202)
    return json_response({"messageID": found.message["id"], "blockID": number}, status=202)


def _gzip_state(ex) -> str:
    """What the upload check found this gzip body to be (kept with the chunk, so a download need not look again)."""
    return gzip_state(ex.body, post_office(ex.session).limits.max_expanded_bytes)[0]


# --- tracking ------------------------------------------------------------------------------------------------
@blueprint.get("/<mailbox_id>/outbox/tracking")
@operation("track-message", facts=_prepare)
def track_message(ex, mailbox_id: str):
    office = post_office(ex.session)
    mailbox = mailbox_of(ex.view.params)
    message_id = (ex.view.arg("messageID") or "").upper()
    found = office.find(message_id)
    if found is None or found.message["sender"] != mailbox:
        raise MeshError.of(404, "20", f"{mailbox} sent no message {message_id} (or it was purged after "
                           f"{office.limits.purge_days:g} days)", message_id=message_id)
    if request_version() >= 2:
        return json_response(views.tracking_v2(found.message, office.mesh.config.mailbox(found.message["recipient"])))
    return json_response(views.tracking_v1(found.message, office.mesh.config))


@blueprint.get("/<mailbox_id>/outbox/tracking/<local_id>")
@operation("track-by-local-id", facts=_prepare)
def track_by_local_id(ex, mailbox_id: str, local_id: str):
    office = post_office(ex.session)
    mailbox = mailbox_of(ex.view.params)
    matches = office.sent_with_local_id(mailbox, local_id)
    if not matches:
        raise MeshError.of(404, "20", f"{mailbox} sent no message with local id {local_id!r}")
    if len(matches) > 1:
        return json_response({"errorEvent": "TRACK", "errorCode": "300", "errorDescription":
                              f"local id {local_id!r} is not unique: {len(matches)} messages carry it",
                              "messageIDs": matches}, status=300, version=1)
    return json_response(views.tracking_v1(office.find(matches[0]).message, office.mesh.config), version=1)


# --- lookup --------------------------------------------------------------------------------------------------
@blueprint.get("/endpointlookup/<ods_code>/<workflow_id>")
@operation("endpoint-lookup", facts=_prepare)
def endpoint_lookup(ex, ods_code: str, workflow_id: str):
    config = post_office(ex.session).mesh.config
    found = [m for m in config.receivers_of(workflow_id) if m.ods_code.upper() == ods_code.upper()]
    if request_version() >= 2:
        return json_response(views.lookup_v2(found))
    return json_response(views.lookup_v1(found, ex.id))


@blueprint.get("/workflowsearch/<workflow_id>")
@operation("workflow-search", facts=_prepare)
def workflow_search(ex, workflow_id: str):
    config = post_office(ex.session).mesh.config
    return json_response(views.lookup_v2(config.receivers_of(workflow_id)))


def finish_response(response: Response) -> None:
    """A 429 or 503 asks the client to wait (a scripted fault leaves its token unused: see checks._claim)."""
    ex = current_exchange()
    if response.status_code not in (429, 503) or not request.view_args or "mailbox_id" not in request.view_args:
        return
    try:
        wait = max(1, int(response.headers.get("Retry-After", "1")))
    except ValueError:
        wait = 1
    office = post_office(ex.session)
    office.mesh.put(f"backoff:{request.view_args['mailbox_id'].upper()}",
                    {"until": time.time() + wait, "wait": wait, "status": response.status_code, "exchange": ex.id})
