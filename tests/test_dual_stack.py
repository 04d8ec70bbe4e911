"""Dual stack: the simulated charger offers both OCPP editions like a real depot charger; the
library's TC_DUAL cases PASS against it and FAIL when its firmware offers only one edition."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.dut.builtin import builtin_profiles
from harness.execute import execute
from harness.scenario.loader import load_case
from harness.scenario.verdict import Verdict

from _aio import run

LIBRARY = Path(__file__).resolve().parents[1] / "testcases"
CASES = {"offers_only_201": "ocpp16/TC_DUAL_01_CS.yaml", "offers_only_16": "ocpp201/TC_DUAL_02_CS.yaml"}


@pytest.mark.parametrize("fault", sorted(CASES))
def test_dual_stack_case_passes_clean_and_fails_the_single_stack_fault(fault: str) -> None:
    case = load_case(LIBRARY / CASES[fault])
    station = builtin_profiles()[0]
    clean = run(execute(case, station), 40)
    assert clean.result.verdict == Verdict.PASS, clean.result.summary()
    connects = [e.raw for e in clean.trace.entries if e.kind == "CONNECT"]
    assert connects and "offered: ocpp2.0.1, ocpp1.6" in connects[0]
    broken = run(execute(case, station, fault=fault), 40)
    assert broken.result.verdict == Verdict.FAIL, broken.result.summary()
    assert "HTTP 400" in broken.result.summary()        # the refusal is the evidence
