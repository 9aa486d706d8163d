"""mock_spine(): the sandbox's services reached through `responses`, in-process, with no server.

Every `requests` call to an NHS test environment host is answered by the same Flask app `spine-sandbox serve` runs:
the same checks, scenarios, session state and journal. Services are mounted at their live paths, so a supplier's
client keeps its configured base URL; only the answering end changes.

    with mock_spine() as spine:
        my_client.get_patient("9000000009")      # https://int.api.service.nhs.uk/personal-demographics/...
    assert spine.failures == []

With a plan, the mock's session is an assurance session bound to it, and report() judges it:

    with mock_spine(plan="pds-application-restricted", supplier="Acme", system="Acme PAS 1.2") as spine:
        MyClient(access_token=spine.token).run_every_step()
    spine.report("reports")                      # report.json, report.html, junit.xml, summary.md

spine.token stands in for an application-restricted access token (or one of the plan's access mode); choose another
mode for the block with access=:

    with mock_spine(access="healthcare-worker") as spine:   # or "application", or "patient" (nhs_number=…)
        MyClient(access_token=spine.token).update_patient(...)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import tempfile
import uuid
import weakref
from collections.abc import Iterable, Sequence
from contextlib import ContextDecorator
from pathlib import Path
from urllib.parse import urlsplit

import requests
import responses
from flask import Flask

from sandbox.assurance.plans import PlanFile, is_plan_file
from sandbox.assurance.reports import make_report, write_reports
from sandbox.assurance.sessions import (
    TOKEN_PREFIX,
    SessionError,
    create_session,
    create_unbound_session,
    find_plan,
    issue_access_token,
    require_plan_allows,
)
from sandbox.assurance.signing import run_signing_key, signing_key
from sandbox.evidence import DEFAULT_SUPPLIER, DEFAULT_SYSTEM, SessionEvidence, latest_seq
from sandbox.journal.exchange import Exchange
from sandbox.runtime import Sandbox, StartupError
from sandbox.settings import Settings
from sandbox.web.access import bearer_token, chosen_access
from sandbox.web.sessions import SESSION_HEADER, valid_session_id

# Hosts of the NHS test environments, answered in-process. A pattern names the authority; a port may follow unless
# the pattern gives one.
ROUTED_HOSTS: tuple[str, ...] = (
    r"(?:sandbox|int|dep|ref)\.api\.service\.nhs\.uk",  # API platform: sandbox, integration, deployment, reference
    r"internal-[a-z0-9-]+\.api\.service\.nhs\.uk",  # API platform internal environments (internal-dev, -qa, …)
    r"msg\.intspineservices\.nhs\.uk",  # MESH integration
    r"msg\.[a-z0-9-]+\.spine2\.ncrs\.nhs\.uk",  # Spine messaging and MESH test environments (msg.int.…)
    r"[a-z0-9-]+\.opentest\.hscic\.gov\.uk",  # OpenTest
    r"(?:localhost|127\.0\.0\.1):8700",  # where NHS Digital's MESH sandbox conventionally listens
)
# Live services. Never routed unless asked for (production=True), and never passed through to the network either:
# a test that reaches production by mistake fails loudly instead of sending test traffic to the live Spine.
PRODUCTION_HOSTS: tuple[str, ...] = (
    r"api\.service\.nhs\.uk",
    r"(?:[a-z0-9-]+\.)+spineservices\.nhs\.uk",  # mesh-sync.spineservices.nhs.uk
    r"(?:[a-z0-9-]+\.)+national\.ncrs\.nhs\.uk",  # mesh-sync.…, pds-sync.…
)
DEFAULT_URL = "https://int.api.service.nhs.uk"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _authority_pattern(hosts: Iterable[str]) -> str:
    return "|".join(h if re.search(r":\d+$", h) else rf"{h}(?::\d+)?" for h in hosts)


def _url_pattern(authority: str, prefix: str = "") -> str:
    return rf"https?://(?:{authority}){re.escape(prefix)}(?=[/?#]|$)"


class MockSpine(ContextDecorator, SessionEvidence):
    """Routes `requests` traffic for the NHS environment hosts into one sandbox app, in one sandbox session.

    plan: an assurance plan (an id from the scenario folders' plans/, or a plan file's path): the session is bound
        to it, as `spine-sandbox sessions create` does, and report() judges it.
    supplier / system: who the plan-bound session's report is about.
    seed: the synthetic population's seed (the same seed gives the same patients as the server).
    base_urls: extra URLs to answer, e.g. a gateway the client is configured with ("http://gateway.test/spine");
        a path after the host is removed before routing, so the services still see their live paths.
    pass_through: let calls to any other host reach the network (by default they fail with a clear error).
    production: answer the live hosts (api.service.nhs.uk, mesh-sync…) too instead of refusing them.
    session / token: join an existing session (and know its token) instead of starting a new one; the view
        (exchanges, findings, failures) then starts at what the session had when the mock was made.
    access / nhs_number: the access mode `token` stands in for ("application", "healthcare-worker" or "patient"; for
        patient access, the patient's NHS number, 9000000009 unless given): a token of the session issued for that
        mode. By default the session's own token: application-restricted, or the plan's access mode. A plan that
        names an access mode accepts that mode only (SessionError otherwise).
    settings / app: share a configuration or an app.

    A mock that built its own app closes its store (every file handle) when its block ends; reading its evidence
    afterwards (exchanges, findings, report()) opens the store for the read. A shared app= is its owner's to close.
    """

    def __init__(self, *, plan: str | None = None, supplier: str | None = None, system: str | None = None,
                 seed: int | None = None, base_urls: Sequence[str] = (), pass_through: bool = False,
                 production: bool = False, session: str | None = None, token: str | None = None,
                 access: str | None = None, nhs_number: str | None = None,
                 settings: Settings | None = None, app: Flask | None = None):
        # Checked before anything is built, so a mistyped mode costs nothing and leaves nothing behind.
        chosen = chosen_access(access, nhs_number) if access is not None or nhs_number is not None else None
        if chosen is not None and token is not None:
            raise ValueError("give token= (the joined session's own token) or access= (a token issued for that "
                             "access mode), not both")
        if plan and session:
            raise ValueError("give plan= to start a session bound to that plan, or session= to join an existing "
                             "one (its plan comes with it), not both")
        if session is not None and not valid_session_id(session):
            raise ValueError(f"session {session!r} is not a session id: use 1-64 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        self.base_urls = tuple(base_urls)
        self.pass_through = pass_through
        self.production = production
        self._prefixed = [_prefixed_url(url) for url in self.base_urls]
        self._temp: tempfile.TemporaryDirectory | None = None  # removed with the mock, so evidence outlives `with`
        self._owned = app is None  # built here, so closed here
        self.app, plan = self._app(app, settings, seed, plan)
        if self._owned:  # also when the mock is never entered, or an option below is refused
            weakref.finalize(self, self.sandbox.close)
        try:
            store = self.sandbox.store
            if session is None:  # a session of its own, with a token: bound to the plan, if there is one
                supplier, system = supplier or DEFAULT_SUPPLIER, system or DEFAULT_SYSTEM
                if plan:
                    if chosen is not None:  # refused before the session is made, not after
                        require_plan_allows(self.sandbox.plans, find_plan(self.sandbox.plans, plan), chosen[0])
                    record, token = create_session(store, self.sandbox.plans, plan, supplier, system)
                else:
                    record, token = create_unbound_session(store, f"mock-{uuid.uuid4().hex[:12]}", supplier,
                                                           system)
                session = record.id
            if chosen is not None:
                token = issue_access_token(store, self.sandbox.plans, session, *chosen)
            self.session, self.token = session, token
            self.since = latest_seq(store, session)
        except BaseException:
            if self._owned:
                self.sandbox.close()
            raise
        # No cookie jar of its own: requests keeps (or does not keep) cookies as the client chose, as over a socket.
        self._client = self.app.test_client(use_cookies=False)
        self._mock: responses.RequestsMock | None = None
        self._pending: set[concurrent.futures.Future] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def _app(self, app: Flask | None, settings: Settings | None, seed: int | None, plan: str | None
             ) -> tuple[Flask, str | None]:
        if app is None:
            if settings is None:
                self._temp = tempfile.TemporaryDirectory(prefix="spine-sandbox-", ignore_cleanup_errors=True)
                settings = Settings.load(environ={}, data_dir=Path(self._temp.name), seed=seed)
            elif seed is not None:
                settings = settings.replace(seed=seed)
            return app_with_plan(settings, plan)
        if seed is not None or settings is not None:
            raise ValueError("give either app= or settings=/seed=, not both: an app already has its settings")
        if plan and is_plan_file(plan):
            raise ValueError(f"plan {plan!r} is a file, which an existing app has not loaded: pass settings= (or "
                             "nothing) instead of app=, or give the id of one of the app's plans")
        return app, plan

    # --- the sandbox behind it -----------------------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        return self.app.extensions["sandbox"]

    @property
    def url(self) -> str:
        """A base URL this mock answers; services are under it at their live paths."""
        return self.base_urls[0] if self.base_urls else DEFAULT_URL

    # --- activation ----------------------------------------------------------------------------------------------
    def __enter__(self) -> MockSpine:
        if self._mock is not None:
            raise RuntimeError("this mock_spine() is already active")
        if self._owned:
            self.sandbox.reopen()  # entered again (a decorated function called twice)
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        # Live hosts are always caught here, to be refused (or answered with production=True) but never passed on.
        ours = [_url_pattern(_authority_pattern(ROUTED_HOSTS + PRODUCTION_HOSTS))]
        ours += [_url_pattern(re.escape(authority), prefix) for authority, prefix in self._prefixed]
        # responses hands a request matched by several registrations to the first one and then drops it from the
        # registry, so every pattern below is disjoint from the others: one per method, routing decided inside.
        one = re.compile(rf"^(?:{'|'.join(ours)})", re.IGNORECASE)
        for method in METHODS:
            mock.add_callback(method, one, callback=self._answer, content_type=None)
        if self.pass_through:
            mock.add_passthru(re.compile(r".*"))
        else:
            others = re.compile(rf"^(?!(?:{'|'.join(ours)}))", re.IGNORECASE)
            for method in METHODS:
                mock.add_callback(method, others, callback=self._refuse_unrelated, content_type=None)
        mock.start()
        self._mock = mock
        return self

    def __exit__(self, *exc_info) -> None:
        mock, self._mock = self._mock, None
        if mock is not None:
            mock.stop()
            mock.reset()
        self._drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._owned:
            self.sandbox.close()

    def _open(self) -> contextlib.AbstractContextManager:
        """The store open for a read, also after the block closed it."""
        return self.sandbox.opened() if self._owned else contextlib.nullcontext()

    # --- evidence (findings and failures come from SessionEvidence) ----------------------------------------------
    @property
    def exchanges(self) -> list[Exchange]:
        """The session's journal, oldest first: every request, response, scenario and finding."""
        self._drain()
        with self._open():
            return super().exchanges

    @property
    def plan(self) -> str | None:
        """The id of the plan the session is bound to, if any."""
        with self._open():
            record = self.sandbox.store.sessions.get(self.session)
        return record.plan if record else None

    def report(self, out_dir: str | Path | None = None) -> dict:
        """The session's sealed assurance report (the whole session, judged against its plan); with out_dir, every
        format is written there too: report.json, report.html, junit.xml, summary.md."""
        self._drain()
        if not self.plan:
            raise SessionError(f"session {self.session} is not bound to an assurance plan, so there is nothing to "
                               "judge it against: start the mock with mock_spine(plan=…), one of "
                               f"{', '.join(self.sandbox.plans.ids()) or '(none)'} (`spine-sandbox plans`), or a "
                               "plan file's path")
        settings = self.sandbox.settings  # a throwaway data dir's own key would go with it: see run_signing_key
        key = run_signing_key(settings) if self._temp is not None else signing_key(settings)
        with self._open():
            report = make_report(self.sandbox, self.session, key=key)
        if out_dir is not None:
            write_reports(report, Path(out_dir), key)
        return report

    # --- answering -----------------------------------------------------------------------------------------------
    def _answer(self, request: requests.PreparedRequest):
        parts = urlsplit(request.url)
        path = parts.path or "/"
        explicit = next((prefix for authority, prefix in self._prefixed if parts.netloc.lower() == authority.lower()
                         and (path == prefix or path.startswith(prefix + "/"))), None)
        if explicit is not None:
            path = path[len(explicit):] or "/"
        elif not self.production and re.fullmatch(_authority_pattern(PRODUCTION_HOSTS), parts.netloc, re.I):
            return requests.exceptions.ConnectionError(
                f"mock_spine() does not answer the live service at {parts.netloc} ({request.method} {request.url}); "
                f"point the client at a test environment such as {DEFAULT_URL}, or pass production=True "
                f"to answer live host names in-process too", request=request)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "transfer-encoding"]
        if not any(_names_session(k, v) for k, v in headers):
            headers.append((SESSION_HEADER, self.session))

        def call():
            response = self._client.open(path, base_url=f"{parts.scheme}://{parts.netloc}", method=request.method,
                                         query_string=parts.query, headers=headers, data=_body_bytes(request.body))
            try:
                return response.status_code, list(response.headers.items()), response.get_data()
            finally:
                response.close()

        read_timeout = _read_timeout(getattr(request, "req_kwargs", {}).get("timeout"))
        if read_timeout is None:
            return call()
        # With a timeout, answer as a socket would: the client gives up at its read timeout while the sandbox goes
        # on and journals the exchange, exactly as the server does when a client hangs up.
        future = self._pool().submit(call)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        try:
            return future.result(timeout=read_timeout)
        except concurrent.futures.TimeoutError:
            return requests.exceptions.ReadTimeout(
                f"{parts.netloc}: Read timed out. (read timeout={read_timeout})", request=request)

    def _refuse_unrelated(self, request: requests.PreparedRequest):
        return requests.exceptions.ConnectionError(
            f"mock_spine() answers the NHS environment hosts only, not {request.method} {request.url}; "
            "add its base URL with base_urls=[...] to answer it in-process, or pass_through=True to let calls "
            "to other hosts reach the network", request=request)

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="mock-spine")
        return self._executor

    def _drain(self) -> None:
        """Wait for answers still being produced after their client timed out, so the journal is complete."""
        for future in list(self._pending):
            with contextlib.suppress(Exception):
                future.result()


