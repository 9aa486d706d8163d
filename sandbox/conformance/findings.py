"""A finding is one outcome for one requirement on one exchange; a SpineError is how live Spine refuses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class SpineError(Exception):
    """The error live Spine gives: the service renders it in its own body shape (OperationOutcome, MESH, OAuth)."""

    status: int
    code: str
    diagnostics: str = ""
    display: str = ""
    issue_code: str = "invalid"  # FHIR issue type, where the service speaks FHIR
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.diagnostics}"


@dataclass(frozen=True)
class Finding:
    requirement: str
    outcome: Outcome
    message: str
    location: str = ""  # header name, query parameter, JSON pointer or XPath
    # When live Spine would refuse the message, how it refuses; the first one in check order is answered.
    reject: SpineError | None = field(default=None, compare=False)

    @classmethod
    def passed(cls, requirement: str, message: str, location: str = "") -> Finding:
        return cls(requirement, Outcome.PASS, message, location)

    @classmethod
    def failed(cls, requirement: str, message: str, location: str = "", reject: SpineError | None = None) -> Finding:
        return cls(requirement, Outcome.FAIL, message, location, reject)

    @classmethod
    def warning(cls, requirement: str, message: str, location: str = "") -> Finding:
        return cls(requirement, Outcome.WARNING, message, location)

    @classmethod
    def info(cls, requirement: str, message: str, location: str = "") -> Finding:
        return cls(requirement, Outcome.INFO, message, location)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        data.pop("reject")
        if self.reject is not None:
            data["rejected_with"] = {"status": self.reject.status, "code": self.reject.code}
        return data


# The requirement of the finding a crashed check leaves: the request is refused (fail closed), not let through
# unchecked. Declared once for every service in conformance/requirements.py (SANDBOX_REQUIREMENTS).
SANDBOX_DEFECT = "sandbox-defect"


def defect(kind: str, name: str, exc: BaseException) -> Finding:
    """The finding for a check of `kind` ("check", "behavioural check") named `name` that raised `exc`: it fails,
    and it carries a 500 the pipeline answers in the service's own shape. Only the exception's type is shown (its
    text may hold what the supplier sent, or secrets)."""
    message = (f"The sandbox's {kind} {name} crashed ({type(exc).__name__}), so this request was refused rather "
               "than answered unchecked. This is a sandbox defect, not your error: please report it with this "
               "exchange id.")
    return Finding.failed(SANDBOX_DEFECT, message, f"check:{name}",
                          reject=SpineError(500, "INTERNAL_SERVER_ERROR", message))


def is_defect(finding: Finding) -> bool:
    return finding.requirement == SANDBOX_DEFECT and finding.outcome == Outcome.FAIL


def summarise(findings) -> dict[str, int]:
    counts = dict.fromkeys(_OUTCOME_NAMES, 0)
    for f in findings:
        counts[f.outcome] += 1  # a StrEnum member finds its plain-string key
    return counts


_OUTCOME_NAMES = tuple(str(o) for o in Outcome)


def first_rejection(findings) -> SpineError | None:
    return next((f.reject for f in findings if f.reject is not None), None)


class Refusal(Exception):
    """Raised by a claim or write deferred to the end of the request when the request turns out to be one live Spine
    refuses after all (e.g. a single-use token that a concurrent request used first): the exchange is then answered
    with the finding's rejection instead, and none of its deferred writes are made."""

    def __init__(self, finding: Finding):
        super().__init__(str(finding.reject))
        self.finding = finding
