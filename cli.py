"""spine-sandbox: the command line. Thin: it parses options and calls into sandbox/."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from sandbox import __version__
from sandbox.settings import SettingError, Settings

JSON_HELP = "Print JSON for scripts instead of a table."


# --- shared plumbing ---------------------------------------------------------------------------------------------
def _settings(**overrides) -> Settings:
    try:
        return Settings.load(**overrides)
    except (SettingError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None


def _sandbox(settings: Settings):
    from sandbox.runtime import Sandbox, StartupError

    try:
        return Sandbox.build(settings)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def data_options(func):
    """--data-dir, --seed and --population: what every command that reads the sandbox's data accepts."""
    func = click.option("--population", type=int, help="Size of the synthetic population [SANDBOX_POPULATION].")(func)
    func = click.option("--seed", type=int, help="Seed of the synthetic population [SANDBOX_SEED].")(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path),
                        help="Where the journal and session state live [SANDBOX_DATA_DIR].")(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="spine-sandbox")
def main() -> None:
    """A local mock NHS Spine: live-like services, precise findings, assurance reports."""


# --- serve -------------------------------------------------------------------------------------------------------
@main.command()
@click.option("--host", help="Interface to listen on [SANDBOX_HOST, default 127.0.0.1; 0.0.0.0 in Docker].")
@click.option("--port", type=int, help="Port to listen on [SANDBOX_PORT, default 9000].")
@data_options
@click.option("--scenarios", "scenarios", multiple=True, type=click.Path(path_type=Path, exists=True,
              file_okay=False), help="Extra scenario folder, after the built-in packs (repeatable) [SANDBOX_SCENARIOS].")
