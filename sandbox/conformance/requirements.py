"""The requirement catalogue: stable ids, levels, a sentence a supplier understands, and the spec source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.conformance.findings import SANDBOX_DEFECT
from sandbox.conformance.schemas import read_yaml, validate_document

LEVELS = ("MUST", "SHOULD", "MAY")
VERIFICATION = ("automatic", "manual")

_CATALOGUE_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "level", "text", "source"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$"},
            "level": {"enum": list(LEVELS)},
            "text": {"type": "string", "minLength": 10},
            "source": {"type": "string", "minLength": 3},
            "verified": {"enum": list(VERIFICATION)},
            "area": {"type": "string"},
        },
    },
}


@dataclass(frozen=True)
class Requirement:
    id: str
    level: str
    text: str
    source: str
    verified: str = "automatic"
    area: str = ""
    service: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class CatalogueError(ValueError):
    pass


class RequirementCatalogue:
    def __init__(self, requirements: Iterable[Requirement] = ()):
        self._by_id: dict[str, Requirement] = {}
        for req in requirements:
            self.add(req)

    @classmethod
    def load(cls, path: Path, service: str) -> RequirementCatalogue:
        data = read_yaml(path, CatalogueError) or []
        problems = validate_document(_CATALOGUE_SCHEMA, data)
        if problems:
            raise CatalogueError(f"{path}: " + "; ".join(problems))
        return cls(Requirement(service=service, **item) for item in data)

    def add(self, req: Requirement) -> None:
        if req.id in self._by_id:
            raise CatalogueError(f"requirement {req.id} is defined twice")
        self._by_id[req.id] = req

    def merge(self, other: RequirementCatalogue) -> None:
        for req in other:
            self.add(req)

    def get(self, req_id: str) -> Requirement | None:
        return self._by_id.get(req_id)

    def __getitem__(self, req_id: str) -> Requirement:
        return self._by_id[req_id]

    def __contains__(self, req_id: str) -> bool:
        return req_id in self._by_id

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


# Requirements on the sandbox itself, shared by every service (the runtime's catalogue starts with them). Their
# findings never count against a supplier's own requirements; a report lists them among the other findings.
SANDBOX_REQUIREMENTS = (
    Requirement(SANDBOX_DEFECT, "MUST", "Every request is judged by all of its service's checks: when a check "
                "crashes, the sandbox refuses the request with the service's 500 (and journals it) rather than answer "
                "it unchecked. A failure here is a sandbox defect, not the supplier's.",
                "Spine Sandbox (issue 14, fail closed)", area="sandbox", service="sandbox"),
)
