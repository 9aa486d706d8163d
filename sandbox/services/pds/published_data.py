"""The published PDS sandbox's data: its patient table, search bundles and records, related people and coverage.

Our own transcription of what the NHS's published sandbox serves (published/*.yaml; BEHAVIOUR.md sections 2.4-2.6,
4.4-4.5, 5, 10 and 11 of the reference it was written from), read once. Every accessor returns a fresh copy, so a
caller may trim or stamp what it gets without touching the data.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import yaml

DATA = Path(__file__).with_name("published")


@functools.cache
def _document(name: str) -> dict:
    with open(DATA / f"{name}.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def _frozen(name: str, section: str, key: str) -> str | None:
    """One item as JSON text: decoding it is many times faster than a deep copy, and can never share state."""
    item = _document(name)[section].get(key)
    return None if item is None else json.dumps(item)


def _fresh(name: str, section: str, key: str):
    text = _frozen(name, section, key)
    return None if text is None else json.loads(text)


def patient_numbers() -> tuple[str, ...]:
    """The NHS numbers of the published patient table (retrieval answers 200 for these and 404 for any other)."""
    return tuple(_document("patients")["patients"])


def patient(number: str) -> dict | None:
    """The record GET /Patient/{number} answers, or None when the number is not in the table."""
    return _fresh("patients", "patients", number)


def search_record(number: str) -> dict:
    """The Patient resource a published search returns for this NHS number."""
    record = _fresh("search", "records", number)
    if record is None:
        raise KeyError(f"no published search record for {number}")
    return record


def bundle_entries(name: str) -> list[dict]:
    """A published search bundle's entries, in order: fullUrl, search score and the record."""
    entries = _fresh("search", "bundles", name)
    if entries is None:
        raise KeyError(f"no published search bundle {name!r}")
    return [{"fullUrl": e["fullUrl"], "search": {"score": e["score"]}, "resource": search_record(e["patient"])}
            for e in entries]


def bundle_names() -> tuple[str, ...]:
    return tuple(_document("search")["bundles"])


def related_entries(number: str) -> list[dict] | None:
    """The published related people of a patient (searchset entries), or None when it publishes none."""
    return _fresh("related", "related", number)


def coverage(number: str) -> dict | None:
    """{"version": ..., "cards": [entries]} for a patient whose coverage the published sandbox answers, else None."""
    return _fresh("coverage", "coverage", number)


def coverage_update() -> dict:
    """What the published sandbox answers every coverage update with: the version and the bundle timestamp."""
    return dict(_document("coverage")["updated"])
