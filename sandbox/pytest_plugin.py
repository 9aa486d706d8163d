"""Spine Sandbox for a supplier's own pytest suite (registered through the `pytest11` entry point).

Fixtures
    spine          the sandbox in-process (mock_spine): `requests` calls to the NHS environment hosts are answered
                   by it; .token / .auth_headers, .findings, .failures, .exchanges (the test's own), .report()
    spine_server   the real server on a free loopback port, for clients that do not use `requests`: .url, and
                   .headers or .auth_headers to send so the traffic lands in the test's session
    spine_settings the run's Settings (seed, population, scenario folders); override it in a conftest.py
Marker
    @pytest.mark.spine(base_urls=[...], pass_through=True, production=True): mock_spine() options for one test
    @pytest.mark.spine(access="healthcare-worker"): the access mode the test's token (.token and .auth_headers, of
        spine and spine_server alike) stands in for: "application", "healthcare-worker", or "patient" with
        nhs_number="…" (default 9000000009; a patient reaches only their own record). The token is issued for that
        test alone, so the choice never leaks into another test; unmarked tests keep the default (application-
        restricted, or the --spine-plan plan's access mode). With --spine-plan the test's traffic stays in the run's
        session, so a plan that certifies another mode fails the test at setup rather than take another mode's
        evidence; a plan naming no mode takes any. A mistake in the marker is a usage error naming the test.
Options (and ini keys spine_plan, spine_supplier, spine_system)
    --spine-plan PLAN        one assurance session bound to PLAN for the whole run, as `spine-sandbox run` makes;
                             without it each test has a session of its own (state never leaks between tests)
    --spine-supplier NAME, --spine-system NAME   who the report is about
    --spine-report DIR       write the session's report into DIR at the end (report.json, report.html, junit.xml,
                             summary.md)
    --spine-fail-on-verdict fail|incomplete   fail the run on that verdict (incomplete: on anything but pass)

Nothing heavy is imported until a fixture is used, so installing the package costs other test suites nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox.evidence import DEFAULT_SUPPLIER, DEFAULT_SYSTEM, SessionEvidence

if TYPE_CHECKING:
    from flask import Flask

    from sandbox.local_server import LocalServer
    from sandbox.runtime import Sandbox
    from sandbox.settings import Settings

# --spine-fail-on-verdict V: the verdicts that fail the run.
FAILING_VERDICTS = {"fail": ("fail",), "incomplete": ("fail", "incomplete")}
MOCK_OPTIONS = ("base_urls", "pass_through", "production")  # handed to mock_spine()
ACCESS_OPTIONS = ("access", "nhs_number")  # the access mode the test's token is issued for
MARKER_OPTIONS = MOCK_OPTIONS + ACCESS_OPTIONS
AccessChoice = tuple[str, "str | None"]  # a checked access choice: mode, and the patient's NHS number


@dataclass
class SpineRun:
    """One test run's sandbox: one configuration, journal and app, a server at most; with a plan one plan-bound
    session for the whole run, without one a session per test."""

    plan: str | None
    supplier: str
    system: str
    report_dir: Path | None = None
    fail_on: str | None = None
    app: Flask | None = None
    session: str | None = None  # the plan-bound session
    token: str | None = None
    started_at: float = 0.0
    report: dict | None = None
    report_files: dict[str, Path] = field(default_factory=dict)
    error: str | None = None  # why there is no verdict
    strays: int = 0  # server exchanges that named no session, so are not in the plan-bound session
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _tests: dict[str, tuple[str, str]] = field(default_factory=dict)  # nodeid -> its session and token
    _own_sessions: int = 0  # sessions made for tests (without a plan), numbered in their names
    _server: LocalServer | None = None

    @property
    def sandbox(self) -> Sandbox:
        return self.app.extensions["sandbox"]

    def start(self, settings: Settings) -> None:
        """The app (which loads the plan, if it is a file) and, with a plan, the run's session."""
        from sandbox.assurance.sessions import create_session
        from sandbox.inprocess import app_with_plan

        self.started_at = time.time()
        self.app, plan_id = app_with_plan(settings, self.plan)
        if plan_id:
            record, self.token = create_session(self.sandbox.store, self.sandbox.plans, plan_id, self.supplier,
                                                self.system)
            self.session = record.id

    def session_of(self, nodeid: str, access: AccessChoice | None = None) -> tuple[str, str]:
        """The session a test's traffic goes to, and the token it sends: the run's plan-bound session or the test's
        own; the session's token, or one issued for the access mode the test chose (made once per test and used by
        no other, so a choice never leaks into another test). A plan certifying another mode raises SessionError."""
        if nodeid not in self._tests:
            session, token = (self.session, self.token) if self.session else self._own_session(nodeid)
            if access is not None:
                from sandbox.assurance.sessions import issue_access_token

                token = issue_access_token(self.sandbox.store, self.sandbox.plans, session, *access)
            self._tests[nodeid] = session, token
        return self._tests[nodeid]

    def _own_session(self, nodeid: str) -> tuple[str, str]:
        """A test's own session, named so a reader can trace it back to the test: number, run, the test's name."""
        from sandbox.assurance.sessions import create_unbound_session

        self._own_sessions += 1
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid.rsplit("/", 1)[-1]).strip("-.")
        session = f"t{self._own_sessions:04d}-{self.run_id}-{slug}"[:64].rstrip("-.")
        record, token = create_unbound_session(self.sandbox.store, session, self.supplier, self.system)
        return record.id, token

    def server(self) -> LocalServer:
        if self._server is None:
            from sandbox.local_server import LocalServer

            self._server = LocalServer(self.sandbox.settings).start()
        return self._server

    def stop_server(self) -> None:
        if self._server is not None:
            from sandbox.journal.store import ExchangeFilter
            from sandbox.web.sessions import DEFAULT_SESSION

            self._server.stop()
            self._server = None
            if self.session:
                self.strays = self.sandbox.store.journal.count_exchanges(
                    ExchangeFilter(session=DEFAULT_SESSION, since=self.started_at))

    def close(self) -> None:
        """The server stopped and the store closed, when the run's fixtures end."""
        self.stop_server()
        if self.app is not None:
            self.sandbox.close()

    def judge(self) -> None:
        from sandbox.assurance.reports import make_report, write_reports
        from sandbox.assurance.signing import SigningKeyError, run_signing_key

        try:
            key = run_signing_key(self.sandbox.settings)
        except SigningKeyError as exc:
            self.error = str(exc)
            return
        with self.sandbox.opened():  # closed with the fixtures, before the session finishes
            self.report = make_report(self.sandbox, self.session, key=key)
        if self.report_dir is not None:
            self.report_files = write_reports(self.report, self.report_dir, key)

    @property
    def failed_on_verdict(self) -> bool:
        if not self.fail_on:
            return False
        return self.report is None or self.report["verdict"] in FAILING_VERDICTS[self.fail_on]


