"""Use-case coverage: the catalogue, the counting, the CLI and the Allure environment figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.coverage import (CatalogueError, CaseRef, coverage, environment_figures, library_coverage,
                              load_catalogue, parse_catalogue)

CATALOGUE = """
versions:
  "2.0.1":
    blocks:
      B:
        name: Provisioning
        profile: Core
        use_cases:
          B01: Cold Boot Charging Station
          B02: Cold Boot Charging Station - Pending
      H:
        name: Reservation
        profile: Reservation
        use_cases:
          H01: Reservation
          H02: {title: Cancel Reservation, roles: [csms]}
    reasons:
      H01: simulator lacks reservations
  "1.6":
    blocks:
      Core:
        name: Core
        profile: Core
        use_cases:
          BootNotification: Boot Notification
          Heartbeat: Heartbeat
          SecurityProfile1: {title: Basic auth, profile: Security, aliases: [Security profile 1]}
"""


def case(tmp: Path, name: str, ocpp: str, role: str, use_cases: list[str], requirements: list[str] = ()) -> None:
    (tmp / f"{name}.yaml").write_text(
        f"id: {name}\ntitle: t\nocpp: \"{ocpp}\"\nrole: {role}\nprofile: Core\n"
        f"use_cases: {json.dumps(list(use_cases))}\nrequirements: {json.dumps(list(requirements))}\nsteps: []\n")


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "testcases"
    root.mkdir()
    case(root, "TC_B_01_CS", "2.0.1", "csms", ["B01"])
    case(root, "TC_B_02_CS", "2.0.1", "csms", [], ["B02.FR.01"])          # via a requirement id
    case(root, "TC_B_01_CSMS", "2.0.1", "cs", ["B01", "A99"])             # A99: not in the catalogue
    case(root, "TC_16_BOOT_CS", "1.6", "csms", ["Boot Notification"])     # spelling differs from the id
    case(root, "TC_16_SEC_CSMS", "1.6", "cs", ["Security profile 1", "heartbeat"])
    (root / "TC_BROKEN.yaml").write_text("id: [unclosed\n")
    return root


@pytest.fixture
def cat_file(tmp_path: Path) -> Path:
    p = tmp_path / "usecases.yaml"
    p.write_text(CATALOGUE)
    return p


def test_builtin_catalogue_loads() -> None:
    cat = load_catalogue()
    v2 = cat["2.0.1"]
    assert [b.id for b in v2.blocks] == list("ABCDEFGHIJKLMNOP")
    ids = {u.id: u for u in v2.use_cases()}
    assert ids["A01"].title == "Update Charging Station Password for HTTP Basic Authentication"
    assert ids["P02"].title == "Data Transfer to the CSMS"
    assert ids["K01"].profile == "Smart Charging" and ids["H01"].profile == "Reservation"
    assert ids["C10"].roles == ("csms",) and set(ids["B01"].roles) == {"csms", "cs"}
    assert all(re.fullmatch(r"[A-P]\d\d", u) and u[0] == ids[u].block for u in ids)
    v16 = cat["1.6"]
    assert {b.profile for b in v16.blocks} >= {"Core", "Firmware Management", "Local Auth List Management",
                                                "Reservation", "Smart Charging", "Remote Trigger", "Security"}
    assert "BootNotification" in {u.id for u in v16.use_cases()}


def test_catalogue_errors() -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue({"nothing": 1})
    with pytest.raises(CatalogueError, match="role"):
        parse_catalogue({"versions": {"2.0.1": {"blocks": {"B": {"use_cases": {"B01": {"title": "x", "roles": ["ev"]}}}}}}})
    with pytest.raises(CatalogueError, match="twice"):
        parse_catalogue({"versions": {"1.6": {"blocks": {"X": {"use_cases": {"A": "a"}}, "Y": {"use_cases": {"A": "a"}}}}}})


def _role(result: dict, ocpp: str, role: str) -> dict:
    v = next(v for v in result["versions"] if v["ocpp"] == ocpp)
    return next(r for r in v["roles"] if r["role"] == role)


def test_counting_on_a_small_library(lib: Path, cat_file: Path) -> None:
    result = library_coverage([lib], load_catalogue(cat_file))
    assert result["cases"] == 5 and len(result["unloadable"]) == 1
    assert result["figures"] == {"2.0.1.csms": "2/4", "2.0.1.cs": "1/3", "1.6.csms": "1/3", "1.6.cs": "2/3"}
    csms = _role(result, "2.0.1", "csms")
    b, h = csms["blocks"]
    assert (b["covered"], b["total"], b["percent"]) == (2, 2, 100.0)
    assert b["use_cases"][1] == {"id": "B02", "title": "Cold Boot Charging Station - Pending", "profile": "Core",
                                 "cases": ["TC_B_02_CS"]}
    assert [(g["id"], g["reason"]) for g in h["gaps"]] == [("H01", "simulator lacks reservations"), ("H02", None)]
    assert csms["profiles"] == [{"profile": "Core", "covered": 2, "total": 2, "percent": 100.0},
                                {"profile": "Reservation", "covered": 0, "total": 2, "percent": 0.0}]
    cs = _role(result, "2.0.1", "cs")   # H02 applies to the station only
    assert [u["id"] for blk in cs["blocks"] for u in blk["gaps"]] == ["B02", "H01"]
    assert result["unmatched"] == [{"case": "TC_B_01_CSMS", "ocpp": "2.0.1", "role": "cs", "use_case": "A99"}]
    sec = _role(result, "1.6", "cs")
    assert {p["profile"]: (p["covered"], p["total"]) for p in sec["profiles"]} == {"Core": (1, 2), "Security": (1, 1)}


def test_reason_precedence() -> None:
    cat = parse_catalogue({"versions": {"2.0.1": {
        "blocks": {"H": {"name": "Reservation", "use_cases": {"H01": "a", "H02": "b"}}},
        "reasons": {"H": "no reservations", "H02/cs": "CSMS sim cannot cancel"}}}})
    r = coverage([], cat)
    gaps = {(ro["role"], g["id"]): g["reason"] for ro in r["versions"][0]["roles"]
            for blk in ro["blocks"] for g in blk["gaps"]}
    assert gaps[("cs", "H02")] == "CSMS sim cannot cancel"
    assert gaps[("csms", "H02")] == gaps[("cs", "H01")] == "no reservations"


def test_unknown_version_cases_are_unmatched() -> None:
    r = coverage([CaseRef("TC_X", "2.1", "csms", ["B01"])], parse_catalogue({"versions": {}}))
    assert r["unmatched"][0]["use_case"] == "B01" and r["figures"] == {}


def test_cli_table(lib: Path, cat_file: Path) -> None:
    res = CliRunner().invoke(app, ["coverage", str(lib), "--catalogue", str(cat_file)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())   # rich wraps at the terminal width
    assert "OCPP 2.0.1 - harness plays csms" in text
    assert "2/4 use cases (50.0%)" in text
    assert "H01 Reservation: simulator lacks reservations" in text
    assert "A99 (2.0.1)" in res.output
    assert "coverage: 2.0.1.csms = 2/4, 2.0.1.cs = 1/3, 1.6.csms = 1/3, 1.6.cs = 2/3" in res.output


def test_cli_json_shape(lib: Path, cat_file: Path) -> None:
    res = CliRunner().invoke(app, ["coverage", str(lib), "--catalogue", str(cat_file), "--json",
                                   "--ocpp", "2.0.1", "--role", "cs"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["schema"] == "charger-harness/coverage/1"
    assert set(data) == {"schema", "cases", "unloadable", "unmatched", "figures", "versions"}
    assert data["figures"] == {"2.0.1.cs": "1/3"}
    (v,) = data["versions"]
    (r,) = v["roles"]
    assert set(r) == {"role", "dut", "covered", "total", "percent", "cases", "blocks", "profiles"}
    assert r["dut"] == "CSMS"
    assert set(r["blocks"][0]) == {"block", "name", "profile", "covered", "total", "percent", "use_cases", "gaps"}
    assert set(r["blocks"][0]["gaps"][0]) == {"id", "title", "profile", "reason"}


def test_cli_rejects_bad_options(lib: Path) -> None:
    assert CliRunner().invoke(app, ["coverage", str(lib), "--ocpp", "9"]).exit_code == 2
    assert CliRunner().invoke(app, ["coverage", str(lib), "--role", "ev"]).exit_code == 2


def test_real_library_counts() -> None:
    root = Path(__file__).resolve().parents[1] / "testcases"
    if not root.is_dir():
        pytest.skip("no test library")
    result = library_coverage([root])
    assert set(result["figures"]) == {"2.0.1.csms", "2.0.1.cs", "1.6.csms", "1.6.cs"}
    covered, total = map(int, result["figures"]["2.0.1.csms"].split("/"))
    assert covered > 0 and total == 120


def test_environment_figures(lib: Path, tmp_path: Path) -> None:
    env = environment_figures(lib)
    assert env["coverage.2.0.1.csms"] == "2/120"   # B01 and B02 against the built-in catalogue
    assert env["coverage.2.0.1.cs"] == "1/110" and env["coverage.1.6.cs.Security"] == "1/14"
    assert environment_figures(tmp_path / "missing") == {}


def test_publish_session_writes_coverage(lib: Path, tmp_path: Path) -> None:
    from harness.report.publish import publish_session

    out = tmp_path / "reports" / "allure-results"
    try:
        publish_session(out, [], [], harness_version="t", library_root=lib, fault=None)
    except Exception:   # the summary pages may need more than an empty run; the environment comes first
        pass
    props = (out / "environment.properties").read_text()
    assert re.search(r"coverage\.2\.0\.1\.csms\s*=\s*\d+/120", props)
