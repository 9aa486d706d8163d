"""Journaling deliveries: every attempt is an exchange of service `spine`, operation `deliver`; what the sandbox
concludes without sending (given up, a late acknowledgement) is one of operation `delivery-outcome`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sandbox.conformance.findings import Finding
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from sandbox.services.spine import verdicts

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox
    from sandbox.services.spine import sending

SERVICE_NAME = "spine"
OPERATION = "deliver"  # one attempt: the message sent and the supplier's answer
OUTCOME_OPERATION = "delivery-outcome"  # what the sandbox concluded without sending (given up, a late ack)


def give_up(sandbox: Sandbox, record: dict) -> None:
    mid = record["message_id"]
    finding = Finding.failed(
        verdicts.REQ_ACK_IN_TIME, f"The reliable message {mid} ({record['interaction']}) to {record['to_party']} was "
        f"never acknowledged: {record['sends']} attempt(s), {record['retry_interval_s']:g} s apart, then the retry "
        f"interval after the last; Spine gives up (retries {record['retries']}).", record["endpoint"])
    record_outcome(sandbox, record, [finding])


def record_exchange(sandbox: Sandbox, record: dict, exchange_id: str, started: float, duration_ms: float,
                     method: str, headers: list[tuple[str, str]], body: bytes, result: sending.HttpResult,
                     findings: list[Finding]) -> None:
    response_body = result.body if not result.error else f"no HTTP answer: {result.error}: {result.detail}".encode()
    response_headers = result.headers if not result.error else [("Content-Type", "text/plain; charset=utf-8")]
    exchange = Exchange(
        id=exchange_id, session=record["session"], service=SERVICE_NAME, operation=OPERATION, started_at=started,
        duration_ms=duration_ms,
        request=RecordedRequest(method, record["endpoint"], "", headers, body, "spine-sandbox"),
        response=RecordedResponse(result.status, response_headers, response_body), findings=findings)
    sandbox.store.journal.record(exchange, _keys(record))


def record_outcome(sandbox: Sandbox, record: dict, findings: list[Finding]) -> str:
    exchange_id = new_exchange_id()
    text = f"delivery {record['id']} of MessageId {record['message_id']}: {verdicts.outcome_detail(record)}".encode()
    exchange = Exchange(
        id=exchange_id, session=record["session"], service=SERVICE_NAME, operation=OUTCOME_OPERATION,
        started_at=time.time(), duration_ms=0.0,
        request=RecordedRequest("-", record["endpoint"], "", [], b"", "spine-sandbox"),
        response=RecordedResponse(0, [("Content-Type", "text/plain; charset=utf-8")], text), findings=findings)
    sandbox.store.journal.record(exchange, _keys(record))
    return exchange_id


def _keys(record: dict) -> list[str]:
    return [f"{SERVICE_NAME}:delivery:{record['id']}", f"{SERVICE_NAME}:message:{record['message_id']}"]


def add_findings(sandbox: Sandbox, session: str, record: dict | None, findings: list[Finding]) -> None:
    """On the exchange being answered when there is one (an acknowledgement POSTed to the sandbox), else on an
    exchange of their own."""
    if not findings:
        return
    from sandbox.web import current

    exchange = current.exchange()
    if exchange is not None and exchange.session == session:
        exchange.add(*findings)
    elif record is not None:
        record_outcome(sandbox, record, findings)
