"""Routing on behalf of the spine service: which endpoint, eb:Service and reliability (the CPA) the directory gives
a message to a party."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.services.spine import outbox

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox


class NoRoute(LookupError):
    """The directory has no MHS endpoint for the party and interaction; the message says what was looked for."""


def duration_seconds(value: str | float | int | None, default: float) -> float:
    """An ISO 8601 duration as the CPA writes it (PT1M, PT5M, P1D, PT0.5S) in seconds; the default when unreadable."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    import re

    match = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                         value.strip().upper())
    if not match or not any(match.groups()):
        return default
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def route(sandbox: Sandbox, session: str, to_party: str, interaction: str, base_url: str, service: str | None):
    """(the MHS entry, or the registration when no entry matches; the party's registration; the eb:Service; the
    catalogue's interaction)."""
    from sandbox.messaging import interactions
    from sandbox.services.sds import directory as sds

    known = interactions.find(interaction)
    directory = sds.directory(sandbox)
    registration = directory.registration(session, to_party)
    wanted = f"{service}:{interaction}" if service else interaction  # a bare id matches any service's entry
    entries = directory.endpoints(session, base_url=base_url, party_key=to_party, interaction=wanted)
    if entries:
        preferred = [e for e in entries if known is not None and e.service == known.service]
        route = (preferred or entries)[0]
    elif registration is not None:
        route = registration
    else:
        raise NoRoute(f"the directory has no MHS endpoint for party key {to_party} and interaction "
                      f"{known.service_interaction if known and not service else wanted} in session {session}: "
                      "register the supplier's system (its endpoint and the interactions it receives) in SDS")
    service = service or getattr(route, "service", None) or (known.service if known else "")
    return route, registration, service, known


def endpoint(registration, route) -> str:
    return (getattr(registration, "endpoint", None) or getattr(route, "endpoint", None) or "").strip()


def is_reliable(known, route) -> bool:
    """The directory's nhsMHSAckRequested for the route, else the catalogue's pattern."""
    ack_requested = (getattr(route, "ack_requested", None) or "").lower()
    if ack_requested in ("always", "never"):
        return ack_requested == "always"
    return known is not None and known.pattern in ("async-reliable", "forward-reliable")


def cpa_reliability(registration, route) -> tuple[int, float, float]:
    retries = getattr(registration, "retries", None)
    if retries is None:
        retries = getattr(route, "retries", None)
    interval = getattr(registration, "retry_interval", None) or getattr(route, "retry_interval", None)
    persist = getattr(registration, "persist_duration", None) or getattr(route, "persist_duration", None)
    return (outbox.DEFAULT_RETRIES if retries is None else int(retries),
            duration_seconds(interval, outbox.DEFAULT_RETRY_INTERVAL_S),
            duration_seconds(persist, outbox.DEFAULT_PERSIST_S))
