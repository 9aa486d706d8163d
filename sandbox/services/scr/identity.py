"""Who answers for the Summary Care Record: Spine itself (its ASID is the sender of every SCR answer)."""

from __future__ import annotations

import uuid

# The contract's fact (sandbox.services.sds.directory.SPINE_ASID), used when the directory module is not there.
_SPINE_ASID = "928942012545"


def spine_asid() -> str:
    try:
        from sandbox.services.sds.directory import SPINE_ASID
    except ImportError:  # the sds part not installed: the same value, from the contract
        return _SPINE_ASID
    return SPINE_ASID


def new_id() -> str:
    """A message or document id as Spine writes them: an upper-case UUID."""
    return str(uuid.uuid4()).upper()
