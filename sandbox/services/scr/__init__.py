"""Summary Care Record over Spine core messaging: the GP summary upload (REPC_IN150016UK05) and the event list
query (QUPC_IN160101UK05, answered with QUPC_IN160102UK05). No HTTP routes of its own: the spine service
dispatches these interactions here (Service.hl7v3)."""

from pathlib import Path

from flask import Blueprint

from sandbox.conformance.checks import CheckSet
from sandbox.services import Service
from sandbox.services.scr.control import control
from sandbox.services.scr.errors import render_error
from sandbox.services.scr.query import handle_query
from sandbox.services.scr.upload import handle_upload

SERVICE = Service(
    name="scr",
    title="Summary Care Record (HL7v3 over Spine core messaging)",
    base_paths=(),
    blueprint=Blueprint("scr", __name__),
    operations={
        "REPC_IN150016UK05": "async reliable POST /reliablemessaging/reliablerequest (GP summary upload)",
        "QUPC_IN160101UK05": "async express POST /reliablemessaging/queryrequest (SCR event list query)",
    },
    checks=CheckSet("scr"),
    render_error=render_error,
    package_dir=Path(__file__).parent,
    specification={"Summary Care Record (HL7v3)": "MIM REPC_IN150016UK05, QUPC_IN160101UK05/QUPC_IN160102UK05"},
    control=control,
    hl7v3={"REPC_IN150016UK05": handle_upload, "QUPC_IN160101UK05": handle_query},
)
