"""Reports: one model, four renderings (JSON, HTML, JUnit XML, Markdown), each checked for its structure."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from sandbox.assurance.reports import make_report, render
from sandbox.cli import main
from sandbox.conformance.findings import Finding
from sandbox.journal.exchange import Exchange, RecordedRequest, RecordedResponse, new_exchange_id
from tests.conftest import PdsClient

PLAN = "pds-application-restricted"
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def session(client, sandbox):
    """A session with passes, failures, warnings, several scenarios and an attestation."""
    made = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "Acme <Health>", "system": "PAS 1.2"})
    creds = made.get_json()
    pds = PdsClient(client)
    auth = {"Authorization": f"Bearer {creds['token']}"}
    pds.get("/Patient/9000000009", headers=auth)
    pds.get("/Patient/9000000025", headers=auth)
    pds.get("/Patient/9000000000", headers=auth)  # PDS-GET-001 fails
    pds.get("/Patient/9000000009", headers={**auth, "X-Request-ID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                                            "X-Correlation-ID": HOSTILE})  # version 1 UUID: a warning
    rid = str(uuid.uuid4())
    pds.get("/Patient/9999000010", headers={**auth, "X-Request-ID": rid})
    pds.get("/Patient/9999000010", headers={**auth, "X-Request-ID": rid})  # too soon: PDS-ERR-001 fails
    client.post(f"/_sandbox/sessions/{creds['session']}/attestations",
                json={"requirement": "PDS-GET-003", "verdict": "pass", "by": "A. Assessor", "note": "Checked."})
    return creds["session"]


@pytest.fixture
def report(sandbox, session) -> dict:
    return make_report(sandbox, session)


def test_json_report_model(report, session):
    assert report["format"] == "spine-sandbox/assurance-report" and report["format_version"] == 1
    meta = report["metadata"]
    assert (meta["supplier"], meta["system"], meta["session"]) == ("Acme <Health>", "PAS 1.2", session)
    assert meta["plan"]["id"] == PLAN and meta["plan"]["version"] == "2"
    assert meta["sandbox_version"] and meta["specifications"][0]["service"] == "pds"
    assert "personal-demographics-service-api" in meta["specifications"][0]["version"]
    assert meta["span"]["exchanges"] == 6 and meta["span"]["first"] <= meta["span"]["last"]
    assert report["verdict"] == "fail"
    by_id = {r["id"]: r for r in report["requirements"]}
    assert [r["id"] for r in report["requirements"]] == list(by_id)  # plan order
    assert by_id["PDS-GET-001"]["verdict"] == "fail" and by_id["PDS-ERR-001"]["verdict"] == "fail"
    assert by_id["PDS-HDR-003"]["counts"]["warning"] == 1
    assert by_id["PDS-GET-003"]["verdict"] == "pass" and by_id["PDS-GET-003"]["attestation"]["by"] == "A. Assessor"
    failure = next(e for e in by_id["PDS-GET-001"]["evidence"] if e["outcome"] == "fail")
    assert failure["request"]["path"].endswith("/Patient/9000000000") and failure["response"]["status"] == 400
    assert "INVALID_RESOURCE_ID" in failure["response"]["body"]
    authorization = dict(failure["request"]["headers"])["Authorization"]
    assert re.fullmatch(r"Bearer \[redacted sha256:[0-9a-f]{8}\]", authorization)  # a credential: never shown
    assert report["summary"]["requirements"] == {"pass": 7, "fail": 2, "not exercised": 4, "manual": 0}
    assert report["summary"]["steps"] == {"exercised": 3, "total": 10}
    assert {o["id"] for o in report["other_findings"]} >= {"PDS-HDR-004", "PDS-HDR-006"}
    coverage = report["coverage"]
    assert coverage["scenarios"][:2] == ["pds-get-patient-exists", "pds-get-sensitive-patient"]
    assert all(len(row["cells"]) == len(coverage["scenarios"]) for row in coverage["rows"])
    invalid = coverage["scenarios"].index("pds-get-invalid-nhs-number")
    assert next(r for r in coverage["rows"] if r["requirement"] == "PDS-GET-001")["cells"][invalid]["fail"] == 1
    assert sum(b[1] for b in report["timeline"]["buckets"]) == 6
    assert report["integrity"]["digest"]["algorithm"] == "SHA-256"
    assert report["integrity"]["signature"]["algorithm"] == "Ed25519"  # tests/test_report_signing.py checks it


def test_html_report_is_self_contained_escaped_and_complete(report):
    page = render(report, "html")
    tree = lxml_html.fromstring(page)
    assert tree.findtext(".//title").startswith("Assurance report — PDS FHIR API")
    assert tree.get_element_by_id("verdict").text_content().strip() == "fail"
    for section in ("summary", "steps", "coverage", "requirements", "other", "operations"):
        assert tree.get_element_by_id(section) is not None
    assert len(tree.xpath("//svg")) == 2  # verdicts and timeline, inline
    assert not tree.xpath("//script | //link | //img | //iframe | //object")
    assert not [a for a in tree.xpath("//@src | //@href") if not a.startswith("#")]
    assert HOSTILE not in page and "&lt;script&gt;alert(" in page
    assert "Acme &lt;Health&gt;" in page
    requirement = tree.get_element_by_id("req-PDS-GET-001")
    assert "fail" in requirement.get("class")
    marked = requirement.xpath(".//div[contains(@class, 'ev') and contains(@class, 'fail')]//mark")
    assert marked and marked[0].text_content().endswith("/Patient/9000000000")  # the finding's location
    assert len(tree.xpath("//table[@class='matrix']//tr")) == 1 + len(report["coverage"]["rows"])
    assert report["integrity"]["digest"]["value"] in page


def test_junit_has_one_test_case_per_requirement_with_failures_carrying_findings(report):
    root = ET.fromstring(render(report, "junit"))
    assert root.tag == "testsuites" and root.get("failures") == "2"
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name").split()[0] for c in cases] == [r["id"] for r in report["requirements"]]
    assert suite.get("tests") == str(len(cases)) and suite.get("skipped") == "4"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["supplier"] == "Acme <Health>" and props["verdict"] == "fail"
    failed = {c.get("name").split()[0]: c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"PDS-GET-001", "PDS-ERR-001"}
    assert "fails the Modulus 11 check" in failed["PDS-GET-001"].get("message")
    assert "/_sandbox/exchanges/" in failed["PDS-ERR-001"].text and "Retry-After" in failed["PDS-ERR-001"].text
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert all(c.find("skipped").get("message").startswith("not exercised") for c in skipped)


def test_markdown_summary_for_ci_pages(report):
    text = render(report, "markdown", {"report.html": "report.html"})
    assert text.startswith("## Spine Sandbox assurance: ❌ FAIL\n")
    assert "| 13 | 7 | 2 | 4 | 0 | 3 / 10 |" in text
    assert "### Failed" in text and "`PDS-GET-001`" in text and "Modulus 11" in text
    assert "### Without passing evidence yet" in text and "### Steps not exercised" in text
    assert "Supplier **Acme <Health>**" in text and "[report.html](report.html)" in text


def test_report_cli_writes_every_format_with_progress(sandbox, session, settings, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["report", session, "--out-dir", str(out), "--data-dir",
                                       str(settings.data_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json",
                                                     "report.manifest.json", "summary.md"]
    assert "Verdict: FAIL" in result.output and "collecting evidence" in result.output
    assert json.loads((out / "report.json").read_text())["metadata"]["session"] == session
    only_junit = CliRunner().invoke(main, ["report", session, "--out-dir", str(tmp_path / "j"), "--format", "junit",
                                           "--data-dir", str(settings.data_dir)])
    assert only_junit.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["junit.xml", "report.manifest.json"]
    missing = CliRunner().invoke(main, ["report", "nope", "--data-dir", str(settings.data_dir)])
    assert missing.exit_code == 1 and "no session 'nope'" in missing.output


def test_report_control_api_serves_each_format(client, session):
    for fmt, content_type in (("json", "application/json"), ("html", "text/html"), ("junit", "application/xml"),
                              ("markdown", "text/markdown")):
        answer = client.get(f"/_sandbox/sessions/{session}/report?format={fmt}")
        assert answer.status_code == 200 and answer.content_type.startswith(content_type)
    assert client.get(f"/_sandbox/sessions/{session}/report?format=pdf").status_code == 400
    assert client.get(f"/_sandbox/sessions/{session}/report?evidence=0").status_code == 400


def test_evidence_is_bounded_for_large_sessions_and_the_rest_stays_reachable(sandbox, client):
    session = client.post("/_sandbox/sessions", json={"plan": PLAN, "supplier": "A", "system": "B"}).get_json()
    exchanges = []
    for n in range(40):
        ex = Exchange(new_exchange_id(), session["session"], "pds", "get-patient", 1_700_000_000 + n, 5.0,
                      RecordedRequest("GET", f"/personal-demographics/FHIR/R4/Patient/{n}"), RecordedResponse(400),
                      [Finding.failed("PDS-GET-001", f"bad number {n}", "path:id")])
        exchanges.append(ex)
    sandbox.store.journal.record_many(exchanges)
    report = make_report(sandbox, session["session"], evidence=2)
    row = next(r for r in report["requirements"] if r["id"] == "PDS-GET-001")
    assert [e["message"] for e in row["evidence"]] == ["bad number 0", "bad number 1", "bad number 38",
                                                       "bad number 39"]
    assert row["evidence_omitted"] == 36 and row["counts"]["fail"] == 40
    omitted = exchanges[20].id
    assert client.get(f"/_sandbox/exchanges/{omitted}").get_json()["findings"][0]["message"] == "bad number 20"