@click.option("--workers", type=int, help="Worker processes [SANDBOX_WORKERS, default one per CPU].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="[SANDBOX_LOG_LEVEL]")
@click.option("--tls/--no-tls", default=None, help="HTTPS with mutual TLS: clients need a certificate from the "
              "sandbox CA (made on first use, with one per MESH mailbox) [SANDBOX_TLS].")
@click.option("--tls-dir", help="Where the CA, server and client certificates live [SANDBOX_TLS_DIR, default "
              "<data dir>/tls].")
def serve(host, port, data_dir, seed, population, scenarios, workers, log_level, tls, tls_dir) -> None:
    """Run the sandbox: every service at its live path, the control API under /_sandbox/."""
    from sandbox.web.server import serve as run_server
    from sandbox.web.server import worker_count

    settings = _settings(host=host, port=port, data_dir=data_dir, seed=seed, population=population,
                         scenarios=tuple(scenarios) or None, workers=workers, log_level=log_level, tls=tls,
                         tls_dir=tls_dir)
    started = time.perf_counter()
    click.echo(f"Spine Sandbox {__version__}: checking configuration…", err=True)
    sandbox = _sandbox(settings)
    with click.progressbar(length=settings.population, label="Building the synthetic population index",
                           file=sys.stderr) as bar:
        sandbox.population.index(lambda done, total: bar.update(done - bar.pos))
    sandbox.store.close()  # workers open their own connections
    scheme = "https" if settings.tls else "http"
    base = f"{scheme}://{'localhost' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"
    click.echo(_banner(sandbox, base, worker_count(settings), time.perf_counter() - started), err=True)
    run_server(settings)


def _banner(sandbox, base: str, workers: int, took: float) -> str:
    s = sandbox.settings
    lines = [f"Spine Sandbox {__version__} ready in {took:.1f} s, listening on {base}", ""]
    for service in sandbox.services.values():
        for path in service.base_paths:
            lines.append(f"  {service.title:<44} {base}{path}")
    lines += ["", f"  {'Control API':<44} {base}/_sandbox/  (health, exchanges, patients, scenarios)",
              f"  {'Journal':<44} {s.journal_url}",
              f"  {'Synthetic population':<44} {s.population} patients, seed {s.seed}",
              f"  {'Scenarios / requirements':<44} {len(sandbox.scenarios)} / {len(sandbox.requirements)}",
              f"  {'Workers':<44} {workers} x {s.threads} threads", ""]
    if s.tls:
        lines[-1:-1] = [f"  {'Mutual TLS (CA, server and client certificates)':<44} {s.tls_path}"]
    return "\n".join(lines)


# --- scenarios ---------------------------------------------------------------------------------------------------
@main.group(invoke_without_command=True)
@click.option("--service", help="Only this service's scenarios (e.g. pds).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--scenarios", "scenarios", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Extra scenario folder to include (repeatable).")
@click.pass_context
def scenarios(ctx, service, as_json, scenarios) -> None:
    """List the scenario catalogue: which values trigger which behaviour."""
    ctx.obj = _settings(scenarios=tuple(scenarios) or None, data_dir=Path(_temp_dir()))
    if ctx.invoked_subcommand:
        return
    sandbox = _sandbox(ctx.obj)
    items = [s.to_dict() for s in sandbox.scenarios if not service or s.service == service]
    if as_json:
        _emit_json(items)
    else:
        _table(items, ["id", "service", "title", "trigger"])


@scenarios.command("show")
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def scenarios_show(settings, scenario_id, as_json) -> None:
    """Show one scenario in full."""
    sandbox = _sandbox(settings)
    scenario = sandbox.scenarios.get(scenario_id)
    if scenario is None:
        raise click.ClickException(f"no scenario {scenario_id!r}; `spine-sandbox scenarios` lists them")
    data = scenario.to_dict()
    if as_json:
        _emit_json(data)
        return
    for key in ("id", "service", "title", "trigger", "description", "requirements", "response", "expect", "source"):
        if data.get(key):
            click.echo(f"{key:>13}: {data[key]}")


def _temp_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="spine-sandbox-")


# --- patients ----------------------------------------------------------------------------------------------------
@main.group()
def patients() -> None:
    """The synthetic population: find a patient for each behaviour."""


@patients.command("list")
@data_options
@click.option("--kind", help="Only patients of this kind (restricted, deceased, superseded, invalidated, minimal, "
              "long-name, multi-address, no-gp, standard).")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def patients_list(data_dir, seed, population, kind, limit, offset, as_json) -> None:
    """List synthetic patients (NHS number, kind, name, birth date, postcode, GP)."""
    from sandbox.synthetic.population import KINDS, Population
    from sandbox.synthetic.summary import person_summary

    if kind is not None and kind not in KINDS:
        raise click.BadParameter(f"{kind!r} is not one of {', '.join(KINDS)}", param_hint="--kind")
    settings = _settings(seed=seed, population=population)
    pop = Population(settings.seed, settings.population)
    chosen = (p for p in pop if kind is None or p.kind == kind)
    rows = []
    for n, person in enumerate(chosen):
        if n >= offset + limit:
            break
        if n >= offset:
            rows.append(person_summary(person, pop))
    if as_json:
        _emit_json(rows)
    else:
        _table(rows, ["nhs_number", "kind", "name", "gender", "birth_date", "postcode", "gp"])


@patients.command("show")
@click.argument("nhs_number")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the FHIR Patient resource only.")
def patients_show(nhs_number, data_dir, seed, population, as_json) -> None:
    """Show one synthetic patient and its FHIR record."""
    from sandbox.synthetic.fhir import patient_resource
    from sandbox.synthetic.population import Population
    from sandbox.synthetic.summary import person_summary

    settings = _settings(seed=seed, population=population)
    pop = Population(settings.seed, settings.population)
    person = pop.by_nhs_number(nhs_number)
    if person is None:
        raise click.ClickException(f"{nhs_number} is not in this synthetic population (seed {settings.seed}, "
                                   f"{settings.population} patients); `spine-sandbox patients list` shows some")
    if as_json:
        _emit_json(patient_resource(person))
        return
    for key, value in person_summary(person, pop).items():
        click.echo(f"{key:>13}: {value}")
    click.echo(json.dumps(patient_resource(person), indent=2))


@patients.command("export")
@data_options
@click.option("--kind", help="Only patients of this kind.")
@click.option("--limit", type=int, help="At most this many patients.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle"]), default="ndjson", show_default=True,
              help="FHIR NDJSON (one Patient per line) or one FHIR collection Bundle.")
