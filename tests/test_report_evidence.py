"""Evidence and the certification summary: SVG sequence diagrams, pcap files Wireshark
reads, the SHA-256 manifest, JUnit verdicts, the summary page — and, end to end, a run
against a faulty simulator that shows the failed profile with requirement and reason.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.dut.profile import profile_from_dict
from harness.ocpp.trace import Trace
from harness.report import pcap as P
from harness.report.evidence import annotate_junit, write_case_evidence
from harness.report.manifest import MANIFEST_FILE, build_manifest, verify_manifest, write_manifest
from harness.report.redact import Redactor
from harness.report.summary import summarize
from harness.report.summary_html import certification_summary, render_summary_html, write_summary
from harness.report.svg import sequence_svg
from harness.scenario.model import Step, TestCase
from harness.scenario.verdict import CaseResult, Verdict

from test_cli_e2e import SECRETS, assert_no_secrets, cli, make_library

PASSWORD = "Dep0t-Evidence-Pa55"
STATION = "CH-EV-01"
BIG = "x" * 70_000     # > 64 KiB: 64-bit websocket length, several TCP segments


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def make_trace(*, secret: bool = False) -> Trace:
    t = Trace()
    t.event(STATION, "station connected, subprotocol ocpp2.0.1", "CONNECT")
    t.add("rx", STATION, '[2,"1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"M","vendorName":"V"}}]',
          kind="CALL", action="BootNotification", unique_id="1")
    t.add("tx", STATION, '[3,"1",{"status":"Accepted","interval":300,"currentTime":"2026-01-01T00:00:00Z"}]',
          kind="CALLRESULT", action="BootNotification", unique_id="1")
    t.add("rx", STATION, "not json at all", kind="GARBAGE", note="not OCPP-J: expected a JSON array")
    t.add("tx", STATION, '[4,"2","NotImplemented","unknown action",{}]', kind="CALLERROR", unique_id="2")
    t.add("rx", STATION, json.dumps([2, "3", "DataTransfer", {"vendorId": "V", "data": BIG}]), kind="CALL",
          action="DataTransfer", unique_id="3")
    if secret:
        t.add("tx", STATION, json.dumps([2, "4", "SetVariables", {"setVariableData": [{"attributeValue": PASSWORD}]}]),
              kind="CALL", action="SetVariables", unique_id="4")
        t.event(STATION, f"Authorization: Basic {b64(f'{STATION}:{PASSWORD}')}", "NOTE")
    t.event(STATION, "connection closed code=1000 reason='bye'", "CLOSE")
    t.event(STATION, "handshake refused 401: bad password", "REFUSED")
    return t


def entries(trace: Trace) -> list[dict]:
    return json.loads(trace.to_json())


# ---------------------------------------------------------------------------- pcap

@pytest.mark.parametrize("harness_is_client", [False, True])
def test_pcap_frames_read_back_with_masking_and_consistent_tcp(tmp_path: Path, harness_is_client: bool) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    trace = make_trace()
    conns = P.connections_from_trace(entries(trace), harness_is_client=harness_is_client)
    assert [c.refused_status for c in conns] == [None, 401]
    path = P.write_pcap(tmp_path / "t.pcap", conns)

    frames = [e for e in entries(trace) if e["direction"] in ("rx", "tx")]
    msgs = [m for m in P.iter_ws_messages(path) if m["opcode"] == P.OP_TEXT]
    assert [m["payload"].decode() for m in msgs] == [e["raw"] for e in frames]
    for m, e in zip(msgs, frames):
        from_client = (e["direction"] == "tx") == harness_is_client
        assert m["masked"] == from_client          # RFC 6455 §5.3: only the client masks
        assert (m["dport"] == 80) == from_client
    closes = [m for m in P.iter_ws_messages(path) if m["opcode"] == P.OP_CLOSE]
    assert [struct.unpack("!H", c["payload"][:2])[0] for c in closes] == [1000, 1000]

    packets = rdpcap(str(path))
    nxt: dict[tuple[int, int], int] = {}
    last_t = 0.0
    for pkt in packets:
        assert float(pkt.time) >= last_t
        last_t = float(pkt.time)
        ip, tcp = pkt[IP], pkt[TCP]
        assert ip.src == ip.dst == "127.0.0.1" and ip.len <= 65535
        # checksums and lengths as scapy computes them: rebuild and compare byte for byte
        fresh = pkt.copy()
        del fresh[IP].chksum, fresh[IP].len, fresh[TCP].chksum
        assert bytes(fresh.__class__(bytes(fresh))) == bytes(pkt)
        key = (tcp.sport, tcp.dport)
        if tcp.flags & 0x02 and not tcp.flags & 0x10:       # SYN
            nxt[key] = tcp.seq
        if key in nxt:
            assert tcp.seq == nxt[key], f"seq gap on {key}"
        nxt[key] = tcp.seq + len(tcp.payload) + (1 if tcp.flags & 0x03 else 0)
        back = (tcp.dport, tcp.sport)
        if tcp.flags & 0x10 and back in nxt:
            assert tcp.ack == nxt[back], f"ack mismatch on {key}"

    http = b"".join(bytes(p[TCP].payload) for p in packets if bytes(p[TCP].payload).startswith((b"GET", b"HTTP")))
    key = http.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].decode()
    assert f"Sec-WebSocket-Accept: {P.accept_key(key)}".encode() in http
    assert b"Sec-WebSocket-Protocol: ocpp2.0.1" in http and b"HTTP/1.1 401 Unauthorized" in http
    assert b"Authorization" not in http


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
def test_wireshark_decodes_the_websocket_frames(tmp_path: Path) -> None:
    trace = make_trace()
    path = P.write_pcap(tmp_path / "t.pcap", P.connections_from_trace(entries(trace), harness_is_client=False))
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "websocket.opcode==1", "-T", "fields",
                          "-e", "websocket.mask", "-e", "websocket.payload.text"],
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    frames = [e for e in entries(trace) if e["direction"] in ("rx", "tx")]
    assert len(out) == len(frames)
    for line, e in zip(out, frames):
        mask, _, text = line.partition("\t")
        assert mask == ("1" if e["direction"] == "rx" else "0")
        if len(e["raw"]) < 1000:
            assert text == e["raw"]
    expert = subprocess.run(["tshark", "-r", str(path), "-q", "-z", "expert,warn"], capture_output=True, text=True,
                            timeout=60).stdout
    assert "Malformed" not in expert and "previous segment not captured" not in expert.lower()


def test_merged_run_pcap_gives_every_connection_its_own_port(tmp_path: Path) -> None:
    ports = P.PortAllocator()
    a = P.connections_from_trace(entries(make_trace()), harness_is_client=False, ports=ports)
    b = P.connections_from_trace(entries(make_trace()), harness_is_client=True, ports=ports)
    assert len({c.client_port for c in a + b}) == 4
    path = P.write_pcap(tmp_path / "run.pcap", a + b)
    assert len([m for m in P.iter_ws_messages(path) if m["opcode"] == P.OP_TEXT]) == 10


def test_trace_without_connect_and_with_traced_port() -> None:
    e = entries(make_trace())[1:3]        # frames of a persistent connection: no CONNECT
    (conn,) = P.connections_from_trace(e, harness_is_client=False)
    assert conn.path == f"/ocpp/{STATION}" and conn.server_port == P.SERVER_PORT and len(conn.messages) == 2
    t = Trace()
    t.event("CH", "connected to ws://127.0.0.1:8180/steve/ws/CH, subprotocol ocpp1.6", "CONNECT")
    (conn,) = P.connections_from_trace(entries(t), harness_is_client=True)
    assert (conn.server_port, conn.path, conn.subprotocol) == (8180, "/steve/ws/CH", "ocpp1.6")


# ---------------------------------------------------------------------------- SVG

def test_svg_sequence_diagram_is_valid_and_marks_errors() -> None:
    svg = sequence_svg(entries(make_trace()), harness="Harness (CSMS)", dut="DUT (charging station)\nAcme DC-400",
                       title="TC_X_01_CS <demo> & co", verdict="FAIL", reason="step 3: garbage")
    root = ET.fromstring(svg)                                # well-formed XML
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    for expected in ("BootNotification", "CALLERROR", "GARBAGE", "not OCPP-J", "CONNECT", "CLOSE", "REFUSED",
                     "Acme DC-400", "TC_X_01_CS <demo> & co", "FAIL"):
        assert expected in text
    assert "#c62828" in svg and 'stroke-dasharray="6 3"' in svg     # CALLERROR red, garbage dashed
    assert "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_svg_stays_readable_and_fast_for_long_traces() -> None:
    t = Trace()
    for i in range(300):
        t.add("rx" if i % 2 == 0 else "tx", "CH", f'[2,"{i}","MeterValues",{{"evseId":1}}]', kind="CALL",
              action="MeterValues", unique_id=str(i))
    t0 = time.perf_counter()
    svg = sequence_svg(entries(t))
    elapsed = time.perf_counter() - t0
    root = ET.fromstring(svg)
    height = int(root.get("height"))
    assert 300 * 30 < height < 300 * 40                           # fixed row height: scrolls, never squeezes
    assert elapsed < 1.0
    assert sequence_svg([]).count("no frames were recorded") == 1


# ---------------------------------------------------------------------------- evidence + redaction

def make_case(case_id: str = "TC_E_01_CS", role: str = "csms") -> TestCase:
    return TestCase(id=case_id, title="Evidence demo", ocpp="2.0.1", role=role, profile="Core",
                    steps=[Step("expect", {"expect": "BootNotification"})], path=Path(f"testcases/{case_id}.yaml"),
                    requirements=["E01.FR.01"])


def test_case_evidence_files_never_hold_a_secret(tmp_path: Path) -> None:
    profile = profile_from_dict({"name": "lab", "kind": "charging_station", "station_id": STATION,
                                 "credentials": {"password": PASSWORD}})
    redactor = Redactor.for_profile(profile)
    result = CaseResult("TC_E_01_CS", Verdict.FAIL, "bad thing", failed_step=3, failed_step_name="expect X",
                        requirement="E01.FR.01")
    ev = write_case_evidence(tmp_path, make_case(), result, make_trace(secret=True), redactor=redactor,
                             dut_name="lab")
    folder = ev["dir"]
    assert sorted(p.name for p in folder.iterdir()) == ["case.json", "frames.json", "sequence.svg", "traffic.pcap"]
    for f in folder.iterdir():
        data = f.read_bytes()
        for form in (PASSWORD, b64(f"{STATION}:{PASSWORD}")):
            assert form.encode() not in data, f"{form} in {f.name}"
    texts = [m["payload"].decode() for m in P.iter_ws_messages(folder / "traffic.pcap") if m["opcode"] == 1]
    assert any('"attributeValue": "***"' in t for t in texts)
    assert "step 3: bad thing (requirement E01.FR.01)" in (folder / "sequence.svg").read_text()


# ---------------------------------------------------------------------------- manifest, JUnit, summary

def test_manifest_lists_evidence_and_detects_tampering(tmp_path: Path) -> None:
    (tmp_path / "evidence" / "TC_A").mkdir(parents=True)
    (tmp_path / "evidence" / "TC_A" / "frames.json").write_text("[]")
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "x-result.json").write_text("{}")
    (tmp_path / "allure-results" / "charger-harness-summary-attachment.html").write_text("derived")
    (tmp_path / "mutation.json").write_text("{}")                   # not this run's evidence
    entries_ = build_manifest(tmp_path)
    assert [e["path"] for e in entries_] == ["allure-results/x-result.json", "evidence/TC_A/frames.json"]
    write_manifest(tmp_path, entries_)
    assert verify_manifest(tmp_path) == []
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", MANIFEST_FILE], cwd=tmp_path, capture_output=True).returncode == 0
    (tmp_path / "evidence" / "TC_A" / "frames.json").write_text("[1]")
    assert verify_manifest(tmp_path) == ["evidence/TC_A/frames.json: checksum differs"]


def test_junit_gets_verdicts_and_errors_are_not_failures(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="0" failures="2" tests="3">'
                     '<testcase name="TC_A"/><testcase name="TC_B"><failure message="FAIL: x">x</failure></testcase>'
                     '<testcase name="TC_C"><failure message="ERROR: harness">y</failure></testcase>'
                     "</testsuite></testsuites>")
    records = [{"case_id": "TC_A", "verdict": "PASS"}, {"case_id": "TC_B", "verdict": "FAIL", "requirement": "B01.FR.01"},
               {"case_id": "TC_C", "verdict": "ERROR"}]
    assert annotate_junit(junit, records)
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    assert cases["TC_C"].find("error") is not None and cases["TC_C"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["TC_B"].find("properties")}
    assert props == {"verdict": "FAIL", "requirement": "B01.FR.01"}


def _records() -> list[dict]:
    return [
        {"case_id": "TC_B_01_CS", "profile": "Core", "ocpp": "2.0.1", "role": "csms", "mandatory": True,
         "verdict": "PASS", "message": "", "dut": "lab", "dut_identity": {"vendor": "Acme", "serial": "S-1",
                                                                          "firmware": "9.9"}},
        {"case_id": "TC_C_02_CS", "profile": "Core", "ocpp": "2.0.1", "role": "csms", "mandatory": True,
         "verdict": "FAIL", "message": "DUT sent TransactionEvent\nsecond line", "requirement": "C01.FR.02",
         "failed_step": 4, "failed_step_name": "expect_none TransactionEvent", "title": "Invalid token", "dut": "lab"},
        {"case_id": "TC_K_01_CS", "profile": "Smart Charging", "ocpp": "2.0.1", "role": "csms", "mandatory": True,
         "verdict": "NOT APPLICABLE", "message": "PICS", "dut": "lab"},
    ]


def test_summary_page_names_each_fail_and_is_self_contained(tmp_path: Path) -> None:
    profile = profile_from_dict({"name": "lab", "kind": "charging_station", "station_id": STATION,
                                 "credentials": {"password": PASSWORD}, "identity": {"vendor": "Acme", "model": "DC-400"},
                                 "pics": {"mcs": False, "dc_charging": True},
                                 "pixit": {"evse_id": 1, "basic_auth_password": PASSWORD}})
    records = _records()
    pairs = [(TestCase(id=r["case_id"], title="", ocpp="2.0.1", role="csms", profile=r["profile"], steps=[],
                       path=Path("x")), CaseResult(r["case_id"], Verdict(r["verdict"]), r["message"])) for r in records]
    base = summarize(pairs)
    base["verdicts"] = records
    full = certification_summary(records, [profile], base, harness_version="9.9.9", library_hash="ab" * 32,
                                 library_root=tmp_path, fault="authorize_invalid_still_starts", operator="Jane Q",
                                 reports=tmp_path)
    paths = write_summary(tmp_path, full, Redactor.for_profile(profile))
    page = paths["html"].read_text()
    data = json.loads(paths["json"].read_text())
    assert data["fails"][0]["requirement"] == "C01.FR.02" and data["fails"][0]["reason"] == "DUT sent TransactionEvent"
    assert data["profiles"]["Core"]["verdict"] == "NOT PASSED"
    assert data["duts"][0]["identity"] == {"vendor": "Acme", "model": "DC-400", "serial": "S-1", "firmware": "9.9"}
    assert data["run"]["operator"] == "Jane Q" and data["run"]["test_library"]["sha256"] == "ab" * 32
    for expected in ("NOT PASSED", "TC_C_02_CS", "C01.FR.02", "DUT sent TransactionEvent", "4. expect_none",
                     "Smart Charging", "NOT APPLICABLE", "Jane Q", "authorize_invalid_still_starts", "9.9.9", "DC-400"):
        assert expected in page, expected
    assert "<script" not in page and "http://" not in page and "https://" not in page and "<link" not in page
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    assert "basic_auth_password" not in page                 # a secret PIXIT key is left out, not just masked
    assert render_summary_html(data, links=False).count("diagram") == 0


def test_operator_defaults_to_env_then_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.report.summary_html import operator_name

    monkeypatch.setenv("CHARGER_HARNESS_OPERATOR", "Op From Env")
    assert operator_name(None) == "Op From Env" and operator_name("cli") == "cli"
    monkeypatch.delenv("CHARGER_HARNESS_OPERATOR")
    monkeypatch.setenv("USER", "someone")
    assert operator_name(None) == "someone"


# ---------------------------------------------------------------------------- end to end

def test_run_with_a_fault_writes_summary_evidence_pcap_junit_and_manifest(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_C_02_CS", "TC_RPC_01_CS")
    proc = cli("run", "--no-html", "-j", "1", "--fault", "authorize_invalid_still_starts", "--operator", "QA Lead",
               cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    reports = tmp_path / "reports"
    assert "FAIL TC_C_02_CS [Core] C01.FR.02" in " ".join(out.split())

    summary = json.loads((reports / "certification-summary.json").read_text())
    assert summary["profiles"]["Core"]["verdict"] == "NOT PASSED"
    (fail,) = summary["fails"]
    assert (fail["case_id"], fail["requirement"]) == ("TC_C_02_CS", "C01.FR.02") and fail["reason"]
    assert summary["run"]["operator"] == "QA Lead" and summary["run"]["simulator_fault"] == "authorize_invalid_still_starts"
    assert summary["duts"][0]["identity"]["serial"] == "SIM-0001"
    assert summary["duts"][0]["subprotocols_seen"] == ["ocpp2.0.1"]     # both cases are 2.0.1 ones
    page = (reports / "certification-summary.html").read_text()
    assert "NOT PASSED" in page and "C01.FR.02" in page and "QA Lead" in page

    for case in ("TC_C_02_CS", "TC_RPC_01_CS"):
        folder = reports / "evidence" / case
        assert ET.parse(folder / "sequence.svg").getroot() is not None
        assert json.loads((folder / "frames.json").read_text())
    run_frames = [m for m in P.iter_ws_messages(reports / "traffic.pcap") if m["opcode"] == 1]
    case_frames = sum(len([e for e in json.loads((reports / "evidence" / c / "frames.json").read_text())
                           if e["direction"] in ("rx", "tx")]) for c in ("TC_C_02_CS", "TC_RPC_01_CS"))
    assert len(run_frames) == case_frames

    junit = ET.parse(reports / "junit.xml").getroot()
    cases = {tc.get("name"): tc for tc in junit.iter("testcase")}
    assert cases["TC_C_02_CS"].find("failure") is not None and cases["TC_RPC_01_CS"].find("failure") is None

    listed = {e["path"] for e in summary["manifest"]["entries"]}
    assert {"junit.xml", "traffic.pcap", "verdicts.json", "evidence/TC_C_02_CS/traffic.pcap"} <= listed
    assert verify_manifest(reports) == []

    results = reports / "allure-results"
    assert (results / "charger-harness-summary-globals.json").is_file()
    assert list(results.glob("*-attachment.svg"))
    env = (results / "environment.properties").read_text()
    assert "Cert.\\ Core=NOT PASSED" in env
    assert_no_secrets(reports)
    assert all(s not in page for s in SECRETS)
