"""The one home of configuration: defaults, SANDBOX_* environment variables and CLI overrides."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from sandbox.conformance.parsing import parse_int
from sandbox.synthetic.identifiers import POPULATION_CAPACITY

ENV_PREFIX = "SANDBOX_"
# How API requests' bearer tokens are judged: strict refuses anything but a live token from /oauth2/token;
# lenient accepts any bearer token and records a failing finding; off records nothing.
AUTH_MODES = ("strict", "lenient", "off")
SDS_ADDRESSES = ("sandbox", "published")
# e-RS: "live" answers from the session's referral lifecycle where the published examples do not match; "published"
# answers exactly as the NHS's published e-RS sandbox (stateless, its SANDBOX_ERROR answers when nothing matches).
ERS_MODES = ("live", "published")
# "sandbox": answers carry our X-Sandbox-* headers; "published": exactly the headers the published sandbox sends.
RESPONSE_HEADERS = ("sandbox", "published")
JOURNAL_FILE = "journal.sqlite3"  # under the data dir
LOG_LEVELS = ("debug", "info", "warning", "error")
# Whole-number settings and the values they may take: (minimum, maximum, the CLI flag that sets it).
BOUNDS = {"port": (1, 65535, "--port"), "seed": (0, 2**63 - 1, "--seed"),
          "population": (1, POPULATION_CAPACITY, "--population"), "workers": (0, 64, "--workers"),
          "threads": (1, 256, None), "max_body_bytes": (1, 2**40, None),
          "quota_sessions_per_minute": (1, 10**6, None), "quota_stored_bytes": (1, 2**50, None),
          "quota_exchanges_per_session": (1, 2**40, None), "retain_days": (0, 100_000, "--retain-days")}


def redact_url(url: str) -> str:
    """A database URL without the password it may carry (postgresql://user:secret@host/db -> user:***@host/db)."""
    scheme, separator, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{place}"


def default_data_dir() -> Path:
    """Where `serve` and every other command look when neither --data-dir nor SANDBOX_DATA_DIR is given."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "spine-sandbox"


@dataclass(frozen=True)
class Settings:
    """Every setting has a default that works on a laptop; each is also SANDBOX_<NAME> in the environment."""

    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = field(default_factory=default_data_dir)
    seed: int = 42
    population: int = 10_000
    # Extra scenario folders, searched after the built-in packs (os.pathsep-separated in the environment).
    scenarios: tuple[Path, ...] = ()
    # Empty means SQLite (and LMDB) under data_dir; postgresql://… puts everything in PostgreSQL, for several replicas.
    database_url: str = field(default="", repr=False)  # may hold a password: never in a repr or a log
    # Sessions idle for longer than this many days are purged (with their exchanges and state); 0 keeps everything.
    retain_days: int = 0
    # The URL suppliers reach the sandbox at, when it differs from the request's own (a proxy, a container).
    public_url: str = ""
    max_body_bytes: int = 10 * 1024 * 1024
    workers: int = 0  # 0: one per CPU
    threads: int = 2  # per worker: a slow scenario holds one thread, not the whole worker
    # With one worker per usable CPU (the default count), each worker runs on a CPU of its own, under the batch
    # scheduling policy (Linux).
    pin_workers: bool = True
    log_level: str = "info"
    auth: str = "lenient"  # one of AUTH_MODES
    # The Ed25519 key that signs assurance reports: PEM text or the path of a PEM file; empty means
    # <data_dir>/report-signing.key, made on first use (see sandbox/assurance/signing.py).
    report_signing_key: str = ""
    # HTTPS with mutual TLS: a local CA, a server certificate and client certificates (made on first use).
    tls: bool = False
    tls_dir: str = ""  # empty means <data_dir>/tls
    # MESH mailboxes and workflows (YAML); empty means the NHS MESH sandbox's own (X26ABC1-3, password, TestKey).
    mesh_config: str = ""
    # The official HL7v3 schema folder (the Spine MIM's, holding Schemas/, dt/ and voc/): payloads are validated
    # against it when set. It cannot be shipped with the sandbox.
    hl7v3_schemas: str = ""
    # SDS addresses: "sandbox" points Spine's own endpoints (and the published records of Spine's party key) at this
    # sandbox; "published" answers the published SDS sandbox's records verbatim.
    sds_addresses: str = "sandbox"
    ers_mode: str = "live"  # one of ERS_MODES
    response_headers: str = "sandbox"  # one of RESPONSE_HEADERS (exchanges are journaled either way)
    # Hosted mode: several suppliers (tenants) on one sandbox; every control call needs X-Sandbox-Key.
    hosted: bool = False
    # The admin key in hosted mode; empty: generated on first hosted start into <data_dir>/admin.key (mode 0600).
    admin_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    # Hosted mode: per-tenant quotas (sandbox/hosting/quotas.py), so one tenant cannot exhaust the host.
    quota_sessions_per_minute: int = 10
    quota_stored_bytes: int = 1024 * 1024 * 1024  # request and response bodies of the tenant's exchanges
    quota_exchanges_per_session: int = 100_000
    # Hosted mode: hosts and CIDRs (comma-separated) Spine may deliver to although they are loopback, link-local or
    # private addresses (refused otherwise, so a registered endpoint cannot reach the host's own network).
    delivery_allow: str = ""

    def __post_init__(self):
        for name, (low, high, flag) in BOUNDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                where = f"{flag} or {ENV_PREFIX}{name.upper()}" if flag else f"{ENV_PREFIX}{name.upper()}"
                limit = (" (the synthetic NHS number ranges hold at most that many patients)"
                         if name == "population" else "")
                raise SettingError(f"{name} {value} is out of range: it must be {low}..{high}{limit}; "
                                   f"set it with {where}")
        if self.log_level not in LOG_LEVELS:
            raise SettingError(f"{ENV_PREFIX}LOG_LEVEL={self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        if self.auth not in AUTH_MODES:
            raise SettingError(f"{ENV_PREFIX}AUTH={self.auth!r} is not one of {', '.join(AUTH_MODES)}")
        if self.sds_addresses not in SDS_ADDRESSES:
            raise SettingError(f"{ENV_PREFIX}SDS_ADDRESSES={self.sds_addresses!r} is not one of "
                               f"{', '.join(SDS_ADDRESSES)}")
        if self.ers_mode not in ERS_MODES:
            raise SettingError(f"{ENV_PREFIX}ERS_MODE={self.ers_mode!r} is not one of {', '.join(ERS_MODES)}")
        if self.response_headers not in RESPONSE_HEADERS:
            raise SettingError(f"{ENV_PREFIX}RESPONSE_HEADERS={self.response_headers!r} is not one of "
                               f"{', '.join(RESPONSE_HEADERS)}")

    @classmethod
    def load(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Defaults, then SANDBOX_* variables, then explicit overrides (CLI flags); None means 'not given'."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = _convert(_field(cls, name), value) if isinstance(value, str) else value
        settings = cls(**values)
        return dataclasses.replace(settings, data_dir=Path(settings.data_dir).expanduser(),
                                   scenarios=tuple(Path(p) for p in settings.scenarios))

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_environ(self) -> dict[str, str]:
        """The settings as SANDBOX_* variables, so worker processes rebuild exactly the same configuration."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = os.pathsep.join(str(v) for v in value)
            env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    @property
    def journal_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / JOURNAL_FILE}"

    @property
    def journal_url_shown(self) -> str:
        """The journal's URL as messages may show it: without a password."""
        return redact_url(self.journal_url)

    @property
    def journal_path(self) -> Path | None:
        """The journal's file under the data dir; None when SANDBOX_DATABASE_URL names another database."""
        return None if self.database_url else self.data_dir / JOURNAL_FILE

    @property
    def tls_path(self) -> Path:
        return Path(self.tls_dir).expanduser() if self.tls_dir else self.data_dir / "tls"


def _field(cls, name: str):
    for f in fields(cls):
        if f.name == name:
            return f
    raise TypeError(f"unknown setting {name!r}")


def _convert(f, raw: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "int":
            return parse_int(raw)
        if kind == "bool":
            if raw.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind == "Path":
            return Path(raw)
        if kind.startswith("tuple"):
            return tuple(Path(p) for p in raw.split(os.pathsep) if p)
    except ValueError:
        raise SettingError(f"{ENV_PREFIX}{f.name.upper()}={raw[:40]!r} is not a valid {_KINDS.get(kind, kind)}"
                           ) from None
    return raw


_KINDS = {"int": "whole number", "bool": "yes/no value (1, true, yes, on, 0, false, no, off)", "Path": "path"}


class SettingError(ValueError):
    """A setting's value cannot be used; the message names the setting."""
