"""The sandbox's own GP practice: the *sending* practice that holds every synthetic patient's record and answers
their GP2GP EHR requests. Its identity is sandbox-only (never a real practice) and must be in SDS for a supplier
to route to it: the sds part holds, for ODS PRACTICE_ODS,

- an accredited system (nhsAs): ASID PRACTICE_ASID, party key PRACTICE_PARTY_KEY, client ODS PRACTICE_ODS,
  manufacturer "Spine Sandbox", interactions = INTERACTIONS (each as urn:nhs:names:services:gp2gp:<id>);
- a routing record (nhsMhs) per interaction in INTERACTIONS: party key PRACTICE_PARTY_KEY, service
  urn:nhs:names:services:gp2gp, CPA id PRACTICE_CPA_ID, endpoint = the sandbox's own forward-reliable address
  (POST /reliablemessaging/intermediary), ack requested "always", duplicate elimination "always", sync reply mode
  "None", persist duration PT5M, retries 2, retry interval PT1M, actor urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH.
"""

from __future__ import annotations

PRACTICE_ODS = "X99901"  # GP practice shape (a letter, five digits); no NHS practice code starts "X99"
PRACTICE_PARTY_KEY = "X99901-9990001"
PRACTICE_ASID = "999000000201"
PRACTICE_CPA_ID = "S999000000201"
PRACTICE_NAME = "Spine Sandbox Sending Practice"
ODS_ROOT = "1.2.826.0.1285.0.1.10"  # AgentOrgSDS/agentOrganizationSDS/id: the ODS organisation code
# What a requesting practice sends to this practice, and what this practice sends back.
INTERACTIONS = ("RCMR_IN010000UK05", "RCMR_IN030000UK06", "COPC_IN000001UK01", "MCCI_IN010000UK13")


def answers_for(ods: str | None, registered_ods: str | None) -> bool:
    """This practice stands in for every synthetic practice: it answers a request addressed to itself, or to the
    practice PDS records for the patient."""
    return bool(ods) and ods.upper() in {PRACTICE_ODS, (registered_ods or "").upper()}
