"""A person in a few fields: what a supplier needs to pick a patient for a behaviour."""

from __future__ import annotations

from sandbox.synthetic.population import Person, Population

KIND_MEANING = {
    "standard": "an ordinary record",
    "restricted": "restricted (sensitive): address, telecom and GP are withheld",
    "deceased": "deceased: has a date of death and a formal death notification",
    "superseded": "superseded (merged): retrieval returns the superseding record",
    "invalidated": "invalidated: retrieval is refused with INVALIDATED_RESOURCE",
    "minimal": "minimal: very little data, as with poor data quality",
    "long-name": "very long names (several long given names, a multi-part family name)",
    "multi-address": "several current addresses (home, temporary, billing)",
    "no-gp": "no registered GP practice",
}


def person_summary(person: Person, population: Population) -> dict:
    home = person.home
    out = {
        "nhs_number": person.nhs_number,
        "index": person.index,
        "kind": person.kind,
        "name": " ".join((*person.given, person.family)),
        "family": person.family,
        "given": list(person.given),
        "gender": person.gender,
        "birth_date": person.birth_date.isoformat(),
        "postcode": home.postcode if home else None,
        "gp": person.gp,
    }
    if person.death:
        out["death_date"] = person.death.date().isoformat()
    if person.superseded_by is not None:
        out["superseded_by"] = population.person(person.superseded_by).nhs_number
    return out
