"""What every plan-certification test asks of a session: its failures, every manual requirement attested, and the
verdict of a well-behaved system (incomplete until attested, then pass, in the report too)."""

from __future__ import annotations


def attest_all(client, session: str) -> dict:
    """An assessor attests every requirement awaiting attestation as passed; the session's progress after."""
    progress = client.get(f"/_sandbox/sessions/{session}").get_json()
    for requirement in progress["awaiting_attestation"]:
        attested = client.post(f"/_sandbox/sessions/{session}/attestations", json={
            "requirement": requirement, "verdict": "pass", "by": "A. Assessor", "note": "Seen in the system's logs."})
        assert attested.status_code == 201, attested.get_data(as_text=True)
    return client.get(f"/_sandbox/sessions/{session}").get_json()


def failed(progress: dict) -> list[str]:
    return [r["id"] for r in progress["requirements"] if r["verdict"] == "fail"]


def assert_certified(client, session: str) -> None:
    """Every step exercised, every automatic requirement evidenced and passed; pass once the assessor attests."""
    progress = client.get(f"/_sandbox/sessions/{session}").get_json()
    assert failed(progress) == [], [r for r in progress["requirements"] if r["verdict"] == "fail"]
    assert [s["scenario"] for s in progress["steps"] if not s["exercised"]] == []
    assert progress["without_evidence"] == []
    assert progress["verdict"] == "incomplete" and progress["awaiting_attestation"], progress["reasons"]
    final = attest_all(client, session)
    assert final["verdict"] == "pass", final["reasons"]
    report = client.get(f"/_sandbox/sessions/{session}/report")
    assert report.status_code == 200 and report.get_json()["verdict"] == "pass"