@click.option("--out", type=click.File("w"), default="-", help="Output file (default: standard output).")
def patients_export(data_dir, seed, population, kind, limit, fmt, out) -> None:
    """Export synthetic patients as FHIR R4 Patient resources."""
    from sandbox.synthetic.fhir import patient_resource
    from sandbox.synthetic.population import Population

    settings = _settings(seed=seed, population=population)
    pop = Population(settings.seed, settings.population)
    chosen = [p for p in pop if kind is None or p.kind == kind][:limit]
    resources = [patient_resource(p) for p in chosen]
    if fmt == "ndjson":
        for resource in resources:
            out.write(json.dumps(resource, separators=(",", ":")) + "\n")
    else:
        json.dump({"resourceType": "Bundle", "type": "collection", "total": len(resources),
                   "entry": [{"fullUrl": f"urn:nhs-number:{r['id']}", "resource": r} for r in resources]},
                  out, indent=2)
        out.write("\n")


# --- requirements and the journal --------------------------------------------------------------------------------
@main.command()
@click.option("--service", help="Only this service's requirements.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def requirements(service, as_json) -> None:
    """List the requirement catalogue: id, level, text and specification source."""
    sandbox = _sandbox(_settings(data_dir=Path(_temp_dir())))
    rows = [r.to_dict() for r in sandbox.requirements if not service or r.service == service]
    if as_json:
        _emit_json(rows)
    else:
        _table(rows, ["id", "level", "verified", "text"])


@main.group()
def exchanges() -> None:
    """Read the journal: what was sent, what was answered, and the findings."""


@exchanges.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--session", help="Only this session's exchanges.")
@click.option("--service")
@click.option("--outcome", type=click.Choice(["pass", "fail", "warning", "info"]),
              help="Only exchanges with a finding of this outcome.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def exchanges_list(data_dir, session, service, outcome, limit, as_json) -> None:
    """List recorded exchanges, newest first."""
    from sandbox.journal.store import ExchangeFilter, open_store

    store = open_store(_settings(data_dir=data_dir).journal_url)
    rows = store.exchanges(ExchangeFilter(session=session, service=service, outcome=outcome), limit=limit)
    if as_json:
        _emit_json(rows)
        return
    for row in rows:
        row["when"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"]))
        row["fail/warn/pass"] = "{fail}/{warning}/{pass}".format(**row["findings"])
    _table(rows, ["id", "when", "session", "method", "path", "status", "fail/warn/pass"])


@exchanges.command("show")
@click.argument("exchange_id")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def exchanges_show(exchange_id, data_dir, as_json) -> None:
    """Show one exchange: request, response and every finding."""
    from sandbox.journal.store import open_store

    found = open_store(_settings(data_dir=data_dir).journal_url).exchange(exchange_id)
    if found is None:
        raise click.ClickException(f"no exchange {exchange_id!r} in this journal")
    if as_json:
        _emit_json(found.to_dict())
        return
    summary = found.summary()
    click.echo(f"{summary['method']} {summary['path']} -> {summary['status']}  ({summary['service']}/"
               f"{summary['operation']}, session {summary['session']}, scenario {summary['scenario'] or '-'})")
    for f in found.findings:
        click.echo(f"  [{f.outcome:^7}] {f.requirement:<14} {f.message}" + (f"  @ {f.location}" if f.location else ""))


# --- services' own commands (e.g. `spine-sandbox mesh …`), found by convention -------------------------------------
def _add_service_commands() -> None:
    from sandbox.services import discover

    for service in discover():
        if service.cli is not None:
            main.add_command(service.cli)


_add_service_commands()

if __name__ == "__main__":
    main()
