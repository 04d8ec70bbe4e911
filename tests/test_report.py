"""The report layer: Allure result files, redaction, environment, categories, summary, HTML."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.dut.profile import profile_from_dict
from harness.ocpp.trace import Trace
from harness.report import html as report_html
from harness.report.allure_writer import (read_properties, write_case_result, write_categories,
                                          write_environment, write_executor)
from harness.report.redact import Redactor
from harness.report.summary import render_rich, render_text, summarize
from harness.scenario.model import Step, TestCase
from harness.scenario.verdict import CaseResult, StepResult, Verdict

PASSWORD = 'Dep0t-"Basic"-Pa$$w0rd'
STATION = "CH-TRUCK-07"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# Every shape in which the password could leak into a file.
LEAK_FORMS = [PASSWORD, json.dumps(PASSWORD)[1:-1], b64(f"{STATION}:{PASSWORD}"), b64(f"operator:{PASSWORD}"),
              b64(f"x:{PASSWORD}"), b64(f"ab:{PASSWORD}")]


@pytest.fixture
def profile():
    return profile_from_dict({
        "name": "depot-dc-400", "kind": "charging_station", "station_id": STATION,
        "security_profile": 1, "credentials": {"password": PASSWORD},
        "identity": {"vendor": "Acme", "model": "DC400"},
    })


@pytest.fixture
def redactor(profile):
    return Redactor.for_profile(profile)


def make_case(case_id: str = "TC_B_01_CS", *, profile: str = "Core", mandatory: bool = True) -> TestCase:
    return TestCase(
        id=case_id, title="Cold boot charging station - Accepted", ocpp="2.0.1", role="csms", profile=profile,
        steps=[Step("expect", {"expect": "BootNotification"})], path=Path(f"testcases/ocpp201/{case_id}.yaml"),
        block="B", feature="Provisioning", use_cases=["B01", "B02"], requirements=["B01.FR.01", "B01.FR.02"],
        severity="critical", description=f"Boot, then set the password {PASSWORD}.", mandatory=mandatory,
    )


def make_trace() -> Trace:
    trace = Trace()
    trace.event(STATION, f"connected, Authorization: Basic {b64(f'{STATION}:{PASSWORD}')}", "CONNECT")
    for user in ("x", "ab"):   # user names the redactor was never told about
        trace.event(STATION, f"refused: Authorization: Basic {b64(f'{user}:{PASSWORD}')}", "CLOSE")
    trace.add("rx", STATION, '[2,"1","BootNotification",{"reason":"PowerUp","chargingStation":'
              '{"model":"DC400","vendorName":"Acme"}}]', kind="CALL", action="BootNotification", unique_id="1")
    trace.add("tx", STATION, '[3,"1",{"status":"Accepted","interval":300}]', kind="CALLRESULT", unique_id="1")
    trace.add("tx", STATION, json.dumps([2, "2", "SetVariables", {"setVariableData": [{
        "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
        "attributeValue": PASSWORD}]}]), kind="CALL", action="SetVariables", unique_id="2")
    return trace


def make_result(case: TestCase, verdict: Verdict, t0: float = 1_700_000_000.0) -> CaseResult:
    ok = verdict == Verdict.PASS
    steps = [
        StepResult(1, "expect BootNotification", "expect", Verdict.PASS, t0, t0 + 0.25),
        StepResult(2, "send SetVariables", "send", verdict, t0 + 0.25, t0 + 1.5,
                   message="" if ok else f"no CALLRESULT for password {PASSWORD}",
                   details={"sent": {"attributeValue": PASSWORD}}),
    ]
    return CaseResult(
        case_id=case.id, verdict=verdict, message="" if ok else f"timeout waiting for SetVariables result ({PASSWORD})",
        failed_step=None if ok else 2, failed_step_name="" if ok else "send SetVariables",
        expected=None if ok else {"setVariableResult": [{"attributeStatus": "Accepted"}]},
        received=None if ok else f"nothing; sent {PASSWORD}", requirement=None if ok else "B05.FR.02",
        steps=steps, start=t0, stop=t0 + 1.5,
    )


def write_all(outdir: Path, redactor: Redactor) -> dict[Verdict, str]:
    uuids = {}
    for i, verdict in enumerate(Verdict):
        case = make_case(f"TC_B_0{i + 1}_CS")
        uuids[verdict] = write_case_result(
            outdir, case, make_result(case, verdict), make_trace(), redactor=redactor,
            parameters={"DUT": "depot-dc-400", "OCPP version": "2.0.1", "role": "csms", "secret-ish": PASSWORD},
            dut_name="depot-dc-400", host="lab-1", thread="gw0",
            extra_attachments={"http-headers.txt": (f"Authorization: Basic {b64('operator:' + PASSWORD)}", "text/plain"),
                               "pixit.json": (json.dumps({"password": PASSWORD, "evse": 1}), "application/json"),
                               "operator-notes.txt": (f"password typed on the HMI: {PASSWORD}", "text/plain")},
        )
    return uuids


def load_results(outdir: Path) -> dict[str, dict]:
    results = {}
    for f in outdir.glob("*-result.json"):
        data = json.loads(f.read_text("utf-8"))
        results[data["uuid"]] = data
    return results


def labels(result: dict, name: str) -> list[str]:
    return [lab["value"] for lab in result["labels"] if lab["name"] == name]


# ------------------------------------------------------------------ Allure results

def test_every_verdict_maps_to_its_allure_status(tmp_path, redactor):
    uuids = write_all(tmp_path, redactor)
    results = load_results(tmp_path)
    assert len(results) == 5
    expected = {Verdict.PASS: "passed", Verdict.FAIL: "failed", Verdict.INCONCLUSIVE: "unknown",
                Verdict.NOT_APPLICABLE: "skipped", Verdict.ERROR: "broken"}
    for verdict, status in expected.items():
        r = results[uuids[verdict]]
        assert r["status"] == status
        assert r["stage"] == "finished"
        assert [s["status"] for s in r["steps"]] == ["passed", status]
        assert r["start"] == 1_700_000_000_000 and r["stop"] == 1_700_000_001_500
        assert r["steps"][1]["start"] == 1_700_000_000_250
    assert "statusDetails" not in results[uuids[Verdict.PASS]]


def test_failure_names_step_requirement_expected_and_received(tmp_path, redactor):
    uuids = write_all(tmp_path, redactor)
    r = load_results(tmp_path)[uuids[Verdict.FAIL]]
    message, trace = r["statusDetails"]["message"], r["statusDetails"]["trace"]
    assert message.startswith("FAIL: timeout waiting for SetVariables result")
    assert "step 2 (send SetVariables)" in message and "B05.FR.02" in message
    assert "expected:" in trace and "attributeStatus" in trace and "received:" in trace
    failing = r["steps"][1]
    assert failing["statusDetails"]["message"].startswith("no CALLRESULT")
    assert "expected:" in failing["statusDetails"]["trace"]


def test_labels_names_and_ids(tmp_path, redactor):
    uuids = write_all(tmp_path, redactor)
    r = load_results(tmp_path)[uuids[Verdict.PASS]]
    assert r["name"] == "TC_B_01_CS Cold boot charging station - Accepted"
    assert r["fullName"] == "testcases/ocpp201/TC_B_01_CS.yaml"
    assert r["description"].startswith("Boot, then set the password")
    assert labels(r, "epic") == ["OCPP 2.0.1"] and labels(r, "parentSuite") == ["OCPP 2.0.1"]
    assert labels(r, "suite") == ["Core"]
    assert labels(r, "feature") == ["Provisioning"] and labels(r, "subSuite") == ["Provisioning"]
    assert labels(r, "story") == ["B01", "B02"]
    assert labels(r, "severity") == ["critical"]
    assert labels(r, "AS_ID") == ["TC_B_01_CS"]
    assert labels(r, "framework") == ["charger-harness"]
    assert {"role:csms", "ocpp:2.0.1", "B01.FR.01", "B01.FR.02"} <= set(labels(r, "tag"))
    assert labels(r, "host") == ["lab-1"] and labels(r, "thread") == ["gw0"]
    params = {p["name"]: p["value"] for p in r["parameters"]}
    assert params["DUT"] == "depot-dc-400" and params["OCPP version"] == "2.0.1"


def test_history_and_test_case_ids_are_stable(tmp_path, redactor):
    case = make_case()
    ids = []
    for dut in ("dut-a", "dut-a", "dut-b"):
        uuid = write_case_result(tmp_path, case, make_result(case, Verdict.PASS), None, redactor=redactor,
                                 parameters={"DUT": dut}, dut_name=dut)
        ids.append(load_results(tmp_path)[uuid])
    assert ids[0]["historyId"] == ids[1]["historyId"] != ids[2]["historyId"]
    assert ids[0]["testCaseId"] == ids[1]["testCaseId"] == ids[2]["testCaseId"]
    assert len({r["uuid"] for r in ids}) == 3


def test_attachments_exist_with_frames_and_sequence(tmp_path, redactor):
    uuids = write_all(tmp_path, redactor)
    r = load_results(tmp_path)[uuids[Verdict.FAIL]]
    by_name = {a["name"]: a for a in r["attachments"]}
    assert set(by_name) == {"frames.json", "sequence.txt", "http-headers.txt", "pixit.json", "operator-notes.txt"}
    assert by_name["frames.json"]["type"] == "application/json"
    assert by_name["sequence.txt"]["type"] == "text/plain"
    for a in r["attachments"]:
        assert (tmp_path / a["source"]).is_file()
    frames = json.loads((tmp_path / by_name["frames.json"]["source"]).read_text("utf-8"))
    assert [f["action"] for f in frames if f["action"]] == ["BootNotification", "SetVariables"]
    assert (tmp_path / by_name["operator-notes.txt"]["source"]).read_text("utf-8") == "password typed on the HMI: ***"
    sequence = (tmp_path / by_name["sequence.txt"]["source"]).read_text("utf-8")
    assert "BootNotification" in sequence and "<------" in sequence and "------>" in sequence
    assert json.loads((tmp_path / by_name["pixit.json"]["source"]).read_text("utf-8")) == {"password": "***", "evse": 1}
    step_att = r["steps"][1]["attachments"][0]
    assert (tmp_path / step_att["source"]).is_file()


def test_case_without_trace_still_has_both_attachments(tmp_path, redactor):
    case = make_case()
    uuid = write_case_result(tmp_path, case, make_result(case, Verdict.ERROR), None, redactor=redactor, parameters={})
    names = [a["name"] for a in load_results(tmp_path)[uuid]["attachments"]]
    assert names == ["frames.json", "sequence.txt"]


def test_no_secret_in_any_written_file(tmp_path, redactor):
    write_all(tmp_path / "results", redactor)
    write_environment(tmp_path / "results", {"DUT profile": "depot-dc-400", "endpoint": f"ws://{STATION}:{PASSWORD}@127.0.0.1:9000"}, redactor)
    write_executor(tmp_path / "results", redactor=redactor, build_name=f"build {PASSWORD}")
    write_categories(tmp_path / "results")
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) > 20
    for f in files:
        body = f.read_text("utf-8", errors="replace")
        for form in LEAK_FORMS:
            assert form not in body, f"{form!r} leaked into {f.name}"
    # The evidence is still there, only masked.
    text = "".join(f.read_text("utf-8") for f in files)
    assert "Basic ***" in text and '"attributeValue": "***"' in text.replace('\\"', '"')


# ------------------------------------------------------------------ redaction

def test_redactor_forms():
    r = Redactor(["secret", "secret-longer"], users=["CS1"])
    assert r.text("a secret-longer b secret") == "a *** b ***"
    assert r.text("Basic " + b64("CS1:secret-longer")) == "Basic ***"
    assert r.text("Basic " + b64("someone-unknown:secret-longer")) == "Basic ***"   # any user name
    assert r.text("ws://u:secret-longer@h") == "ws://u:***@h"
    data = {"a": ["secret", {"k": ("secret", 3)}], "secret": None}
    out = r.obj(data)
    assert out == {"a": ["***", {"k": ("***", 3)}], "***": None}
    assert data["a"][0] == "secret"                        # a copy, input untouched
    assert r.text("Basic " + b64("CS1:other-password")) == "Basic " + b64("CS1:other-password")
    assert Redactor([]).text("secret") == "secret"


def test_redactor_for_profile(profile):
    r = Redactor.for_profile(profile)
    assert PASSWORD in r.secrets
    assert r.text(b64(f"{STATION}:{PASSWORD}")) == "***"


# ------------------------------------------------------------------ environment / categories

def test_environment_merges_instead_of_clobbering(tmp_path, redactor):
    write_environment(tmp_path, {"DUT vendor": "Acme", "DUT firmware": "1.0", "OCPP versions": "2.0.1"}, redactor)
    write_environment(tmp_path, {"DUT firmware": "1.1", "Harness version": "0.1.0",
                                 "DUT model": "Überlader 400 kW = fast", "key with: colon": "a\\b\nc",
                                 "password": PASSWORD}, redactor)
    props = read_properties(tmp_path / "environment.properties")
    assert props == {"DUT vendor": "Acme", "DUT firmware": "1.1", "OCPP versions": "2.0.1",
                     "Harness version": "0.1.0", "DUT model": "Überlader 400 kW = fast",
                     "key with: colon": "a\\b\nc", "password": "***"}
    # Allure 2 reads .properties as ISO-8859-1: keep the file ASCII.
    (tmp_path / "environment.properties").read_bytes().decode("ascii")


def test_environment_concurrent_writers_lose_nothing(tmp_path, redactor):
    def worker(n: int) -> None:
        for i in range(5):
            write_environment(tmp_path, {f"worker {n} key {i}": str(i), "shared": "same"}, redactor)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    props = read_properties(tmp_path / "environment.properties")
    assert len(props) == 6 * 5 + 1
    assert not list(tmp_path.glob("*.tmp"))


def test_categories(tmp_path):
    path = write_categories(tmp_path)
    cats = json.loads(path.read_text("utf-8"))
    names = [c["name"] for c in cats]
    for name, status in [("DUT failures (FAIL)", "failed"), ("Harness/test-case errors (ERROR)", "broken"),
                         ("Inconclusive", "unknown"), ("Not applicable (PICS)", "skipped")]:
        assert cats[names.index(name)]["matchedStatuses"] == [status]
    assert names[-4:] == ["DUT failures (FAIL)", "Harness/test-case errors (ERROR)", "Inconclusive",
                          "Not applicable (PICS)"]

    def category(message: str) -> str:
        # Allure 2 semantics: Java String.matches(), i.e. a full match.
        return next(c["name"] for c in cats if "failed" in c["matchedStatuses"]
                    and re.fullmatch(c.get("messageRegex", r"[\s\S]*"), message))

    assert category("FAIL: payload violates the schema\nmore") == "FAIL: schema violation"
    assert category("FAIL: Timeout waiting for BootNotification") == "FAIL: timeout waiting for the DUT"
    assert category("FAIL: the DUT closed the connection (close code 1006)") == "FAIL: unexpected connection close"
    assert category("FAIL: expected error code NotImplemented, got ProtocolError") == "FAIL: wrong error code"
    assert category("FAIL: status was Rejected") == "DUT failures (FAIL)"


def test_executor(tmp_path, redactor):
    data = json.loads(write_executor(tmp_path, redactor=redactor, build_name="nightly 42").read_text("utf-8"))
    assert data["name"] == "charger-harness" and data["buildName"] == "nightly 42"


# ------------------------------------------------------------------ summary

def _run(case_id: str, profile: str, verdict: Verdict, *, mandatory: bool = True):
    case = make_case(case_id, profile=profile, mandatory=mandatory)
    return case, CaseResult(case_id=case_id, verdict=verdict, message=f"{verdict.value} reason")


def test_summary_counts_and_profile_verdicts():
    runs = [
        _run("TC_A", "Core", Verdict.PASS), _run("TC_B", "Core", Verdict.NOT_APPLICABLE),
        _run("TC_C", "Core", Verdict.FAIL, mandatory=False),                      # optional: does not block
        _run("TC_D", "Smart Charging", Verdict.PASS), _run("TC_E", "Smart Charging", Verdict.FAIL),
        _run("TC_F", "Security", Verdict.INCONCLUSIVE), _run("TC_G", "Security", Verdict.PASS),
        _run("TC_H", "ISO 15118", Verdict.NOT_APPLICABLE),
        _run("TC_I", "Depot DLB", Verdict.ERROR),
    ]
    s = summarize(runs)
    p = s["profiles"]
    assert list(p) == sorted(p)
    assert p["Core"]["counts"] == {"PASS": 1, "FAIL": 1, "INCONCLUSIVE": 0, "NOT APPLICABLE": 1, "ERROR": 0}
    assert p["Core"]["verdict"] == "PASSED" and p["Core"]["passed"] and p["Core"]["mandatory"] == 2
    assert p["Smart Charging"]["verdict"] == "NOT PASSED"
    assert [b["id"] for b in p["Smart Charging"]["blocking"]] == ["TC_E"]
    assert p["Security"]["verdict"] == "NOT PASSED"                             # INCONCLUSIVE proves nothing
    assert p["ISO 15118"]["verdict"] == "NOT APPLICABLE" and not p["ISO 15118"]["passed"]
    assert p["Depot DLB"]["verdict"] == "NOT PASSED"
    t = s["totals"]
    assert t["counts"] == {"PASS": 3, "FAIL": 2, "INCONCLUSIVE": 1, "NOT APPLICABLE": 2, "ERROR": 1}
    assert t["total"] == 9 and t["profiles"] == 5 and t["profiles_passed"] == 1
    assert t["verdict"] == "NOT PASSED" and not t["passed"]
    json.dumps(s)   # serialisable for reports/summary.json

    text = render_text(s)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["Profile", "PASS"]
    core = next(line for line in lines if line.startswith("Core"))
    assert core.split()[1:7] == ["1", "1", "0", "1", "0", "3"] and core.endswith("PASSED")
    assert "Smart Charging: TC_E FAIL" in text
    assert any(line.startswith("Total") and "1/5 profiles" in line for line in lines)

    table = render_rich(s)
    assert table.row_count == 5
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(table)
    out = console.file.getvalue()
    assert "Smart Charging" in out and "NOT PASSED" in out


def test_summary_all_pass_and_empty():
    s = summarize([_run("TC_A", "Core", Verdict.PASS), _run("TC_B", "Core", Verdict.NOT_APPLICABLE)])
    assert s["profiles"]["Core"]["verdict"] == "PASSED" and s["totals"]["passed"]
    empty = summarize([])
    assert empty["profiles"] == {} and empty["totals"]["total"] == 0
    assert empty["totals"]["verdict"] == "NOT APPLICABLE"
    render_text(empty)


# ------------------------------------------------------------------ HTML

def test_render_html_without_cli_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "find_allure_cli", lambda: None)
    with pytest.raises(report_html.AllureUnavailable, match="npm install"):
        report_html.render_html(tmp_path, tmp_path / "html")


def test_render_html_single_file(tmp_path, redactor):
    if report_html.find_allure_cli() is None:
        pytest.skip("allure CLI not installed (run `npm install` in the repo root; needs Node >= 18)")
    results = tmp_path / "results"
    write_all(results, redactor)
    write_environment(results, {"DUT vendor": "Acme", "Harness version": "0.1.0"}, redactor)
    write_categories(results)
    started = time.monotonic()
    index = report_html.render_html(results, tmp_path / "html", name="depot-dc-400 conformance")
    assert time.monotonic() - started < report_html.DEFAULT_TIMEOUT
    assert index == tmp_path / "html" / "index.html"
    html_files = [f for f in (tmp_path / "html").rglob("*") if f.is_file() and f.suffix == ".html"]
    assert html_files == [index]
    text = index.read_text("utf-8")
    assert text.lstrip().lower().startswith("<!doctype html")
    assert "depot-dc-400 conformance" in text
    assert report_html.external_references(index) == []              # opens from disk, calls nowhere
    # Single file: results, attachments, environment and categories are inlined (base64).
    embedded = report_html.embedded_files(index)
    assert sum(name.startswith("data/test-results/") for name in embedded) == 5
    assert sum(name.startswith("data/attachments/") for name in embedded) >= 5 * 4
    inlined = b"".join(embedded.values()).decode("utf-8", errors="replace")
    assert "Acme" in inlined and "Not applicable (PICS)" in inlined and "BootNotification" in inlined
    bodies = [f.read_text("utf-8", errors="replace") for f in (tmp_path / "html").rglob("*") if f.is_file()]
    for body in [*bodies, inlined]:
        assert not any(form in body for form in LEAK_FORMS)
