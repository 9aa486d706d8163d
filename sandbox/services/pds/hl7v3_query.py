"""The query parameters of PDS's HL7v3 queries, read and judged: every problem at once, each with its XPath.

Retrieval (QUPA_IN040000UK32, QUPA_IN000008UK02/UK05): historicDataIndicator, person.id, retrievalItem.
Simple trace (QUPA_IN000005UK01) and advanced trace (QUPA_IN000006UK02): name, gender, date of birth, optional
date of death and address (postcode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from lxml import etree

from sandbox.conformance.findings import Finding
from sandbox.conformance.parsing import is_ascii_digits
from sandbox.services.pds.hl7v3_patient import GENDER_FROM_HL7, HL7, NHS_NUMBER_ROOT
from sandbox.services.pds.search_params import DateRange, SearchQuery
from sandbox.synthetic.identifiers import is_valid_nhs_number

REQ_QUERY = "PDS-HL7-001"  # the ControlActEvent carries the query
REQ_NHS_NUMBER = "PDS-HL7-002"  # person.id: root and a valid NHS number
REQ_HISTORY = "PDS-HL7-003"  # historicDataIndicator 0 or 1 in its code system
REQ_SEMANTICS = "PDS-HL7-004"  # each parameter names itself (semanticsText)
REQ_TRACE = "PDS-HL7-010"  # trace parameters: name, gender, birth date
REQ_TRACE_DATES = "PDS-HL7-011"  # trace dates are HL7 dates that exist
HISTORY_SYSTEM = "2.16.840.1.113883.2.1.3.2.4.17.36"
NS = {"hl7": HL7}


@dataclass
class Judgement:
    """Findings about one message, failures and passes, in the order they were made."""

    findings: list[Finding] = field(default_factory=list)
    failed_requirements: set[str] = field(default_factory=set)
    warned: set[str] = field(default_factory=set)

    def fail(self, requirement: str, message: str, where: str) -> None:
        self.findings.append(Finding.failed(requirement, message, where))
        self.failed_requirements.add(requirement)

    def passed(self, requirement: str, message: str, where: str) -> None:
        already = any(f.requirement == requirement and str(f.outcome) == "pass" for f in self.findings)
        if requirement not in self.failed_requirements | self.warned and not already:
            self.findings.append(Finding.passed(requirement, message, where))

    def warn(self, requirement: str, message: str, where: str) -> None:
        """A SHOULD not met: recorded, and the message is still answered."""
        self.findings.append(Finding.warning(requirement, message, where))
        self.failed_requirements.discard(requirement)
        self.warned.add(requirement)

    @property
    def ok(self) -> bool:
        return not self.failed_requirements


def query_element(root: etree._Element) -> tuple[etree._Element | None, str]:
    """The ControlActEvent/query element and its XPath."""
    name = etree.QName(root).localname
    where = f"/hl7:{name}/hl7:ControlActEvent/hl7:query"
    found = root.find("hl7:ControlActEvent/hl7:query", NS)
    return found, where


def parameter(query: etree._Element, name: str, where: str, j: Judgement) -> tuple[etree._Element | None, str]:
    """One query parameter's value element (and its XPath), with a finding when its semanticsText is missing."""
    param = query.find(f"hl7:{name}", NS)
    path = f"{where}/hl7:{name}"
    if param is None:
        return None, path
    if param.find("hl7:semanticsText", NS) is None or not (param.findtext("hl7:semanticsText", "", NS)).strip():
        j.warn(REQ_SEMANTICS, f"{name} has no semanticsText naming the parameter (expected "
                              f"<semanticsText>{name}</semanticsText>).", f"{path}/hl7:semanticsText")
    return param.find("hl7:value", NS), f"{path}/hl7:value"


def retrieval_query(root: etree._Element) -> tuple[str | None, bool, Judgement]:
    """(the NHS number asked for, whether history was asked for, the judgement) of a retrieval query."""
    j = Judgement()
    query, where = query_element(root)
    if query is None:
        j.fail(REQ_QUERY, "The message has no ControlActEvent/query: a PDS retrieval names the patient in "
                          "query/person.id.", where)
        return None, False, j
    j.passed(REQ_QUERY, "The ControlActEvent carries the query.", where)
    history = _history(query, where, j)
    value, path = parameter(query, "person.id", where, j)
    number = _nhs_number(value, path, j)
    _named(j, where)
    return number, history, j


def _named(j: Judgement, where: str) -> None:
    if REQ_SEMANTICS not in j.warned:
        j.passed(REQ_SEMANTICS, "Every query parameter names itself in semanticsText.", where)


def _history(query: etree._Element, where: str, j: Judgement) -> bool:
    value, path = parameter(query, "historicDataIndicator", where, j)
    if value is None:
        j.fail(REQ_HISTORY, "historicDataIndicator is missing: expected <value code=\"0\" (current data only) or "
                            f"\"1\" (with history) codeSystem=\"{HISTORY_SYSTEM}\"/>.", path)
        return False
    code, system = value.get("code"), value.get("codeSystem")
    problems = []
    if code not in ("0", "1"):
        problems.append(f"code {code!r} is not 0 (current data only) or 1 (with history)")
    if system != HISTORY_SYSTEM:
        problems.append(f"codeSystem {system!r} is not {HISTORY_SYSTEM}")
    if problems:
        j.fail(REQ_HISTORY, f"historicDataIndicator: {'; '.join(problems)}.", path)
    else:
        j.passed(REQ_HISTORY, f"historicDataIndicator is {code}.", path)
    return code == "1"


