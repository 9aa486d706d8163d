"""SDS over real sockets: a registration made with the CLI on the data directory is answered by the running server
at once, and Spine's own entries carry the address the supplier called."""

from __future__ import annotations

import uuid

import requests
from click.testing import CliRunner

from tests.sds_helpers import REPC, SDS, SPINE_PK, query


def test_cli_registration_is_seen_by_a_running_server(live_server):
    from sandbox.cli import main

    result = CliRunner().invoke(main, ["sds", "register", "--ods", "A20047", "--asid", "200000001234",
                                       "--party-key", "A20047-0000001", "--endpoint", "http://127.0.0.1:9/inbound",
                                       "--interaction", "REPC_IN150016UK05", "--data-dir", str(live_server.data_dir)])
    assert result.exit_code == 0, result.output
    correlation = str(uuid.uuid4())
    headers = {"X-Correlation-ID": correlation, "apikey": "any"}
    mine = requests.get(f"{live_server.url}{SDS}/Endpoint?{query('A20047', REPC)}", headers=headers, timeout=10)
    assert mine.status_code == 200 and mine.headers["X-Correlation-Id"] == correlation
    assert mine.json()["entry"][0]["resource"]["address"] == "http://127.0.0.1:9/inbound"
    spine = requests.get(f"{live_server.url}{SDS}/Endpoint?{query('YES', REPC, SPINE_PK)}", headers=headers,
                         timeout=10).json()
    assert spine["entry"][0]["resource"]["address"] == f"{live_server.url}/reliablemessaging/reliablerequest"
