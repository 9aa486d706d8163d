"""Sessions bound to assurance plans: creation with credentials, attestations, and progress.

A session's credentials are its id (sent as X-Sandbox-Session) and a session token a client may send instead as
`Authorization: Bearer sst_…`, so a supplier's system under test needs no sandbox-specific header at all.
Only the token's SHA-256 is stored.

A session token stands in for a valid access token of its plan's access mode (application-restricted when the plan
names none). A session may also hold further tokens, each issued for an access mode of its own (and, for patient
access, a patient's NHS number): `issue_access_token`, used by mock_spine(access=…) and @pytest.mark.spine(access=…).
They select the session as its own token does; a plan that names an access mode accepts tokens of that mode only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass

from sandbox.assurance.plans import Plan, PlanCatalogue
from sandbox.assurance.verdicts import FAIL, PASS, Assessment
from sandbox.journal.redaction import redacted
from sandbox.journal.store import Attestation, ExchangeFilter, SessionRecord, Store, VersionConflict
from sandbox.web.access import APPLICATION, UNKNOWN, VALID, Access, chosen_access

TOKEN_PREFIX = "sst_"
# Tokens issued for an access mode of their own, by SHA-256, in state that belongs to no session (ids cannot start
# with '_'): a session's own token is in its record, and the journal's session table is not theirs to grow.
ACCESS_TOKEN_STATE, ACCESS_TOKENS = "_sessions", "session.access-token"
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


@dataclass(frozen=True)
class TokenGrant:
    """What a session token opens: its session, and the access it stands in for: the plan's mode for the session's
    own token (`plan` is the session's plan), or the `mode` (and patient) it was issued for."""

    session: str
    plan: str | None = None
    mode: str = ""  # "" for the session's own token
    nhs_number: str | None = None


def token_grant(store: Store, token: str) -> TokenGrant | None:
    """The grant of a session token (`sst_…`), or None when this sandbox never issued it."""
    digest = hash_token(token)
    record = store.sessions.for_token(digest)
    if record is not None:
        return TokenGrant(record.id, plan=record.plan)
    item = store.state.get(ACCESS_TOKEN_STATE, ACCESS_TOKENS, digest)
    return TokenGrant(**item.value) if item is not None else None


def issue_access_token(store: Store, plans: PlanCatalogue, session_id: str, mode: str,
                       nhs_number: str | None = None) -> str:
    """A further token for the session that stands in for an access token of `mode` (for patient access, of the
    patient with `nhs_number`; see chosen_access), whatever the session's own token stands in for. Returned once,
    never stored. Refused (SessionError) when the session's plan certifies another access mode."""
    mode, nhs_number = chosen_access(mode, nhs_number)
    record = store.sessions.get(session_id)
    require_plan_allows(plans, plans.get(record.plan or "") if record else None, mode)
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    grant = TokenGrant(session_id, mode=mode, nhs_number=nhs_number)
    store.state.put(ACCESS_TOKEN_STATE, ACCESS_TOKENS, hash_token(token), asdict(grant), create_only=True)
    return token


def require_plan_allows(plans: PlanCatalogue, plan: Plan | None, mode: str) -> None:
    """A plan that names an access mode certifies that mode only: traffic of another mode in its session would be
    judged as evidence for it, so a token of another mode is refused, naming the plans that certify `mode`."""
    if plan is None or not plan.access_mode or plan.access_mode == mode:
        return
    others = ", ".join(p.id for p in plans if p.access_mode == mode) or "none yet"
    raise SessionError(f"plan {plan.id} certifies {plan.access_mode!r} access, so its session takes no {mode!r} "
                       f"token: that traffic would count as evidence for {plan.access_mode!r} access (plans for "
                       f"{mode!r} access: {others})")


def session_token_access(token: str, sandbox) -> Access:
    """A session token is a sandbox-issued credential: it stands in for a valid access token of the access mode
    its plan certifies (application-restricted when the plan names none), or of the mode it was issued for."""
    grant = token_grant(sandbox.store, token)
    if grant is None:
        return Access(token=UNKNOWN, detail=f"session token {redacted(token)} is not known to this sandbox")
    if grant.mode:
        return Access(mode=grant.mode, token=VALID, session=grant.session, nhs_number=grant.nhs_number,
                      detail="the access mode this token was issued for")
    plan = sandbox.plans.get(grant.plan or "")
    if plan is not None and plan.access_mode:
        return Access(mode=plan.access_mode, token=VALID, session=grant.session, detail="the plan's access mode")
    return Access(mode=APPLICATION, token=VALID, session=grant.session,
                  detail="the default: the session has no plan that names an access mode")


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
