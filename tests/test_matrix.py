"""Interop matrix: several runs → DUT × test case × verdict, HTML and CSV, evidence links.

The end-to-end test runs the CLI three times side by side (`run --out`): the clean
station simulator and two faulty ones, then `matrix` over the three folders.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

from harness.report.matrix import MatrixError, build_matrix, load_run, write_matrix

from test_cli_e2e import CLI, assert_no_secrets, cli, make_library


def fake_run(folder: Path, dut: str, verdicts: dict[str, str], *, fault: str = "", evidence: bool = True) -> Path:
    records = [{"case_id": cid, "profile": "Core" if "_C_" in cid or "_B_" in cid else "Remote Trigger",
                "ocpp": "2.0.1", "verdict": v, "message": f"{cid} went wrong\nmore" if v != "PASS" else "",
                "requirement": "C01.FR.02" if v == "FAIL" else "", "dut": dut, "title": f"title of {cid}"}
               for cid, v in verdicts.items()]
    profiles: dict = {}
    for r in records:
        p = profiles.setdefault(r["profile"], {"verdict": "PASSED"})
        if r["verdict"] != "PASS":
            p["verdict"] = "NOT PASSED"
    overall = "PASSED" if all(p["verdict"] == "PASSED" for p in profiles.values()) else "NOT PASSED"
    folder.mkdir(parents=True)
    (folder / "certification-summary.json").write_text(json.dumps({
        "schema": "charger-harness/certification-summary/1", "profiles": profiles,
        "totals": {"verdict": overall, "profiles": len(profiles),
                   "profiles_passed": sum(p["verdict"] == "PASSED" for p in profiles.values())},
        "run": {"simulator_fault": fault, "date": "2026-01-01T00:00:00+0000", "operator": "op"},
        "duts": [{"name": dut, "identity": {"vendor": "Acme", "model": dut.upper()}}], "verdicts": records}))
    (folder / "certification-summary.html").write_text("<html></html>")
    if evidence:
        for cid in verdicts:
            (folder / "evidence" / cid).mkdir(parents=True)
            for name in ("sequence.svg", "frames.json", "traffic.pcap"):
                (folder / "evidence" / cid / name).write_text("x")
    return folder


def test_matrix_lines_up_runs_and_links_evidence(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / "event" / "vendor-a" / "reports", "a", {"TC_B_01_CS": "PASS", "TC_C_02_CS": "PASS"}),
            fake_run(tmp_path / "event" / "vendor-b" / "reports", "b", {"TC_B_01_CS": "PASS", "TC_C_02_CS": "FAIL"},
                     fault="authorize_invalid_still_starts"),
            fake_run(tmp_path / "copies" / "vendor-c", "c", {"TC_F_06_CS": "ERROR"}, evidence=False)]
    out = tmp_path / "matrix"
    files = write_matrix(runs, out)
    m = build_matrix(runs, out)
    assert [r.label for r in m["runs"]] == ["vendor-a", "vendor-b", "vendor-c"]
    assert [row["case_id"] for row in m["rows"]] == ["TC_B_01_CS", "TC_C_02_CS", "TC_F_06_CS"]

    page = files["html"].read_text()
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs and all(not h.startswith(("http:", "https:", "/")) for h in hrefs)
    assert all((out / h).resolve().is_file() for h in hrefs), "every link resolves to a file"
    assert "../event/vendor-b/reports/evidence/TC_C_02_CS/sequence.svg" in hrefs
    who = page.split("Who failed what")[1].split("<h2>")[0]
    assert "vendor-b" in who and "TC_C_02_CS" in who and "C01.FR.02" in who and "TC_C_02_CS went wrong" in who
    assert "vendor-a</b>" not in who
    assert "vendor-c" in who and "ERROR" in who
    assert "<script" not in page

    rows = list(csv.reader(files["csv"].open()))
    header = rows[0]
    assert header[:4] == ["ocpp", "profile", "case_id", "title"] and header[4::2] == ["vendor-a", "vendor-b", "vendor-c"]
    by_case = {r[2]: r for r in rows[3:]}
    assert by_case["TC_C_02_CS"][4::2] == ["PASS", "FAIL", "not run"]
    assert by_case["TC_C_02_CS"][7] == "../event/vendor-b/reports/evidence/TC_C_02_CS/sequence.svg"
    assert rows[2][4::2] == ["", "authorize_invalid_still_starts", ""]


def test_matrix_reads_a_folder_with_only_verdicts_and_rejects_others(tmp_path: Path) -> None:
    (tmp_path / "old" / "reports").mkdir(parents=True)
    (tmp_path / "old" / "reports" / "verdicts.json").write_text(json.dumps(
        [{"case_id": "TC_X", "verdict": "PASS", "ocpp": "1.6", "profile": "Core", "dut": "old sim"}]))
    run = load_run(tmp_path / "old")                       # a folder holding reports/
    assert run.verdicts["TC_X"]["verdict"] == "PASS" and run.dut_names == "old sim"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MatrixError, match="no certification-summary.json or verdicts.json"):
        load_run(tmp_path / "empty")
    proc = subprocess.run([*CLI, "matrix", str(tmp_path / "empty")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "verdicts.json" in proc.stdout


def test_three_runs_clean_and_two_faults_show_who_failed_what(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_RPC_01_CS", "TC_RPC_02_CS")          # fast cases, each killed by its own fault
    runs = {"clean": None, "action": "unknown_action_callresult", "payload": "bad_payload_accepted"}
    procs = {name: subprocess.Popen([*CLI, "run", "--no-html", "-j", "1", "--out", f"reports/{name}"]
                                    + (["--fault", fault] if fault else []), cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
             for name, fault in runs.items()}
    for name, p in procs.items():
        out, _ = p.communicate(timeout=240)
        assert p.returncode == (0 if name == "clean" else 1), out
    proc = cli("matrix", "reports/clean", "reports/action", "reports/payload", "--out", "reports/matrix", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = " ".join(proc.stdout.split())
    assert "action: Reference charging-station simulator (fault unknown_action_callresult) — NOT PASSED; " \
           "FAIL: TC_RPC_01_CS" in said
    assert "payload: Reference charging-station simulator (fault bad_payload_accepted) — NOT PASSED; " \
           "FAIL: TC_RPC_02_CS" in said
    assert "clean: Reference charging-station simulator — PASSED" in said

    rows = {r[2]: r for r in csv.reader((tmp_path / "reports" / "matrix" / "matrix.csv").open())}
    assert rows["TC_RPC_01_CS"][4::2] == ["PASS", "FAIL", "PASS"]
    assert rows["TC_RPC_02_CS"][4::2] == ["PASS", "PASS", "FAIL"]
    page = (tmp_path / "reports" / "matrix" / "matrix.html").read_text()
    for href in re.findall(r'href="([^"]+)"', page):
        assert (tmp_path / "reports" / "matrix" / href).resolve().is_file(), href
    who = page.split("Who failed what")[1].split("<h2>")[0]
    assert who.index("<b>action</b>") < who.index("TC_RPC_01_CS") < who.index("<b>payload</b>") < who.index("TC_RPC_02_CS")
    assert_no_secrets(tmp_path / "reports")
