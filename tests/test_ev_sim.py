"""The reference EV simulator's named faults (harness/sim/ev_sim.py): each breaks exactly the
behaviour it names, against the harness's own SECC on loopback; the clean simulator conforms."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from harness.iso15118 import messages as m
from harness.iso15118.secc import Secc, SeccError
from harness.sim.api import UnknownFault
from harness.iso15118.evcc import evse_signals_stop
from harness.sim.ev_sim import EV_FAULTS, EvSimConfig, EvSimulator, get_ev_fault

from _aio import run


# -- catalogue and pure pieces ------------------------------------------------------------------------

def test_catalogue_names_and_lookup():
    assert len(EV_FAULTS) >= 15
    for name, fault in EV_FAULTS.items():
        assert fault.name == name and fault.target == "ev" and fault.description
        assert set(fault.versions) <= {"din", "iso2", "iso20_dc", "iso20_ac"}
    with pytest.raises(UnknownFault, match="ev_skips_precharge"):
        get_ev_fault("no_such_fault")
    with pytest.raises(UnknownFault):
        EvSimulator(fault="no_such_fault")


@pytest.mark.parametrize("response, stop", [
    ({"DC_EVSEStatus": {"EVSENotification": "StopCharging", "EVSEStatusCode": "EVSE_Ready"}}, True),
    ({"DC_EVSEStatus": {"EVSENotification": "None", "EVSEStatusCode": "EVSE_Shutdown"}}, True),
    ({"DC_EVSEStatus": {"EVSENotification": "None", "EVSEStatusCode": "EVSE_EmergencyShutdown"}}, True),
    ({"EVSEStatus": {"EVSENotification": "Terminate", "NotificationMaxDelay": 0}}, True),
    ({"DC_EVSEStatus": {"EVSENotification": "ReNegotiation", "EVSEStatusCode": "EVSE_Ready"}}, False),
    ({"EVSEPresentCurrent": {"Value": 10, "Exponent": 0}}, False),
])
def test_evse_stop_signals(response: dict, stop: bool):
    assert evse_signals_stop(response) is stop


def test_plan_and_session_choices():
    sim = EvSimulator(EvSimConfig(loops=5), fault="ev_skips_welding_detection")
    assert sim.plan({}) == {"loops": 5, "dynamic": False, "welding_detection": False}
    assert sim.plan({"energy_mode": "AC_three_phase_core"})["energy_mode"] == "AC_three_phase_core"
    assert EvSimulator(fault="ev_no_session_stop").plan({"dynamic": True, "loops": 2}) == \
        {"loops": 2, "dynamic": True, "session_stop": False}
    with pytest.raises(ValueError, match="auth"):
        run(EvSimulator().perform("plug_in", {"host": "::1", "port": 1, "auth": "card"}))


def _evcc(fault: str | None, protocol: str = "iso2") -> Any:
    return EvSimulator(EvSimConfig(protocol=protocol), fault=fault).make_evcc({"protocol": protocol})


def test_request_bodies_carry_the_fault():
    assert _evcc("ev_evccid_malformed").build("SessionSetupReq")["EVCCID"] == bytes(6)
    assert _evcc(None).build("SessionSetupReq")["EVCCID"] != bytes(6)
    assert _evcc("ev_picks_unoffered_payment").build("PaymentServiceSelectionReq")["SelectedPaymentOption"] == "Contract"
    assert _evcc(None).build("PaymentServiceSelectionReq")["SelectedPaymentOption"] == "ExternalPayment"
    assert _evcc("ev_wrong_schedule_tuple").build("PowerDeliveryReq")["SAScheduleTupleID"] == 2
    assert _evcc(None).build("PowerDeliveryReq")["SAScheduleTupleID"] == 1
    high = _evcc("ev_exceeds_own_max_voltage").build("CurrentDemandReq")
    assert m.number(high["EVTargetVoltage"]) > m.number(high["EVMaximumVoltageLimit"])
    clean = _evcc(None).build("CurrentDemandReq")
    assert m.number(clean["EVTargetVoltage"]) <= m.number(clean["EVMaximumVoltageLimit"])
    wrong = _evcc("ev_precharge_wrong_target")
    assert m.number(wrong.build("PreChargeReq")["EVTargetVoltage"]) == wrong.ev.max_voltage
    ok = _evcc(None)
    assert m.number(ok.build("PreChargeReq")["EVTargetVoltage"]) == pytest.approx(ok.ev.battery_voltage, abs=0.5)
    loop20 = _evcc("ev_exceeds_own_max_voltage", "iso20_dc").build("DC_ChargeLoopReq")["Scheduled_DC_CLReqControlMode"]
    assert m.number(loop20["EVTargetVoltage"]) > m.number(loop20["EVMaximumVoltage"])
    mcs = _evcc("ev_picks_unoffered_service", "iso20_dc")
    mcs.state.energy_services = [2]
    assert mcs.build("ServiceSelectionReq")["SelectedEnergyTransferService"]["ServiceID"] == 8
    dc = _evcc(None, "iso20_dc")
    dc.state.energy_services = [2]
    assert dc.build("ServiceSelectionReq")["SelectedEnergyTransferService"]["ServiceID"] == 2
    dynamic = _evcc("ev_exceeds_own_max_voltage", "iso20_dc")
    dynamic.state.dynamic = True
    stated = dynamic.build("DC_ChargeLoopReq")["Dynamic_DC_CLReqControlMode"]["EVMaximumVoltage"]
    assert m.number(stated) > dynamic.ev.max_voltage


def test_lowered_limit_is_kept_or_ignored():
    lowered = {"EVSEMaximumCurrentLimit": m.pv(80, "A")}
    clean, faulty = _evcc(None), _evcc("ev_ignores_lowered_limit")
    for evcc in (clean, faulty):
        evcc._absorb_evse_values({"EVSEMaximumCurrentLimit": m.pv(200, "A")})
        evcc._absorb_evse_values(lowered)
    assert clean._evse_max_current() == 80 and faulty._evse_max_current() == 200


# -- against the harness's SECC on loopback ----------------------------------------------------------

async def _session(fault: str | None, protocol: str = "iso2", *, override: dict | None = None,
                   pki: Any = None, **secc_kw: Any) -> tuple[Secc, EvSimulator]:
    secc = Secc((protocol,), pki=pki, **secc_kw)
    secc.override = dict(override or {})
    host, port = await secc.start("::1")
    sim = EvSimulator(EvSimConfig(protocol=protocol, loops=3), fault=fault)
    try:
        await sim.perform("plug_in", {"host": host, "port": port, "protocol": protocol, "tls": secc.tls, "pki": pki})
        assert sim._task is not None
        await asyncio.wait_for(sim._task, 15)
        with contextlib.suppress(SeccError):
            await secc.wait_session_end(3)
    finally:
        await sim.stop()
        await secc.stop()
    return secc, sim


def _received(secc: Secc) -> list[str]:
    return [name for direction, name in secc.sessions[-1].messages if direction == "rx"]


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_clean_ev_conforms(protocol: str):
    secc, sim = run(_session(None, protocol))
    assert secc.sessions[-1].ended_in == "SessionStop" and not secc.violations and sim.error is None


def test_unoffered_payment_and_no_repeat_are_violations():
    secc, _ = run(_session("ev_picks_unoffered_payment"))
    assert [v.clause for v in secc.violations] == ["ISO15118-2 PaymentOption"]
    secc, _ = run(_session("ev_no_repeat_on_ongoing"))
    assert any("CableCheckReq/Ongoing" in v.text for v in secc.violations)


def test_stop_signal_ends_the_loop_unless_ignored():
    stop = {"CurrentDemandReq": {"DC_EVSEStatus": {"EVSENotification": "StopCharging"}}}
    secc, _ = run(_session(None, override=stop))
    assert _received(secc).count("CurrentDemandReq") == 1 and secc.sessions[-1].ended_in == "SessionStop"
    secc, _ = run(_session("ev_stop_ignored", override=stop))
    assert _received(secc).count("CurrentDemandReq") == 3


def test_welding_detection_and_evse_limit_faults():
    secc, _ = run(_session("ev_skips_welding_detection"))
    assert "WeldingDetectionReq" not in _received(secc) and secc.sessions[-1].ended_in == "SessionStop"
    secc, _ = run(_session("ev_exceeds_own_max_voltage"))
    assert any("EVTargetVoltage" in v.clause for v in secc.violations)


def test_auto_pnc_over_tls_and_pnc_faults():
    from harness.dut.builtin import process_v2g_pki

    pki = process_v2g_pki()
    secc, _ = run(_session(None, pki=pki))
    assert secc.sessions[-1].auth == "PnC" and secc.sessions[-1].authorized and not secc.violations
    secc, _ = run(_session("ev_stale_gen_challenge", pki=pki))
    assert [v.clause for v in secc.violations] == ["ISO15118-2 [V2G2-475]"]
    secc, _ = run(_session("ev_emaid_mismatch", pki=pki))
    assert [v.clause for v in secc.violations] == ["ISO15118-2 eMAID"]


def test_slow_requests_hit_the_sequence_timeout(monkeypatch):
    import harness.sim.ev_sim as ev_sim

    monkeypatch.setattr(ev_sim, "SLOW_REQUEST_S", 0.6)       # scaled down with the SECC's timeout
    secc, _ = run(_session("ev_slow_requests", sequence_timeout=0.3))
    assert secc.sessions[-1].ended_in == "timeout"
    assert any("Sequence_Timeout" in v.clause for v in secc.violations)
    secc, _ = run(_session(None, sequence_timeout=5))
    assert secc.sessions[-1].ended_in == "SessionStop"
