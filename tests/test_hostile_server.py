"""One round of the hostile corpus (tests/hostile_corpus.py: several hundred hostile or malformed requests across PDS,
OAuth, MESH and the control API, sent byte for byte) against the real server with two workers: no answer is a 5xx,
every service answer names its exchange and that exchange is in the journal, and the server still answers after.
benchmarks/hostile_corpus.py repeats it for rounds and watches memory."""

from __future__ import annotations

import pytest
import requests

from sandbox.local_server import LocalServer
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION
from tests.hostile_corpus import describe, run_round

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", population=TEST_POPULATION)
    with LocalServer(settings, workers=2) as running:
        yield running


def test_the_hostile_corpus_gets_no_5xx_and_every_exchange_is_journaled(server):
    result = run_round(server.url)
    assert len(result.outcomes) > 500
    assert {o.case.area for o in result.outcomes} >= {"http", "pds", "oauth", "mesh", "ers", "control"}
    errors = [describe(o) for o in result.server_errors]  # "not at all" includes no answer within TIMEOUT_S: a hang
    assert not errors, "answered 5xx or not at all:\n" + "\n".join(errors) + "\n" + server.log_tail(40)
    unnamed = [describe(o) for o in result.without_exchange]
    assert not unnamed, "service answers without X-Sandbox-Exchange:\n" + "\n".join(unnamed)
    missing = [describe(o) for o in result.not_in_journal]
    assert not missing, "exchange ids the journal does not hold:\n" + "\n".join(missing)
    controls = [o for o in result.outcomes if o.case.area == "control" and o.answer.status >= 400]
    assert controls and all(isinstance(o.answer.json(), dict) and {"error", "message"} <= set(o.answer.json())
                            for o in controls), [describe(o) for o in controls if not isinstance(o.answer.json(), dict)]
    assert requests.get(server.url + "/_sandbox/health", timeout=5).ok
