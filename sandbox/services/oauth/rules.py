"""An ordered chain of identity-service rules: every rule leaves a finding (pass, fail, or 'not checked'), and
the first failure in live order carries the answer the live service gives."""

from __future__ import annotations

from sandbox.conformance.findings import Finding
from sandbox.services.oauth.errors import INVALID_REQUEST, oauth_error


class RuleLog:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def passed(self, requirement: str, message: str, location: str = "") -> None:
        self.findings.append(Finding.passed(requirement, message, location))

    def failed(self, requirement: str, message: str, location: str, status: int, description: str,
               error: str = INVALID_REQUEST, **headers: str) -> None:
        """`description` is the live error_description; `message` adds what was expected and seen."""
        self.findings.append(Finding.failed(requirement, f"{message} Live answers {status} {error}: "
                                            f"{description!r}.", location,
                                            reject=oauth_error(status, description, error, **headers)))

    def warning(self, requirement: str, message: str, location: str = "") -> None:
        self.findings.append(Finding.warning(requirement, message, location))

    def skipped(self, requirements: tuple[str, ...] | str, why: str) -> None:
        for requirement in (requirements,) if isinstance(requirements, str) else requirements:
            self.findings.append(Finding.info(requirement, f"Not checked: {why}."))

    def check(self, requirement: str, ok: bool, passed: str, failed: str, location: str, status: int,
              description: str, error: str = INVALID_REQUEST) -> bool:
        if ok:
            self.passed(requirement, passed, location)
        else:
            self.failed(requirement, failed, location, status, description, error)
        return ok

    @property
    def rejected(self) -> bool:
        return any(f.reject is not None for f in self.findings)


def shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
