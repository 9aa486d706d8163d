"""Mailboxes, workflows and limits: the sandbox default (a file, or the NHS MESH sandbox's own), per session if set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sandbox.conformance.schemas import read_yaml, validate_document

HERE = Path(__file__).parent
DEFAULT_FILE = HERE / "default-config.yaml"
SCHEMA = yaml.safe_load((HERE / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
MB = 1024 * 1024
DAY = 86_400.0


class ConfigError(ValueError):
    """A MESH configuration cannot be used; the message names the file (or body) and the field."""


@dataclass(frozen=True)
class Mailbox:
    id: str
    password: str
    name: str = ""
    ods_code: str = ""
    org_code: str = ""
    org_name: str = ""
    billing_entity: str = "England"
    chunking: bool = True

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class Workflow:
    id: str
    senders: frozenset[str] = frozenset()
    receivers: frozenset[str] = frozenset()
    required_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 100 * MB  # the spec's "100MB" per request
    max_message_bytes: int = 100 * 1024 * MB  # and 100 GB for a whole chunked message
    # Not published by MESH (the sandbox's own bounds): the chunks one message may declare (100 GB in chunks of 10 MB),
    # and what one gzip chunk may expand to when a recipient downloads it without Accept-Encoding: gzip.
    max_chunks: int = 10_000
    max_expanded_bytes: int = 100 * MB
    inbox_days: float = 5
    purge_days: float = 30
    poll_interval_seconds: int = 300
    token_window_seconds: int = 2 * 3600


@dataclass(frozen=True)
class MeshConfig:
    mailboxes: dict[str, Mailbox]
    workflows: dict[str, Workflow] = field(default_factory=dict)
    limits: Limits = Limits()
    shared_key: str = "TestKey"
    source: str = "built-in"

    def mailbox(self, mailbox_id: str) -> Mailbox | None:
        return self.mailboxes.get(mailbox_id.upper())

    def may_send(self, workflow_id: str, sender: str) -> bool:
        workflow = self.workflows.get(workflow_id)
        return workflow is None or sender in workflow.senders

    def may_receive(self, workflow_id: str, recipient: str) -> bool:
        workflow = self.workflows.get(workflow_id)
        return workflow is None or recipient in workflow.receivers

    def receivers_of(self, workflow_id: str) -> list[Mailbox]:
        workflow = self.workflows.get(workflow_id)
        if workflow is None:
            return []
        return [m for m in self.mailboxes.values() if m.id in workflow.receivers]

    def to_dict(self) -> dict:
        return {
            "shared_key": self.shared_key,
            "mailboxes": [{"id": m.id, "password": m.password, "name": m.name, "ods_code": m.ods_code,
                           "org_code": m.org_code, "org_name": m.org_name, "billing_entity": m.billing_entity,
                           "chunking": m.chunking} for m in self.mailboxes.values()],
            "workflows": [{"id": w.id, "senders": sorted(w.senders), "receivers": sorted(w.receivers),
                           "required_headers": list(w.required_headers)} for w in self.workflows.values()],
            "limits": dict(vars(self.limits)),
        }


def parse(data, source: str) -> MeshConfig:
    """A configuration from its JSON/YAML form; every problem is reported at once, each with its field."""
    problems = validate_document(SCHEMA, data)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems[:8]))
    mailboxes: dict[str, Mailbox] = {}
    for item in data["mailboxes"]:
        if item["id"] in mailboxes:
            problems.append(f"at /mailboxes: mailbox {item['id']!r} is defined twice")
        mailboxes[item["id"]] = Mailbox(**item)
    workflows: dict[str, Workflow] = {}
    for n, item in enumerate(data.get("workflows") or []):
        for role in ("senders", "receivers"):
            unknown = [m for m in item.get(role, ()) if m not in mailboxes]
            if unknown:
                problems.append(f"at /workflows/{n}/{role}: {', '.join(unknown)} not among the mailboxes")
        workflows[item["id"]] = Workflow(item["id"], frozenset(item.get("senders", ())),
                                         frozenset(item.get("receivers", ())),
                                         tuple(item.get("required_headers", ())))
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return MeshConfig(mailboxes, workflows, Limits(**(data.get("limits") or {})),
                      data.get("shared_key", "TestKey"), source)


def load(path: str | Path | None = None) -> MeshConfig:
    path = Path(path) if path else DEFAULT_FILE
    data = read_yaml(path, ConfigError)  # a bad SANDBOX_MESH_CONFIG file: the message names it and the line
    return parse(data, str(path) if path != DEFAULT_FILE else "built-in (the NHS MESH sandbox's mailboxes)")
