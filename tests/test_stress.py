"""Fleet load (`harness/stress/`): mix, histograms, payloads, the asyncio fleet against the
built-in CSMS simulator in-process on 127.0.0.1, the CLI, and a Locust master + 2 workers smoke
run (skipped with a reason where the `stress` extra is not installed). Every run is bounded."""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.cli_stress import locust_available, problems, run_locust
from harness.loop import BackgroundLoop
from harness.ocpp import schemas
from harness.sim.api import CsmsSimConfig
from harness.sim.csms import CsmsSimulator
from harness.stress.fleet import Fleet, FleetConfig, FrameCounters, StressTrace, raise_nofile_limit, run_fleet
from harness.stress.mix import EVSES, Interval, Mix, MixError, StationModel
from harness.stress.stats import Histogram

from _aio import run, within

FAST = Mix.parse("heartbeat=0.4-1,status=0.4-1,meter=0.4-1")


# ---- mix ------------------------------------------------------------------------------------

def test_mix_parse_defaults_ranges_boot_and_never():
    m = Mix.parse("heartbeat=boot,status=0,meter=5")
    assert m.heartbeat.from_boot and not m.status.enabled and m.meter == Interval(5, 5)
    assert str(Mix.parse("")) == "heartbeat=10-30,status=10-60,meter=10-60"
    assert Mix.parse("meter=10-20").meter.mean == 15
    rates = Mix.parse("heartbeat=10,status=0,meter=20").rate_per_station()
    assert rates == {"heartbeat": 0.1, "status": 0.0, "meter": 0.05}


@pytest.mark.parametrize("bad", ["heartbeat", "power=10", "meter=abc", "meter=30-10", "status=boot",
                                 "meter=0.001", "heartbeat=-1", "meter=1e9"])
def test_mix_rejects_nonsense_with_a_reason(bad):
    with pytest.raises(MixError, match=bad.split("=")[0]):
        Mix.parse(bad)


