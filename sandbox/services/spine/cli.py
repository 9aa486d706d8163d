"""`spine-sandbox spine …`: the interaction catalogue Spine core messaging knows, with each pattern's endpoint and
which service of the sandbox answers it."""

from __future__ import annotations

import json

import click

from sandbox.services.spine.inbound import ENDPOINT_OF_PATTERN


@click.group("spine")
def spine() -> None:
    """Spine core messaging (MHS): interactions, patterns and endpoints."""


@spine.command("interactions")
@click.option("--pattern", type=click.Choice(sorted(ENDPOINT_OF_PATTERN)), help="Only interactions of one pattern.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def interactions(pattern, as_json) -> None:
    """Every interaction id, its service, messaging pattern, endpoint and the sandbox service answering it (the same
    as GET /_sandbox/spine/interactions)."""
    from sandbox.services import discover
    from sandbox.services.spine import catalogue

    services = discover()
    rows = catalogue.rows(services, _builtin_scenarios(services), pattern)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["id", "pattern", "endpoint", "answered_by", "title"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in columns}
    click.echo("  ".join(("interaction" if c == "id" else c).upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def _builtin_scenarios(services) -> list:
    """The scenarios shipped with the sandbox (a running sandbox adds those of SANDBOX_SCENARIOS)."""
    from pathlib import Path

    from sandbox import scenarios as builtin
    from sandbox.scripting.scenarios import ScenarioCatalogue, ScenarioError

    try:
        return list(ScenarioCatalogue.load([Path(builtin.__file__).parent],
                                           {s.name: set(s.operations) for s in services}))
    except ScenarioError:  # the server refuses to start on these; here the catalogue still prints
        return []
