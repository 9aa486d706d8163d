"""`spine-sandbox mesh …`: show the mailboxes, make TLS material for mutual TLS, print an Authorization token."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.services.mesh import auth
from sandbox.services.mesh import config as mesh_config


def _config(path: str | None) -> mesh_config.MeshConfig:
    from sandbox.settings import Settings

    try:
        return mesh_config.load(path or Settings.load().mesh_config or None)
    except mesh_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def client_common_name(mailbox: mesh_config.Mailbox) -> str:
    """The subject MESH asks for: mailboxid.odscode.api.mesh-client.nhs.uk."""
    return f"{mailbox.id}.{mailbox.ods_code or 'X26'}.api.mesh-client.nhs.uk".lower()


def make_client_certificates(folder: Path, config: mesh_config.MeshConfig) -> dict:
    from sandbox.web import tls

    return {m.id: tls.client_pair(folder, m.id, client_common_name(m)) for m in config.mailboxes.values()}


CONFIG_OPTION = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                             help="A MESH configuration file [SANDBOX_MESH_CONFIG; default: the NHS MESH "
                                  "sandbox's mailboxes].")


@click.group("mesh")
def mesh() -> None:
    """MESH: mailboxes, TLS material and tokens."""


@mesh.command("mailboxes")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def mailboxes(config_path, as_json) -> None:
    """List the mailboxes and workflows a session starts with."""
    config = _config(config_path)
    if as_json:
        click.echo(json.dumps({"source": config.source, **config.to_dict()}, indent=2))
        return
    click.echo(f"Configuration: {config.source}; shared key {config.shared_key!r}")
    for m in config.mailboxes.values():
        click.echo(f"  {m.id:<12} password {m.password!r:<14} ODS {m.ods_code or '-':<6} {m.display_name}"
                   + ("" if m.chunking else "  (no chunking)"))
    for w in config.workflows.values():
        click.echo(f"  workflow {w.id}: {', '.join(sorted(w.senders)) or 'nobody'} -> "
                   f"{', '.join(sorted(w.receivers)) or 'nobody'}"
                   + (f"; requires {', '.join(w.required_headers)}" if w.required_headers else ""))
    click.echo("  any other workflow id: unrestricted")


@mesh.command("tls")
@CONFIG_OPTION
@click.option("--tls-dir", type=click.Path(path_type=Path), help="Where to keep them [SANDBOX_TLS_DIR, default "
              "<data dir>/tls].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[SANDBOX_DATA_DIR]")
def tls_material(config_path, tls_dir, data_dir) -> None:
    """Make (once) the local CA, the server certificate and a client certificate per mailbox."""
    from sandbox.settings import Settings
    from sandbox.web import tls

    settings = Settings.load(tls_dir=str(tls_dir) if tls_dir else None, data_dir=data_dir)
    folder = settings.tls_path
    ca = tls.authority(folder)
    server = tls.server_pair(folder)
    clients = make_client_certificates(folder, _config(config_path))
    click.echo(f"CA certificate (trust it):   {ca.cert}\nServer certificate:          {server.cert}")
    for mailbox_id, pair in clients.items():
        click.echo(f"Client {mailbox_id:<21} {pair.cert}  (key {pair.key.name})")
    first = next(iter(clients))
    click.echo(f"\nServe with `spine-sandbox serve --tls`, then e.g.\n  MeshClient('https://localhost:9000', "
               f"'{first}', 'password', shared_key=b'TestKey',\n             cert=('{clients[first].cert}', "
               f"'{clients[first].key}'), verify='{ca.cert}')")


@mesh.command("token")
@click.argument("mailbox_id")
@CONFIG_OPTION
def token(mailbox_id, config_path) -> None:
    """Print a fresh NHSMESH Authorization header value for a mailbox (each is good for one request)."""
    config = _config(config_path)
    mailbox = config.mailbox(mailbox_id)
    if mailbox is None:
        raise click.ClickException(f"no mailbox {mailbox_id!r} (mailboxes: {', '.join(config.mailboxes)})")
    click.echo(auth.make_token(mailbox.id, mailbox.password, config.shared_key))
