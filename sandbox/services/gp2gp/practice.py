"""The sandbox's own GP practice: the *sending* practice that holds every synthetic patient's record and answers
their GP2GP EHR requests. Its identity is sandbox-only (never a real practice); SERVICE.parties puts it in SDS, so a
supplier routes to it as to any practice.
"""

from __future__ import annotations

from sandbox.messaging.business import PlayedParty

PRACTICE_ODS = "X99901"  # GP practice shape (a letter, five digits); no NHS practice code starts "X99"
PRACTICE_PARTY_KEY = "X99901-9990001"
PRACTICE_ASID = "999000000201"
PRACTICE_CPA_ID = "S999000000201"
PRACTICE_NAME = "Spine Sandbox Sending Practice"
ODS_ROOT = "1.2.826.0.1285.0.1.10"  # AgentOrgSDS/agentOrganizationSDS/id: the ODS organisation code
# What a requesting practice sends to this practice, and what this practice sends back.
INTERACTIONS = ("RCMR_IN010000UK05", "RCMR_IN030000UK06", "COPC_IN000001UK01", "MCCI_IN010000UK13")
PARTY = PlayedParty(ods=PRACTICE_ODS, asid=PRACTICE_ASID, party_key=PRACTICE_PARTY_KEY, cpa_id=PRACTICE_CPA_ID,
                    service="urn:nhs:names:services:gp2gp", interactions=INTERACTIONS)


def answers_for(ods: str | None, registered_ods: str | None) -> bool:
    """This practice stands in for every synthetic practice: it answers a request addressed to itself, or to the
    practice PDS records for the patient."""
    return bool(ods) and ods.upper() in {PRACTICE_ODS, (registered_ods or "").upper()}
