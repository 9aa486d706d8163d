"""Spine core messaging: what the sandbox's checks, dispatch and journal cost, against a bare Flask echo of the
same size served the same way, in the same run.

    python benchmarks/spine_messaging.py [--seconds 10] [--rounds 3] [--connections 16] [--workers 2]
                                         [--hl7v3-schemas DIR]

Two loads, each against this sandbox (`spine-sandbox serve`: a fresh data dir, every check on, every exchange
journaled; payload schema validation too when --hl7v3-schemas names the MIM's schema folder) and against a bare
Flask app in Granian with the same workers and threads, which reads the body and answers a fixed body of exactly
the size the sandbox answers:
  sync:    POST /sync-service, a PDS Retrieval Query (QUPA_IN040000UK32) in SOAP; the sandbox answers the patient.
  express: POST /reliablemessaging/queryrequest, a PDS advanced trace (QUPA_IN000006UK02) in ebXML; the sandbox
           answers 202 and then delivers the trace's answer to a sink MHS this script runs (loopback).
Every request carries its own MessageId and HL7 id, made in wrk's Lua, as an MHS sends them. Load: wrk, 2 threads.
Each round runs both servers one after the other; the summary is each side's median over the rounds, the ratio of
the medians (echo / sandbox: how many times faster the bare echo is) and every round's own ratio.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import free_port, stop, wait_up  # noqa: E402

SUPPLIER = {"ods": "A20047", "asid": "200000001234", "party_key": "A20047-821870"}
SPINE_ASID = "928942012545"
PDS_QUERY = "urn:nhs:names:services:pdsquery"
PATIENT = "9000000009"

ECHO_APP = '''
import os
from flask import Flask, Response, request
app = Flask("echo")
BODY = b"x" * int(os.environ["ECHO_BYTES"])
STATUS = int(os.environ["ECHO_STATUS"])
@app.post("/<path:anything>")
def echo(anything):
    request.get_data()
    return Response(BODY, status=STATUS, content_type="text/xml; charset=UTF-8")
'''

LUA = r"""
local path, template, content_type, soap_action
function init(args)
  path, content_type, soap_action = args[1], args[2], args[3]
  local f = assert(io.open(args[4], "rb"))
  template = f:read("*a")
  f:close()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
local function uuid()
  return string.format("%08X-%04X-4%03X-A%03X-%012X", math.random(0, 0x7fffffff), math.random(0, 0xffff),
                       math.random(0, 0xfff), math.random(0, 0xfff), math.random(0, 0x7fffffff) * 8192)
end
function request()
  local body = template:gsub("__MESSAGE_ID__", uuid()):gsub("__HL7_ID__", uuid())
  return wrk.format("POST", path, {["Content-Type"] = content_type, ["SOAPAction"] = soap_action}, body)
