"""The HTML report in headless Chromium: renders with no console errors and loads nothing from outside the file."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sandbox.assurance.reports import make_report, render
from tests.conftest import PdsClient

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser


def test_html_report_renders_cleanly_in_chromium(client, sandbox, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    session = client.post("/_sandbox/sessions", json={"plan": "pds-healthcare-worker", "supplier": "Acme",
                                                      "system": "PAS 1.2"}).get_json()["session"]
    pds = PdsClient(client, session)
    for number in ("9000000009", "9000000025", "9000000000", "9999000002", "9999000002"):
        pds.get(f"/Patient/{number}")
    rid = str(uuid.uuid4())
    pds.get("/Patient/9999000010", headers={"X-Request-ID": rid, "X-Correlation-ID": "<img src=x onerror=alert(1)>"})
    pds.get("/Patient/9999000010", headers={"X-Request-ID": rid})
    page_file = tmp_path / "report.html"
    page_file.write_text(render(make_report(sandbox, session), "html"), encoding="utf-8")

    problems, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in (
                "error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            assert page.locator("#verdict").inner_text().strip().lower() == "fail"
            assert page.locator("svg").count() == 2
            assert page.locator("#req-PDS-GET-001 .ev.fail mark").count() >= 1
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            pdf = page.pdf(path=str(tmp_path / "report.pdf"))  # printable
        finally:
            browser.close()
    assert problems == []
    assert requests == [page_file.as_uri()]  # self-contained: nothing else is fetched
    assert (tmp_path / "report.png").stat().st_size > 10_000 and pdf[:4] == b"%PDF"
