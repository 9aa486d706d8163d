"""spine-sandbox: the command line. Thin: it parses options and calls into sandbox/."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import sys
import time
from http import HTTPStatus
from pathlib import Path

import click

from sandbox import __version__
from sandbox.settings import JOURNAL_FILE, SettingError, Settings, default_data_dir

JSON_HELP = "Print JSON for scripts instead of a table."
MAILBOX_HELP = ("Bind this MESH mailbox of the configuration (e.g. X26ABC1) to the session: requests whose NHSMESH "
                "token names it land in the session with no session header (repeatable; MESH plans only).")
AUTH_MEANING = {"strict": "API requests need a live token from /oauth2/token (else 401)",
                "lenient": "any bearer token is let through; fakes are recorded as failing findings",
                "off": "bearer tokens are not checked"}


# --- shared plumbing ---------------------------------------------------------------------------------------------
class CliError(click.ClickException):
    """What the user must change, as one line on stderr ("spine-sandbox: ..."), exit code 1; never a traceback."""

    def show(self, file=None) -> None:
        click.echo(f"spine-sandbox: {self.format_message()}", err=True)


def _settings(**overrides) -> Settings:
    try:
        return Settings.load(**overrides)
    except (SettingError, TypeError) as exc:
        raise CliError(str(exc)) from None


def _sandbox(settings: Settings):
    from sandbox.runtime import Sandbox, StartupError

    try:
        return Sandbox.build(settings)
    except StartupError as exc:
        raise CliError(str(exc)) from None


def _data_settings(data_dir: Path | None, **overrides) -> Settings:
    """The settings of a command that reads what a sandbox recorded: the data dir must hold a journal, so a
    mistyped --data-dir is refused rather than answered from a new, empty one."""
    settings = _settings(data_dir=data_dir, **overrides)
    journal = settings.journal_path
    if journal is not None and not journal.is_file():
        raise CliError(f"no sandbox data in {settings.data_dir} (no {journal.name} there); "
                       + _where_the_data_is(settings))
    return settings


def _where_the_data_is(settings: Settings) -> str:
    default = default_data_dir()
    if settings.data_dir != default and (default / JOURNAL_FILE).is_file():
        return f"the default data dir {default} has one: leave out --data-dir and SANDBOX_DATA_DIR to use it"
    return ("`spine-sandbox serve` prints the data dir it uses in its banner; give the same one with --data-dir or "
            "SANDBOX_DATA_DIR")


def _journal_note(settings: Settings) -> str:
    return f"the journal at {settings.journal_path or settings.journal_url_shown}"


def _writing_settings(data_dir: Path | None, quiet: bool = False) -> Settings:
    """The settings of a command that writes to the journal: a new one is made, and said so, where none is."""
    settings = _settings(data_dir=data_dir)
    journal = settings.journal_path
    if journal is not None and not journal.is_file() and not quiet:
        click.echo(f"spine-sandbox: no journal in {settings.data_dir} yet, so a new one is made there; "
                   f"`spine-sandbox serve` must use the same data dir (--data-dir or SANDBOX_DATA_DIR)", err=True)
    return settings


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
@click.option("--auth", type=click.Choice(["strict", "lenient", "off"]),
              help="Bearer tokens: strict requires real ones from /oauth2/token; lenient accepts any and records a "
              "failing finding; off records nothing [SANDBOX_AUTH, default lenient].")
@click.option("--tls/--no-tls", default=None, help="HTTPS with mutual TLS: clients need a certificate from the "
              "sandbox CA (made on first use, with one per MESH mailbox) [SANDBOX_TLS].")
@click.option("--tls-dir", help="Where the CA, server and client certificates live [SANDBOX_TLS_DIR, default "
              "<data dir>/tls].")
@click.option("--hl7v3-schemas", type=click.Path(exists=True, file_okay=False, resolve_path=True),
              help="The official HL7v3 (MIM) schema folder, holding Schemas/, dt/ and voc/: Spine message payloads "
              "are validated against it [SANDBOX_HL7V3_SCHEMAS].")
@click.option("--sds-addresses", type=click.Choice(["sandbox", "published"]),
              help="sandbox: SDS points Spine's endpoints at this sandbox; published: the published SDS sandbox's "
              "records verbatim [SANDBOX_SDS_ADDRESSES, default sandbox].")
@click.option("--ers-mode", type=click.Choice(["live", "published"]),
              help="live: e-RS answers the published examples, and everything else from the session's referral "
              "lifecycle; published: exactly as the NHS's published e-RS sandbox [SANDBOX_ERS_MODE, default live].")
@click.option("--response-headers", type=click.Choice(["sandbox", "published"]),
              help="published: every service answers with exactly the headers its published sandbox sends, without "
              "the X-Sandbox-* headers [SANDBOX_RESPONSE_HEADERS, default sandbox].")
@click.option("--hosted/--no-hosted", default=None, help="Host the sandbox for several suppliers: every control "
              "call needs an X-Sandbox-Key (tenants, assessors, admin; see docs/hosting.md) [SANDBOX_HOSTED].")
@click.option("--database-url", help="postgresql://user:password@host/database: keep everything in PostgreSQL, so "
              "several replicas serve as one sandbox (docs/replicas.md) [SANDBOX_DATABASE_URL, default SQLite under "
              "the data dir].")
@click.option("--retain-days", type=int, help="Purge sessions idle for longer than this many days, hourly "
              "[SANDBOX_RETAIN_DAYS, default 0: keep everything].")
def serve(host, port, data_dir, seed, population, scenarios, workers, log_level, auth, tls, tls_dir, hl7v3_schemas,
          sds_addresses, ers_mode, response_headers, hosted, database_url, retain_days) -> None:
    """Run the sandbox: every service at its live path, the control API under /_sandbox/."""
    from sandbox.web.server import ServeError, listen, tls_options, worker_count, worker_cpus
    from sandbox.web.server import serve as run_server

    settings = _settings(host=host, port=port, data_dir=data_dir, seed=seed, population=population,
                         scenarios=tuple(scenarios) or None, workers=workers, log_level=log_level, auth=auth,
                         tls=tls, tls_dir=tls_dir, hl7v3_schemas=hl7v3_schemas, sds_addresses=sds_addresses,
                         ers_mode=ers_mode, response_headers=response_headers, hosted=hosted,
                         database_url=database_url, retain_days=retain_days)
    started = time.perf_counter()
    try:
        listeners = listen(settings)  # first: a taken port or a foreign host is refused before anything else
    except ServeError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Spine Sandbox {__version__}: checking configuration…", err=True)
    try:
        _usable_data_dir(settings)
        tls_options(settings)  # the certificates, before the services that issue their own (MESH mailboxes)
        admin = _admin_key_note(settings)  # before the workers start, so they all read the same key
        sandbox = _sandbox(settings)
        # Built once per seed and size into the cache folder (every later start, and every worker, maps the file).
        label = ("Opening the synthetic population index" if sandbox.population.index_cached else
                 "Building the synthetic population index (once for this seed and size)")
        with click.progressbar(length=settings.population, label=label, file=sys.stderr) as bar:
            sandbox.population.index(lambda done, total: bar.update(done - bar.pos))
        sandbox.close()  # workers open their own connections
        scheme = "https" if settings.tls else "http"
        base = f"{scheme}://{'localhost' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"

        def ready() -> None:  # once /_sandbox/health answers through the listening socket
            click.echo(_banner(sandbox, base, worker_count(settings), worker_cpus(settings),
                               time.perf_counter() - started, admin), err=True)

        run_server(settings, listeners, on_ready=ready)
    except ServeError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # a file the start needs: say which, and why, in one line
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(f"cannot start: {exc.strerror or exc}{where}") from None
    finally:
        for listener in listeners:
            listener.close()


def _usable_data_dir(settings: Settings) -> None:
    folder = settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"cannot use the data dir {folder}: {exc.strerror or exc}; choose a writable folder with "
                       f"--data-dir or SANDBOX_DATA_DIR") from None


def _admin_key_note(settings: Settings) -> list[str]:
    """The banner's lines about hosting: the admin key printed the one time it is made (never again: later starts
    say where it is), or the warning that a non-loopback address without --hosted is open to anyone."""
    from sandbox.hosting.keys import admin_key_path, ensure_admin_key

    if not settings.hosted:
        if _loopback(settings.host):
            return []
        return [f"WARNING: listening on {settings.host} without --hosted: anyone who can reach this port can read and "
                "change every session; use --hosted to host for several suppliers"]
    key, made = ensure_admin_key(settings)
    lines = [f"  {'Hosted mode (--hosted, SANDBOX_HOSTED)':<44} every control call needs X-Sandbox-Key"]
    if settings.admin_key:
        lines.append(f"  {'Admin key':<44} from SANDBOX_ADMIN_KEY")
    elif made:
        lines += [f"  {'Admin key (shown this once)':<44} {key}",
                  f"  {'':<44} kept in {admin_key_path(settings)} (mode 0600)"]
    else:
        lines.append(f"  {'Admin key':<44} in {admin_key_path(settings)} (not shown again)")
    return lines


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _banner(sandbox, base: str, workers: int, cpus: list[int], took: float, hosting: list[str] = ()) -> str:
    s = sandbox.settings
    lines = [f"Spine Sandbox {__version__} ready in {took:.1f} s, listening on {base}", ""]
    for service in sandbox.services.values():
        for path in service.base_paths:
            lines.append(f"  {service.title:<44} {base}{path}")
        if not service.base_paths and service.hl7v3:
            lines.append(f"  {service.title:<44} over Spine core messaging: {', '.join(service.hl7v3)}")
    lines += ["", f"  {'Control API':<44} {base}/_sandbox/  (health, exchanges, patients, scenarios)",
              f"  {'Data dir (--data-dir, SANDBOX_DATA_DIR)':<44} {s.data_dir}",
              f"  {'Journal':<44} {s.journal_url_shown}",
              f"  {'Retention (--retain-days)':<44} "
              f"{f'sessions idle over {s.retain_days} days are purged' if s.retain_days else 'everything is kept'}",
              f"  {'Synthetic population':<44} {s.population} patients, seed {s.seed}",
              f"  {'Scenarios / requirements':<44} {len(sandbox.scenarios)} / {len(sandbox.requirements)}",
              f"  {'Workers':<44} {workers} x {s.threads} threads"
              + (f", each on a CPU of its own ({', '.join(map(str, cpus))})" if cpus else ""),
              f"  {'Authorisation (SANDBOX_AUTH)':<44} {s.auth}: {AUTH_MEANING[s.auth]}", ""]
    lines[-1:-1] = [f"  {'HL7v3 schemas (SANDBOX_HL7V3_SCHEMAS)':<44} "
                    f"{s.hl7v3_schemas or 'not set: Spine payloads are not schema-validated'}"]
    if s.tls:
        lines[-1:-1] = [f"  {'Mutual TLS (CA, server and client certificates)':<44} {s.tls_path}"]
    warnings = [line for line in hosting if line.startswith("WARNING")]
    lines[-1:-1] = [line for line in hosting if line not in warnings]
    lines += warnings
    return "\n".join(lines)


@main.command()
@click.option("--older-than-days", type=click.IntRange(0), required=True,
              help="Purge sessions idle for longer than this (idle from the newest exchange, or creation).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--database-url", help="The PostgreSQL database, when the sandbox runs on one [SANDBOX_DATABASE_URL].")
@click.option("--dry-run", is_flag=True, help="List what would be purged; purge nothing.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def purge(older_than_days, data_dir, database_url, dry_run, as_json) -> None:
    """Forget idle sessions: their exchanges, findings, records, attestations and state (what `serve --retain-days`
    does hourly). Report files already written are not touched."""
    from sandbox.retention import purge as purge_sessions

    settings = _data_settings(data_dir, database_url=database_url)
    with contextlib.closing(_sandbox(settings)) as sandbox:
        sessions, exchanges = purge_sessions(sandbox, older_than_days, dry_run)
    if as_json:
        click.echo(json.dumps({"sessions": sessions, "exchanges": exchanges, "dry_run": dry_run}, indent=2))
        return
    verb = "would be purged" if dry_run else f"purged, with {exchanges} exchanges"
    click.echo(f"{len(sessions)} sessions idle for over {older_than_days} days {verb}"
               + "".join(f"\n  {session}" for session in sessions))


# --- scenarios ---------------------------------------------------------------------------------------------------
@main.group(invoke_without_command=True)
@click.option("--service", help="Only this service's scenarios (e.g. pds).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--scenarios", "scenarios", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Extra scenario folder to include (repeatable).")
@click.pass_context
def scenarios(ctx, service, as_json, scenarios) -> None:
    """List the scenario catalogue: which values trigger which behaviour."""
    sandbox = ctx.obj = ctx.with_resource(_catalogue(scenarios=tuple(scenarios) or None))
    if ctx.invoked_subcommand:
        return
    items = [s.to_dict() for s in sandbox.scenarios if not service or s.service == service]
    if as_json:
        _emit_json(items)
    else:
        _table(items, ["id", "service", "title", "trigger"])


@scenarios.command("show")
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def scenarios_show(sandbox, scenario_id, as_json) -> None:
    """Show one scenario in full."""
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


@contextlib.contextmanager
def _catalogue(**overrides):
    """A sandbox only for its catalogues (scenarios, requirements, plans): over a throwaway data dir, closed and
    removed when the command ends."""
    import tempfile

    with (tempfile.TemporaryDirectory(prefix="spine-sandbox-") as folder,
          contextlib.closing(_sandbox(_settings(data_dir=Path(folder), **overrides))) as sandbox):
        yield sandbox


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
    with _catalogue() as sandbox:
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
    from sandbox.journal.store import ExchangeFilter

    settings = _data_settings(data_dir)
    with _journal(settings) as store:
        rows = store.journal.exchanges(ExchangeFilter(session=session, service=service, outcome=outcome), limit=limit)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"No exchanges{' match' if session or service or outcome else ''} in {_journal_note(settings)}.")
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
    settings = _data_settings(data_dir)
    with _journal(settings) as store:
        found = store.journal.exchange(exchange_id)
    if found is None:
        raise CliError(f"no exchange {exchange_id[:80]!r} in {_journal_note(settings)}; `spine-sandbox exchanges "
                       f"list` shows the latest")
    if as_json:
        _emit_json(found.to_dict())
        return
    summary = found.summary()
    click.echo(f"Exchange {found.id}: {summary['service']}/{summary['operation']}, session {summary['session']}, "
               f"scenario {summary['scenario'] or '-'}, {found.duration_ms:.1f} ms")
    req, res = found.request, found.response
    click.echo(f"\n--- request {'-' * 60}\n{req.method} {req.path}{'?' + req.query_string if req.query_string else ''}")
    _show_message(req.headers, req.body)
    click.echo(f"\n--- response {'-' * 59}\n{res.status} {_reason(res.status)}".rstrip())
    _show_message(res.headers, res.body)
    click.echo(f"\n--- findings {'-' * 59}")
    if not found.findings:
        click.echo("(none)")
    for f in found.findings:
        click.echo(f"  [{f.outcome:^7}] {f.requirement:<14} {f.message}" + (f"  @ {f.location}" if f.location else ""))


SHOWN_BODY_CHARS = 20_000


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _show_message(headers: list[tuple[str, str]], body: bytes) -> None:
    """Headers and the body (secrets already redacted by the journal): text as sent, binary as its size and digest."""
    from sandbox.conformance.parsing import Malformed, parse_json

    for name, value in headers:
        click.echo(f"{name}: {value}")
    if not body:
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        click.echo(f"\n(binary body: {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()})")
        return
    with contextlib.suppress(Malformed):
        text = json.dumps(parse_json(text), indent=2, ensure_ascii=False)  # JSON bodies, readable
    click.echo("\n" + text[:SHOWN_BODY_CHARS])
    if len(text) > SHOWN_BODY_CHARS:
        click.echo(f"… ({len(body)} bytes in all; --json shows the whole body)")


# --- assurance: plans, sessions, attestations, reports, verification, CI mode -------------------------------------
@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def plans(ctx, as_json) -> None:
    """List the assurance plans: the scenarios to run and the requirements to evidence."""
    ctx.obj = ctx.with_resource(_catalogue())
    if ctx.invoked_subcommand:
        return
    items = [p.to_dict() for p in ctx.obj.plans]
    if as_json:
        _emit_json(items)
        return
    for item in items:
        item["steps"], item["automatic"], item["manual"] = (len(item["scenarios"]), len(item["requirements"]),
                                                            len(item["manual"]))
    _table(items, ["id", "title", "steps", "automatic", "manual"])


@plans.command("show")
@click.argument("plan_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def plans_show(sandbox, plan_id, as_json) -> None:
    """Show one plan: its steps and requirements."""
    from sandbox.assurance.sessions import find_plan

    plan = _assurance_call(lambda: find_plan(sandbox.plans, plan_id))
    if as_json:
        _emit_json(plan.to_dict())
        return
    click.echo(f"{plan.title} ({plan.id}{', version ' + plan.version if plan.version else ''})")
    if plan.description:
        click.echo(plan.description)
    click.echo("\nSteps (scenarios to run):")
    for step in plan.steps:
        scenario = sandbox.scenarios.get(step.scenario)
        click.echo(f"  {step.scenario:<34} {scenario.trigger.describe()}")
        if step.note:
            click.echo(f"  {'':<34} {step.note}")
    for title, ids in (("Requirements needing passing evidence", plan.requirements),
                       ("Requirements verified by an assessor", plan.manual)):
        click.echo(f"\n{title}:")
        for req_id in ids:
            req = sandbox.requirements[req_id]
            click.echo(f"  {req.id:<12} {req.level:<6} {req.text}")


def _assurance_call(call, sandbox=None):
    """Run an assurance operation; its SessionError is the message the user needs, not a traceback (with the
    journal it looked in, when it read one)."""
    from sandbox.assurance.sessions import SessionError
    from sandbox.assurance.signing import SigningKeyError

    try:
        return call()
    except SessionError as exc:
        where = f" (looked in {_journal_note(sandbox.settings)})" if sandbox is not None else ""
        raise CliError(f"{exc}{where}") from None
    except SigningKeyError as exc:
        raise CliError(str(exc)) from None


def _journal(settings: Settings):
    """The journal store alone (no sandbox built), closed when the block ends: for listings and key commands."""
    from sandbox.journal.store import open_store

    return contextlib.closing(open_store(settings.journal_url))


@contextlib.contextmanager
def _journal_sandbox(data_dir, writes: bool = False, quiet: bool = False):
    """The sandbox over the journal in --data-dir (or SANDBOX_DATA_DIR), running or not; closed when done. A
    command that only reads refuses a data dir with no journal; one that writes says it makes a new one."""
    with contextlib.closing(_sandbox(_writing_settings(data_dir, quiet) if writes else _data_settings(data_dir))
                            ) as sandbox:
        yield sandbox


@main.group()
def sessions() -> None:
    """Sessions bound to assurance plans: create one, list them, show progress."""


@sessions.command("create")
@click.option("--plan", "plan_id", required=True, help="The assurance plan (`spine-sandbox plans`).")
@click.option("--supplier", required=True, help='The supplier\'s name, e.g. "Acme Health Ltd".')
@click.option("--system", required=True, help='The system and version under test, e.g. "Acme PAS 1.2".')
@click.option("--tenant", help="A hosted sandbox's tenant the session belongs to (`spine-sandbox tenants list`).")
@click.option("--mailbox", "mailboxes", multiple=True, metavar="MAILBOX_ID", help=MAILBOX_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def sessions_create(plan_id, supplier, system, tenant, mailboxes, data_dir, as_json) -> None:
    """Create a session bound to a plan; prints its id and token (the token is shown only once)."""
    from sandbox.assurance.binding import create_bound_session
    from sandbox.assurance.sessions import credentials
    from sandbox.hosting.keys import get_tenant, hosted_data
    from sandbox.hosting.ownership import bind

    with _journal_sandbox(data_dir, writes=True, quiet=as_json) as sandbox:
        owner = get_tenant(sandbox.store, tenant) if tenant else None
        if tenant and (owner is None or not owner.active):
            raise CliError(f"no active tenant {tenant!r} (`spine-sandbox tenants list`)")
        hosted = hosted_data(sandbox.settings)
        record, token, bound = _assurance_call(lambda: create_bound_session(sandbox, plan_id, supplier, system,
                                                                            mailboxes, hosted))
        if owner is not None:
            bind(sandbox.store, record.id, owner.id)
        data_dir = sandbox.settings.data_dir
    data = {**credentials(record, token, hosted), "mailboxes": bound, "data_dir": str(data_dir)}
    if as_json:
        _emit_json(data)
        return
    click.echo(f"Session {record.id} for {record.supplier}, {record.system}; plan {record.plan}; in the journal of "
               f"data dir {data_dir} (the server must use the same one).\n"
               f"Send either header on every request:\n  X-Sandbox-Session: {data['headers']['X-Sandbox-Session']}\n"
               f"  Authorization: Bearer {token}\n(The token is not stored; keep it now.)")
    if bound:
        click.echo(f"MESH mailboxes bound to the session: {', '.join(bound)}. Requests authenticated as them land in "
                   f"it with no header, until `spine-sandbox sessions release {record.id}`.")


@sessions.command("release")
@click.argument("session_id")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def sessions_release(session_id, data_dir, as_json) -> None:
    """Free the MESH mailboxes bound to a session (its exchanges, verdict and report stay)."""
    from sandbox.assurance.binding import release
    from sandbox.services import discover

    with _journal(_data_settings(data_dir)) as store:
        released = release(store, session_id, discover())
    if as_json:
        _emit_json({"session": session_id, "released": released})
    elif released:
        click.echo(f"Released {', '.join(released)} from session {session_id}: their traffic no longer lands in it.")
    else:
        click.echo(f"Session {session_id} has no MESH mailboxes bound.")


@sessions.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def sessions_list(data_dir, as_json) -> None:
    """List the sessions created in this journal."""
    from sandbox.assurance.sessions import session_summary
    settings = _data_settings(data_dir)
    with _journal(settings) as store:
        rows = [session_summary(r) for r in store.sessions.all()]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"No sessions in {_journal_note(settings)}.")
        return
    for row in rows:
        row["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
    _table(rows, ["session", "plan", "supplier", "system", "created"])


@sessions.command("show")
@click.argument("session_id")
@click.option("--plan", "plan_id", help="The plan to judge by, for a session used without `sessions create`.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def sessions_show(session_id, plan_id, data_dir, as_json) -> None:
    """Progress: which steps ran, which requirements still lack evidence, and the verdict so far."""
    from sandbox.assurance.sessions import progress, session_and_plan
    from sandbox.assurance.verdicts import assess

    with _journal_sandbox(data_dir) as sandbox:
        record, plan = _assurance_call(lambda: session_and_plan(sandbox.store, sandbox.plans, session_id, plan_id),
                                       sandbox)
        data = progress(assess(sandbox.store, plan, record))
    if as_json:
        _emit_json(data)
        return
    click.echo(f"Session {data['session']} ({data['supplier']}, {data['system']}), plan {data['plan']}: "
               f"{data['verdict'].upper()} so far, {data['exchanges']} exchanges")
    for reason in data["reasons"]:
        click.echo(f"  - {reason}")
    click.echo("\nSteps:")
    for step in data["steps"]:
        click.echo(f"  [{'x' if step['exercised'] else ' '}] {step['scenario']:<34} {step['exchanges']:>6} exchanges")
    click.echo("\nRequirements:")
    for req in data["requirements"]:
        click.echo(f"  {req['id']:<12} {req['verdict']:<14} {req['reason']}")


# --- hosting: tenants and assessors ---------------------------------------------------------------------------
def _principal_commands(group: click.Group, kind: str, example: str) -> None:
    """create, list and revoke for tenants or assessors: the same three commands over the data dir's journal."""
    from sandbox.hosting import keys

    create_one, list_all, revoke_one = keys.create_tenant, keys.list_tenants, keys.revoke_tenant
    if kind == keys.ASSESSORS:
        create_one, list_all, revoke_one = keys.create_assessor, keys.list_assessors, keys.revoke_assessor

    @group.command("create")
    @click.option("--name", required=True, help=f'Who holds the key, e.g. "{example}".')
    @click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def create(name, data_dir, as_json) -> None:
        with _hosting_store(data_dir, quiet=as_json) as store:
            principal, key = _hosting_call(lambda: create_one(store, name))
        if as_json:
            _emit_json({kind[:-1]: principal.id, "key": key, "name": principal.name})
            return
        click.echo(f"{kind[:-1].capitalize()} {principal.id} ({principal.name}). Its key, shown this once (only a "
                   f"hash is kept):\n  {key}\nHand it over privately; it is sent as X-Sandbox-Key on control calls.")

    @group.command("list")
    @click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def list_(data_dir, as_json) -> None:
        with _hosting_store(data_dir, quiet=True) as store:
            rows = [p.to_dict() for p in list_all(store)]
        if as_json:
            _emit_json(rows)
            return
        for row in rows:
            row["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
            row["status"] = "revoked" if row["revoked_at"] else "active"
        _table(rows, ["id", "name", "status", "created"])

    @group.command("revoke")
    @click.argument("principal_id")
    @click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def revoke(principal_id, data_dir, as_json) -> None:
        with _hosting_store(data_dir, quiet=True) as store:
            principal = _hosting_call(lambda: revoke_one(store, principal_id))
        if as_json:
            _emit_json(principal.to_dict())
            return
        click.echo(f"Revoked {kind[:-1]} {principal.id} ({principal.name}): its key now answers 401.")

    create.__doc__ = f"Make a {kind[:-1]} and its key (printed once; only its SHA-256 is stored)."
    list_.__doc__ = f"List the {kind} (never their keys)."
    revoke.__doc__ = f"Revoke a {kind[:-1]}'s key: it answers 401 from then on."


def _hosting_store(data_dir, quiet: bool):
    settings = _writing_settings(data_dir, quiet)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _journal(settings)


def _hosting_call(call):
    from sandbox.hosting.keys import HostingError

    try:
        return call()
    except HostingError as exc:
        raise CliError(str(exc)) from None


@main.group()
def tenants() -> None:
    """Tenants of a hosted sandbox (`serve --hosted`): one per supplier, each with its own key."""


@main.group()
def assessors() -> None:
    """Assessors of a hosted sandbox: certification staff, whose keys read every tenant's sessions and attest."""


_principal_commands(tenants, "tenants", "Alpha Health")
_principal_commands(assessors, "assessors", "Jo Bloggs, NHS England assurance")


@main.command()
@click.argument("session_id")
@click.argument("requirement")
@click.option("--verdict", type=click.Choice(["pass", "fail"]), required=True)
@click.option("--by", "by", help="The assessor's name (a hosted sandbox takes it from --key instead).")
@click.option("--note", required=True, help="What was checked, and how.")
@click.option("--key", envvar="SANDBOX_KEY", help="An assessor or admin key: needed when the data dir is a hosted "
              "sandbox's (suppliers cannot certify themselves) [SANDBOX_KEY].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def attest(session_id, requirement, verdict, by, note, key, data_dir, as_json) -> None:
    """Record an assessor's attestation for a manually verified requirement (the latest one counts)."""
    from sandbox.assurance.sessions import attest as record_attestation
    from sandbox.assurance.verdicts import attestation_dict

    with _journal_sandbox(data_dir) as sandbox:
        by = _attester(sandbox, key, by)
        made = _assurance_call(lambda: record_attestation(sandbox.store, sandbox.plans, session_id, requirement,
                                                          verdict, by, note), sandbox)
    if as_json:
        _emit_json({"session": session_id, "requirement": requirement, **attestation_dict(made)})
    else:
        click.echo(f"Recorded: {requirement} {verdict} by {made.by} in session {session_id}.")


def _attester(sandbox, key: str | None, by: str | None) -> str:
    """Who attests. A hosted sandbox's data dir (`serve --hosted`, or one with an admin key) needs an assessor or
    admin key, and the name recorded is the key's; otherwise --by, as before."""
    from sandbox.hosting.caller import attester
    from sandbox.hosting.keys import authenticate, hosted_data

    settings = sandbox.settings
    if not hosted_data(settings):
        if not by:
            raise CliError("--by is required: the assessor's name")
        return by
    if not key:
        raise CliError("this data dir belongs to a hosted sandbox: give an assessor or admin key with --key (or "
                       "SANDBOX_KEY); suppliers cannot certify themselves")
    caller = authenticate(sandbox.store, settings, key)
    if caller is None:
        raise CliError("the key given is not a valid key of this sandbox (wrong, or revoked)")
    if not caller.may_attest:
        raise CliError(f"a {caller.role} key may not attest: suppliers cannot certify themselves; an assessor or "
                       "the admin attests")
    return attester(caller, by)


class _ConsoleProgress:
    """One line per phase on stderr, with a running count when stderr is a terminal."""

    def __init__(self):
        self.phase, self.started = None, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            if self.phase and self.tty:
                click.echo("", err=True)
            self.phase = phase
            click.echo(f"[{time.perf_counter() - self.started:6.2f} s] {phase}…", err=True, nl=not self.tty)
        if self.tty and total > 1:
            click.echo(f"\r[{time.perf_counter() - self.started:6.2f} s] {phase}… {done}/{total}", err=True,
                       nl=False)

    def close(self) -> None:
        if self.phase is None:
            return  # nothing was reported (e.g. `run` refused before it started): an error stays one line
        if self.tty:
            click.echo("", err=True)
        click.echo(f"[{time.perf_counter() - self.started:6.2f} s] done", err=True)


@main.command()
@click.argument("session_id")
@click.option("--plan", "plan_id", help="The plan to judge by, for a session used without `sessions create`.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("spine-sandbox-report"), show_default=True)
@click.option("--format", "formats", multiple=True, type=click.Choice(["json", "html", "junit", "markdown"]),
              help="Only these formats (repeatable; default: all).")
@click.option("--evidence", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Findings with excerpts per requirement and outcome, from each end of the session.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
def report(session_id, plan_id, out_dir, formats, evidence, data_dir) -> None:
    """Write a session's assurance report: report.json, report.html, junit.xml and summary.md, and
    report.manifest.json, signed with this sandbox's report signing key (`spine-sandbox report-key`)."""
    from sandbox.assurance.reports import FILES, make_report, write_reports
    from sandbox.assurance.signing import fingerprint, signing_key

    bar = _ConsoleProgress()
    with _journal_sandbox(data_dir) as sandbox:
        key = _assurance_call(lambda: signing_key(sandbox.settings))
        sealed = _assurance_call(lambda: make_report(sandbox, session_id, plan_id, evidence=evidence, progress=bar,
                                                     key=key), sandbox)
    written = write_reports(sealed, out_dir, key, formats or tuple(FILES), progress=bar)
    bar.close()
    click.echo(f"Verdict: {sealed['verdict'].upper()} — " + "; ".join(sealed["verdict_reasons"]))
    for path in written.values():
        click.echo(f"  {path}")
    click.echo(f"Signed by {fingerprint(key.public_key())}")


@main.command()
@click.argument("report_path", metavar="DIR_OR_FILE", type=click.Path(path_type=Path, exists=True))
@click.option("--public-key", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The trusted public key (PEM, or the JSON of GET /_sandbox/report-key) of the sandbox that made "
                   "the report. Default: this sandbox's own key.")
@click.option("--allow-unsigned", is_flag=True,
              help="Let an unsigned report through (still checking its digests and verdicts); a report signed by "
                   "another key always fails.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Whose key is trusted by default [SANDBOX_DATA_DIR].")
def verify(report_path, public_key, allow_unsigned, data_dir) -> None:
    """Check a report folder (or one file of it): the Ed25519 signatures of report.manifest.json and report.json
    against the trusted public key, each file's SHA-256 in the manifest, and every verdict re-derived from the
    report's counts and attestations. Exit 0 when valid, 1 when anything fails (each failure is listed)."""
    from sandbox.assurance import signing
    from sandbox.assurance.integrity import Trust, verify_path

    try:
        if public_key is not None:
            trust = Trust(signing.load_public_key(public_key.read_bytes(), str(public_key)),
                          f"the key in {public_key}", allow_unsigned)
        else:
            settings = _settings(data_dir=data_dir)
            local = signing.local_public_key(settings)
            source = (f"this sandbox's key, {signing.key_source(settings)}" if local is not None else
                      f"this sandbox has no report signing key: none in {signing.key_path(settings)}")
            trust = Trust(local, source, allow_unsigned)
        result = verify_path(report_path, trust)
    except signing.SigningKeyError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename or report_path}: {exc.strerror or exc}") from None
    for note in result.notes:
        click.echo(f"  ok: {note}")
    for problem in result.problems:
        click.echo(f"  FAILED: {problem}")
    click.echo(f"Signed by: {', '.join(sorted(result.signed_by)) or 'nobody (unsigned)'}")
    click.echo(f"{report_path}: {'valid' if result.valid else 'INVALID'}")
    if not result.valid:
        sys.exit(1)


@main.command("report-key")
@click.option("--fingerprint", "only_fingerprint", is_flag=True, help="Print only the key's fingerprint.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
def report_key(only_fingerprint, as_json, data_dir) -> None:
    """Print the public key that signs this sandbox's reports (PEM), made on first use: give it to whoever checks
    the reports (`spine-sandbox verify --public-key FILE`). The private key stays in the data dir
    (report-signing.key) or SANDBOX_REPORT_SIGNING_KEY."""
    from sandbox.assurance.signing import key_info, key_path, signing_key

    settings = _settings(data_dir=data_dir)
    made = not settings.report_signing_key.strip() and not key_path(settings).is_file()
    info = key_info(_assurance_call(lambda: signing_key(settings)).public_key())
    if made:
        click.echo(f"spine-sandbox: made a new report signing key in {key_path(settings)}", err=True)
    if as_json:
        _emit_json(info)
    elif only_fingerprint:
        click.echo(info["fingerprint"])
    else:
        click.echo(info["public_key"], nl=False)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--plan", "plan_id", required=True, help="The assurance plan to run (`spine-sandbox plans`).")
@click.option("--report-dir", type=click.Path(path_type=Path), default=Path("spine-sandbox-report"),
              show_default=True)
@click.option("--supplier", default="(not named)", show_default=True, help="The supplier's name, for the report.")
@click.option("--system", default="(not named)", show_default=True, help="The system and version, for the report.")
@click.option("--timeout", type=float, help="Stop the supplier command after this many seconds.")
@click.option("--scenarios", "scenarios", multiple=True, type=click.Path(path_type=Path, exists=True,
              file_okay=False), help="Extra scenario folder, with its plans/ (repeatable) [SANDBOX_SCENARIOS].")
@click.option("--mailbox", "mailboxes", multiple=True, metavar="MAILBOX_ID",
              help="Bind this MESH mailbox (e.g. X26ABC1) to the run's session while COMMAND runs: requests whose "
                   "NHSMESH token names it land in the session with no session header (repeatable; MESH plans "
                   "only; default: every mailbox of the configuration no other session holds).")
@data_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(plan_id, report_dir, supplier, system, timeout, scenarios, mailboxes, data_dir, seed, population,
        command) -> None:
    """CI mode: start the sandbox on a free port, run COMMAND against a new session bound to the plan, write every
    report format and print the Markdown summary.

    COMMAND gets SPINE_SANDBOX_URL, <SERVICE>_BASE_URL (e.g. PDS_BASE_URL), SPINE_SANDBOX_SESSION (send it as
    X-Sandbox-Session) and SPINE_SANDBOX_SESSION_TOKEN (or send it as Authorization: Bearer). A MESH client that
    sends neither lands in the session through its mailbox (--mailbox).

    Exit codes: 0 pass, 3 fail, 4 incomplete, 5 the command failed (or timed out), 1 the sandbox could not start,
    2 usage.
    """
    from sandbox.assurance.ci import run_plan
    from sandbox.assurance.signing import run_signing_key

    settings = _settings(data_dir=data_dir or Path(_temp_dir()), seed=seed, population=population,
                         scenarios=tuple(scenarios) or None)
    sandbox = _sandbox(settings)
    bar = _ConsoleProgress()
    try:
        # A throwaway data dir's key would go with it: sign with this machine's sandbox key instead.
        result = _assurance_call(lambda: run_plan(sandbox, plan_id, command, report_dir, supplier=supplier,
                                                  system=system, timeout=timeout,
                                                  say=lambda text: click.echo(text, err=True), progress=bar,
                                                  key=None if data_dir else run_signing_key(settings),
                                                  mailboxes=mailboxes))
    finally:
        bar.close()
        sandbox.close()
    click.echo(result.markdown)
    for path in result.files.values():
        click.echo(f"Wrote {path}", err=True)
    sys.exit(result.exit_code)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--content-type", help="The Content-Type of body-only files (else sniffed from the MIME boundary).")
@click.option("--hl7v3-schemas", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The official HL7v3 MIM schema folder (holding Schemas/, dt/, voc/) [SANDBOX_HL7V3_SCHEMAS].")
@click.option("--all", "show_passes", is_flag=True, help="List passing checks too.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def validate(files, content_type, hl7v3_schemas, show_passes, as_json) -> None:
    """Check Spine messages without a server: ebXML (.msg with MIME headers, or body only), SOAP, bare HL7v3,
    captured exchanges (/_sandbox/exchanges/<id> JSON), or folders of them. Exit 1 when any check fails."""
    from sandbox.services.spine.validate import render_json, render_text, validate_files

    schemas = str(hl7v3_schemas) if hl7v3_schemas else (_settings().hl7v3_schemas or None)
    reports = validate_files(files, content_type=content_type, schemas=schemas)
    click.echo(render_json(reports) if as_json else render_text(reports, show_passes=show_passes))
    if any(r.failed for r in reports):
        sys.exit(1)


# --- services' own commands (e.g. `spine-sandbox mesh …`), found by convention -------------------------------------
def _add_service_commands() -> None:
    from sandbox.services import discover

    for service in discover():
        if service.cli is not None:
            main.add_command(service.cli)


_add_service_commands()

if __name__ == "__main__":
    main()
