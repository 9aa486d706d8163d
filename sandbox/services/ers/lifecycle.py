"""The session's own e-RS referral lifecycle (behind the published answers): a request that matches no published
example, or is about something the session created, is answered from session state as live e-RS would.

`answer` dispatches by operation id over `HANDLERS`: this package's referral handlers, merged with the `HANDLERS`
of `advice.py`, `attachments.py` and `directory.py`. `owns` says whether a request names a UBRN,
appointment or attachment the session created (then the routes skip the published answers)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.services.ers import (
    advice,
    appointments,
    attachments,
    directory,
    published,
    referral_requests,
    reviews,
    slots,
    tasks,
    worklists,
)
from sandbox.services.ers import referrals as R
from sandbox.services.ers.context import Answer, ErsCall
from sandbox.web.pipeline import ExchangeContext

Handler = Callable[[ErsCall, ExchangeContext], Answer]

REFERRAL_HANDLERS: dict[str, Handler] = {
    "a005-retrieve-referral-request": referral_requests.retrieve,
    "a005-retrieve-referral-request-versioned": referral_requests.retrieve,
    "a007-retrieve-clinical-information": referral_requests.clinical_information,
    "a008-retrieve-worklist": worklists.fetch_worklist,
    "a010-patient-service-search": slots.search_services,
    "a011-create-referral": referral_requests.create_referral,
    "a013-accept-referral": reviews.accept_referral,
    "a014-reject-referral": reviews.reject_referral,
    "a015-retrieve-appointment-slots": slots.retrieve_slots,
    "a016-book-or-defer-appointment": appointments.book_or_defer,
    "a019-generate-patient-letter": referral_requests.patient_letter,
    "a021-create-referral-request-and-send-for-triage": referral_requests.create_and_send_for_triage,
    "a022-cancel-appointment-action-later": reviews.cancel_appointment_action_later,
    "a028-record-triage-outcome": reviews.record_triage_outcome,
    "a029-available-actions-for-user-list": tasks.actions_for_user,
    "a031-change-shortlist": referral_requests.change_shortlist,
    "a032-change-shortlist-and-send-for-triage": referral_requests.change_shortlist_and_send_for_triage,
    "a034-update-appointment": appointments.update_appointment,
    "a036-cancel-referral": referral_requests.cancel_referral,
    "a038-retrieve-appointment": appointments.retrieve_appointment,
    "a038-retrieve-appointment-versioned": appointments.retrieve_appointment,
}
# Operations whose answer is a view over everything the session made (not one record): once the session has a
# referral of its own, these are answered from its state rather than from the published examples.
SESSION_VIEWS = ("a008-retrieve-worklist",)


HANDLERS: dict[str, Handler] = {**advice.HANDLERS, **attachments.HANDLERS, **directory.HANDLERS, **REFERRAL_HANDLERS}


def owns(call: ErsCall) -> bool:
    """True when the request names a UBRN, appointment or attachment the session's lifecycle created."""
    session = call.session
    if R.owns_ubrn(session, call.params.get("ubrn", "")):
        return True
    appointment_id = call.params.get("appointment_id", "")
    if appointment_id and R.appointment_ubrn(session, appointment_id) is not None:
        return True
    referred = _referral_named_in_request(call)
    if referred is not None and R.owns_ubrn(session, referred):
        return True
    if call.operation.id in SESSION_VIEWS and R.all_records(session):
        return True
    return advice.owns(call) or attachments.owns(call) or directory.owns(call)


def _referral_named_in_request(call: ErsCall) -> str | None:
    """The UBRN an A016 body (incomingReferral) or an A029 query (focus) names."""
    if call.operation.id == "a016-book-or-defer-appointment" and isinstance(call.body, dict):
        items = call.body.get("incomingReferral")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            found = R.reference_ubrn(items[0].get("reference"))
            return found[0] if found else None
    if call.operation.id == "a029-available-actions-for-user-list":
        focus = call.query.get("focus", [])
        found = R.reference_ubrn(focus[0]) if len(focus) == 1 else None
        return found[0] if found else None
    return None


def answer(call: ErsCall, ex: ExchangeContext) -> Answer:
    handler = HANDLERS.get(call.operation.id)
    if handler is None:
        return published.no_match(call)
    return handler(call, ex)
