"""Files a session uploads to the e-RS document store, and how they come back.

A020 (`POST /STU3/Binary`) keeps the bytes as a session blob and answers 201 `Location: Binary/<uuid>`; A006
(`GET /STU3/Binary/<id>`) sends them back; A042 (`GET /R4/Binary/<id>`) answers 307 to `<base>/ObjectStore/<id>`,
where the object store route (`object_store`) serves them with the uploaded name in an RFC 5987
Content-Disposition. A012 (maintain referral letter) links uploaded files to a session referral as DocumentReferences;
A044, A026 and A027 (advice.py) link them to advice and guidance through `linked_document`.

Live e-RS scans every upload before it can be downloaded; this sandbox makes a file available at once, unless its
extension does not fit its content type, which live e-RS marks VALIDATION_FAILED (so does the sandbox: downloads are
refused with 422 VALIDATION_FAILED and DocumentReferences show that availability)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import has_request_context, request

from sandbox.conformance.findings import Finding, SpineError
from sandbox.runtime import current_sandbox
from sandbox.services.ers import errors
from sandbox.services.ers.context import (
    BASE_PATH,
    FILE_NAME,
    REFERRAL_ID,
    SANDBOX_BASE_URL,
    Answer,
    ErsCall,
)
from sandbox.web.pipeline import ExchangeContext

NAMESPACE = "ers.attachment"  # session state: attachment id -> what was uploaded (the bytes are a blob)
BLOB_PREFIX = "ers.attachment/"
DOCUMENT_COUNTER = "ers.document"  # numbers the attachments' FHIR ids, as live e-RS numbers them
FIRST_DOCUMENT = 100_001
MAX_FILE_BYTES = 5 * 1024 * 1024  # 5,242,880: e-RS's largest file (A020 and A006)

UPLOAD = "a020-upload-file-to-document-store"
STU3_DOWNLOAD = "a006-retrieve-attachment"
R4_DOWNLOAD = "a042-retrieve-attachment"
MAINTAIN_LETTER = "a012-maintain-referral-letter"

# The content types A020 takes, and the file extensions each may carry (the spec's table of supported formats).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "text/plain": (".txt",),
    "application/pdf": (".pdf",),
    "text/xml": (".xml",),
    "text/rtf": (".rtf", ".rtx"),
    "audio/basic": (".au",),
    "audio/mpeg": (".mp3",),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/jpeg": (".jpg", ".jpe", ".jpeg"),
    "image/tiff": (".tif", ".tiff"),
    "video/mpeg": (".mpg", ".mpeg", ".mpe"),
    "application/msword": (".doc", ".docx"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (".doc", ".docx"),
    "application/dicom": (".dcm",),
}

# FHIR systems and extensions of an e-RS DocumentReference (as the published examples carry them).
ATTACHMENT_TYPE = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-AttachmentType-1"
AVAILABILITY = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-AvailabilityStatus-1"
EXTENSION = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-eRS-"
DOCUMENT_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-DocumentReference-1"
SDS_USER = "http://fhir.nhs.net/Id/sds-user-id"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
TYPE_DISPLAY = {"REFERRER": "Referrer", "PROVIDER": "Provider", "ADVICE_REQUEST": "Advice Request",
                "GUIDANCE_RESPONSE": "Guidance Response"}
AVAILABLE = "AVAILABLE"
VALIDATION_FAILED = "VALIDATION_FAILED"

# RFC 7230 token characters: a file name made only of them needs no quoting in Content-Disposition.
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/.")


# --- refusals ---------------------------------------------------------------------------------------------------------
def refuse(ex: ExchangeContext, requirement: str, status: int, code: str, diagnostics: str,
           location: str = "") -> SpineError:
    """A live e-RS refusal, recorded as a failing finding of `requirement` (raise what this returns)."""
    ex.add(Finding.failed(requirement, diagnostics, location))
    return errors.ers_error(status, code, diagnostics)


def now() -> str:
    """The moment, as e-RS writes it (UTC, milliseconds, Z)."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def caller_user(call: ErsCall, ex: ExchangeContext) -> str:
    """The e-RS user acting: the world's user making the call (directory.caller), else the user the access token
    names, else a fixed synthetic one."""
    from sandbox.services.ers import directory

    user = directory.caller(call, ex)
    if user is not None:
        return user.user_id
    return (ex.access.user_id if ex.access is not None else None) or "555254240100"


