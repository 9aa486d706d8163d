"""What every part of the EPS service shares: the operations with their live paths and the APIs that serve them,
one request as the answering code sees it (`EpsCall`), what a handler answers (`Answer`), the HL7v3 message an
accepted request becomes (`Translation`), and the code systems, statuses and roles the modules speak of.

A request is answered in this order (routes.py): the checks (checks.py) refuse what live EPS refuses at its front
door; a request equal to a specification example about a prescription the session does not hold gets the example's
paired answer (published.py); everything else is answered by the session's prescriptions (prescribing.py,
dispensing.py, tracker.py) or by the stateless operations ($prepare digests, $verify-signature, $convert)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.messaging import Problem
    from sandbox.web.access import Access

# The three APIs EPS is published as, each at its own base path: the original API (every operation), and the newer
# prescribing and dispensing APIs that replace it (their own operations only).
LEGACY = "electronic-prescriptions"
PRESCRIBING = "fhir-prescribing"
DISPENSING = "fhir-dispensing"
APIS = (LEGACY, PRESCRIBING, DISPENSING)  # in the order of SERVICE.base_paths (blueprints eps, eps1, eps2)
BASE_PATHS = tuple(f"/{api}" for api in APIS)

# Operation ids: the specification's operationIds where it has one.
PREPARE = "prepare-prescription"
ORDER = "send-prescription-order-message"
CANCEL = "send-prescription-order-update-message"
DISPENSE = "send-dispense-notification-message"
PROCESS_UNKNOWN = "process-message"  # $process-message whose MessageHeader names no event EPS takes
RELEASE = "release"
RETURN = "return"
WITHDRAW = "withdraw"
TASK_UNKNOWN = "task"  # POST Task whose status is neither rejected (return) nor in-progress (withdraw)
CLAIM = "send-dispense-claim-message"
VERIFY = "verify-signature"
CONVERT = "convert"
VALIDATE = "validate"
TRACKER = "tracker"  # GET Task?focus:identifier=… / ?identifier=…: the prescription tracker
METADATA = "metadata"
PING = "ping"
STATUS = "status"
HL7V3 = "hl7v3-translation"  # the derived exchange: the HL7v3 message Spine would have received


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str  # below the base path, as the specification writes it (the '#fragment' distinguishes, never sent)
    apis: tuple[str, ...]  # which of the three APIs serve it

    @property
    def route(self) -> str:
        return self.path.split("#")[0]


_BOTH = (LEGACY, PRESCRIBING, DISPENSING)
_PRESCRIBING = (LEGACY, PRESCRIBING)
_DISPENSING = (LEGACY, DISPENSING)

OPERATIONS: dict[str, Operation] = {op.id: op for op in (
    Operation(PREPARE, "POST", "/FHIR/R4/$prepare", _PRESCRIBING),
    Operation(ORDER, "POST", "/FHIR/R4/$process-message#prescription-order", _PRESCRIBING),
    Operation(CANCEL, "POST", "/FHIR/R4/$process-message#prescription-order-update", _PRESCRIBING),
    Operation(DISPENSE, "POST", "/FHIR/R4/$process-message#dispense-notification", _DISPENSING),
    Operation(PROCESS_UNKNOWN, "POST", "/FHIR/R4/$process-message", _BOTH),
    Operation(RELEASE, "POST", "/FHIR/R4/Task/$release", _DISPENSING),
    Operation(RETURN, "POST", "/FHIR/R4/Task#return", _DISPENSING),
    Operation(WITHDRAW, "POST", "/FHIR/R4/Task#withdraw", _DISPENSING),
    Operation(TASK_UNKNOWN, "POST", "/FHIR/R4/Task", _DISPENSING),
    Operation(CLAIM, "POST", "/FHIR/R4/Claim", _DISPENSING),
    Operation(TRACKER, "GET", "/FHIR/R4/Task", _DISPENSING),
    Operation(VERIFY, "POST", "/FHIR/R4/$verify-signature", _BOTH),
    Operation(CONVERT, "POST", "/FHIR/R4/$convert", _BOTH),
    Operation(VALIDATE, "POST", "/FHIR/R4/$validate", _BOTH),
    Operation(METADATA, "GET", "/metadata", _BOTH),
    Operation(PING, "GET", "/_ping", _BOTH),
    Operation(STATUS, "GET", "/_status", _BOTH),
)}

# $process-message event codes (MessageHeader.eventCoding.code) -> operation; Task.status -> operation.
EVENTS = {"prescription-order": ORDER, "prescription-order-update": CANCEL, "dispense-notification": DISPENSE}
TASK_STATUSES = {"rejected": RETURN, "in-progress": WITHDRAW}
# Messages that change a prescription: each is translated to HL7v3 when accepted.
MESSAGES = (ORDER, CANCEL, RELEASE, DISPENSE, CLAIM, RETURN, WITHDRAW)

# Request headers live EPS reads (the specification's components/parameters).
REQUEST_ID = "X-Request-ID"
CORRELATION_ID = "X-Correlation-ID"
ROLE_ID = "NHSD-Session-URID"

# Identifier and code systems.
PRESCRIPTION_ID_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-number"  # short form, e.g. 24F5DA-A83008-7EFE6Z
PRESCRIPTION_UUID_SYSTEM = "https://fhir.nhs.uk/Id/prescription"  # long form (a UUID), Extension-DM-PrescriptionId
ITEM_ID_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-item-number"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
USER_ID_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
ROLE_PROFILE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-profile-id"
UUID_SYSTEM = "https://tools.ietf.org/html/rfc4122"
SPINE_CODES = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"
EPS_ISSUE_CODES = "https://fhir.nhs.uk/CodeSystem/EPS-IssueCode"
STATUS_HISTORY = "https://fhir.nhs.uk/CodeSystem/medicationrequest-status-history"  # R-0001 … R-5888
BUSINESS_STATUS_SYSTEM = "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status"
MESSAGE_EVENT_SYSTEM = "https://fhir.nhs.uk/CodeSystem/message-event"

# A prescription's business status (EPS-task-business-status): the state machine prescriptions.py keeps.
TO_BE_DISPENSED = "0001"
WITH_DISPENSER = "0002"
WITH_DISPENSER_ACTIVE = "0003"
EXPIRED = "0004"
CANCELLED = "0005"
DISPENSED = "0006"
NOT_DISPENSED = "0007"
CLAIMED = "0008"
NO_CLAIMED = "0009"
REPEAT_FUTURE = "9000"
FUTURE = "9001"
CANCELLED_FUTURE = "9005"
BUSINESS_STATUS = {
    TO_BE_DISPENSED: "To be Dispensed", WITH_DISPENSER: "With Dispenser",
    WITH_DISPENSER_ACTIVE: "With Dispenser - Active", EXPIRED: "Expired", CANCELLED: "Cancelled",
    DISPENSED: "Dispensed", NOT_DISPENSED: "Not Dispensed", CLAIMED: "Claimed", NO_CLAIMED: "No-Claimed",
    REPEAT_FUTURE: "Repeat Dispense future instance", FUTURE: "Prescription future instance",
    CANCELLED_FUTURE: "Cancelled future instance",
}

# National RBAC role codes (the last part of a CIS2 role code such as S8000:G8000:R8000) that may use each side of
# EPS. The specification asks for user-restricted CIS2 access at AAL3 and names no role list; the sandbox models
# the national RBAC baseline: prescribers are clinical practitioners, nurses and other health professionals, and
# dispensing is done by health professionals (pharmacists) and clinical support staff (pharmacy technicians).
PRESCRIBING_ROLES = ("R8000", "R8001", "R8003")
DISPENSING_ROLES = ("R8003", "R8008")


@dataclass
class EpsCall:
    """One request as the answering code sees it."""

    operation: str  # an id of OPERATIONS, resolved (for $process-message and POST Task) from the body
    session: str
    api: str  # LEGACY, PRESCRIBING or DISPENSING: the base path it came in on
    headers: dict[str, str]  # names lower-cased
    query: dict[str, list[str]]
    body: Any  # the parsed JSON body, or None
    raw: bytes
    access: Access | None = None  # who it acts for (sandbox.web.access), from its bearer token
    example: Any = None  # the specification example it equals (published.Example), if any

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def request_id(self) -> str | None:
        return self.header(REQUEST_ID)


@dataclass
class Translation:
    """The HL7v3 message an accepted request becomes, as live EPS sends it to Spine (translation/)."""

    interaction: str  # as live names it, e.g. PORX_IN020101SM31
    schema: str | None  # the official schema it is validated against (e.g. PORX_IN020101UK31), None: none exists
    xml: bytes
    problems: list[Problem] = field(default_factory=list)  # schema or structure problems; empty when valid


@dataclass
class Answer:
    """What a handler answers; routes.respond makes it the HTTP response."""

    status: int
    body: Any  # a JSON-able resource, or bytes (with content_type)
    content_type: str = "application/fhir+json"
    headers: dict[str, str] = field(default_factory=dict)
    translation: Translation | None = None  # journaled beside the exchange when the answer is a success
    published: str | None = None  # the specification example answered, for X-Sandbox-Published
