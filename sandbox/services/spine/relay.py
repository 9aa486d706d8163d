"""Forward reliable: the receiver's acknowledgement (or MessageError) goes back to the original sender."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sandbox.services.spine import outbox, verdicts

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox
    from sandbox.services.spine import sending

log = logging.getLogger(__name__)

ACK_SOAP_ACTION = "urn:oasis:names:tc:ebxml-msg:service/Acknowledgment"


def relay_posted(sandbox: Sandbox, record: dict, header: Any, is_ack: bool) -> None:
    """Forward reliable: the receiver's acknowledgement (or MessageError) goes back to the original sender."""
    try:
        from sandbox.messaging import ebxml

        sent = sandbox.store.state.get_blob(record["session"], outbox.BLOB_PREFIX + record["id"]) or b""
        original = ebxml.parse(record["content_type"], sent).header
        message_id = str(uuid.uuid4()).upper()
        if is_ack:
            body = ebxml.build_acknowledgment(original, from_party=record["to_party"], message_id=message_id)
        else:
            body = ebxml.build_message_error(original, list(header.errors), from_party=record["to_party"],
                                             message_id=message_id)
    except Exception:
        log.exception("could not build the relayed answer for delivery %s", record["id"])
        return
    _enqueue(sandbox, record, message_id, body, is_ack)


def relay_answer(sandbox: Sandbox, record: dict, result: sending.HttpResult) -> None:
    """The receiver answered in its HTTP response: that answer goes back to the sender as it is."""
    content_type = next((v for k, v in result.headers if k.lower() == "content-type"), "text/xml; charset=UTF-8")
    header = verdicts.parse_answer(result.headers, result.body)
    message_id = getattr(header, "message_id", None) or str(uuid.uuid4()).upper()
    _enqueue(sandbox, record, message_id, result.body, True, content_type)


def _enqueue(sandbox: Sandbox, record: dict, message_id: str, body: bytes, is_ack: bool,
             content_type: str = "text/xml; charset=UTF-8") -> None:
    endpoint = record.get("relay_endpoint")
    if not endpoint:
        try:
            from sandbox.services.sds import directory as sds

            registration = sds.directory(sandbox).registration(record["session"], record["relay_to_party"])
            endpoint = getattr(registration, "endpoint", None)
        except Exception:
            endpoint = None
    if not endpoint:
        log.warning("no endpoint to relay the answer to delivery %s back to %s", record["id"],
                    record["relay_to_party"])
        return
    from sandbox.services.spine import delivery  # the public API imports this module

    delivery.enqueue(sandbox, outbox.Delivery(
        session=record["session"], to_party=record["relay_to_party"], endpoint=endpoint,
        interaction="Acknowledgment" if is_ack else "MessageError", message_id=message_id,
        conversation_id=record["conversation_id"], content_type=content_type, body=body, reliable=False,
        ref_to_message_id=record.get("relay_message_id") or record["message_id"], soap_action=ACK_SOAP_ACTION
        if is_ack else "urn:oasis:names:tc:ebxml-msg:service/MessageError"))
