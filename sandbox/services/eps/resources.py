"""Reading the FHIR resources EPS messages carry: Bundle entries, Parameters, identifiers. Total over any JSON:
a field of the wrong type reads as absent (the checks say what is wrong with it)."""

from __future__ import annotations

from typing import Any

from sandbox.services.eps.context import (
    EVENTS,
    PRESCRIPTION_ID_SYSTEM,
    PROCESS_UNKNOWN,
    TASK_STATUSES,
    TASK_UNKNOWN,
)


def as_dict(value: Any) -> dict:
    """The value when it is a JSON object, else an empty one (a field of the wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def entries(bundle: Any, resource_type: str | None = None) -> list[dict]:
    """The resources of a Bundle's entries (of one type)."""
    items = bundle.get("entry") if isinstance(bundle, dict) else None
    found = [entry.get("resource") for entry in items if isinstance(entry, dict)] if isinstance(items, list) else []
    return [resource for resource in found if isinstance(resource, dict)
            and (resource_type is None or resource.get("resourceType") == resource_type)]


def first(bundle: Any, resource_type: str) -> dict | None:
    found = entries(bundle, resource_type)
    return found[0] if found else None


def event_code(body: Any) -> str | None:
    """MessageHeader.eventCoding.code of a message Bundle."""
    header = first(body, "MessageHeader")
    coding = header.get("eventCoding") if header else None
    code = coding.get("code") if isinstance(coding, dict) else None
    return code if isinstance(code, str) else None


def message_operation(body: Any) -> str:
    """The operation a $process-message Bundle asks for, named by its MessageHeader's event."""
    return EVENTS.get(event_code(body) or "", PROCESS_UNKNOWN)


def task_operation(body: Any) -> str:
    """The operation a POSTed Task asks for, named by its status (rejected: return; in-progress: withdraw)."""
    status = body.get("status") if isinstance(body, dict) else None
    return TASK_STATUSES.get(status if isinstance(status, str) else "", TASK_UNKNOWN)


def identifier_value(identifiers: Any, system: str) -> str | None:
    """The value of the identifier (one, or a list) with this system."""
    for item in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(item, dict) and item.get("system") == system and isinstance(item.get("value"), str):
            return item["value"]
    return None


def parameter(parameters: Any, name: str) -> dict | None:
    """A Parameters resource's parameter of this name."""
    items = parameters.get("parameter") if isinstance(parameters, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def find_identifier(value: Any, system: str) -> str | None:
    """The first identifier of this system anywhere in a resource, depth first (bodies are at most 64 levels deep:
    conformance.parsing bounds them)."""
    if isinstance(value, dict):
        if value.get("system") == system and isinstance(value.get("value"), str):
            return value["value"]
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = find_identifier(child, system)
        if found is not None:
            return found
    return None


def prescription_id(body: Any) -> str | None:
    """The short-form prescription id a message is about, wherever its kind carries it (MedicationRequest
    groupIdentifier, the release's group-identifier, a Task's groupIdentifier, a Claim's prescription extension)."""
    return find_identifier(body, PRESCRIPTION_ID_SYSTEM)
