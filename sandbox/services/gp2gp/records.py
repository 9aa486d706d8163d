"""What the sandbox practice holds for a synthetic patient: the registration, a few consultations' notes, and —
for patients with a large record — scanned letters too big to travel inside the EHR extract, which go as
COPC_IN000001UK01 fragments. Everything is derived from the patient, so the same patient always has the same
record (document ids included)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.synthetic.population import EPOCH, Person

# A large record: every population patient whose index ends in 7 (patients 7, 17, 27, ...), whatever their kind.
LARGE_RECORD_MODULUS = 10
LARGE_RECORD_REMAINDER = 7
ATTACHMENTS_PER_LARGE_RECORD = 3
ATTACHMENT_BYTES = 48 * 1024  # each letter: big enough to be an attachment, small enough for quick tests
_IDS = uuid.UUID("6f1d7e34-4c1e-4f0b-9a51-7d0e2b9c5a10")  # namespace of the record's deterministic ids
_LETTERS = ("Discharge summary", "Outpatient clinic letter", "Radiology report", "Pathology report")


@dataclass(frozen=True)
class Document:
    """One attachment of the record: referenced from the extract, sent in a fragment."""

    id: str  # upper-case UUID: the ExternalDocument id in the extract and the payload id in the fragment
    title: str
    filename: str  # "<id>_<name>.txt", as GP2GP names attachments
    content_type: str
    body: bytes
    written: date

    @property
    def reference(self) -> str:
        return f"file://localhost/{self.filename}"


@dataclass(frozen=True)
class Note:
    id: str
    written: date
    text: str


def is_large_record(person: Person) -> bool:
    return person.index % LARGE_RECORD_MODULUS == LARGE_RECORD_REMAINDER


def record_id(person: Person, what: str) -> str:
    return str(uuid.uuid5(_IDS, f"{person.nhs_number}:{what}")).upper()


def registered_since(person: Person) -> date:
    return person.gp_since or (EPOCH - timedelta(days=365))


def notes(person: Person) -> list[Note]:
    since = registered_since(person)
    return [Note(record_id(person, "registration"), since,
                 f"Registered with the practice on {since.isoformat()}."),
            Note(record_id(person, "review"), max(since, EPOCH - timedelta(days=90)),
                 "Annual review: well; no change to medication; next review in twelve months.")]


def documents(person: Person) -> list[Document]:
    if not is_large_record(person):
        return []
    found = []
    for n in range(ATTACHMENTS_PER_LARGE_RECORD):
        doc_id = record_id(person, f"document:{n}")
        title = _LETTERS[n % len(_LETTERS)]
        written = registered_since(person) + timedelta(days=30 * (n + 1))
        found.append(Document(doc_id, title, f"{doc_id}_{title.replace(' ', '_')}.txt", "text/plain",
                              _letter(person, title, written), written))
    return found


def _letter(person: Person, title: str, written: date) -> bytes:
    head = (f"{title}\nPatient: {' '.join((*person.given, person.family))}, NHS number {person.nhs_number}\n"
            f"Date: {written.isoformat()}\nSynthetic sandbox document: not a real patient.\n\n")
    line = "The patient was seen and examined; findings unremarkable; plan as discussed.\n"
    body = head + line * ((ATTACHMENT_BYTES - len(head)) // len(line) + 1)
    return body.encode("ascii")[:ATTACHMENT_BYTES]