def mock_spine(**options) -> MockSpine:
    """A context manager and decorator: see MockSpine for the options."""
    return MockSpine(**options)


def app_with_plan(settings: Settings, plan: str | None) -> tuple[Flask, str | None]:
    """The app for these settings, and the id `plan` has in it: a plan file is loaded through the plan catalogue
    (see PlanFile), and a bad one is a StartupError that names the file as the user gave it."""
    from sandbox.app import create_app

    plan_file = None
    if plan and is_plan_file(plan):
        plan_file, settings = PlanFile.install(plan, settings)
    try:
        app = create_app(settings)
    except StartupError as exc:
        raise StartupError(plan_file.explain(str(exc)) if plan_file else str(exc)) from None
    return app, plan_file.plan(app.extensions["sandbox"].plans).id if plan_file else plan


def _names_session(name: str, value: str) -> bool:
    """A header that already chooses the session: X-Sandbox-Session, or a session token as the bearer token."""
    name = name.lower()
    return name == SESSION_HEADER.lower() or (name == "authorization"
                                              and (bearer_token(value) or "").startswith(TOKEN_PREFIX))


def _prefixed_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {url!r} is not an http(s) URL with a host, e.g. 'http://gateway.test/spine'")
    return parts.netloc, parts.path.rstrip("/")


def _read_timeout(timeout) -> float | None:
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) > 1 else timeout[0]
    return getattr(timeout, "read_timeout", timeout)


def _body_bytes(body) -> bytes:
    """The bytes requests would put on the wire: str bodies are encoded as http.client encodes them."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("iso-8859-1")
    return b"".join(c.encode("iso-8859-1") if isinstance(c, str) else bytes(c) for c in body)