_RUN = pytest.StashKey[SpineRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spine-sandbox", "Spine Sandbox (a local mock of the NHS Spine)")
    group.addoption("--spine-plan", metavar="PLAN",
                    help="assurance plan (an id from the scenario folders' plans/, or a plan file's path): the whole "
                         "run is one session bound to it, judged at the end (ini: spine_plan)")
    group.addoption("--spine-supplier", metavar="NAME",
                    help=f"the supplier the report names (ini: spine_supplier; default {DEFAULT_SUPPLIER!r})")
    group.addoption("--spine-system", metavar="NAME",
                    help="the system under test the report names (ini: spine_system; default the project's folder "
                         "name)")
    group.addoption("--spine-report", metavar="DIR", type=Path,
                    help="write the plan-bound session's report into DIR when the tests finish (report.json, "
                         "report.html, junit.xml, summary.md)")
    group.addoption("--spine-fail-on-verdict", choices=sorted(FAILING_VERDICTS), metavar="fail|incomplete",
                    help="fail the run when the plan's verdict is fail; with 'incomplete', when it is anything but "
                         "pass")
    for name, what in (("spine_plan", "the assurance plan (--spine-plan)"),
                       ("spine_supplier", "the supplier the report names (--spine-supplier)"),
                       ("spine_system", "the system under test the report names (--spine-system)")):
        parser.addini(name, what, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spine(base_urls=(), pass_through=False, production=False, access=None, "
                                       "nhs_number=None): options for the in-process Spine Sandbox (the spine "
                                       "fixture) in this test, and the access mode its token stands in for "
                                       "(application, healthcare-worker or patient; spine and spine_server)")

    def setting(name: str) -> str | None:
        given = config.getoption(name)
        return given if given is not None else config.getini(name)

    run = SpineRun(plan=setting("spine_plan") or None, supplier=setting("spine_supplier") or DEFAULT_SUPPLIER,
                   system=setting("spine_system") or config.rootpath.name or DEFAULT_SYSTEM,
                   report_dir=config.getoption("spine_report"), fail_on=config.getoption("spine_fail_on_verdict"))
    config.stash[_RUN] = run
    needs_plan = [option for option, given in (("--spine-report", run.report_dir),
                                               ("--spine-fail-on-verdict", run.fail_on)) if given]
    if needs_plan and not run.plan:
        raise pytest.UsageError(
            f"{' and '.join(needs_plan)} need{'s' if len(needs_plan) == 1 else ''} an assurance plan to judge the "
            f"run against: add --spine-plan PLAN (or spine_plan in the pytest configuration). Plans: "
            f"{_builtin_plans()} (`spine-sandbox plans`), any plan in a scenario folder's plans/, or a plan file's "
            "path")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every spine marker checked before any test runs: a mistake in one is a usage error naming the test."""
    for item in items:
        _marker_choices(item)


def _marker_choices(item: pytest.Item) -> tuple[dict, AccessChoice | None]:
    """The test's spine marker, checked: its mock_spine() options, and its access choice (None: the default)."""
    marker = item.get_closest_marker("spine")
    if marker is None:
        return {}, None
    where = f"@pytest.mark.spine on {item.nodeid}"
    unknown = sorted(set(marker.kwargs) - set(MARKER_OPTIONS))
    if unknown or marker.args:
        raise pytest.UsageError(f"{where}: it takes only the keyword options {', '.join(MARKER_OPTIONS)}, not "
                                f"{', '.join(unknown) or 'positional arguments'}")
    options = {k: v for k, v in marker.kwargs.items() if k in MOCK_OPTIONS}
    if not any(k in marker.kwargs for k in ACCESS_OPTIONS):
        return options, None
    from sandbox.web.access import chosen_access

    try:
        return options, chosen_access(marker.kwargs.get("access"), marker.kwargs.get("nhs_number"))
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def _test_session(request: pytest.FixtureRequest, run: SpineRun, access: AccessChoice | None) -> tuple[str, str]:
    """The test's session and token; a plan that refuses the test's access mode fails the test in one line."""
    from sandbox.assurance.sessions import SessionError

    try:
        return run.session_of(request.node.nodeid, access)
    except SessionError as exc:
        refused = str(exc)
    pytest.fail(f"@pytest.mark.spine(access={access[0]!r}) in a --spine-plan run: {refused}. Run this test without "
                "--spine-plan (deselect it with -k or -m), or under a plan for that mode", pytrace=False)


def _builtin_plans() -> str:
    import tempfile

    from sandbox.runtime import Sandbox
    from sandbox.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        sandbox = Sandbox.build(Settings.load(environ={}, data_dir=Path(data_dir)))
        sandbox.close()
        return ", ".join(sandbox.plans.ids())


@pytest.fixture(scope="session")
def spine_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The run's configuration: defaults, a fresh data directory. Override in conftest.py to change the seed,
    population or scenario folders; SANDBOX_* variables of the shell are deliberately not read."""
    from sandbox.settings import Settings

    return Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("spine-sandbox"))


@pytest.fixture(scope="session")
def _spine_run(request: pytest.FixtureRequest, spine_settings: Settings) -> SpineRun:
    from sandbox.assurance.plans import PlanError
    from sandbox.assurance.sessions import SessionError
    from sandbox.runtime import StartupError

    run = request.config.stash[_RUN]
    try:
        run.start(spine_settings)
    except (PlanError, SessionError) as exc:
        run.error = f"--spine-plan: {exc}"
    except StartupError as exc:
        run.error = f"Spine Sandbox cannot start: {exc}"
    if run.error:
        run.close()
        pytest.exit(run.error, returncode=pytest.ExitCode.USAGE_ERROR)
    yield run
    run.close()


@pytest.fixture
def spine(request: pytest.FixtureRequest, _spine_run: SpineRun):
    """The sandbox in-process for this test: in the run's plan-bound session, or in a session of the test's own."""
    from sandbox.inprocess import MockSpine

    options, access = _marker_choices(request.node)
    session, token = _test_session(request, _spine_run, access)
    with MockSpine(app=_spine_run.app, session=session, token=token, **options) as mock:
        yield mock


@dataclass
class ServerSession(SessionEvidence):
    """The real server, seen from one test: its URL, the credentials that put traffic in the test's session (the
    run's plan-bound one, or the test's own), and the test's exchanges, findings and failures."""

    url: str
    session: str
    app: Flask
    token: str | None = None
    since: int = 0

    @property
    def sandbox(self) -> Sandbox:
        return self.app.extensions["sandbox"]


@pytest.fixture
def spine_server(request: pytest.FixtureRequest, _spine_run: SpineRun) -> ServerSession:
    """The real server (started once per run, on a free port) and this test's session on it."""
    from sandbox.evidence import latest_seq

    server = _spine_run.server()
    session, token = _test_session(request, _spine_run, _marker_choices(request.node)[1])
    return ServerSession(server.url, session, _spine_run.app, token, latest_seq(_spine_run.sandbox.store, session))


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or not run.plan or run.error:
        return
    if run.session is None:
        if session.exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # e.g. a spine marker's mistake: the usage error says it all
        run.error = "no test used the spine or spine_server fixture, so the plan has no session"
    else:
        run.judge()
    if run.failed_on_verdict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None or not run.plan:
        return
    if run.report is None and run.error is None and exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # stopped by a usage error before the sandbox started: nothing to add to it
    say = terminalreporter.write_line
    terminalreporter.section("Spine Sandbox")
    report = run.report
    if report is None:
        say(f"no verdict: {run.error or 'the run ended before the sandbox started'}", yellow=True)
    else:
        meta, findings = report["metadata"], report["summary"]["findings"]
        verdict = report["verdict"]
        say(f"verdict {verdict}: plan {meta['plan']['id']}, session {meta['session']} ({meta['supplier']}, "
            f"{meta['system']})", bold=True, green=verdict == "pass", red=verdict == "fail",
            yellow=verdict == "incomplete")
        for reason in report["verdict_reasons"]:
            say(f"  {reason}")
        say(f"{_exchanges(meta['span']['exchanges'])}; findings: "
            + ", ".join(f"{outcome} {findings[outcome]}" for outcome in ("fail", "warning", "info", "pass")))
        if run.strays:
            say(f"not in this report: {_exchanges(run.strays)} that reached spine_server without the session's "
                "credentials (they went to the default session); send spine_server.auth_headers or .headers",
                yellow=True)
        for path in run.report_files.values():
            say(f"report: {path}")
        if not run.report_files:
            say("no report files written: add --spine-report DIR")
    if run.failed_on_verdict:
        why = f"the verdict is {report['verdict']}" if report else "there is no verdict"
        say(f"--spine-fail-on-verdict {run.fail_on}: the run fails because {why}", red=True)


def _exchanges(count: int) -> str:
    return f"{count} exchange{'' if count == 1 else 's'}"
