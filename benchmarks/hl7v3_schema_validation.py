"""Cost of HL7v3 schema validation per message: compile each official schema once, then validate N messages.

    python benchmarks/hl7v3_schema_validation.py [--schemas ../shared/specs/spine-hl7v3-xsd/omvt] [-n 2000]

Also times the rest of what the spine service does to a message before any business logic (parse the ebXML
multipart, read the HL7 wrapper), so the schema cost can be seen beside it. Prints; never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT))
from lxml import etree  # noqa: E402

from sandbox.messaging import ebxml, hl7, schemas  # noqa: E402

SPINE_ASID, SUPPLIER_ASID = "928942012545", "918999199111"
H = "{urn:hl7-org:v3}"


def pds_query() -> etree._Element:
    message = hl7.new_message("QUPA_IN040000UK32", message_id=str(uuid.uuid4()).upper(), sender_asid=SUPPLIER_ASID,
                              receiver_asid=SPINE_ASID)
    query = etree.SubElement(hl7.control_act(message, author_asid=SUPPLIER_ASID), f"{H}query")
    historic = etree.SubElement(query, f"{H}historicDataIndicator")
    etree.SubElement(historic, f"{H}value", code="0", codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36")
    etree.SubElement(historic, f"{H}semanticsText").text = "historicDataIndicator"
    person = etree.SubElement(query, f"{H}person.id")
    etree.SubElement(person, f"{H}value", root="2.16.840.1.113883.2.1.4.1", extension="9000000009")
    etree.SubElement(person, f"{H}semanticsText").text = "person.id"
    etree.SubElement(etree.SubElement(query, f"{H}retrievalItem"), f"{H}semanticsText").text = "person.allData"
    return message


def application_ack() -> etree._Element:
    received = hl7.parse_wrapper(hl7.to_bytes(pds_query()))
    return hl7.application_ack(received, type_code="AE", errors=[("0001", "Unknown error")], sender_asid=SPINE_ASID,
                               message_id=str(uuid.uuid4()).upper())


def timed(label: str, n: int, work) -> None:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            work()
        samples.append((time.perf_counter() - started) / n * 1e6)
    print(f"  {label:<44} {statistics.median(samples):9.1f} µs/message  (best {min(samples):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", default=str(ROOT.parent / "shared" / "specs" / "spine-hl7v3-xsd" / "omvt"))
    parser.add_argument("-n", type=int, default=2000, help="messages per timed run (5 runs, median shown)")
    args = parser.parse_args()
    if not (Path(args.schemas) / "Schemas").is_dir():
        print(f"no official schema folder at {args.schemas}; pass --schemas DIR (the folder holding Schemas/)")
        return
    schema_set = schemas.SchemaSet(args.schemas)
    print(f"HL7v3 schema validation, {args.n} messages x 5 runs")
    for interaction in ("QUPA_IN040000UK32", "MCCI_IN010000UK13"):
        started = time.perf_counter()
        schema_set.compiled(interaction)
        print(f"  compile {interaction:<36} {(time.perf_counter() - started) * 1e3:9.1f} ms (once per process)")
    query, ack = pds_query(), application_ack()
    query_bytes = hl7.to_bytes(query)
    content_type, multipart = ebxml.build_message(
        from_party="A91424-9199121", to_party="YES-0000806", cpa_id="S1001A1630",
        conversation_id=str(uuid.uuid4()).upper(), service="urn:nhs:names:services:pdsquery",
        action="QUPA_IN040000UK32", message_id=str(uuid.uuid4()).upper(), hl7=query_bytes)
    timed("validate QUPA_IN040000UK32 (valid)", args.n, lambda: schema_set.validate("QUPA_IN040000UK32", query))
    timed("validate MCCI_IN010000UK13 (valid)", args.n, lambda: schema_set.validate("MCCI_IN010000UK13", ack))
    invalid = pds_query()
    invalid.find(f"{H}creationTime").set("value", "soon")
    timed("validate QUPA_IN040000UK32 (one error)", args.n, lambda: schema_set.validate("QUPA_IN040000UK32", invalid))
    timed("parse_wrapper (bytes -> Hl7Wrapper)", args.n, lambda: hl7.parse_wrapper(query_bytes))
    timed("ebxml.parse (multipart -> EbxmlMessage)", args.n, lambda: ebxml.parse(content_type, multipart))


if __name__ == "__main__":
    main()
