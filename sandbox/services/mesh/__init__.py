"""MESH, the Message Exchange for Social Care and Health: the MESH API at /messageexchange."""

from pathlib import Path

from sandbox.services import Service, SessionBinding
from sandbox.services.mesh import config as mesh_config
from sandbox.services.mesh import mailboxes
from sandbox.services.mesh.checks import checks
from sandbox.services.mesh.cli import make_client_certificates, mesh
from sandbox.services.mesh.control import control
from sandbox.services.mesh.errors import render_error
from sandbox.services.mesh.routes import blueprint, finish_response
from sandbox.services.mesh.session import EXTENSION


def start(sandbox) -> None:
    """Load the default mailboxes (a bad file stops the start, naming the field; none in hosted mode); with TLS, a
    certificate each."""
    from sandbox.runtime import StartupError

    try:
        config = mesh_config.load(sandbox.settings.mesh_config or None)
    except mesh_config.ConfigError as exc:
        raise StartupError(str(exc)) from None
    if sandbox.settings.hosted:  # no shared mailboxes: each tenant makes its own (mailboxes.py)
        config = mailboxes.hosted_default(config)
    sandbox.extensions[EXTENSION] = config
    if sandbox.settings.tls:
        make_client_certificates(sandbox.settings.tls_path, config)


SERVICE = Service(
    name="mesh",
    title="MESH (Message Exchange for Social Care and Health)",
    base_paths=("/messageexchange",),
    blueprint=blueprint,
    operations={
        "ping": "GET /_ping",
        "handshake": "POST /{mailbox_id}",
        "list-inbox": "GET /{mailbox_id}/inbox",
        "count-inbox": "GET /{mailbox_id}/count",
        "head-message": "HEAD /{mailbox_id}/inbox/{message_id}",
        "download-message": "GET /{mailbox_id}/inbox/{message_id}",
        "download-chunk": "GET /{mailbox_id}/inbox/{message_id}/{chunk_number}",
        "acknowledge-message": "PUT /{mailbox_id}/inbox/{message_id}/status/acknowledged",
        "send-message": "POST /{mailbox_id}/outbox",
        "send-chunk": "POST /{mailbox_id}/outbox/{message_id}/{chunk_number}",
        "track-message": "GET /{mailbox_id}/outbox/tracking?messageID=",
        "track-by-local-id": "GET /{mailbox_id}/outbox/tracking/{local_id}",
        "endpoint-lookup": "GET /endpointlookup/{ods_code}/{workflow_id}",
        "workflow-search": "GET /workflowsearch/{workflow_id}",
    },
    checks=checks,
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"MESH API": "NHSDigital/mesh-api-specification@7cfdcc4 (2026-05-06), version 2.0.0"},
    max_body_bytes=mesh_config.Limits().max_request_bytes + 64 * 1024,  # the spec's 100 MB, and room to refuse more
    start=start,
    forget=mailboxes.forget,
    finish_response=finish_response,
    resolve_session=mailboxes.resolve_session,
    session_by_secret=True,
    control=control,
    cli=mesh,
    binding=SessionBinding(check=mailboxes.bindable, bind=mailboxes.bind, release=mailboxes.release,
                           defaults=mailboxes.default_bindings),
)
