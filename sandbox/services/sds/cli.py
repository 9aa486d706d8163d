"""`spine-sandbox sds …`: register your own system's MHS in the directory, list and remove registrations.

Writes go straight to the Store under the data directory, so a running server sees them on its next request.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.settings import SettingError, Settings

DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
SESSION = click.option("--session", default="default", show_default=True, help="The sandbox session it belongs to.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _directory(data_dir):
    from sandbox.journal.store import open_store
    from sandbox.services.sds.directory import Directory

    try:
        settings = Settings.load(data_dir=data_dir)
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None
    store = open_store(settings.journal_url)
    click.get_current_context().call_on_close(store.close)  # closed when the command ends
    return Directory(store, settings.sds_addresses)


def _check_session(session: str) -> None:
    from sandbox.web.sessions import valid_session_id

    if not valid_session_id(session):
        raise click.UsageError(f"--session {session!r} is not a session id (1-64 letters, digits, '.', '_', '-')")


@click.group("sds")
def sds() -> None:
    """Spine Directory Service: register your system's MHS so Spine routes to it."""


@sds.command("register")
@click.option("--ods", required=True, help="Your organisation's ODS code.")
@click.option("--asid", required=True, help="Your accredited system's ASID (12 digits).")
@click.option("--party-key", required=True, help="Your MHS party key: <ODS>-<digits>.")
@click.option("--endpoint", required=True, help="The http(s) URL your MHS receives messages at.")
@click.option("--interaction", "interactions", multiple=True, required=True,
              help="An interaction your MHS receives, e.g. REPC_IN150016UK05 or the full service interaction "
                   "(repeatable).")
@click.option("--retries", type=int, default=2, show_default=True, help="Reliable messaging: retries.")
@click.option("--retry-interval", default="PT1M", show_default=True, help="Reliable messaging: ISO 8601 duration.")
@click.option("--persist-duration", default="PT5M", show_default=True, help="Reliable messaging: ISO 8601 duration.")
@click.option("--ca-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="CA certificate (PEM) that signed your https endpoint's certificate.")
@SESSION
@DATA_DIR
@AS_JSON
def register(ods, asid, party_key, endpoint, interactions, retries, retry_interval, persist_duration, ca_file,
             session, data_dir, as_json) -> None:
    """Register (or replace) your system: SDS then answers its Endpoint and Device records, and Spine sends to it."""
    from sandbox.services.sds.directory import RegistrationError, validate

    _check_session(session)
    data = {"ods": ods, "asid": asid, "party_key": party_key, "endpoint": endpoint, "interactions": list(interactions),
            "retries": retries, "retry_interval": retry_interval, "persist_duration": persist_duration,
            "ca_file": str(ca_file.resolve()) if ca_file else None}
    try:
        registration = _directory(data_dir).register(session, validate(data))
    except RegistrationError as exc:
        raise click.ClickException(f"{exc.field}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"session": session, **registration.to_dict()}, indent=2))
        return
    click.echo(f"registered {registration.party_key} (ASID {registration.asid}, ODS {registration.ods}) in session "
               f"{session}: {len(registration.interactions)} interaction(s) at {registration.endpoint}")


@sds.command("list")
@SESSION
@DATA_DIR
@AS_JSON
def list_registrations(session, data_dir, as_json) -> None:
    """List the session's registrations."""
    _check_session(session)
    found = _directory(data_dir).registrations(session)
    if as_json:
        click.echo(json.dumps([{"session": session, **r.to_dict()} for r in found], indent=2))
        return
    if not found:
        click.echo(f"no registrations in session {session}")
    for r in found:
        click.echo(f"{r.party_key:<20} ASID {r.asid}  ODS {r.ods:<8} {r.endpoint}")
        for interaction in r.interactions:
            click.echo(f"    {interaction}")


@sds.command("remove")
@click.argument("party_key")
@SESSION
@DATA_DIR
def remove(party_key, session, data_dir) -> None:
    """Remove a registration by party key."""
    _check_session(session)
    if not _directory(data_dir).remove(session, party_key):
        raise click.ClickException(f"no registration for party key {party_key!r} in session {session}; "
                                   "`spine-sandbox sds list` shows them")
    click.echo(f"removed {party_key} from session {session}")