# --- the store ----------------------------------------------------------------------------------------------------
def find(session: str, attachment_id: str) -> dict | None:
    item = current_sandbox().store.state.get(session, NAMESPACE, attachment_id)
    return item.value if item is not None else None


def content(session: str, attachment_id: str) -> bytes | None:
    return current_sandbox().store.state.get_blob(session, BLOB_PREFIX + attachment_id)


def owns(call: ErsCall) -> bool:
    """True when the request is the session's own business here: every upload (live e-RS stores it; the published
    example's fixed Location could never be downloaded), and a download of a file the session uploaded."""
    if call.operation.id == UPLOAD:
        return True
    attachment_id = call.params.get("attachment_id") or call.params.get("file_id") or ""
    return bool(attachment_id) and find(call.session, attachment_id) is not None


# --- A020 upload ---------------------------------------------------------------------------------------------------
def upload(call: ErsCall, ex: ExchangeContext) -> Answer:
    content_type = call.content_type.split(";", 1)[0].strip().lower()
    if content_type not in EXTENSIONS:  # normally refused by the body checks (415) before the handler
        ex.add(Finding.failed("ERS-ATT-001", f"Content-Type {call.content_type or '(none)'!r} is not a file type "
                              "e-RS accepts", "Content-Type"))
        raise errors.framework_error(415, "Unsupported Media Type")
    size = len(call.raw)
    if size == 0 or size > MAX_FILE_BYTES:
        raise refuse(ex, "ERS-ATT-002", 422, "FILE_SIZE_ERROR",
                     "The file is empty" if size == 0 else f"The file is {size} bytes: larger than e-RS accepts "
                     f"({MAX_FILE_BYTES} bytes)")
    file_name = _header_text(call.header(FILE_NAME)).strip()
    if not file_name:
        raise refuse(ex, "ERS-ATT-003", 422, "MISSING_VALUE", f"The {FILE_NAME} header is required: the name of "
                     "the file, with its extension", FILE_NAME)
    if len(file_name) > 255 or any(ord(c) < 32 for c in file_name):
        raise refuse(ex, "ERS-ATT-003", 422, "INVALID_VALUE", f"{FILE_NAME} is not a usable file name", FILE_NAME)
    referral_id = call.header(REFERRAL_ID).strip()
    if not referral_id:
        ex.add(Finding.warning("ERS-ATT-004", f"No {REFERRAL_ID}: the file can be linked by A044 only; A012, A026 and "
                               "A027 refuse it (422 INAPPROPRIATE_VALUE). The published sandbox refuses such an "
                               "upload outright (422).", REFERRAL_ID))
    availability = AVAILABLE
    if not file_name.lower().endswith(EXTENSIONS[content_type]):
        availability = VALIDATION_FAILED
        ex.add(Finding.failed("ERS-ATT-005", f"The file name {file_name!r} does not end with an extension of "
                              f"{content_type} ({', '.join(EXTENSIONS[content_type])}): e-RS fails its validation "
                              "and it can never be downloaded", FILE_NAME))
    attachment_id = str(uuid.uuid4())
    store = current_sandbox().store
    record = {
        "id": attachment_id, "number": store.state.next_counter(call.session, DOCUMENT_COUNTER, FIRST_DOCUMENT),
        "fileName": file_name, "contentType": call.content_type.strip() or content_type, "size": size,
        "sha256": hashlib.sha256(call.raw).hexdigest(), "referralId": referral_id, "availability": availability,
        "uploadedBy": caller_user(call, ex), "organisation": call.ods_code.strip().upper(),
        "onBehalfOf": call.on_behalf_of,
        "businessFunction": call.business_function, "uploaded": now(),
    }
    data = bytes(call.raw)

    def save() -> None:
        store.state.put_blob(call.session, BLOB_PREFIX + attachment_id, data)
        store.state.put(call.session, NAMESPACE, attachment_id, record, create_only=True)

    ex.write_with_record(save)
    ex.add(Finding.passed("ERS-ATT-002", f"{file_name} ({size} bytes) uploaded as Binary/{attachment_id}"))
    return Answer(201, b"", content_type="text/html; charset=utf-8", location=f"Binary/{attachment_id}")


