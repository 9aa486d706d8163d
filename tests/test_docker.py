"""The Docker image, end to end: built without a registry, run, read through, stopped with SIGTERM, restarted on the
same volume. Behind the `docker` marker (`python -m pytest -m docker`); .ci/run installs what it needs.

Everything made here is removed afterwards (containers, the volume, the image and its build stage, and the engine if
this test started it), except the registry-free base image and its cached tarball, which are kept for the next run.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from sandbox.local_server import free_port
from tests import dockerenv
from tests.conftest import PDS_BASE

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine():
    try:
        started = dockerenv.start_engine()
    except dockerenv.DockerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Docker must run in CI: {exc}")
        pytest.skip(f"Docker cannot run here: {exc}")
    yield
    dockerenv.stop_engine(started)


@pytest.fixture(scope="module")
def image(engine):
    tag = dockerenv.unique("spine-sandbox-test")
    try:
        dockerenv.build_image(tag, dockerenv.ensure_base_image())
        yield tag
    finally:
        dockerenv.remove_image(tag)


@pytest.fixture
def volume(engine):
    name = dockerenv.unique("spine-sandbox-test-data")
    dockerenv.docker("volume", "create", name)
    yield name
    dockerenv.docker("volume", "rm", "--force", name, check=False)


@pytest.fixture
def run_container(image, volume):
    """Start containers of the image on the host network (the engine may have no bridge) with the test's data
    volume; remove them after, before the volume goes."""
    made = []

    def run(port: int, **env: str) -> str:
        name = dockerenv.unique("spine-sandbox-test")
        made.append(name)
        env_args = [arg for key, value in {"SANDBOX_PORT": str(port), **env}.items() for arg in ("-e", f"{key}={value}")]
        dockerenv.docker("run", "--detach", "--name", name, "--network", "host", "--volume", f"{volume}:/data",
                         *env_args, image)
        return name

    yield run
    for name in made:
        dockerenv.docker("rm", "--force", "--volumes", name, check=False)


def test_image_is_configured_for_a_container(image):
    config = dockerenv.inspect(image)["Config"]
    assert config["User"] == "sandbox"
    assert config["Entrypoint"] == ["spine-sandbox"] and config["Cmd"] == ["serve"]
    assert "9000/tcp" in config["ExposedPorts"] and "/data" in config["Volumes"]
    assert config["Healthcheck"]["Test"][-2:] == ["-m", "sandbox.healthcheck"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert (env["SANDBOX_HOST"], env["SANDBOX_PORT"], env["SANDBOX_DATA_DIR"]) == ("0.0.0.0", "9000", "/data")


def test_container_serves_journals_and_keeps_the_journal_across_restarts(run_container):
    port = free_port()
    first = run_container(port, SANDBOX_SEED="7", SANDBOX_POPULATION="3000", SANDBOX_WORKERS="1")
    dockerenv.wait_healthy(first)
    base = f"http://127.0.0.1:{port}"
    assert dockerenv.docker("exec", first, "id", "-un").stdout.strip() == "sandbox"
    health = requests.get(f"{base}/_sandbox/health", timeout=5).json()
    assert health["population"]["seed"] == 7 and health["population"]["size"] == 3000  # SANDBOX_* configure it

    session = requests.post(f"{base}/_sandbox/sessions", timeout=5, json={
        "plan": "pds-application-restricted", "supplier": "Docker test", "system": "image"}).json()
    read = requests.get(f"{base}{PDS_BASE}/Patient/9000000009", timeout=10,  # the session token is a valid token
                        headers={"X-Request-ID": str(uuid.uuid4()), "Authorization": f"Bearer {session['token']}"})
    assert read.status_code == 200 and read.json()["id"] == "9000000009"
    bad = requests.get(f"{base}{PDS_BASE}/Patient/9000000009", timeout=10, headers={"X-Request-ID": "not-a-uuid"})
    assert bad.status_code == 400
    failing = requests.get(f"{base}/_sandbox/exchanges", params={"outcome": "fail"}, timeout=5).json()["exchanges"]
    assert [e["id"] for e in failing] == [bad.headers["X-Sandbox-Exchange"]]
    detail = requests.get(f"{base}/_sandbox/exchanges/{bad.headers['X-Sandbox-Exchange']}", timeout=5).json()
    assert {"PDS-HDR-002", "PDS-HDR-005"} <= {f["requirement"] for f in detail["findings"] if f["outcome"] == "fail"}

    stopping = time.monotonic()
    dockerenv.docker("stop", "--time", "20", first)
    assert time.monotonic() - stopping < 10  # SIGTERM was handled, not waited out until SIGKILL
    state = dockerenv.inspect(first)["State"]
    assert state["ExitCode"] == 0
    logs = dockerenv.docker("logs", first)
    assert "Granian shutdown completed" in logs.stdout + logs.stderr

    second = run_container(port, SANDBOX_SEED="7", SANDBOX_POPULATION="3000", SANDBOX_WORKERS="1")
    dockerenv.wait_healthy(second)
    for answered in (read, bad):
        kept = requests.get(f"{base}/_sandbox/exchanges/{answered.headers['X-Sandbox-Exchange']}", timeout=5)
        assert kept.status_code == 200 and kept.json()["response"]["status"] == answered.status_code
