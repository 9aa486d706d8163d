"""The PDS requirement catalogue covers every requirement id the service's code and scenarios name."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

REQUIREMENT_ID = re.compile(r"PDS-[A-Z][A-Z0-9]*-[0-9]{3}")


def test_every_requirement_id_the_code_names_is_in_the_catalogue(sandbox):
    sources = [*(ROOT / "sandbox" / "services" / "pds").glob("*.py"), *(ROOT / "scenarios" / "pds").glob("*.yaml")]
    named = {(m, p.name) for p in sources for m in REQUIREMENT_ID.findall(Path(p).read_text())}
    missing = sorted(f"{req} ({where})" for req, where in named if req not in sandbox.requirements)
    assert len(named) > 50 and not missing, missing


def test_every_catalogue_entry_says_where_it_comes_from(sandbox):
    pds = [r for r in sandbox.requirements if r.service == "pds"]
    assert all(r.source.startswith(("PDS FHIR API", "PDS HL7 V3")) and r.text.endswith((".", ")")) for r in pds)
    assert {"PDS-ERR-001", "PDS-ERR-002", "PDS-ERR-003", "PDS-HDR-008", "PDS-UPD-001", "PDS-GET-002"} <= {
        r.id for r in pds}