def _header_text(value: str) -> str:
    """A header as the client wrote it: HTTP servers read header bytes as Latin-1, clients send a file name's UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


# --- downloads -----------------------------------------------------------------------------------------------------
def _downloadable(call: ErsCall, ex: ExchangeContext, r4: bool) -> dict:
    attachment_id = call.params.get("attachment_id", "")
    record = find(call.session, attachment_id)
    if record is None:
        raise refuse(ex, "ERS-ATT-006", 404, "REC_NOT_FOUND" if r4 else "NOT_FOUND",
                     f"No attachment Binary/{attachment_id}: use the url of an attachment of a referral or advice "
                     "request (A005, A024, A025)", "attachment_id")
    ods = call.ods_code.strip().upper()
    related = related_organisations(call.session, record)
    if ods and related and ods not in related:
        raise refuse(ex, "ERS-ATT-008", 403, "NO_RELATIONSHIP", f"Organisation {ods} has no relationship with "
                     f"Binary/{attachment_id} (it belongs to {', '.join(sorted(related))})",
                     "NHSD-End-User-Organisation-ODS")
    if record.get("availability", AVAILABLE) != AVAILABLE:
        raise refuse(ex, "ERS-ATT-005", 422, record["availability"], "The file has failed validation and cannot be "
                     "retrieved: its extension does not fit its content type")
    return record


def related_organisations(session: str, record: dict) -> set[str]:
    """The organisations with a legitimate relationship with a file: the one that uploaded it, and the referring
    and providing organisations of every referral or advice request it is linked to (or was uploaded for)."""
    from sandbox.services.ers import advice, referrals, world

    found = {record["organisation"]} if record.get("organisation") else set()
    for ubrn in {*record.get("linkedTo", []), record.get("referralId") or ""} - {""}:
        referral = referrals.find(session, ubrn)
        if referral is not None:
            found.add(referral["referrer"]["ods"])
            found |= referrals.provider_organisations(referral, world.current_world())
        request = advice.find(session, ubrn)
        if request is not None:
            found |= {request[0]["referrer"]["ods"], request[0]["service"]["ods"]}
    return found - {""}


def note_links(ex: ExchangeContext, session: str, attachment_ids: list[str], ubrn: str) -> None:
    """Remember (with the exchange's other writes) that these files are now linked to `ubrn`: whoever has a
    relationship with the request may download them."""
    store = current_sandbox().store

    def write() -> None:
        for attachment_id in dict.fromkeys(attachment_ids):
            item = store.state.get(session, NAMESPACE, attachment_id)
            if item is not None and ubrn not in item.value.get("linkedTo", []):
                value = {**item.value, "linkedTo": [*item.value.get("linkedTo", []), ubrn]}
                store.state.put(session, NAMESPACE, attachment_id, value)

    if attachment_ids:
        ex.write_with_record(write)


def binaries(documents: list[dict]) -> list[str]:
    """The Binary ids of DocumentReferences."""
    return [i for i in (attachment_id_of(d) for d in documents) if i]


def download_stu3(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A006: the file itself."""
    record = _downloadable(call, ex, r4=False)
    if record["size"] > MAX_FILE_BYTES:
        raise refuse(ex, "ERS-ATT-002", 422, "FILE_SIZE_ERROR", "The file is larger than 5MB (5242880 bytes): "
                     "download it with A042")
    body = content(call.session, record["id"]) or b""
    ex.add(Finding.passed("ERS-ATT-006", f"Binary/{record['id']} downloaded"))
    return Answer(200, body, content_type=record["contentType"], disposition=simple_disposition(record["fileName"]))


def download_r4(call: ErsCall, ex: ExchangeContext) -> Answer:
    """A042: a temporary redirect to the object store, which serves the file."""
    record = _downloadable(call, ex, r4=True)
    ex.add(Finding.passed("ERS-ATT-006", f"Binary/{record['id']} redirected to the object store"))
    return Answer(307, None, content_type="", location=f"{object_store_base(call)}/ObjectStore/{record['id']}")


def object_store_base(call: ErsCall) -> str:
    """Where the object store is reached: `x-ers-sandbox-baseurl` when the caller sends it (as the published
    sandbox's proxy and the NHS test suite do), else this sandbox's public URL and the service's base path."""
    sent = call.header(SANDBOX_BASE_URL)
    if sent:
        return sent.rstrip("/")
    public = current_sandbox().settings.public_url.rstrip("/")
    if not public:
        host = request.host_url.rstrip("/") if has_request_context() else f"http://{call.header('host') or 'localhost'}"
        public = host
    return public + BASE_PATH


def object_store(call: ErsCall) -> Answer:
    """`/referrals/ObjectStore/<id>` of a file the session uploaded: the bytes, as uploaded."""
    attachment_id = call.params.get("file_id") or call.params.get("attachment_id") or ""
    record = find(call.session, attachment_id)
    data = content(call.session, attachment_id) if record is not None else None
    if record is None or data is None:
        raise errors.ers_error(404, "REC_NOT_FOUND", f"No object {attachment_id} in the store")
    return Answer(200, data, content_type=record["contentType"], disposition=encoded_disposition(record["fileName"]))


def simple_disposition(file_name: str) -> str:
    """As A006 answers: `attachment; filename=<name>` for a plain name; the encoded form otherwise."""
    return f"attachment; filename={file_name}" if _TOKEN.match(file_name) else encoded_disposition(file_name)


def encoded_disposition(file_name: str) -> str:
    """As the object store answers: an RFC 2047 encoded-word for old clients and the RFC 5987 `filename*`."""
    q = "".join("_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in file_name.encode("utf-8"))
    return f"attachment; filename=\"=?UTF-8?Q?{q}?=\"; filename*=UTF-8''{quote(file_name, safe='!#$&+-.^_`|~')}"


# --- linking files to referrals and advice requests -----------------------------------------------------------------
def attachment_id_of(document: Any) -> str:
    """The Binary id a DocumentReference parameter points at ('' when it points at none)."""
    try:
        url = document["content"][0]["attachment"]["url"]
    except (KeyError, IndexError, TypeError):
        return ""
    if not isinstance(url, str):
        return ""
    match = re.search(r"(?:^|/)Binary/([^/?#]+)$", url.strip())
    return match.group(1) if match else ""


def resolve_document(ex: ExchangeContext, session: str, document: Any, ubrn: str | None, requirement: str,
                     location: str) -> dict:
    """The uploaded file a DocumentReference parameter names, checked as live e-RS checks a file being linked:
    it must be one the session uploaded (REFERENCE_NOT_FOUND), uploaded for this request (`ubrn`, when given:
    INAPPROPRIATE_VALUE) and not failed validation."""
    attachment_id = attachment_id_of(document)
    if not attachment_id:
        raise refuse(ex, requirement, 422, "MISSING_VALUE", "The DocumentReference has no "
                     "content[0].attachment.url of the form Binary/<id>", location)
    record = find(session, attachment_id)
    if record is None:
        raise refuse(ex, requirement, 422, "REFERENCE_NOT_FOUND", f"Binary/{attachment_id} is not a file uploaded "
                     "with A020", location)
    if ubrn is not None and not record.get("referralId"):
        raise refuse(ex, requirement, 422, "INAPPROPRIATE_VALUE", f"Binary/{attachment_id} was uploaded without "
                     f"{REFERRAL_ID}, so it cannot be linked to {ubrn}", location)
    if ubrn is not None and record.get("referralId") != ubrn:
        raise refuse(ex, requirement, 422, "INAPPROPRIATE_VALUE", f"Binary/{attachment_id} was uploaded for "
                     f"{record['referralId']}, not {ubrn}", location)
    return record


def check_unique_names(ex: ExchangeContext, records: list[dict], linked: list[str], requirement: str) -> None:
    """DUPLICATE_FILENAME: a file being linked has the name of another being linked, or of one already linked."""
    seen = {name.lower() for name in linked}
    for record in records:
        name = record["fileName"].lower()
        if name in seen:
            raise refuse(ex, requirement, 422, "DUPLICATE_FILENAME", f"A file named {record['fileName']!r} is "
                         "already linked or being linked")
        seen.add(name)


def document_reference(record: dict, kind: str, description: str | None = None, indexed: str | None = None,
                       attached_by: str | None = None, organisation: str | None = None,
                       on_behalf_of: str | None = None) -> dict:
    """The contained DocumentReference of an uploaded file, shaped as e-RS returns it."""
    by = attached_by or record.get("uploadedBy") or ""
    org = organisation if organisation is not None else record.get("organisation", "")
    obo = on_behalf_of if on_behalf_of is not None else record.get("onBehalfOf", "")
    extensions = [
        {"url": EXTENSION + "AttachedBy-1", "valueReference": {"identifier": {"system": SDS_USER, "value": by}}},
        {"url": EXTENSION + "AvailabilityStatus-1",
         "valueCoding": {"system": AVAILABILITY, "code": record.get("availability", AVAILABLE)}},
    ]
    if org:
        extensions.append({"url": EXTENSION + "AttachedByOrganisation-1",
                           "valueReference": {"identifier": {"system": ODS, "value": org}}})
    if obo:
        extensions.append({"url": EXTENSION + "AttachedOnBehalfOf-1",
                           "valueReference": {"identifier": {"system": SDS_USER, "value": obo}}})
    number = str(record["number"])
    resource: dict = {
        "id": f"DocumentReference-{number}",
        "meta": {"profile": [DOCUMENT_PROFILE]},
        "resourceType": "DocumentReference",
        "type": {"coding": [{"system": ATTACHMENT_TYPE, "code": kind, "display": TYPE_DISPLAY.get(kind, kind)}]},
        "status": "current",
        "indexed": indexed or now(),
    }
    if description:
        resource["description"] = description
    resource["content"] = [{"attachment": {
        "id": number, "extension": extensions, "contentType": record["contentType"].split(";", 1)[0].strip(),
        "url": f"Binary/{record['id']}", "size": record["size"], "title": record["fileName"],
        "creation": record["uploaded"][:10]}}]
    return resource


def linked_document(ex: ExchangeContext, session: str, document: Any, kind: str, ubrn: str | None,
                    requirement: str, location: str) -> tuple[dict, dict]:
    """Resolve a DocumentReference parameter and build what the request will contain: (record, resource)."""
    record = resolve_document(ex, session, document, ubrn, requirement, location)
    description = document.get("description") if isinstance(document, dict) else None
    return record, document_reference(record, kind, description if isinstance(description, str) else None)


# --- A012 maintain referral letter ---------------------------------------------------------------------------------
def _document_type(document: dict) -> str:
    codings = document.get("type", {}).get("coding", []) if isinstance(document.get("type"), dict) else []
    return next((c.get("code", "") for c in codings if isinstance(c, dict)), "")


def _document_binary(document: dict) -> str:
    return attachment_id_of(document)


def maintain_referral_letter(call: ErsCall, ex: ExchangeContext) -> Answer:
    """Replace the set of a session referral's referral letter files (type REFERRER) with the set sent: files
    already linked stay as they are, new ones must be uploaded for this UBRN; at least one must remain."""
    from sandbox.services.ers import referrals

    record = referrals.require(call, ex)
    ubrn = record["ubrn"]
    who = referrals.caller(call, ex, record)
    referrals.check_relationship(ex, who, record)
    referrals.require_state(ex, record, tuple(s for s in referrals.STATE_DISPLAY if s != referrals.CANCELLED_REFERRAL),
                            "maintain the referral letter")
    referrals.check_if_match(call, ex, record["version"], f"referral {ubrn}")
    body = call.body
    named = [p for p in body.get("parameter", []) if isinstance(p, dict)] \
        if isinstance(body, dict) and isinstance(body.get("parameter"), list) else []
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise refuse(ex, "ERS-ATT-007", 422, "INVALID_FHIR_STRUCTURE", "The body must be a FHIR Parameters resource",
                     "/")
    if any(p.get("name") != "referralLetterFile" for p in named):
        raise refuse(ex, "ERS-ATT-007", 422, "UNEXPECTED_FIELD", "Only referralLetterFile parameters are expected",
                     "/parameter")
    if not named:
        raise refuse(ex, "ERS-ATT-007", 422, "MISSING_VALUE", "At least one referralLetterFile is required: a "
                     "referral keeps at least one referral letter attachment", "/parameter")
    documents = [d for d in record.get("documents", []) if isinstance(d, dict)]
    letters = {_document_binary(d): d for d in documents if _document_type(d) == "REFERRER"}
    others = [d for d in documents if _document_type(d) != "REFERRER"]
    kept: list[dict] = []
    new_records: list[dict] = []
    for index, parameter in enumerate(named):
        document = parameter.get("resource")
        location = f"/parameter[{index}]/resource"
        if not isinstance(document, dict) or document.get("resourceType") != "DocumentReference":
            raise refuse(ex, "ERS-ATT-007", 422, "INVALID_FHIR_STRUCTURE", "referralLetterFile must be a "
                         "DocumentReference", location)
        if _document_type(document) not in ("REFERRER", ""):
            raise refuse(ex, "ERS-ATT-007", 422, "INVALID_CODE", "A referral letter file is of type REFERRER",
                         location + "/type")
        binary = attachment_id_of(document)
        if binary and binary in letters:
            kept.append(letters[binary])
            continue
        uploaded, resource = linked_document(ex, call.session, document, "REFERRER", ubrn, "ERS-ATT-007", location)
        new_records.append(uploaded)
        kept.append(resource)
    ids = [_document_binary(d) for d in kept]
    if len(set(ids)) != len(ids):
        raise refuse(ex, "ERS-ATT-007", 422, "DUPLICATE_FILENAME", "The same file is linked twice")
    names = [d["content"][0]["attachment"].get("title", "") for d in kept]
    if len({n.lower() for n in names}) != len(names):
        raise refuse(ex, "ERS-ATT-007", 422, "DUPLICATE_FILENAME", "Two referral letter files have the same file "
                     "name")
    if set(ids) == set(letters):
        raise refuse(ex, "ERS-ATT-007", 422, "NO_CHANGES_DETECTED", f"Referral {ubrn} already has exactly these "
                     "referral letter files")
    updated = referrals.changed(record)
    updated["documents"] = kept + others
    updated["clinicalInfoFirstSubmitted"] = updated.get("clinicalInfoFirstSubmitted") or updated["updated"]
    updated["clinicalInfoLastUpdated"] = updated["updated"]
    referrals.save(call, ex, updated)
    note_links(ex, call.session, binaries(kept), ubrn)
    ex.add(Finding.passed("ERS-ATT-007", f"Referral {ubrn} now has {len(kept)} referral letter file(s)"))
    return Answer(200, _referral_resource(call, updated), etag=referrals.etag(updated["version"]))


def _referral_resource(call: ErsCall, record: dict) -> dict:
    """The ReferralRequest as A005 shows it."""
    from sandbox.services.ers import resources, world

    return resources.referral_resource(record, world.current_world())


HANDLERS: dict[str, Callable[[ErsCall, ExchangeContext], Answer]] = {
    UPLOAD: upload,
    STU3_DOWNLOAD: download_stu3,
    R4_DOWNLOAD: download_r4,
    MAINTAIN_LETTER: maintain_referral_letter,
}