end
"""

HL7_WRAPPER = (
    '<{interaction} xmlns="urn:hl7-org:v3"><id root="__HL7_ID__"/><creationTime value="20260101120000"/>'
    '<versionCode code="V3NPfIT3.0"/><interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>'
    '<processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>'
    '<communicationFunctionRcv typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE">'
    '<id root="1.2.826.0.1285.0.2.0.107" extension="{spine}"/></device></communicationFunctionRcv>'
    '<communicationFunctionSnd typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE">'
    '<id root="1.2.826.0.1285.0.2.0.107" extension="{asid}"/></device></communicationFunctionSnd>'
    '<ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT"><AgentSystemSDS classCode="AGNT">'
    '<agentSystemSDS classCode="DEV" determinerCode="INSTANCE"><id root="1.2.826.0.1285.0.2.0.107" '
    'extension="{asid}"/></agentSystemSDS></AgentSystemSDS></author1>{body}</ControlActEvent></{interaction}>')


def _param(name: str, value: str) -> str:
    """A query parameter of the 6202 release (QUPA_IN040000UK32): the value, then its semantics text."""
    return f"<{name}>{value}<semanticsText>{name}</semanticsText></{name}>"


def _param_6301(name: str, value: str) -> str:
    """A query parameter of the 6301 release (the traces): elements in alphabetical order, capitalised text."""
    return f"<{name}><semanticsText>{name[0].upper() + name[1:]}</semanticsText>{value}</{name}>"


def sync_request(base: str) -> str:
    query = ("<query>" + _param("historicDataIndicator",
                                '<value code="0" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36"/>')
             + _param("person.id", f'<value root="2.16.840.1.113883.2.1.4.1" extension="{PATIENT}"/>')
             + "<retrievalItem><semanticsText>person.allData</semanticsText></retrievalItem></query>")
    hl7 = HL7_WRAPPER.format(interaction="QUPA_IN040000UK32", spine=SPINE_ASID, asid=SUPPLIER["asid"], body=query)
    return ('<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
            'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:hl7="urn:hl7-org:v3">'
            "<SOAP-ENV:Header><wsa:MessageID>uuid:__MESSAGE_ID__</wsa:MessageID>"
            f"<wsa:Action>{PDS_QUERY}/QUPA_IN040000UK32</wsa:Action><wsa:To>{base}/sync-service</wsa:To>"
            "<wsa:From><wsa:Address>http://mhs.example/</wsa:Address></wsa:From>"
            '<hl7:communicationFunctionRcv><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
            f'extension="{SPINE_ASID}"/></hl7:device></hl7:communicationFunctionRcv>'
            '<hl7:communicationFunctionSnd><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
            f'extension="{SUPPLIER["asid"]}"/></hl7:device></hl7:communicationFunctionSnd>'
            "<wsa:ReplyTo><wsa:Address>http://mhs.example/</wsa:Address></wsa:ReplyTo></SOAP-ENV:Header>"
            f"<SOAP-ENV:Body>{hl7}</SOAP-ENV:Body></SOAP-ENV:Envelope>")


def express_request(cpa_id: str) -> tuple[str, str]:
    query = ("<query>" + _param_6301("historicDataIndicator",
                                '<value code="0" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.36"/>')
             + _param_6301("person.administrativeGenderCode", '<value code="1"/>')
             + _param_6301("person.birthTime", '<value><low value="19390120"/><high value="19390120"/></value>')
             + _param_6301("person.name", '<value use="L"><family>MOLLOY</family></value>')
             + _param_6301("searchParameter", '<value code="1" codeSystem="2.16.840.1.113883.2.1.3.2.4.17.39"/>')
             + "</query>")
    hl7 = HL7_WRAPPER.format(interaction="QUPA_IN000006UK02", spine=SPINE_ASID, asid=SUPPLIER["asid"], body=query)
    party = 'eb:type="urn:nhs:names:partyType:ocs+serviceInstance"'
    header = (
        '<?xml version="1.0" encoding="UTF-8"?><SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:eb="http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd" '
        'xmlns:hl7ebxml="urn:hl7-org:transport/ebXML/DSTUv1.0" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<SOAP:Header><eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">'
        f'<eb:From><eb:PartyId {party}>{SUPPLIER["party_key"]}</eb:PartyId></eb:From>'
        f'<eb:To><eb:PartyId {party}>YES-0000806</eb:PartyId></eb:To><eb:CPAId>{cpa_id}</eb:CPAId>'
        f"<eb:ConversationId>__MESSAGE_ID__</eb:ConversationId><eb:Service>{PDS_QUERY}</eb:Service>"
        "<eb:Action>QUPA_IN000006UK02</eb:Action><eb:MessageData><eb:MessageId>__MESSAGE_ID__</eb:MessageId>"
        "<eb:Timestamp>2026-01-01T12:00:00Z</eb:Timestamp></eb:MessageData></eb:MessageHeader>"
        '<eb:SyncReply SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="http://schemas.xmlsoap.org/soap/actor/next"/>'
        '</SOAP:Header><SOAP:Body><eb:Manifest SOAP:mustUnderstand="1" eb:version="2.0">'
        '<eb:Reference xlink:href="cid:__MESSAGE_ID__@spine.nhs.uk">'
        '<eb:Schema eb:location="http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd" eb:version="1.0"/>'
        '<eb:Description xml:lang="en">HL7 payload</eb:Description>'
        '<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/></eb:Reference></eb:Manifest></SOAP:Body>'
        "</SOAP:Envelope>")
    boundary = "----=_MIME-Boundary"  # the delimiter: "--" and the boundary parameter, as Spine's own messages
    body = (f"{boundary}\r\nContent-Id: <ebXMLHeader@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{header}\r\n"
            f"{boundary}\r\nContent-Id: <__MESSAGE_ID__@spine.nhs.uk>\r\nContent-Type: text/xml; charset=UTF-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{hl7}\r\n{boundary}--\r\n")
    content_type = ('multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; '
                    'start="<ebXMLHeader@spine.nhs.uk>"')
    return content_type, body


class Sink(http.server.BaseHTTPRequestHandler):
    """The supplier's MHS inbound side: takes what the sandbox delivers and answers 202."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_ours(port: int, data: Path, workers: int, schemas: str | None) -> subprocess.Popen:
    env = {**os.environ, "SANDBOX_POPULATION": "1000", "SANDBOX_LOG_LEVEL": "warning",
           **({"SANDBOX_HL7V3_SCHEMAS": schemas} if schemas else {})}
    return subprocess.Popen([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--data-dir", str(data),
                             "--workers", str(workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def start_echo(port: int, folder: Path, workers: int, size: int, status: int) -> subprocess.Popen:
    (folder / "bench_echo.py").write_text(ECHO_APP)
    env = {**os.environ, "ECHO_BYTES": str(size), "ECHO_STATUS": str(status), "PYTHONPATH": str(folder)}
    return subprocess.Popen(["granian", "--interface", "wsgi", "--workers", str(workers), "--blocking-threads", "2",
                             "--no-ws", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "bench_echo:app"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wrk(url: str, path: str, content_type: str, soap_action: str, body_file: Path, script: Path, seconds: int,
        connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url,
                          "--", path, content_type, soap_action, str(body_file)],
                         capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def one_round(args, work: Path, script: Path, sink_url: str) -> dict[str, dict[str, dict]]:
    results: dict[str, dict[str, dict]] = {"sync": {}, "express": {}}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(dir=work))
    ours = start_ours(port, data, args.workers, args.hl7v3_schemas)
    try:
        wait_up(base + "/_sandbox/health", 60, ours)
        requests.post(f"{base}/_sandbox/sds/registrations", timeout=10, json={
            **SUPPLIER, "endpoint": sink_url, "interactions": ["QUPA_IN000006UK02"]}).raise_for_status()
        cpa = _spine_cpa(base, "QUPA_IN000006UK02")
        loads = {"sync": ("/sync-service", "text/xml; charset=UTF-8", f"{PDS_QUERY}/QUPA_IN040000UK32",
                          sync_request(base)),
                 "express": ("/reliablemessaging/queryrequest", *express_request(cpa)[:1],
                             f"{PDS_QUERY}/QUPA_IN000006UK02", express_request(cpa)[1])}
        sizes = {}
        for name, (path, content_type, action, template) in loads.items():
            body_file = work / f"{name}.body"
            body_file.write_text(template)
            sample = requests.post(base + path, timeout=10, headers={"Content-Type": content_type,
                                                                     "SOAPAction": action},
                                   data=template.replace("__MESSAGE_ID__", str(uuid.uuid4()).upper())
                                   .replace("__HL7_ID__", str(uuid.uuid4()).upper()))
            if sample.status_code >= 300 or "fail=0" not in sample.headers.get("X-Sandbox-Findings", ""):
                exchange = requests.get(f"{base}/_sandbox/exchanges/{sample.headers['X-Sandbox-Exchange']}",
                                        timeout=10).json()
                failed = [f"{f['requirement']}: {f['message']}" for f in exchange["findings"] if f["outcome"] == "fail"]
                raise SystemExit(f"{name}: the sandbox did not accept the benchmark's message cleanly "
                                 f"({sample.status_code}): {failed}")
            sizes[name] = (len(sample.content), sample.status_code)
            results[name]["sandbox"] = wrk(base, path, content_type, action, body_file, script, args.seconds,
                                           args.connections)
    finally:
        stop(ours)
    for name, (path, content_type, action, _) in loads.items():
        port = free_port()
        echo = start_echo(port, work, args.workers, *sizes[name])
        try:
            wait_up(f"http://127.0.0.1:{port}/health", 60, echo)
            results[name]["echo"] = wrk(f"http://127.0.0.1:{port}", path, content_type, action,
                                        work / f"{name}.body", script, args.seconds, args.connections)
        finally:
            stop(echo)
    return results


def _spine_cpa(base: str, interaction: str) -> str:
    bundle = requests.get(f"{base}/spine-directory/FHIR/R4/Endpoint", timeout=10, params={
        "organization": "https://fhir.nhs.uk/Id/ods-organization-code|YES",
        "identifier": f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{PDS_QUERY}:{interaction}"}).json()
    ids = {i["system"]: i["value"] for i in bundle["entry"][0]["resource"]["identifier"]}
    return ids["https://fhir.nhs.uk/Id/nhsMhsCPAId"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hl7v3-schemas", help="validate payloads against the MIM schema folder too")
    args = parser.parse_args()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/inbound"
    print(f"{args.connections} connections, {args.seconds} s per run, wrk 2 threads, {args.workers} workers; "
          f"schema validation {'on' if args.hl7v3_schemas else 'off'}")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "spine.lua"
        script.write_text(LUA)
        for n in range(args.rounds):
            result = one_round(args, work, script, sink_url)
            rounds.append(result)
            for load, sides in result.items():
                print(f"round {n + 1} {load:8} " + "  ".join(
                    f"{side}: {r['rps']:8.0f} req/s p99 {r['p99_ms']:7.1f} ms non-2xx {r['non_2xx']}"
                    for side, r in sides.items()))
    sink.shutdown()
    print("\nmedians over the rounds (ratio = echo / sandbox: the cost of checks, dispatch and journal)")
    for load in ("sync", "express"):
        med = {side: statistics.median(r[load][side]["rps"] for r in rounds) for side in ("sandbox", "echo")}
        p99 = {side: statistics.median(r[load][side]["p99_ms"] for r in rounds) for side in ("sandbox", "echo")}
        each = ", ".join(f"{r[load]['echo']['rps'] / r[load]['sandbox']['rps']:.1f}x" for r in rounds)
        print(f"{load:8} sandbox {med['sandbox']:7.0f} req/s (p99 {p99['sandbox']:.1f} ms)  echo {med['echo']:7.0f} "
              f"req/s (p99 {p99['echo']:.1f} ms)  ratio {med['echo'] / med['sandbox']:.1f}x  (rounds: {each})")


if __name__ == "__main__":
    main()
