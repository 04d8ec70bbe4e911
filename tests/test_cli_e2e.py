"""End to end through the CLI: `run`, `list`, `mutants` and a standalone simulator.

Each test copies a few library cases into a temporary folder (plus a broken one) and runs
the real command as a user would, on loopback, against the built-in simulators.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from _library import CLI, cli, make_library
from harness.dut.builtin import CSMS, STATION

SECRETS = [STATION["credentials"]["password"], CSMS["credentials"]["password"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_secrets(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"secret leaked into {f}"


def test_run_writes_results_summary_and_keeps_going_past_a_broken_case(tmp_path: Path) -> None:
    lib = make_library(tmp_path, "TC_C_02_CS", "TC_B_01_CSMS")
    (lib / "ocpp201" / "TC_Z_99_CS.yaml").write_text("id: TC_Z_99_CS\ntitle: broken\nsteps:\n  - expect: [oops\n")
    proc = cli("run", "--no-html", "-j", "1", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out                     # the broken case is an ERROR
    assert "TC_Z_99_CS.yaml:5:1" in out or "TC_Z_99_CS.yaml:4" in out, out
    verdicts = {v["case_id"]: v["verdict"] for v in json.loads((tmp_path / "reports" / "verdicts.json").read_text())}
    assert verdicts == {"TC_C_02_CS": "PASS", "TC_B_01_CSMS": "PASS", "TC_Z_99_CS": "ERROR"}
    summary = json.loads((tmp_path / "reports" / "certification-summary.json").read_text())
    assert summary["totals"]["counts"]["PASS"] == 2
    results = list((tmp_path / "reports" / "allure-results").glob("*-result.json"))
    assert len(results) == 3
    statuses = sorted(json.loads(r.read_text())["status"] for r in results)
    assert statuses == ["broken", "passed", "passed"]
    env = (tmp_path / "reports" / "allure-results" / "environment.properties").read_text()
    assert "DUT.vendor=ChargerHarness" in env and "testlibrary.sha256" in env
    assert_no_secrets(tmp_path / "reports")


def test_run_against_a_fault_names_step_and_frames(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_C_02_CS")
    proc = cli("run", "--no-html", "-j", "1", "--fault", "authorize_invalid_still_starts", cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "FAIL: DUT sent TransactionEvent although it must not" in out
    assert "requirement: C01.FR.02" in out
    assert "last frames:" in out and "TransactionEvent" in out
    assert_no_secrets(tmp_path / "reports")


def test_list_and_mutants(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_C_02_CS")
    listing = cli("list", "--json", cwd=tmp_path)
    rows = json.loads(listing.stdout)
    assert rows[0]["id"] == "TC_C_02_CS" and rows[0]["faults"] == ["authorize_invalid_still_starts"]
    proc = cli("mutants", "-j", "2", cwd=tmp_path)
    assert "mutation score: 1/1" in proc.stdout, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "reports" / "mutation.json").read_text())
    assert data["cases"]["TC_C_02_CS"]["killed_by"] == ["authorize_invalid_still_starts"]


def test_run_against_a_standalone_simulator_with_a_fault(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_C_02_CS")
    port, control = free_port(), free_port()
    password = STATION["credentials"]["password"]
    profile = tmp_path / "standalone.yaml"
    profile.write_text(json.dumps({
        "name": "standalone", "kind": "charging_station", "adapter": "sim", "ocpp_versions": ["2.0.1"],
        "security_profile": 1, "station_id": "CH-SIM-001", "endpoint": f"ws://127.0.0.1:{port}/ocpp",
        "credentials": {"password": password}, "pixit": STATION["pixit"],
        "sim": {"control_url": f"http://127.0.0.1:{control}"},
    }))
    sim = subprocess.Popen([*CLI, "sim", "cs", "--ocpp", "2.0.1", "--csms-url", f"ws://127.0.0.1:{port}/ocpp",
                            "--station-id", "CH-SIM-001", "--password", password, "--control-port", str(control),
                            "--fault", "authorize_invalid_still_starts", "--run-for", "120"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sim.stdout is not None
        banner = sim.stdout.readline() + sim.stdout.readline()   # printed once it listens for control
        assert "simulator" in banner, banner
        proc = cli("run", "--no-html", "-j", "1", "--dut", str(profile), cwd=tmp_path)
    finally:
        sim.terminate()
        sim.wait(10)
    verdicts = {v["case_id"]: v["verdict"] for v in json.loads((tmp_path / "reports" / "verdicts.json").read_text())}
    assert verdicts == {"TC_C_02_CS": "FAIL"}, proc.stdout


@pytest.mark.parametrize("kind", ["cs", "csms"])
def test_sim_lists_its_faults(tmp_path: Path, kind: str) -> None:
    proc = cli("sim", kind, "--list-faults", cwd=tmp_path)
    assert proc.returncode == 0
    assert ("tx_seqno_skips" if kind == "cs" else "basic_auth_not_enforced") in proc.stdout
