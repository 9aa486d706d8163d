"""Every 200 body of the SDS API validates against the published specification's schemas (OpenAPI components), and
has the shape of its examples; the specification is an outside reference, skipped when absent."""

from __future__ import annotations

import json

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker

from sandbox.app import create_app
from sandbox.settings import Settings
from tests.conftest import TEST_POPULATION, spec_path
from tests.sds_helpers import GP2GP, QUPA, QUPC, REPC, SPINE_PK, get, published_client, query

SUPPLIER = {"ods": "A20047", "asid": "200000001234", "party_key": "A20047-0000001",
            "endpoint": "https://mhs.example.nhs.uk/inbound", "interactions": ["REPC_IN150016UK05", "QUPA_IN040000UK32"]}
DEVICE_QUERIES = [query("YES", REPC), query("YES", QUPA, SPINE_PK, "X09001"), query("X26", GP2GP),
                  query("YES", "nothing"), query("A20047", REPC)]
ENDPOINT_QUERIES = [query("YES", pk=SPINE_PK), query("X26", GP2GP), query("X26", pk="X26-200150"),
                    query(svc=QUPC, pk=SPINE_PK), query("B82617", pk="B82617-0000806"), query("YES", "nothing"),
                    query("A20047", pk="A20047-0000001"), query("YES", "urn:nhs:names:services:pds:PRPA_IN000203UK03")]


def _schema(name: str) -> dict:
    folder = spec_path("sds-fhir", "specification", "components", "schemas")

    def resolve(node):
        if isinstance(node, dict):
            if set(node) == {"$ref"} and not node["$ref"].startswith("#"):
                return resolve(yaml.safe_load((folder / node["$ref"]).read_text(encoding="utf-8")))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(yaml.safe_load((folder / name).read_text(encoding="utf-8")))


def _valid(schema: dict, body: dict) -> None:
    errors = sorted(Draft7Validator(schema, format_checker=FormatChecker()).iter_errors(body), key=str)
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


@pytest.fixture(scope="module", params=["sandbox", "published"])
def sds_client(request, tmp_path_factory):
    """One sandbox per address mode for the module, with one supplier registered: these tests only read."""
    settings = Settings.load(environ={}, data_dir=tmp_path_factory.mktemp("sds"), population=TEST_POPULATION)
    client = published_client(settings) if request.param == "published" else create_app(settings).test_client()
    assert client.post("/_sandbox/sds/registrations", json=SUPPLIER).status_code == 201
    return client


@pytest.mark.parametrize("qs", DEVICE_QUERIES)
def test_device_bundles_validate(sds_client, qs):
    response = get(sds_client, "/Device", qs)
    assert response.status_code == 200
    body = response.get_json(force=True)
    _valid(_schema("DeviceBundle.yaml"), body)
    for entry in body["entry"]:
        _valid(_schema("Device.yaml"), entry["resource"])


@pytest.mark.parametrize("qs", ENDPOINT_QUERIES)
def test_endpoint_bundles_validate(sds_client, qs):
    response = get(sds_client, "/Endpoint", qs)
    assert response.status_code == 200
    body = response.get_json(force=True)
    _valid(_schema("EndpointBundle.yaml"), body)
    for entry in body["entry"]:
        _valid(_schema("Endpoint.yaml"), entry["resource"])


def _shape(node):
    """Member names and identifying systems/urls, not values."""
    if isinstance(node, dict):
        return {k: (v if k in ("system", "url", "resourceType") else _shape(v)) for k, v in node.items()
                if k not in ("id",)}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return type(node).__name__


@pytest.mark.parametrize("name,path,qs", [("Endpoint.json", "/Endpoint", query("YES", REPC)),
                                          ("Device.json", "/Device", query("X26", GP2GP))])
def test_resources_have_the_shape_of_the_published_examples(settings, name, path, qs):
    example = json.loads(spec_path("sds-fhir", "specification", "components", "examples", name).read_text())
    ours = get(published_client(settings), path, qs).get_json(force=True)["entry"][0]["resource"]
    if name == "Device.json":  # the example lists one interaction; ours as many as the system has
        example["extension"] = example["extension"][:2]
        ours["extension"] = ours["extension"][:2]
    assert _shape(ours) == _shape(example)