@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_station_payloads_are_schema_valid_through_whole_cycles(version):
    model = StationModel("CS-00001", version, random.Random(7))
    assert schemas.validate(version, "BootNotification", "request", model.boot(1)) is None
    t = 1000.0
    for _ in range(40):
        status = model.next_status()
        assert schemas.validate(version, "StatusNotification", "request", status) is None, status
        t += 15
        meter = model.meter(t)
        assert schemas.validate(version, "MeterValues", "request", meter) is None, meter
    measurands = {sv["measurand"] for sv in meter["meterValue"][0]["sampledValue"]}
    assert measurands == {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage", "SoC"}
    assert all(model.energy_wh[e.evse_id] > 0 for e in EVSES)


# ---- stats ----------------------------------------------------------------------------------

def test_histogram_percentiles_within_two_percent_and_mergeable():
    rng = random.Random(3)
    samples = [rng.lognormvariate(-5, 1.2) for _ in range(20_000)]
    a, b = Histogram(), Histogram()
    for i, s in enumerate(samples):
        (a if i % 2 else b).record(s)
    a.merge(b)
    exact = sorted(samples)
    for p in (50, 90, 99):
        want = exact[math.ceil(p / 100 * len(exact)) - 1]
        assert abs(a.percentile(p) - want) / want < 0.02, p
    assert a.max == max(samples) and a.n == len(samples)
    again = Histogram.from_json(json.loads(json.dumps(a.to_json())))
    assert again.percentile(99) == a.percentile(99)
    s = a.summary_ms()
    assert s["count"] == 20_000 and s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert Histogram().summary_ms() == {"count": 0}


def test_stress_trace_counts_everything_and_keeps_a_bounded_ring():
    counters = FrameCounters()
    ring, none = StressTrace(counters, keep=5), StressTrace(counters, keep=0)
    for i in range(100):
        ring.add("tx", "CS", f"frame {i}", kind="CALL")
        none.add("rx", "CS", "x", kind="CALLRESULT")
    assert counters.tx == 100 and counters.rx == 100
    assert [e.raw for e in ring.entries] == [f"frame {i}" for i in range(95, 100)]
    assert len(none.entries) == 0
    json.loads(ring.to_json())          # still a Trace: evidence stays readable


def test_raise_nofile_limit_reports_what_it_did():
    out = raise_nofile_limit(64)
    assert out["soft"] >= 64 and "warning" not in out


# ---- the fleet against the built-in CSMS simulator ---------------------------------------------

async def _with_sim(body, **cfg):
    sim = CsmsSimulator(CsmsSimConfig(port=0, **cfg.pop("sim", {})), fault=cfg.pop("fault", None))
    await sim.start()
    try:
        return await body(sim)
    finally:
        await sim.stop()


def test_fifty_stations_connect_boot_and_flow_without_violations():
    async def body(sim):
        cfg = FleetConfig(csms_url=sim.url, stations=50, duration_s=4.0, ramp_per_s=100, mix=FAST, gc_freeze=False)
        report = await run_fleet(cfg)
        assert not sim._conns, "every station closed its connection at the end"
        assert all(st.boots == 1 for st in sim.stations.values()) and len(sim.stations) == 50
        return report

    rep = run(_with_sim(body), timeout=40)
    c = rep["connections"]
    assert (c["attempted"], c["connected"], c["booted"], c["refused"], c["failed"], c["dropped"]) == (50, 50, 50, 0, 0, 0)
    assert rep["steady"]["connected_at_end"] == 50
    for action in ("BootNotification", "StatusNotification", "Heartbeat", "MeterValues"):
        h = rep["latency_ms"][action]
        assert h["count"] > 0 and 0 < h["p50"] <= h["p99"] <= h["max"], action
    assert rep["latency_ms"]["BootNotification"]["count"] == 50
    assert rep["violations"]["total"] == 0 and rep["errors"]["total"] == 0, rep["errors"]
    m = rep["messages"]
    assert m["frames_tx"] == m["frames_rx"] == sum(m["calls_sent"].values())
    assert m["tx_per_s"] > 0 and rep["steady"]["tx_per_s"] > 20
    assert problems(rep) == []


def test_ocpp16_fleet_flows_too():
    async def body(sim):
        return await run_fleet(FleetConfig(csms_url=sim.url, stations=20, version="1.6", duration_s=2.0,
                                           ramp_per_s=100, mix=FAST, gc_freeze=False))

    rep = run(_with_sim(body), timeout=30)
    assert rep["connections"]["booted"] == 20 and rep["violations"]["total"] == 0 and rep["errors"]["total"] == 0
    assert rep["latency_ms"]["MeterValues"]["count"] > 0


def test_csms_initiated_calls_are_answered_and_triggers_honoured():
    async def body(sim):
        fleet = Fleet(FleetConfig(csms_url=sim.url, stations=3, duration_s=30, ramp_per_s=50,
                                  mix=Mix.parse("heartbeat=0,status=0,meter=0"), gc_freeze=False))
        task = asyncio.get_running_loop().create_task(fleet.run())
        for _ in range(100):
            if fleet.stats.booted == 3:
                break
            await asyncio.sleep(0.05)
        trig = await within(sim.perform("trigger_message", {"station_id": "CS-00001", "message": "Heartbeat"}))
        got = await within(sim.perform("get_variables", {"station_id": "CS-00002", "variables": [
            {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]}))
        reset = await within(sim.perform("reset", {"station_id": "CS-00003"}))
        for _ in range(100):
            if sim.stations["CS-00001"].heartbeats:
                break
            await asyncio.sleep(0.05)
        fleet.request_stop()
        rep = await within(task, 20)
        return trig, got, reset, rep, sim.stations["CS-00001"].heartbeats

    trig, got, reset, rep, heartbeats = run(_with_sim(body), timeout=40)
    assert trig["response"]["status"] == "Accepted" and heartbeats == 1
    assert got["response"]["getVariableResult"][0]["attributeStatus"] == "UnknownComponent"
    assert reset["response"]["status"] == "Rejected"
    assert rep["messages"]["csms_calls"] == {"GetVariables": 1, "Reset": 1, "TriggerMessage": 1}
    assert rep["interrupted"] is True and rep["violations"]["total"] == 0


def test_wrong_password_is_counted_as_refused_not_connected():
    async def body(sim):
        return await run_fleet(FleetConfig(csms_url=sim.url, stations=5, duration_s=0.2, ramp_per_s=100,
                                           password="wrong", gc_freeze=False))

    rep = run(_with_sim(body, sim={"passwords": {f"CS-0000{i}": "right" for i in range(1, 6)}}), timeout=30)
    c = rep["connections"]
    assert c["connected"] == 0 and c["refused"] == 5 and c["refused_by"] == {"HTTP 401": 5}
    assert "did not connect" in problems(rep)[0]


def test_nobody_listening_is_tcp_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again before the fleet connects
    rep = run(run_fleet(FleetConfig(csms_url=f"ws://127.0.0.1:{port}/ocpp", stations=3, duration_s=0,
                                    ramp_per_s=100, gc_freeze=False)), timeout=30)
    assert rep["connections"]["refused_by"] == {"TCP ECONNREFUSED": 3}


def test_a_csms_that_breaks_the_schema_is_reported_with_the_action():
    async def body(sim):
        return await run_fleet(FleetConfig(csms_url=sim.url, stations=5, duration_s=2.0, ramp_per_s=100,
                                           mix=Mix.parse("heartbeat=0.3-0.6,status=0,meter=0"), gc_freeze=False))

    rep = run(_with_sim(body, fault="heartbeat_bad_time"), timeout=30)
    assert rep["violations"]["by_action"].get("Heartbeat", 0) > 0
    assert rep["violations"]["examples"][0]["where"] == "CALLRESULT"
    assert "currentTime" in rep["violations"]["examples"][0]["violation"]


def test_request_stop_ends_a_long_run_promptly_and_cleanly():
    async def body(sim):
        fleet = Fleet(FleetConfig(csms_url=sim.url, stations=30, duration_s=600, ramp_per_s=100, mix=FAST,
                                  gc_freeze=False))
        loop = asyncio.get_running_loop()
        loop.call_later(1.5, fleet.request_stop)
        t0 = loop.time()
        rep = await fleet.run()
        return rep, loop.time() - t0, len(sim._conns)

    rep, took, still_open = run(_with_sim(body), timeout=40)
    assert rep["interrupted"] and took < 15 and still_open == 0
    assert rep["connections"]["dropped"] == 0


# ---- CLI ----------------------------------------------------------------------------------------

@pytest.fixture
def background_sim():
    bg = BackgroundLoop()
    sim = CsmsSimulator(CsmsSimConfig(port=0))
    bg.run(sim.start(), 10)
    try:
        yield sim
    finally:
        bg.run(sim.stop(), 20)
        bg.close()


def test_cli_stress_fleet_prints_tables_and_writes_json(background_sim, tmp_path):
    out = tmp_path / "stress-fleet.json"
    res = CliRunner().invoke(app, ["stress", "fleet", "--csms", background_sim.url, "--stations", "10",
                                   "--duration", "2", "--ramp", "50", "--mix", "heartbeat=0.5-1,status=0.5-1,meter=0.5-1",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "CSMS response latency" in res.output and "MeterValues" in res.output
    rep = json.loads(out.read_text())
    assert rep["connections"]["connected"] == 10 and rep["config"]["mix"].startswith("heartbeat=0.5-1")


def test_cli_rejects_a_bad_mix():
    res = CliRunner().invoke(app, ["stress", "fleet", "--csms", "ws://127.0.0.1:1/ocpp", "--mix", "power=3"])
    assert res.exit_code == 2 and "power=3" in res.output


# ---- Locust: one master, two workers, on loopback ----------------------------------------------

@pytest.mark.skipif(not locust_available(), reason="Locust mode needs the `stress` extra "
                                                   "(pip install -e '.[stress]': locust, websocket-client)")
def test_locust_master_and_two_workers_hold_a_few_stations(background_sim):
    rep = run_locust(background_sim.url, stations=6, ocpp="2.0.1", duration=4, ramp=6,
                     mix="heartbeat=0.5-1,status=0.5-1,meter=0.5-1", password=None, id_prefix="LOC-",
                     call_timeout=10, workers=2, log=lambda *_: None)
    assert rep["engine"] == "locust" and rep["workers"] == 2
    c = rep["connections"]
    assert (c["attempted"], c["connected"], c["booted"], c["dropped"]) == (6, 6, 6, 0)
    for action in ("BootNotification", "StatusNotification", "Heartbeat", "MeterValues"):
        assert rep["latency_ms"][action]["count"] > 0, action
    assert rep["violations"]["total"] == 0 and rep["errors"]["total"] == 0, rep["errors"]
    ids = {sid for sid in background_sim.stations}
    assert any(s.startswith("LOC-W00-") for s in ids) and any(s.startswith("LOC-W01-") for s in ids)
