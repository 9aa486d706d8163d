"""Sessions bound to assurance plans: creation with credentials, attestations, and progress.

A session's credentials are its id (sent as X-Sandbox-Session) and a session token a client may send instead as
`Authorization: Bearer sst_…`, so a supplier's system under test needs no sandbox-specific header at all.
Only the token's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from sandbox.assurance.plans import Plan, PlanCatalogue
from sandbox.assurance.verdicts import FAIL, PASS, Assessment
from sandbox.journal.redaction import redacted
from sandbox.journal.store import Attestation, ExchangeFilter, SessionRecord, Store, VersionConflict
from sandbox.web.access import APPLICATION, UNKNOWN, VALID, Access

TOKEN_PREFIX = "sst_"
SESSION_PREFIX = "sess-"
MAX_NAME = 200
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")


class SessionError(ValueError):
    """A session request cannot be met; `status` is the HTTP status the control API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _name(value: str | None, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise SessionError(f"{what} is required (e.g. --{what} \"…\")")
    if len(value) > MAX_NAME or not _PRINTABLE.match(value):
        raise SessionError(f"{what} {value[:40]!r}… must be 1-{MAX_NAME} printable characters")
    return value


def find_plan(plans: PlanCatalogue, plan_id: str | None) -> Plan:
    plan = plans.get(plan_id or "")
    if plan is None:
        raise SessionError(f"no assurance plan {plan_id!r}; plans: {', '.join(plans.ids()) or 'none'} "
                           "(`spine-sandbox plans`)", 404 if plan_id else 400)
    return plan


def create_session(store: Store, plans: PlanCatalogue, plan_id: str, supplier: str, system: str
                   ) -> tuple[SessionRecord, str]:
    """A new session bound to a plan; returns it and its token (shown once, never stored)."""
    plan = find_plan(plans, plan_id)
    supplier, system = _name(supplier, "supplier"), _name(system, "system")
    for _ in range(5):
        try:
            return _store_session(store, SESSION_PREFIX + secrets.token_hex(6), plan.id, supplier, system)
        except VersionConflict:
            continue  # an id collision: astronomically rare, so simply draw again
    raise SessionError("could not allocate a session id", 500)


def create_unbound_session(store: Store, session_id: str, supplier: str, system: str) -> tuple[SessionRecord, str]:
    """A session with a token but no plan, for test runs that want isolated state more than a verdict (the
    in-process mock's own sessions). Its token stands in for an application-restricted access token; a report
    needs a plan named for it (session_and_plan's plan_id). An id already taken is a SessionError (409)."""
    try:
        return _store_session(store, session_id, None, _name(supplier, "supplier"), _name(system, "system"))
    except VersionConflict:
        raise SessionError(f"session {session_id!r} already exists", 409) from None


def _store_session(store: Store, session_id: str, plan: str | None, supplier: str, system: str
                   ) -> tuple[SessionRecord, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    record = SessionRecord(session_id, time.time(), plan, supplier, system, hash_token(token))
    store.sessions.create(record)
    return record, token


def credentials(record: SessionRecord, token: str | None, hosted: bool = False) -> dict:
    """What a client sends to use the session. A hosted sandbox takes only the (unguessable) token, never the id."""
    selector = token if hosted else record.id
    data = {"session": record.id, "plan": record.plan, "supplier": record.supplier, "system": record.system,
            "headers": {"X-Sandbox-Session": selector} if selector else {}}
    if token:
        data["token"] = token
        data["or_headers"] = {"Authorization": f"Bearer {token}"}
    return data


def session_token_access(token: str, sandbox) -> Access:
    """A session token is a sandbox-issued credential: it stands in for a valid access token of the access mode
    its plan certifies (application-restricted when the plan names none)."""
    record = sandbox.store.sessions.for_token(hash_token(token))
    if record is None:
        return Access(token=UNKNOWN, detail=f"session token {redacted(token)} is not known to this sandbox")
    plan = sandbox.plans.get(record.plan or "")
    return Access(mode=(plan.access_mode if plan else "") or APPLICATION, token=VALID, session=record.id)


def session_and_plan(store: Store, plans: PlanCatalogue, session_id: str, plan_id: str | None = None
                     ) -> tuple[SessionRecord, Plan]:
    """The session and the plan to judge it by: its own, or one named for a session used without creating it
    (any X-Sandbox-Session value, or `default`)."""
    record = store.sessions.get(session_id)
    if record is None and not store.journal.count_exchanges(ExchangeFilter(session=session_id)):
        raise SessionError(f"no session {session_id!r}: it was never created and has no exchanges "
                           "(`spine-sandbox sessions list`)", 404)
    if not (plan_id or (record and record.plan)):
        raise SessionError(f"session {session_id!r} is not bound to a plan; name one with --plan (or ?plan=)")
    if record is None:
        record = SessionRecord(session_id, store.totals.span(session_id).first or time.time(), plan_id)
    plan = find_plan(plans, plan_id or record.plan)
    if plan_id and record.plan and plan_id != record.plan:
        raise SessionError(f"session {session_id} is bound to plan {record.plan}, not {plan_id}")
    return record, plan


def attest(store: Store, plans: PlanCatalogue, session_id: str, requirement: str, verdict: str, by: str,
           note: str) -> Attestation:
    record = store.sessions.get(session_id)
    if record is None or not record.plan:
        raise SessionError(f"no session {session_id!r} bound to a plan (`spine-sandbox sessions create`)", 404)
    plan = find_plan(plans, record.plan)
    if requirement not in plan.manual:
        raise SessionError(f"{requirement} is not verified manually in plan {plan.id}; attest one of: "
                           f"{', '.join(plan.manual) or '(none)'}")
    if verdict not in (PASS, FAIL):
        raise SessionError(f"verdict {verdict!r} must be pass or fail")
    note = (note or "").strip()
    if not note:
        raise SessionError("a note is required: say what was checked and how (--note)")
    return store.sessions.attest(Attestation(session_id, requirement, verdict, _name(by, "by"), note, time.time()))


def progress(assessment: Assessment) -> dict:
    """Which steps were exercised and which requirements still lack evidence: for the CLI and control API."""
    s = assessment.session
    return {
        "session": s.id, "plan": assessment.plan.id, "supplier": s.supplier, "system": s.system,
        "verdict": assessment.verdict, "reasons": assessment.reasons, "exchanges": assessment.span.exchanges,
        "steps": [{k: step[k] for k in ("scenario", "title", "exercised", "exchanges")} for step in assessment.steps],
        "requirements": [{k: r[k] for k in ("id", "verification", "verdict", "reason", "counts")}
                         for r in assessment.requirements],
        "without_evidence": [r["id"] for r in assessment.requirements if r["verdict"] == "not exercised"],
        "awaiting_attestation": [r["id"] for r in assessment.requirements if r["verdict"] == "manual"],
    }


def session_summary(record: SessionRecord) -> dict:
    return {"session": record.id, "plan": record.plan, "supplier": record.supplier, "system": record.system,
            "created_at": record.created_at}
