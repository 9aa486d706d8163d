"""Response headers and bodies in the shapes the MESH API specification shows, v1 and v2."""

from __future__ import annotations

from sandbox.services.mesh.config import Mailbox, MeshConfig
from sandbox.services.mesh.post_office import iso, stamp


def message_headers(message: dict, chunk: int) -> dict[str, str]:
    """The Mex-* headers of a download (and of HEAD): the sender's metadata and the delivery status."""
    is_report = message["type"] == "REPORT"
    headers = {
        "Mex-MessageID": message["id"],
        "Mex-MessageType": message["type"],
        "Mex-To": message.get("report_to") if is_report else message["recipient"],
        "Mex-From": None if is_report else message["sender"],
        "Mex-WorkflowID": message.get("workflow_id"),
        "Mex-Chunk-Range": f"{chunk}:{message['total_chunks']}",
        "Mex-Total-Chunks": str(message["total_chunks"]),
        "Mex-AddressType": "ALL",
        "Mex-LocalID": message.get("local_id"),
        "Mex-PartnerID": message.get("partner_id"),
        "Mex-FileName": None if is_report else (message.get("filename") or f"{message['id']}.dat"),
        "Mex-Subject": message.get("subject"),
        "Mex-Version": "1.0",
        "Mex-Content-Compressed": message.get("compressed"),
        "Mex-Content-Encrypted": message.get("encrypted"),
        "Mex-Content-Checksum": message.get("checksum"),
        "Mex-Content-Type": message.get("mex_content_type"),
    }
    if is_report:
        headers.update({"Mex-LinkedMsgID": message.get("linked_message_id"),
                        "Mex-StatusCode": message.get("status_code"), "Mex-StatusEvent": message.get("status_event"),
                        "Mex-StatusDescription": message.get("status_description"), "Mex-StatusSuccess": "ERROR",
                        "Mex-StatusTimestamp": stamp(message.get("failed_at"))})
    else:
        headers.update({"Mex-StatusCode": "00", "Mex-StatusEvent": "TRANSFER",
                        "Mex-StatusDescription": "Transferred to recipient mailbox", "Mex-StatusSuccess": "SUCCESS",
                        "Mex-StatusTimestamp": stamp(message.get("accepted_at"))})
    return {k: v for k, v in headers.items() if v}


def _present(body: dict) -> dict:
    """Absent rather than null: the specification's schemas have no nullable fields."""
    return {k: v for k, v in body.items() if v is not None}


def tracking_v2(message: dict, recipient: Mailbox | None) -> dict:
    failed = message["status"] in ("undeliverable", "expired")
    return _present({
        "message_id": message["id"], "local_id": message.get("local_id"), "workflow_id": message.get("workflow_id"),
        "filename": message.get("filename"), "expiry_time": iso(message.get("expires_at")),
        "upload_timestamp": iso(message["uploaded_at"]), "recipient": message["recipient"],
        "recipient_name": recipient.display_name if recipient else None,
        "recipient_ods_code": recipient.ods_code if recipient else None,
        "recipient_org_code": recipient.org_code if recipient else None,
        "recipient_org_name": recipient.org_name if recipient else None,
        "status_success": not failed, "status": message["status"],
        "status_event": message.get("status_event") or ("TRANSFER" if not failed else "SEND"),
        "status_timestamp": iso(_status_time(message)),
        "status_description": message.get("status_description") or _status_text(message),
        "status_code": message.get("status_code") or "00",
    })


def tracking_v1(message: dict, config: MeshConfig) -> dict:
    sender, recipient = config.mailbox(message["sender"]), config.mailbox(message["recipient"])
    failed = message["status"] in ("undeliverable", "expired")
    size = sum(message["chunks"].values())
    return _present({
        "addressType": "ALL", "checksum": message.get("checksum"), "chunkCount": message["total_chunks"],
        "compressFlag": message.get("compressed"), "contentEncoding": message.get("content_encoding") or "",
        "downloadTimestamp": stamp(message.get("acknowledged_at")) or None, "dtsId": message["id"],
        "encryptedFlag": message.get("encrypted"), "expiryTime": stamp(message.get("expires_at")) or None,
        "failureDate": stamp(message.get("failed_at")) or None,
        "failureDiagnostic": message.get("status_description") if failed else None,
        "fileName": message.get("filename") or f"{message['id']}.dat", "fileSize": size,
        "isCompressed": message.get("compressed") or "", "linkedMsgId": message.get("linked_message_id"),
        "localId": message.get("local_id"), "meshRecipientOdsCode": recipient.ods_code if recipient else None,
        "messageId": message["id"], "messageType": message["type"], "partnerId": message.get("partner_id") or "",
        "recipient": message["recipient"], "recipientBillingEntity": recipient.billing_entity if recipient else None,
        "recipientName": recipient.display_name if recipient else None,
        "recipientOrgCode": recipient.org_code if recipient else None,
        "recipientOrgName": recipient.org_name if recipient else None,
        "recipientSmtp": f"{message['recipient'].lower()}@dts.nhs.uk",
        "sender": message["sender"], "senderBillingEntity": sender.billing_entity if sender else None,
        "senderName": sender.display_name if sender else None, "senderOdsCode": sender.ods_code if sender else None,
        "senderOrgCode": sender.org_code if sender else None, "senderOrgName": sender.org_name if sender else None,
        "senderSmtp": f"{message['sender'].lower()}@dts.nhs.uk",
        "status": message["status"].capitalize(), "statusCode": message.get("status_code"),
        "statusDescription": message.get("status_description"), "statusEvent": message.get("status_event"),
        "statusSuccess": ("ERROR" if failed else "SUCCESS") if message["status"] != "uploading" else None,
        "statusTimestamp": stamp(_status_time(message)) or None, "subject": message.get("subject"),
        "uploadTimestamp": stamp(message["uploaded_at"]), "version": "1.0",
        "workflowId": message.get("workflow_id"),
    })


def _status_time(message: dict) -> float | None:
    return (message.get("failed_at") or message.get("acknowledged_at") or message.get("accepted_at")
            or message.get("uploaded_at"))


def _status_text(message: dict) -> str:
    return {"uploading": "Waiting for the remaining chunks", "accepted": "Transferred to recipient mailbox",
            "acknowledged": "Acknowledged by recipient"}.get(message["status"], message["status"])


def lookup_v1(mailboxes: list[Mailbox], query_id: str) -> dict:
    return {"query_id": query_id, "results": [{"endpoint_type": "MESH", "description": m.display_name,
                                               "address": m.id} for m in mailboxes]}


def lookup_v2(mailboxes: list[Mailbox]) -> dict:
    return {"results": [{"mailbox_id": m.id, "mailbox_name": m.display_name} for m in mailboxes]}
