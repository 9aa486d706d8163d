"""The interaction catalogue: every id of the published interaction table, in our own shape."""

from __future__ import annotations

import json

import pytest

from sandbox.messaging import interactions
from tests.conftest import spec_path

TABLE = ("spine-messaging-examples", "mhs-adaptor", "mhs", "common", "data", "interactions", "interactions.json")


def test_catalogue_holds_every_published_interaction_with_its_service_and_pattern():
    published = json.loads(spec_path(*TABLE).read_text())
    catalogue = interactions.catalogue()
    requests = {iid for iid, entry in catalogue.items() if entry.answer_to is None}
    assert requests == set(published) and len(requests) == 92
    for iid, facts in published.items():
        entry = catalogue[iid]
        assert entry.service == facts["service"]
        assert entry.sync_async is facts["sync_async"]
        assert entry.pattern == facts["workflow"].lower().replace(" ", "-")
        assert entry.pattern in interactions.PATTERNS and entry.title


def test_the_odd_forward_express_value_is_normalised():
    assert interactions.catalogue()["PRSC_IN080000UK03"].pattern == "forward-express"
    assert interactions.catalogue()["PRSC_IN040000UK03"].pattern == "forward-express"


def test_schema_flag_matches_the_official_schema_folder():
    folder = spec_path("spine-hl7v3-xsd", "omvt", "Schemas")
    with_schema = {p.stem for p in folder.glob("*_IN*.xsd")}
    assert len(with_schema) == 19
    for entry in interactions.catalogue().values():
        assert entry.schema is (entry.id in with_schema), entry.id
    # the response-only MIMs have schemas and are answers only Spine sends, each naming the request it answers
    answers = {iid: entry.answer_to for iid, entry in interactions.catalogue().items() if entry.answer_to}
    assert answers == {"QUPA_IN000007UK01": "QUPA_IN000005UK01", "QUPA_IN000009UK03": "QUPA_IN000008UK02",
                       "QUPA_IN000011UK02": "QUPA_IN000006UK02", "QUPA_IN050000UK32": "QUPA_IN040000UK32",
                       "QUPC_IN160102UK05": "QUPC_IN160101UK05"}
    assert all(interactions.catalogue()[request].response == answer for answer, request in answers.items())


@pytest.mark.parametrize("request_id, response_id", [
    ("QUPA_IN040000UK32", "QUPA_IN050000UK32"), ("QUPC_IN160101UK05", "QUPC_IN160102UK05"),
    ("RCMR_IN010000UK05", "RCMR_IN030000UK06"), ("REPC_IN150016UK05", "MCCI_IN010000UK13"),
])
def test_responses_established_from_the_examples(request_id, response_id):
    assert interactions.catalogue()[request_id].response == response_id


def test_find_by_id_service_interaction_or_soap_action():
    pds = interactions.find("QUPA_IN040000UK32")
    assert pds is not None and pds.title == "PDS Retrieval Query" and pds.pattern == "sync"
    assert interactions.find("urn:nhs:names:services:pdsquery:QUPA_IN040000UK32") is pds
    assert interactions.find("urn:nhs:names:services:pdsquery/QUPA_IN040000UK32") is pds
    assert pds.service_interaction == "urn:nhs:names:services:pdsquery:QUPA_IN040000UK32"
    assert pds.soap_action == "urn:nhs:names:services:pdsquery/QUPA_IN040000UK32"
    assert interactions.find("urn:nhs:names:services:psis:QUPA_IN040000UK32") is None  # wrong service
    assert interactions.find("NOT_AN_INTERACTION") is None
    assert interactions.find("") is None and interactions.find(None) is None
    assert interactions.find("urn:nhs:names:services:gp2gp:RCMR_IN010000UK05").reliable
