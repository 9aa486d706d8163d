"""Spine core messaging: parse, build and validate MIME multipart/related, ebXML (ebMS 2.0 as Spine profiles it),
synchronous SOAP 1.1 + WS-Addressing and HL7v3. No Flask here: the spine service and the business services call in.

Every parser is total: a defect becomes a `Problem` (stable code, message, where), and `MessagingError` is raised
only when nothing useful can be parsed at all. Nothing else ever escapes a parser."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

# Spine's own identity in the directory: its ODS code, the party key of its MHS and its ASID.
SPINE_ODS = "YES"
SPINE_PARTY_KEY = "YES-0000806"
SPINE_ASID = "928942012545"



def new_id() -> str:
    """A message, conversation or document id as Spine writes them: an upper-case UUID."""
    return str(uuid.uuid4()).upper()


NS: dict[str, str] = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "eb": "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd",
    "hl7": "urn:hl7-org:v3",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "xlink": "http://www.w3.org/1999/xlink",
    "hl7ebxml": "urn:hl7-org:transport/ebXML/DSTUv1.0",
    "nasp": "http://national.carerecords.nhs.uk/schema/",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a message, with where it is: "MIME part 2", "header:Content-Type", an XPath."""

    code: str  # stable short code, e.g. "mime.no-boundary", "ebxml.missing", "hl7.asid"
    message: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class MessagingError(Exception):
    """Nothing useful could be parsed; `problems` holds every problem found, not only the first."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("messaging.unreadable", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems) or [Problem("messaging.unreadable", "the message is unreadable")]
        super().__init__("; ".join(str(p) for p in self.problems))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def total(parse: Callable[_P, _R]) -> Callable[_P, _R]:
    """A public parser's last line of defence: whatever slipped past its own checks becomes a MessagingError
    (code messaging.defect: the sandbox's fault, not the supplier's), never a traceback in a response."""
    @functools.wraps(parse)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return parse(*args, **kwargs)
        except MessagingError:
            raise
        except Exception as exc:  # noqa: BLE001 - totality is the contract
            raise MessagingError(Problem(
                "messaging.defect", f"the sandbox could not read this message ({type(exc).__name__}: {exc}); "
                "this is a defect in the sandbox, not necessarily in the message")) from exc
    return guarded


__all__ = ["NS", "MessagingError", "Problem", "total"]
