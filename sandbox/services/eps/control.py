"""STUB (helper E replaces): control endpoints under /_sandbox/eps/."""

from flask import Blueprint

control = Blueprint("eps-control", __name__)
