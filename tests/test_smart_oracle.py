"""The composite-schedule oracle (harness/smart): worked examples from the specs and the
official test catalogues, edge cases, and properties that must hold for any profile set."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.ocpp.schemas import validate
from harness.smart.oracle import composite_schedule, limit_at
from harness.smart.profiles import ProfileConflict, ProfileError, epoch, parse_profile
from harness.smart.schedule import NO_LIMIT, CompositePeriod, Tolerance, compare, convert

UTC = timezone.utc
TX_ID = "e23889e3-0fc7-424a-b2e9-dce774521b83"


def P(start, limit, phases=None):
    return CompositePeriod(start, limit, phases)


def sched201(periods, *, unit="A", start=None, duration=None, sid=1):
    s = {"id": sid, "chargingRateUnit": unit,
         "chargingSchedulePeriod": [{"startPeriod": sp, "limit": lim, **({"numberPhases": n} if n else {})}
                                    for sp, lim, *rest in periods for n in [rest[0] if rest else None]]}
    if start is not None:
        s["startSchedule"] = start
    if duration is not None:
        s["duration"] = duration
    return s


def prof201(pid, purpose, level, periods, *, kind="Absolute", start=None, duration=None, unit="A",
            recurrency=None, valid_from=None, valid_to=None, tx=None, schedules=None):
    p = {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
         "chargingSchedule": schedules or [sched201(periods, unit=unit, start=start, duration=duration)]}
    for key, value in (("recurrencyKind", recurrency), ("validFrom", valid_from), ("validTo", valid_to),
                       ("transactionId", tx)):
        if value is not None:
            p[key] = value
    return p


def req201(evse, profile):
    return {"evseId": evse, "chargingProfile": profile}


def req16(connector, pid, purpose, level, periods, *, kind="Absolute", start=None, duration=None, unit="A",
          recurrency=None, valid_from=None, valid_to=None, tx=None):
    s = {"chargingRateUnit": unit,
         "chargingSchedulePeriod": [{"startPeriod": sp, "limit": lim, **({"numberPhases": r[0]} if r else {})}
                                    for sp, lim, *r in periods]}
    if start is not None:
        s["startSchedule"] = start
    if duration is not None:
        s["duration"] = duration
    p = {"chargingProfileId": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}
    for key, value in (("recurrencyKind", recurrency), ("validFrom", valid_from), ("validTo", valid_to),
                       ("transactionId", tx)):
        if value is not None:
            p[key] = value
    return {"connectorId": connector, "csChargingProfiles": p}


# ---- worked examples ----------------------------------------------------------------------

# OCTT TC_K_41_CS "Get Composite Schedule - Combining chargingProfilePurposes" (OCPP 2.0.1
# Smart Charging certification profile): the three SetChargingProfile payloads the tool
# sends, verbatim from a published run; the tool fails a station that does not report
# 6 periods. Max 10 A; Tx overrides TxDefault until its duration (264 s) ends, then
# TxDefault (until 304 s), then only the max.
K41_MAX = req201(0, prof201(1, "ChargingStationMaxProfile", 0, [(0, 10.0, 3)], start="2024-08-21T12:24:36Z",
                            duration=86404))
K41_TXD = req201(1, prof201(2, "TxDefaultProfile", 0,
                            [(0, 6.0, 3), (60, 10.0, 3), (120, 8.0, 3), (180, 15.0, 3), (260, 8.0, 3)],
                            start="2024-08-21T12:24:36Z", duration=304, valid_from="2024-08-21T12:24:36Z",
                            valid_to="2024-08-21T12:31:25Z"))
K41_TX = req201(1, prof201(2, "TxProfile", 0,
                           [(0, 8.0, 3), (50, 11.0, 3), (140, 16.0, 3), (200, 6.0, 3), (240, 12.0, 3)],
                           start="2024-08-21T12:24:36Z", duration=264, tx=TX_ID))
K41_EXPECTED = [P(0, 8.0, 3), P(46, 10.0, 3), P(196, 6.0, 3), P(236, 10.0, 3), P(260, 8.0, 3), P(300, 10.0, 3)]


def k41(**kw):
    args = dict(version="2.0.1", evse_id=1, start="2024-08-21T12:24:40Z", duration_s=400, unit="A",
                transaction_id=TX_ID)
    args.update(kw)
    return composite_schedule([K41_MAX, K41_TXD, K41_TX], **args)


def test_octt_tc_k_41_cs_combining_purposes():
    cs = k41()
    assert cs.periods == K41_EXPECTED
    payload = cs.to_response("2.0.1")
    assert payload["schedule"] == {
        "evseId": 1, "duration": 400, "scheduleStart": "2024-08-21T12:24:40Z", "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim, "numberPhases": 3} for s, lim, _ in K41_EXPECTED]}
    assert validate("2.0.1", "GetCompositeSchedule", "response", payload) is None


def test_octt_tc_k_41_cs_the_failing_station_is_explained():
    # The station in that run answered one 10 A period; the FAIL must say why, period by period.
    reported = {"schedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
        {"limit": 10.0, "numberPhases": 3, "startPeriod": 0}], "duration": 400, "evseId": 1,
        "scheduleStart": "2024-08-21T12:24:40.000Z"}, "status": "Accepted"}
    diff = compare(k41(), reported)
    assert diff[0] == "expected 6 period(s), reported 1"
    assert any(d.startswith("period 1 (startPeriod 0 s") and "expected 8 A" in d and "reported 10 A (higher)" in d
               for d in diff)
    assert any("period 3 (startPeriod 196 s" in d and "expected 6 A" in d for d in diff)
    assert any("period 5 (startPeriod 260 s" in d for d in diff)
    assert len(diff) == 4            # periods 2, 4 and 6 are right


def test_octt_tc_k_41_cs_without_the_transaction_tx_default_applies():
    cs = k41(transaction_id=None)
    # TxDefault from +4 s: 6 (until 60), 10, 8 (120), 10 (15 capped, 180), 8 (260..304), then max 10
    assert cs.periods == [P(0, 6.0, 3), P(56, 10.0, 3), P(116, 8.0, 3), P(176, 10.0, 3), P(256, 8.0, 3),
                          P(300, 10.0, 3)]
    # a TxProfile of another transaction is ignored too
    assert k41(transaction_id="another").periods == cs.periods


# OCPP 1.6 §3.13.7 "Example data structure for smart charging": a daily default profile
# limiting to 6 kW between 08:00 and 20:00 (11 kW otherwise). OCPP 2.0.1 Part 2 repeats it.
DAILY_16 = req16(0, 100, "TxDefaultProfile", 0, [(0, 11000, 3), (28800, 6000, 3), (72000, 11000, 3)],
                 kind="Recurring", recurrency="Daily", start="2013-01-01T00:00:00Z", duration=86400, unit="W")  # the spec writes 00:00Z


def test_spec_16_daily_example_over_a_day():
    cs = composite_schedule([DAILY_16], version="1.6", evse_id=1, start="2024-05-01T00:00:00Z",
                            duration_s=86400, unit="W")
    assert cs.periods == [P(0, 11000.0, 3), P(28800, 6000.0, 3), P(72000, 11000.0, 3)]
    payload = cs.to_response("1.6")
    assert validate("1.6", "GetCompositeSchedule", "response", payload) is None
    assert payload["connectorId"] == 1 and payload["scheduleStart"] == "2024-05-01T00:00:00Z"
    assert payload["chargingSchedule"]["chargingSchedulePeriod"][1] == {"startPeriod": 28800, "limit": 6000.0,
                                                                         "numberPhases": 3}


def test_spec_16_daily_example_crossing_midnight_merges_the_night():
    cs = composite_schedule([DAILY_16], version="1.6", evse_id=2, start="2024-05-01T18:00:00Z",
                            duration_s=16 * 3600, unit="W")
    # 18:00 6 kW, 20:00–08:00 11 kW as ONE period across midnight, 08:00 6 kW
    assert cs.periods == [P(0, 6000.0, 3), P(7200, 11000.0, 3), P(50400, 6000.0, 3)]


def test_spec_16_daily_example_in_amps_at_230_v():
    cs = composite_schedule([DAILY_16], version="1.6", evse_id=1, start="2024-05-01T06:00:00Z",
                            duration_s=4 * 3600, unit="A", voltage_v=230.0)
    # 11000 / (230 × 3) = 15.94 → 15.9 (rounded down); 6000 / 690 = 8.69 → 8.6
    assert cs.periods == [P(0, 15.9, 3), P(7200, 8.6, 3)]


def test_spec_201_daily_example_on_evse_0_applies_to_each_evse():
    daily = req201(0, prof201(100, "TxDefaultProfile", 0, [(0, 11000.0, 3), (28800, 6000.0, 3), (72000, 11000.0, 3)],
                              kind="Recurring", recurrency="Daily", start="2013-01-01T00:00:00Z", duration=86400,
                              unit="W"))
    for evse in (1, 2):
        cs = composite_schedule([daily], version="2.0.1", evse_id=evse, start="2024-05-01T07:00:00Z",
                                duration_s=7200)
        assert cs.unit == "W"                         # none requested: the profiles' unit
        assert cs.periods == [P(0, 11000.0, 3), P(3600, 6000.0, 3)]
        assert cs.to_payload("2.0.1")["evseId"] == evse
    # … but it is no grid total: EVSE 0 sees only station-wide limits (K08.FR.03)
    grid = composite_schedule([daily], version="2.0.1", evse_id=0, start="2024-05-01T07:00:00Z", duration_s=60)
    assert grid.periods == [P(0, NO_LIMIT)]


def test_16_stacking_higher_level_falls_back_when_its_duration_ends():
    # Modelled on OCTT TC_072_CS "Stacking Charging Profiles": two TxDefaultProfiles on one
    # connector, stackLevel 0 for 400 s (6/8/10 A) and stackLevel 1 for 150 s.
    t0 = "2024-05-01T10:00:00Z"
    low = req16(1, 1, "TxDefaultProfile", 0, [(0, 6), (100, 8), (200, 10)], start=t0, duration=400)
    high = req16(1, 2, "TxDefaultProfile", 1, [(0, 10), (75, 7)], start=t0, duration=150)
    cs = composite_schedule([low, high], version="1.6", evse_id=1, start=t0, duration_s=500, unit="A")
    # 0–75 high 10, 75–150 high 7, 150–200 low 8, 200–400 low 10, 400–500 nothing
    assert cs.periods == [P(0, 10.0), P(75, 7.0), P(150, 8.0), P(200, 10.0), P(400, NO_LIMIT)]
    with_max = composite_schedule([low, high], version="1.6", evse_id=1, start=t0, duration_s=500, unit="A",
                                  max_limit=32)
    assert with_max.periods[-1] == P(400, 32.0)
    assert with_max.to_payload("1.6")["chargingSchedulePeriod"][-1] == {"startPeriod": 400, "limit": 32.0}


def test_16_charge_point_max_caps_tx_and_tx_default():
    # Modelled on OCTT TC_066_CS: a ChargePointMaxProfile of 10 A on connector 0, a
    # TxDefaultProfile and a TxProfile for the running transaction.
    t0 = "2024-05-01T10:00:00Z"
    cp_max = req16(0, 1, "ChargePointMaxProfile", 0, [(0, 10)], start=t0, duration=86400)
    txd = req16(1, 2, "TxDefaultProfile", 0, [(0, 6), (100, 12)], start=t0, duration=400)
    tx = req16(1, 3, "TxProfile", 0, [(0, 8), (60, 16), (120, 5)], kind="Relative", duration=200, tx=42)
    cs = composite_schedule([cp_max, txd, tx], version="1.6", evse_id=1, start=t0, duration_s=400, unit="A",
                            transaction_id=42, transaction_start="2024-05-01T10:00:50Z")
    # tx runs 50–250: 8, 16→10 (capped), 5; TxDefault before (6) and after (12→10)
    assert cs.periods == [P(0, 6.0), P(50, 8.0), P(110, 10.0), P(170, 5.0), P(250, 10.0)]
    # the connector-0 request reports the grid connection: the charge point max only
    grid = composite_schedule([cp_max, txd, tx], version="1.6", evse_id=0, start=t0, duration_s=400, unit="A",
                              transaction_id=42)
    assert grid.periods == [P(0, 10.0)]


# ---- edge cases ---------------------------------------------------------------------------

BASE = "2024-06-03T00:00:00Z"   # a Monday


def _at(hours: float) -> str:
    return (datetime(2024, 6, 3, tzinfo=UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_valid_from_in_the_future_leaves_the_lower_level_until_then():
    low = req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 32.0)], start=BASE))
    high = req201(1, prof201(2, "TxDefaultProfile", 5, [(0, 16.0)], start=BASE, valid_from=_at(2)))
    cs = composite_schedule([low, high], version="2.0.1", evse_id=1, start=_at(1), duration_s=3 * 3600)
    assert cs.periods == [P(0, 32.0), P(3600, 16.0)]


def test_valid_to_expiring_mid_window_falls_back():
    low = req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 32.0)], start=BASE))
    high = req201(1, prof201(2, "TxDefaultProfile", 5, [(0, 16.0)], start=BASE, valid_to=_at(2)))
    cs = composite_schedule([low, high], version="2.0.1", evse_id=1, start=_at(1), duration_s=3 * 3600)
    assert cs.periods == [P(0, 16.0), P(3600, 32.0)]
    # validTo is exclusive: at validTo itself the profile no longer counts
    assert limit_at([low, high], _at(2), version="2.0.1", evse_id=1) == 32.0
    assert limit_at([low, high], "2024-06-03T01:59:59Z", version="2.0.1", evse_id=1) == 16.0


def test_recurring_daily_window_crossing_midnight():
    base = req201(0, prof201(1, "TxDefaultProfile", 0, [(0, 100.0)], start=BASE))
    night = req201(0, prof201(2, "TxDefaultProfile", 1, [(0, 20.0), (7200, 40.0)], kind="Recurring",
                              recurrency="Daily", start="2024-06-01T22:00:00Z", duration=4 * 3600))
    cs = composite_schedule([base, night], version="2.0.1", evse_id=1, start=_at(20), duration_s=10 * 3600)
    # 20:00 base, 22:00–00:00 20 A, 00:00–02:00 40 A (the same night's second period), 02:00 base
    assert cs.periods == [P(0, 100.0), P(7200, 20.0), P(14400, 40.0), P(21600, 100.0)]
    # a window starting inside the night picks the recurrence up mid-cycle
    cs = composite_schedule([base, night], version="2.0.1", evse_id=1, start=_at(23), duration_s=7200)
    assert cs.periods == [P(0, 20.0), P(3600, 40.0)]


def test_recurring_weekly_and_no_period_before_first_start():
    weekend = req201(0, prof201(1, "ChargingStationMaxProfile", 0, [(0, 0.0), (2 * 86400, 50.0)],
                                kind="Recurring", recurrency="Weekly", start="2024-06-01T00:00:00Z"))  # a Saturday
    cs = composite_schedule([weekend], version="2.0.1", evse_id=1, start="2024-06-07T12:00:00Z",
                            duration_s=2 * 86400)
    # Friday noon: 50 (last period of the week runs until the recurrence); Saturday 00:00 → 0; Sunday still 0
    assert cs.periods == [P(0, 50.0), P(12 * 3600, 0.0)]
    before = composite_schedule([weekend], version="2.0.1", evse_id=1, start="2024-05-31T12:00:00Z",
                                duration_s=86400)
    assert before.periods == [P(0, NO_LIMIT), P(12 * 3600, 0.0)]


def test_recurring_duration_longer_than_the_recurrence_is_cut():
    # 1.6 §5.16.4 note / errata v4 §3.44: periods past the recurrence period are not executed
    prof = req16(1, 1, "TxDefaultProfile", 0, [(0, 10), (90000, 3)], kind="Recurring", recurrency="Daily",
                 start="2024-06-01T00:00:00Z", duration=100000)
    cs = composite_schedule([prof], version="1.6", evse_id=1, start=BASE, duration_s=2 * 86400)
    assert cs.periods == [P(0, 10.0)]


def test_relative_profile_starts_at_transaction_start():
    rel = req201(1, prof201(7, "TxProfile", 0, [(0, 32.0), (1800, 16.0)], kind="Relative", duration=3600, tx="T1"))
    txd = req201(1, prof201(8, "TxDefaultProfile", 0, [(0, 25.0)], start=BASE))
    cs = composite_schedule([rel, txd], version="2.0.1", evse_id=1, start=_at(10), duration_s=3600,
                            transaction_id="T1", transaction_start="2024-06-03T09:50:00Z")
    # started 10 min before: 20 more minutes at 32, 30 at 16, then the TxDefault again
    assert cs.periods == [P(0, 32.0), P(1200, 16.0), P(3000, 25.0)]
    # no start given: as if the transaction started at the requested start
    cs = composite_schedule([rel, txd], version="2.0.1", evse_id=1, start=_at(10), duration_s=7200,
                            transaction_id="T1")
    assert cs.periods == [P(0, 32.0), P(1800, 16.0), P(3600, 25.0)]


def test_16_schedule_without_start_schedule_is_relative_to_start_of_charging():
    prof = req16(1, 1, "TxDefaultProfile", 0, [(0, 10), (600, 20)], kind="Absolute", duration=1200)
    cs = composite_schedule([prof], version="1.6", evse_id=1, start=_at(1), duration_s=1800,
                            transaction_id=5, transaction_start=_at(0.9))
    # the schedule began at 00:54: 6 more minutes at 10, then 20 until 01:14, then nothing
    assert cs.periods == [P(0, 10.0), P(240, 20.0), P(840, NO_LIMIT)]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_equal_stack_levels_are_rejected(version):
    if version == "1.6":
        a = req16(1, 1, "TxDefaultProfile", 3, [(0, 10)], start=BASE)
        b = req16(1, 2, "TxDefaultProfile", 3, [(0, 20)], start=BASE, valid_from=_at(100))
    else:
        a = req201(1, prof201(1, "TxDefaultProfile", 3, [(0, 10.0)], start=BASE))
        b = req201(1, prof201(2, "TxDefaultProfile", 3, [(0, 20.0)], start=BASE, valid_from=_at(100)))
    with pytest.raises(ProfileConflict, match="stackLevel 3") as err:
        composite_schedule([a, b], version=version, evse_id=1, start=BASE, duration_s=60)
    assert ("§3.13.2" if version == "1.6" else "K01.FR.06") in str(err.value)


def test_201_equal_stack_levels_with_disjoint_validity_are_fine():
    a = req201(1, prof201(1, "TxDefaultProfile", 3, [(0, 10.0)], start=BASE, valid_to=_at(1)))
    b = req201(1, prof201(2, "TxDefaultProfile", 3, [(0, 20.0)], start=BASE, valid_from=_at(1)))
    cs = composite_schedule([a, b], version="2.0.1", evse_id=1, start=BASE, duration_s=7200)
    assert cs.periods == [P(0, 10.0), P(3600, 20.0)]


def test_201_tx_default_on_evse_0_and_evse_at_same_level_conflict():
    a = req201(0, prof201(1, "TxDefaultProfile", 2, [(0, 10.0)], start=BASE))
    b = req201(1, prof201(2, "TxDefaultProfile", 2, [(0, 20.0)], start=BASE))
    with pytest.raises(ProfileConflict, match="K01.FR.52"):
        composite_schedule([a, b], version="2.0.1", evse_id=1, start=BASE, duration_s=60)
    # … but on EVSE 2 only the EVSE-0 profile applies, so there is nothing to conflict with
    assert composite_schedule([a, b], version="2.0.1", evse_id=2, start=BASE, duration_s=60).periods == [P(0, 10.0)]


def test_16_connector_tx_default_replaces_connector_0_at_the_same_level_only():
    zero0 = req16(0, 1, "TxDefaultProfile", 0, [(0, 10)], start=BASE)
    zero1 = req16(0, 2, "TxDefaultProfile", 1, [(0, 30)], start=BASE, duration=3600)
    own0 = req16(1, 3, "TxDefaultProfile", 0, [(0, 20)], start=BASE)
    args = dict(version="1.6", start=BASE, duration_s=7200, unit="A")
    # connector 1: its own level 0 replaces connector 0's level 0; connector 0's level 1 still stacks on top
    assert composite_schedule([zero0, zero1, own0], evse_id=1, **args).periods == [P(0, 30.0), P(3600, 20.0)]
    assert composite_schedule([zero0, zero1, own0], evse_id=2, **args).periods == [P(0, 30.0), P(3600, 10.0)]
    # the alternative reading some stations implement: any own TxDefault hides connector 0's
    hides = composite_schedule([zero0, zero1, own0], evse_id=1, tx_default_scope="evse-hides-zero", **args)
    assert hides.periods == [P(0, 20.0)]


def test_201_external_constraints_cap_station_wide_and_per_evse():
    txd = req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 32.0)], start=BASE))
    ext0 = req201(0, prof201(-1, "ChargingStationExternalConstraints", 0, [(0, 25.0), (600, 40.0)], start=BASE))
    ext1 = req201(1, prof201(-2, "ChargingStationExternalConstraints", 0, [(0, 30.0), (1200, 20.0)], start=BASE))
    cs = composite_schedule([txd, ext0, ext1], version="2.0.1", evse_id=1, start=BASE, duration_s=1800)
    assert cs.periods == [P(0, 25.0), P(600, 30.0), P(1200, 20.0)]
    grid = composite_schedule([txd, ext0, ext1], version="2.0.1", evse_id=0, start=BASE, duration_s=1800)
    assert grid.periods == [P(0, 25.0), P(600, 40.0)]


def test_units_mixed_profiles_and_phases():
    # A station max in W (DC depot: 400 kW), a TxProfile in A on a 1-phase cable
    st_max = req201(0, prof201(1, "ChargingStationMaxProfile", 0, [(0, 11000.0)], start=BASE, unit="W"))
    tx = req201(1, prof201(2, "TxProfile", 0, [(0, 32.0, 1), (600, 10.0, 1)], start=BASE, tx="T"))
    args = dict(version="2.0.1", evse_id=1, start=BASE, duration_s=1200, transaction_id="T")
    in_a = composite_schedule([st_max, tx], unit="A", **args)
    # 1 phase in force (the lowest stated): 11000 W / 230 V = 47.8 A, so the 32 A of the Tx holds
    assert in_a.periods == [P(0, 32.0, 1), P(600, 10.0, 1)]
    in_w = composite_schedule([st_max, tx], unit="W", **args)
    assert in_w.periods == [P(0, 7360.0, 1), P(600, 2300.0, 1)]
    assert in_a.in_unit("W").periods == in_w.periods
    mixed = composite_schedule([st_max, tx], **args)
    assert mixed.unit == "A" and not mixed.unit_requested


def test_dc_depot_charger_in_watts():
    # DC: no numberPhases; describe the EVSE with phases=1 and its DC voltage
    tx = req201(1, prof201(1, "TxProfile", 0, [(0, 500.0), (900, 250.0)], start=BASE, tx="T"))
    cs = composite_schedule([tx], version="2.0.1", evse_id=1, start=BASE, duration_s=1800, unit="W",
                            voltage_v=800.0, phases=1, transaction_id="T")
    assert cs.periods == [P(0, 400000.0), P(900, 200000.0)]


def test_multiple_charging_schedules_pick_by_index():
    two = prof201(1, "TxProfile", 0, None, tx="T", schedules=[
        sched201([(0, 32.0)], start=BASE, sid=1), sched201([(0, 16.0)], start=BASE, sid=2)])
    st_max = req201(0, prof201(2, "ChargingStationMaxProfile", 0, [(0, 20.0)], start=BASE))
    args = dict(version="2.0.1", evse_id=1, start=BASE, duration_s=60, transaction_id="T")
    assert composite_schedule([req201(1, two), st_max], **args).periods == [P(0, 20.0)]
    assert composite_schedule([req201(1, two), st_max], schedule_index=1, **args).periods == [P(0, 16.0)]
    assert composite_schedule([req201(1, two), st_max], schedule_index=2, **args).periods == [P(0, 20.0)]


def test_no_profiles_no_limit_and_its_wire_form():
    cs = composite_schedule([], version="2.0.1", evse_id=1, start=BASE, duration_s=60, unit="A")
    assert cs.periods == [P(0, NO_LIMIT)]
    with pytest.raises(ValueError, match="no_limit"):
        cs.to_payload("2.0.1")
    assert cs.to_payload("2.0.1", no_limit=63.0)["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 63.0}]
    filled = composite_schedule([], version="2.0.1", evse_id=1, start=BASE, duration_s=60, unit="A",
                                max_limit=150000, max_limit_unit="W", voltage_v=400, phases=3)
    assert filled.periods == [P(0, 125.0)]


def test_start_with_fractions_is_truncated_and_datetimes_are_accepted():
    start = datetime(2024, 8, 21, 12, 24, 40, 365000, tzinfo=UTC)
    assert k41(start=start).periods == K41_EXPECTED
    assert k41(start=start.replace(tzinfo=None)).periods == K41_EXPECTED   # naive = UTC


# ---- garbage profiles ----------------------------------------------------------------------

@pytest.mark.parametrize("version, payload, match", [
    ("2.0.1", {"evseId": 1, "chargingProfile": {"id": 1, "stackLevel": 0}}, "schema"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 10.0)], kind="Sometimes", start=BASE)), "schema"),
    ("1.6", req16(1, 1, "TxDefaultProfile", 0, [(0, 8.15)], start=BASE), "multiple of 0.1"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(10, 10.0)], start=BASE)), "K01.FR.31"),
    ("1.6", req16(1, 1, "TxDefaultProfile", 0, [(5, 10)], start=BASE), "startPeriod 0"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 10.0), (60, 5.0), (30, 1.0)], start=BASE)),
     "K01.FR.35"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 10.0)], kind="Relative", start=BASE)), "K01.FR.41"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(0, 10.0)])), "K01.FR.40"),
    ("2.0.1", req201(0, prof201(1, "ChargingStationMaxProfile", 0, [(0, 10.0)], kind="Relative")), "K01.FR.38"),
    ("2.0.1", req201(0, prof201(1, "TxProfile", 0, [(0, 10.0)], start=BASE, tx="T")), "K01.FR.16"),
    ("1.6", req16(1, 1, "ChargePointMaxProfile", 0, [(0, 10)], start=BASE), "connector 0"),
    ("1.6", req16(1, 1, "TxDefaultProfile", 0, [(0, 10)], kind="Recurring", start=BASE), "recurrencyKind"),
    ("1.6", req16(1, 1, "TxDefaultProfile", 0, [(0, 10)], start=BASE, valid_from=_at(2), valid_to=_at(1)),
     "never valid"),
    ("2.0.1", req201(1, prof201(1, "TxDefaultProfile", 0, [(0, -5.0)], start=BASE)), "negative limit"),
])
def test_garbage_profiles_raise_a_clear_error(version, payload, match):
    with pytest.raises(ProfileError, match=match):
        composite_schedule([payload], version=version, evse_id=1, start=BASE, duration_s=60)


def test_parse_profile_takes_the_inner_object_and_the_evse():
    p = parse_profile("1.6", DAILY_16["csChargingProfiles"], evse_id=0)
    assert (p.purpose, p.kind, p.recurrency, p.evse_id, p.stack_level) == ("TxDefaultProfile", "Recurring",
                                                                          "Daily", 0, 0)
    assert p.schedules[0].start_schedule == epoch("2013-01-01T00:00:00Z")
    cs = composite_schedule([(1, K41_TX["chargingProfile"]), K41_MAX], version="2.0.1", evse_id=1,
                            start="2024-08-21T12:24:40Z", duration_s=10, transaction_id=TX_ID)
    assert cs.periods == [P(0, 8.0, 3)]
    with pytest.raises(ProfileError, match="not 2.0.1"):
        composite_schedule([p], version="2.0.1", evse_id=1, start=BASE, duration_s=10)


# ---- compare ------------------------------------------------------------------------------

def test_compare_accepts_a_station_that_started_a_second_later():
    cs = k41()
    payload = cs.to_response("2.0.1")
    payload["schedule"]["scheduleStart"] = "2024-08-21T12:24:41Z"
    for period in payload["schedule"]["chargingSchedulePeriod"][1:]:
        period["startPeriod"] -= 1
    payload["schedule"]["duration"] = 399
    assert compare(cs, payload) == []
    assert compare(cs, payload, Tolerance(time_s=0))   # …unless no deviation is allowed


def test_compare_other_unit_and_unmerged_periods_and_rejection():
    cs = k41()
    w = cs.in_unit("W").to_response("2.0.1")
    diff = compare(cs, w)
    assert diff == ["chargingRateUnit is 'W' but 'A' was requested "
                    "(1.6 §6.21 / 2.0.1 GetCompositeScheduleRequest.chargingRateUnit)"]
    unmerged = cs.to_response("2.0.1")
    unmerged["schedule"]["chargingSchedulePeriod"].insert(2, {"startPeriod": 100, "limit": 10.0, "numberPhases": 3})
    assert compare(cs, unmerged) == ["expected 6 period(s), reported 7 (1 adjacent pair(s) with equal limits not merged)"]
    assert compare(cs, unmerged, Tolerance(period_count=False)) == []
    assert compare(cs, {"status": "Rejected"}) == ["status is 'Rejected', expected 'Accepted'"]
    other_evse = cs.to_response("2.0.1")
    other_evse["schedule"]["evseId"] = 2
    assert compare(cs, other_evse) == ["the schedule is for EVSE 2, expected 1"]
    assert compare(cs, {"status": "Accepted", "schedule": None}) == [
        "no composite schedule reported (neither 'schedule' nor 'chargingSchedule')"]


def test_compare_16_payload_and_short_schedule():
    cs = composite_schedule([DAILY_16], version="1.6", evse_id=1, start="2024-05-01T06:00:00Z",
                            duration_s=4 * 3600, unit="W")
    payload = cs.to_response("1.6")
    assert compare(cs, payload) == []
    assert compare(cs, payload["chargingSchedule"]) == []       # the inner object alone
    payload["chargingSchedule"]["duration"] = 3600
    diff = compare(cs, payload)
    assert "duration is 3600 s, expected 14400 s" in diff
    assert any("period 2" in d and "not covered" in d for d in diff)
    payload = cs.to_response("1.6")
    payload["chargingSchedule"]["chargingSchedulePeriod"][1]["numberPhases"] = 1
    assert any("numberPhases 1" in d for d in compare(cs, payload))


def test_compare_no_limit_accepts_the_stations_maximum():
    cs = composite_schedule([], version="2.0.1", evse_id=1, start=BASE, duration_s=60, unit="A")
    assert compare(cs, cs.to_response("2.0.1", no_limit=500.0)) == []


# ---- properties ---------------------------------------------------------------------------

W0 = epoch(BASE)
DAY = 86400


@st.composite
def profile_sets(draw, version="2.0.1", phases=None, units=("A", "W")):
    """A random installed set for EVSE 1 with a running transaction 'T' (tx id 7 in 1.6)."""
    n = draw(st.integers(1, 7))
    levels = draw(st.permutations(range(n)))        # unique stack levels: no conflicts
    purposes = (["ChargingStationMaxProfile", "ChargingStationExternalConstraints", "TxDefaultProfile", "TxProfile"]
                if version == "2.0.1" else ["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"])
    out = []
    for i in range(n):
        purpose = draw(st.sampled_from(purposes))
        kind = draw(st.sampled_from(["Absolute", "Relative", "Recurring"]))
        if purpose in ("ChargingStationMaxProfile", "ChargePointMaxProfile") and kind == "Relative":
            kind = "Absolute"
        evse = 0 if "Max" in purpose else 1 if purpose == "TxProfile" else draw(st.sampled_from([0, 1]))
        unit = draw(st.sampled_from(units))
        starts = sorted(draw(st.sets(st.integers(1, 30000), max_size=3)))
        limits = [(k * 23 if unit == "W" else k / 10) for k in draw(st.lists(st.integers(0, 640), min_size=len(starts) + 1,
                                                                             max_size=len(starts) + 1))]
        periods = [(s, lim, phases) if phases else (s, lim) for s, lim in zip([0] + starts, limits)]
        start = None if kind == "Relative" else _iso(W0 + draw(st.integers(-DAY, DAY)))
        duration = draw(st.one_of(st.none(), st.integers(60, 40000)))
        valid_from = draw(st.one_of(st.none(), st.integers(-DAY, DAY)))
        valid_to = draw(st.one_of(st.none(), st.integers(1, 2 * DAY)))
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            valid_to = valid_from + 1
        kw = dict(kind=kind, start=start, duration=duration, unit=unit,
                  recurrency=draw(st.sampled_from(["Daily", "Weekly"])) if kind == "Recurring" else None,
                  valid_from=None if valid_from is None else _iso(W0 + valid_from),
                  valid_to=None if valid_to is None else _iso(W0 + valid_to),
                  tx=(("T" if version == "2.0.1" else 7) if purpose == "TxProfile" and draw(st.booleans()) else None))
        if version == "2.0.1":
            out.append(req201(evse, prof201(i + 1, purpose, levels[i], periods, **kw)))
        else:
            out.append(req16(evse, i + 1, purpose, levels[i], periods, **kw))
    return out


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(profiles, version="2.0.1", **kw):
    args = dict(version=version, evse_id=1, start=BASE, duration_s=DAY, unit="A",
                transaction_id="T" if version == "2.0.1" else 7, transaction_start=_at(-1))
    args.update(kw)
    return composite_schedule(profiles, **args)


def _instants(*schedules, extra=()):
    ts = {0, DAY - 1, *extra}
    for cs in schedules:
        for p in cs.periods:
            ts.update({p.start_offset_s, max(0, p.start_offset_s - 1)})
    return sorted(t for t in ts if 0 <= t < DAY)


# ORACLE_EXAMPLES=2000 for a deeper search than the default run's budget (the suite stays < 20 s)
PROPS = settings(max_examples=int(os.environ.get("ORACLE_EXAMPLES", "60")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(st.sampled_from(["1.6", "2.0.1"]).flatmap(lambda v: st.tuples(st.just(v), profile_sets(v, phases=3))),
       st.lists(st.integers(0, DAY - 1), max_size=20))
def test_property_composite_never_exceeds_a_cap(case, probes):
    version, profiles = case
    caps = [p for p in profiles if p.get("csChargingProfiles", p.get("chargingProfile"))["chargingProfilePurpose"]
            in ("ChargePointMaxProfile", "ChargingStationMaxProfile", "ChargingStationExternalConstraints")]
    everything = _run(profiles, version)
    only_caps = _run(caps, version)
    for t in _instants(everything, only_caps, extra=probes):
        cap = only_caps.limit_at_offset(t)
        if cap is not None:
            got = everything.limit_at_offset(t)
            assert got is not None and got <= cap + 1e-9, (t, got, cap)


@PROPS
@given(profile_sets(phases=3), st.data())
def test_property_a_higher_level_changes_nothing_where_it_has_no_period(profiles, data):
    purpose = data.draw(st.sampled_from(["ChargingStationMaxProfile", "ChargingStationExternalConstraints",
                                         "TxDefaultProfile", "TxProfile"]))
    top = 1 + max(p["chargingProfile"]["stackLevel"] for p in profiles)
    evse = 0 if "Max" in purpose else 1
    start = W0 + data.draw(st.integers(-3600, DAY))
    new = req201(evse, prof201(99, purpose, top, [(0, data.draw(st.integers(0, 640)) / 10, 3)],
                               start=_iso(start), duration=data.draw(st.integers(60, 20000)),
                               tx="T" if purpose == "TxProfile" else None))
    before, after, alone = _run(profiles), _run(profiles + [new]), _run([new])
    for t in _instants(before, after, alone):
        if alone.limit_at_offset(t) is None:
            assert after.limit_at_offset(t) == before.limit_at_offset(t), t


@PROPS
@given(st.sampled_from(["1.6", "2.0.1"]).flatmap(lambda v: st.tuples(st.just(v), profile_sets(v))),
       st.sampled_from(["A", "W", None]), st.randoms(use_true_random=False))
def test_property_merged_and_order_independent(case, unit, rnd):
    version, profiles = case
    cs = _run(profiles, version, unit=unit)
    assert cs.periods[0].start_offset_s == 0
    for a, b in zip(cs.periods, cs.periods[1:]):
        assert a.start_offset_s < b.start_offset_s
        assert (a.limit, a.number_phases) != (b.limit, b.number_phases)
    shuffled = list(profiles)
    rnd.shuffle(shuffled)
    assert _run(shuffled, version, unit=unit) == cs
    # the wire form is schema-valid (1.6: limits multiple of 0.1) and reads back as itself
    response = cs.to_response(version, no_limit=999.9)
    if all(p.limit is not None for p in cs.periods):
        assert compare(cs, response) == []


@PROPS
@given(profile_sets(phases=None), st.sampled_from([1, 3]), st.sampled_from([110.0, 230.0, 400.0]))
def test_property_unit_round_trip(profiles, phases, voltage):
    in_a = _run(profiles, phases=phases, voltage_v=voltage)
    in_w = _run(profiles, unit="W", phases=phases, voltage_v=voltage)
    back = in_a.in_unit("W").in_unit("A")
    for t in _instants(in_a, in_w, back):
        a, w, b = in_a.limit_at_offset(t), in_w.limit_at_offset(t), back.limit_at_offset(t)
        assert (a is None) == (w is None) == (b is None)
        if a is not None:
            assert abs(b - a) <= 0.1 + 1e-9                                 # A → W → A
            assert abs(convert(w, "W", "A", voltage_v=voltage, phases=phases) - a) <= 0.1 + 1e-9


# An independent, naive reading of the rules (no time line, no merging): the limit at one
# instant, straight from the payload dicts. The oracle must agree with it everywhere.
def _naive(profiles, t, tx_start):
    def piece(p):
        s = p["chargingSchedule"][0]
        ts = W0 + t
        if "validFrom" in p and ts < epoch(p["validFrom"]):
            return None
        if "validTo" in p and ts >= epoch(p["validTo"]):
            return None
        origin = tx_start if p["chargingProfileKind"] == "Relative" else epoch(s["startSchedule"])
        length = s.get("duration", float("inf"))
        if p["chargingProfileKind"] == "Recurring":
            period = DAY if p["recurrencyKind"] == "Daily" else 7 * DAY
            if ts < origin:
                return None
            origin += (ts - origin) // period * period
            length = min(length, period)
        off = ts - origin
        if off < 0 or off >= length:
            return None
        current = None
        for q in s["chargingSchedulePeriod"]:
            if q["startPeriod"] <= off:
                current = q["limit"] if s["chargingRateUnit"] == "A" else q["limit"] / 690
        return current

    def stack(group):
        for p in sorted(group, key=lambda p: -p["stackLevel"]):
            v = piece(p)
            if v is not None:
                return v
        return None

    by = {}
    for r in profiles:
        p = r["chargingProfile"]
        by.setdefault((p["chargingProfilePurpose"], r["evseId"]), []).append(p)
    tx = stack(by.get(("TxProfile", 1), []))
    if tx is None:
        tx = stack(by.get(("TxDefaultProfile", 1), []) + by.get(("TxDefaultProfile", 0), []))
    values = [v for v in (tx, stack(by.get(("ChargingStationMaxProfile", 0), [])),
                          stack(by.get(("ChargingStationExternalConstraints", 0), [])),
                          stack(by.get(("ChargingStationExternalConstraints", 1), []))) if v is not None]
    return min(values) if values else None


@PROPS
@given(profile_sets(), st.lists(st.integers(0, DAY - 1), min_size=5, max_size=30))
def test_property_agrees_with_a_naive_reading(profiles, probes):
    cs = _run(profiles)
    for t in _instants(cs, extra=probes):
        want = _naive(profiles, t, W0 - 3600)
        got = cs.limit_at_offset(t)
        if want is None:
            assert got is None, t
        else:
            assert got is not None and abs(got - want) <= 0.1 + 1e-9 and got <= want + 1e-9, (t, got, want)


def test_limit_at_matches_the_schedule():
    cs = k41()
    rng = random.Random(7)
    for _ in range(25):
        off = rng.randrange(400)
        t = datetime(2024, 8, 21, 12, 24, 40, tzinfo=UTC) + timedelta(seconds=off)
        assert limit_at([K41_MAX, K41_TXD, K41_TX], t, version="2.0.1", evse_id=1, unit="A",
                        transaction_id=TX_ID) == cs.limit_at_offset(off)
