"""EXI codec speed: per message type, median encode and decode time vs the 1 ms budget.

Built-in messages cover the DC charging loop of ISO 15118-2, -20 and DIN 70121; with
``--corpus`` every message of tests/data/exi_corpus/*.json is timed as well.

    python bench/exi.py [--n 2000] [--corpus]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness.iso15118.exi import codec_for

BUDGET_S = 1e-3
SID = bytes.fromhex("4A1B2C3D4E5F6071")


def _pv(value: int, unit: str, multiplier: int = 0) -> dict:
    return {"Multiplier": multiplier, "Unit": unit, "Value": value}


def _rn(value: int, exponent: int = 0) -> dict:
    return {"Exponent": exponent, "Value": value}


def builtin_messages() -> list[tuple[str, str, dict]]:
    status = {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55}
    iso2 = lambda body: {"V2G_Message": {"Header": {"SessionID": SID}, "Body": body}}  # noqa: E731
    din = lambda body: {"V2G_Message": {"Header": {"SessionID": SID[:7]}, "Body": body}}  # noqa: E731
    h20 = {"SessionID": SID, "TimeStamp": 1795000000}
    return [
        ("app", "supportedAppProtocolReq", {"supportedAppProtocolReq": {"AppProtocol": [
            {"ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2,
             "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1},
            {"ProtocolNamespace": "urn:din:70121:2012:MsgDef", "VersionNumberMajor": 2,
             "VersionNumberMinor": 0, "SchemaID": 2, "Priority": 2}]}}),
        ("iso2", "SessionSetupReq", iso2({"SessionSetupReq": {"EVCCID": bytes.fromhex("0A1B2C3D4E5F")}})),
        ("iso2", "CurrentDemandReq", iso2({"CurrentDemandReq": {
            "DC_EVStatus": status, "EVTargetCurrent": _pv(100, "A"),
            "EVMaximumVoltageLimit": _pv(920, "V"), "EVMaximumCurrentLimit": _pv(500, "A"),
            "EVMaximumPowerLimit": _pv(350, "W", 3), "BulkChargingComplete": False,
            "ChargingComplete": False, "RemainingTimeToFullSoC": _pv(1800, "s"),
            "RemainingTimeToBulkSoC": _pv(1200, "s"), "EVTargetVoltage": _pv(400, "V")}})),
        ("iso2", "CurrentDemandRes", iso2({"CurrentDemandRes": {
            "ResponseCode": "OK", "DC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "None",
                                                     "EVSEIsolationStatus": "Valid",
                                                     "EVSEStatusCode": "EVSE_Ready"},
            "EVSEPresentVoltage": _pv(400, "V"), "EVSEPresentCurrent": _pv(100, "A"),
            "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
            "EVSEPowerLimitAchieved": False, "EVSEMaximumVoltageLimit": _pv(920, "V"),
            "EVSEMaximumCurrentLimit": _pv(500, "A"), "EVSEMaximumPowerLimit": _pv(350, "W", 3),
            "EVSEID": "DE*ABC*E123456", "SAScheduleTupleID": 1}})),
        ("iso20_dc", "DC_ChargeLoopReq", {"DC_ChargeLoopReq": {
            "Header": h20, "DisplayParameters": {"PresentSOC": 42, "TargetSOC": 80},
            "MeterInfoRequested": False, "EVPresentVoltage": _rn(7995, -1),
            "Dynamic_DC_CLReqControlMode": {
                "DepartureTime": 7200, "EVTargetEnergyRequest": _rn(300, 3),
                "EVMaximumEnergyRequest": _rn(450, 3), "EVMinimumEnergyRequest": _rn(50, 3),
                "EVMaximumChargePower": _rn(350, 3), "EVMinimumChargePower": _rn(0),
                "EVMaximumChargeCurrent": _rn(500), "EVMaximumVoltage": _rn(920),
                "EVMinimumVoltage": _rn(150)}}}),
        ("iso20_dc", "DC_ChargeLoopRes", {"DC_ChargeLoopRes": {
            "Header": h20, "ResponseCode": "OK", "EVSEPresentCurrent": _rn(100),
            "EVSEPresentVoltage": _rn(400), "EVSEPowerLimitAchieved": False,
            "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
            "Dynamic_DC_CLResControlMode": {"EVSEMaximumChargePower": _rn(350, 3),
                                            "EVSEMinimumChargePower": _rn(0),
                                            "EVSEMaximumChargeCurrent": _rn(500),
                                            "EVSEMaximumVoltage": _rn(920)}}}),
        ("din", "CurrentDemandReq", din({"CurrentDemandReq": {
            "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55},
            "EVTargetCurrent": {"Multiplier": 0, "Unit": "A", "Value": 100},
            "ChargingComplete": False,
            "EVTargetVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400}}})),
    ]


def corpus_messages() -> list[tuple[str, str, dict]]:
    def unhex(v):
        if isinstance(v, dict):
            return bytes.fromhex(v["$hex"]) if set(v) == {"$hex"} else {k: unhex(x) for k, x in v.items()}
        return [unhex(x) for x in v] if isinstance(v, list) else v

    folder = Path(__file__).resolve().parent.parent / "tests" / "data" / "exi_corpus"
    out = []
    for path in sorted(folder.glob("*.json")):
        case = json.loads(path.read_text())
        out.append((case["schema"], path.stem.split("__", 1)[1], unhex(case["msg"])))
    return out


def _median(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="repetitions per message (median reported)")
    ap.add_argument("--corpus", action="store_true", help="also time every corpus message")
    args = ap.parse_args()
    t0 = time.perf_counter()
    for name in ("app", "iso2", "iso20", "iso20_dc", "din"):
        codec_for(name)
    print(f"codec load (grammar cache warm or cold): {(time.perf_counter() - t0) * 1e3:.1f} ms")
    messages = builtin_messages() + (corpus_messages() if args.corpus else [])
    print(f"{'schema':9} {'message':40} {'bytes':>5} {'enc µs':>8} {'dec µs':>8} {'enc+dec / 1 ms':>15}")
    for schema, label, msg in messages:
        codec = codec_for(schema)
        try:
            data = codec.encode(msg)
        except ValueError as exc:
            print(f"{schema:9} {label:40} skipped: {exc}")
            continue
        enc = _median(lambda: codec.encode(msg), args.n)
        dec = _median(lambda: codec.decode(data), args.n)
        print(f"{schema:9} {label:40} {len(data):5} {enc * 1e6:8.1f} {dec * 1e6:8.1f} "
              f"{(enc + dec) / BUDGET_S:14.1%}")


if __name__ == "__main__":
    main()