def _nhs_number(value: etree._Element | None, path: str, j: Judgement) -> str | None:
    if value is None:
        j.fail(REQ_NHS_NUMBER, "person.id is missing: expected <value root=\"2.16.840.1.113883.2.1.4.1\" "
                               "extension=\"<NHS number>\"/>.", path)
        return None
    number, root = (value.get("extension") or "").strip(), value.get("root")
    problems = []
    if root != NHS_NUMBER_ROOT:
        problems.append(f"root is {root!r}, expected {NHS_NUMBER_ROOT} (the NHS number)")
    if not number:
        problems.append("extension (the NHS number) is missing")
    elif not is_valid_nhs_number(number):
        problems.append(f"extension {number!r} is not ten digits with a valid Modulus 11 check digit")
    if problems:
        j.fail(REQ_NHS_NUMBER, f"person.id: {'; '.join(problems)}.", path)
        return number if number and is_valid_nhs_number(number) else None
    j.passed(REQ_NHS_NUMBER, f"person.id is the valid NHS number {number}.", path)
    return number


# --- traces -------------------------------------------------------------------------------------------------------
def trace_query(root: etree._Element) -> tuple[SearchQuery | None, Judgement]:
    """The demographic search a trace asks for, as the FHIR search sees it (same matching, same patients)."""
    j = Judgement()
    query, where = query_element(root)
    if query is None:
        j.fail(REQ_QUERY, "The message has no ControlActEvent/query: a PDS trace sends person.name, "
                          "person.administrativeGenderCode and person.birthTime.", where)
        return None, j
    j.passed(REQ_QUERY, "The ControlActEvent carries the query.", where)
    family, given = _trace_name(query, where, j)
    gender = _trace_gender(query, where, j)
    birth = _trace_date(query, "person.birthTime", where, j, required=root.tag.endswith("QUPA_IN000005UK01"))
    death = _trace_date(query, "person.deceasedTime", where, j, required=False)
    postcode = None
    value, path = parameter(query, "person.address", where, j)
    if value is not None:
        postcode = (value.findtext("hl7:postalCode", "", NS) or "").strip() or None
    _named(j, where)
    if not j.ok or family is None:
        return None, j
    j.passed(REQ_TRACE, "The trace names the patient (family name), the gender and the date of birth.", where)
    return SearchQuery(family=family, given=given, gender=gender, birthdate=birth, death=death,
                       postcode=postcode), j


def _trace_name(query: etree._Element, where: str, j: Judgement) -> tuple[str | None, tuple[str, ...]]:
    value, path = parameter(query, "person.name", where, j)
    family = (value.findtext("hl7:family", "", NS) or "").strip() if value is not None else ""
    if not family:
        j.fail(REQ_TRACE, "person.name has no family name: a trace needs <value><family>…</family></value>.", path)
        return None, ()
    given = tuple(g.text.strip() for g in value.findall("hl7:given", NS) if g.text and g.text.strip())
    return family, given


def _trace_gender(query: etree._Element, where: str, j: Judgement) -> str | None:
    value, path = parameter(query, "person.administrativeGenderCode", where, j)
    code = value.get("code") if value is not None else None
    if code is None:
        j.fail(REQ_TRACE, "person.administrativeGenderCode is missing: expected <value code=\"0|1|2|9\"/>.", path)
        return None
    if code not in GENDER_FROM_HL7:
        j.fail(REQ_TRACE, f"person.administrativeGenderCode {code!r} is not a Sex code (0 not known, 1 male, "
                          "2 female, 9 not specified).", f"{path}/@code")
        return None
    return GENDER_FROM_HL7[code]


def _trace_date(query: etree._Element, name: str, where: str, j: Judgement, required: bool) -> DateRange | None:
    value, path = parameter(query, name, where, j)
    if value is None:
        if required:
            j.fail(REQ_TRACE, f"{name} is missing: expected <value value=\"YYYYMMDD\"/>.", path)
        return None
    low = value.find("hl7:low", NS)  # the advanced trace sends an interval
    high = value.find("hl7:high", NS)
    if low is not None or high is not None:
        start = hl7_day(low.get("value") if low is not None else None, f"{path}/hl7:low/@value", name, j)
        end = hl7_day(high.get("value") if high is not None else None, f"{path}/hl7:high/@value", name, j)
        return DateRange(start[0] if start else None, end[1] if end else None)
    found = hl7_day(value.get("value"), f"{path}/@value", name, j)
    return DateRange(*found) if found else None


def hl7_day(text: str | None, where: str, name: str, j: Judgement) -> tuple[date, date] | None:
    """An HL7 date of 4, 6 or 8 digits (optionally with a time) as the days it covers; a finding when invalid."""
    digits = (text or "").strip()[:8]
    try:
        if len(digits) == 8 and is_ascii_digits(digits):
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
            j.passed(REQ_TRACE_DATES, f"{name} is a valid HL7 date.", where)
            return day, day
        if len(digits) == 6 and is_ascii_digits(digits):
            start = date(int(digits[:4]), int(digits[4:6]), 1)
            end = date(start.year + start.month // 12, start.month % 12 + 1, 1).toordinal() - 1
            return start, date.fromordinal(end)
        if len(digits) == 4 and is_ascii_digits(digits):
            return date(int(digits), 1, 1), date(int(digits), 12, 31)
    except ValueError:
        pass
    j.fail(REQ_TRACE_DATES, f"{name} value {text!r} is not an HL7 date (YYYY, YYYYMM or YYYYMMDD, a day that "
                            "exists).", where)
    return None
