"""GET /Patient: the published sandbox's scripted answers, or a live-like search of population and session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sandbox.conformance.findings import Finding
from sandbox.services.pds import published_search
from sandbox.services.pds.bundles import no_example_response, patient_entry, searchset, too_many_matches
from sandbox.services.pds.matching import Match, folded, ranked, score, search_population, subject_of_resource
from sandbox.services.pds.records import PatientRecords, for_search
from sandbox.services.pds.search_params import SearchQuery
from sandbox.synthetic.fhir import patient_resource

REQ_HANDLING = "PDS-SRCH-013"


@dataclass(frozen=True)
class SearchAnswer:
    body: dict
    outcome: str  # "results", "too-many-matches", "no-example"
    matches: int

    def finding(self) -> Finding:
        """Evidence for the assessor judging how the supplier handles each kind of answer (PDS-SRCH-013)."""
        said = {"results": f"{self.matches} patient(s) returned: the user chooses, best score first",
                "too-many-matches": f"200 TOO_MANY_MATCHES ({self.matches} matches): the user must refine the search",
                "no-example": "200 warning: the published sandbox has no example response for these parameters"}
        return Finding.info(REQ_HANDLING, f"Answered {said[self.outcome]}.", "response")


def answer(records: PatientRecords, raw: dict[str, list[str]], q: SearchQuery) -> SearchAnswer:
    row = published_search.published_row(raw)
    if row is not None:
        return _published(row, q)
    own = records.session_patients()
    matches = find_matches(records, q, own)
    if q.exact:
        matches = [m for m in matches if m.score == 1.0]
    if len(matches) > q.max_results:
        return SearchAnswer(too_many_matches(), "too-many-matches", len(matches))
    population = records.sandbox.population
    entries = [patient_entry(for_search(own.get(m.nhs_number) or patient_resource(
        population.by_nhs_number(m.nhs_number))), m.score) for m in matches]
    return SearchAnswer(searchset(entries), "results", len(entries))


def _published(row: published_search.Row, q: SearchQuery) -> SearchAnswer:
    """The published sandbox's answer; as live, more patients than _max-results allows is TOO_MANY_MATCHES."""
    if row is published_search.NO_EXAMPLE_ROW:
        return SearchAnswer(no_example_response(published_search.NO_EXAMPLE), "no-example", 0)
    entries = published_search.entries(row)
    if row.too_many or len(entries) > q.max_results:
        return SearchAnswer(too_many_matches(), "too-many-matches", len(entries))
    return SearchAnswer(searchset(entries), "results", len(entries))


def find_matches(records: PatientRecords, q: SearchQuery, own: dict[str, dict]) -> list[Match]:
    """Ranked matches among the population and this session's own patients (their copies win)."""
    found = {m.nhs_number: m for m in search_population(records.sandbox.population, q, skip=set(own))}
    today, keys = date.today(), folded(q)
    for number, resource in own.items():
        value = score(subject_of_resource(resource, today), q, keys)
        if value is not None and value > found.get(number, Match(0.0, number)).score:
            found[number] = Match(value, number)
    return ranked(found.values())
