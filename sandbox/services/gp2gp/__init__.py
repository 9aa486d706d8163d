"""GP2GP over Spine core messaging: the sandbox plays the patient's *sending* practice for the synthetic
population — an EHR request (RCMR_IN010000UK05) is answered with the EHR extract (RCMR_IN030000UK06) and, for a
large record, COPC_IN000001UK01 fragments carrying the attachments; the requester's acknowledgement
(MCCI_IN010000UK13) is recorded. No HTTP routes of its own: the spine service dispatches here (Service.hl7v3)."""

from pathlib import Path

from flask import Blueprint

from sandbox.conformance.checks import CheckSet
from sandbox.services import Service
from sandbox.services.gp2gp.acknowledgement import handle_acknowledgement
from sandbox.services.gp2gp.control import control
from sandbox.services.gp2gp.ehr_request import handle_ehr_request
from sandbox.services.gp2gp.errors import render_error
from sandbox.services.gp2gp.practice import PARTY

SERVICE = Service(
    name="gp2gp",
    title="GP2GP (HL7v3 over Spine core messaging; the sandbox is the sending practice)",
    base_paths=(),
    blueprint=Blueprint("gp2gp", __name__),
    operations={
        "RCMR_IN010000UK05": "forward reliable POST /reliablemessaging/intermediary (EHR request)",
        "MCCI_IN010000UK13": "forward reliable POST /reliablemessaging/intermediary (acknowledgement of the extract)",
    },
    checks=CheckSet("gp2gp"),
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"GP2GP (HL7v3)": "MIM RCMR_IN010000UK05, RCMR_IN030000UK06, COPC_IN000001UK01, MCCI_IN010000UK13"},
    control=control,
    hl7v3={"RCMR_IN010000UK05": handle_ehr_request, "MCCI_IN010000UK13": handle_acknowledgement},
    parties=(PARTY,),
)
