"""The SDS query string, read as the SDS API reads it: every name and value in order, blanks kept, values
form-decoded; then each wanted value taken from its system-prefixed token (`<system>|<value>`, the last one wins)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SVC_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PK_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"

# parameter -> the system prefixes its values must start with
DEVICE_PARAMETERS = {"organization": (ODS_SYSTEM,), "identifier": (SVC_SYSTEM, PK_SYSTEM),
                     "manufacturing-organization": (ODS_SYSTEM,)}
ENDPOINT_PARAMETERS = {"organization": (ODS_SYSTEM,), "identifier": (SVC_SYSTEM, PK_SYSTEM)}


@dataclass(frozen=True)
class Value:
    text: str  # decoded (invalid UTF-8 bytes replaced, so it can be shown)
    valid_utf8: bool = True


@dataclass(frozen=True)
class Query:
    """Parameters in the order of their first appearance, each with all its values in order."""

    parameters: dict[str, list[Value]]

    def values(self, name: str) -> list[str]:
        return [v.text for v in self.parameters.get(name, [])]

    def token(self, name: str, system: str) -> str | None:
        """The wanted value: of the values (trimmed) that are `<system>|<something>`, the last one's something."""
        return token_of(self.values(name), system)


def token_of(values: list[str], system: str) -> str | None:
    found = None
    for value in values:
        head, bar, rest = value.strip().partition("|")
        if bar and head == system and rest.strip():
            found = rest
    return found


def parse(raw: bytes) -> Query:
    """Split on '&' and the first '=', '+' as space, percent-decoding; a name that is not UTF-8 is read as Latin-1."""
    parameters: dict[str, list[Value]] = {}
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name_raw, _, value_raw = piece.partition(b"=")
        name_bytes = unquote_to_bytes(name_raw.replace(b"+", b" "))
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            name = name_bytes.decode("latin-1")
        value_bytes = unquote_to_bytes(value_raw.replace(b"+", b" "))
        try:
            value = Value(value_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            value = Value(value_bytes.decode("utf-8", errors="replace"), valid_utf8=False)
        parameters.setdefault(name, []).append(value)
    return Query(parameters)
