"""Harness overhead: CALL→CALLRESULT round trips through the harness vs a bare websockets echo.

Both run in this process on loopback, over the same frames (a 2.0.1 MeterValues with DC
measurands), one after the other in one run, so the ratio is meaningful on a noisy
machine. Target (DESIGN.md): harness time per round trip ≤ 1.5× the bare echo.

    python bench/roundtrip.py [--n 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from harness.ocpp.connection import IncomingCall
from harness.ocpp.framing import Call, CallResult, encode
from harness.transport.server import OcppServer

PAYLOAD = {
    "evseId": 1,
    "meterValue": [{
        "timestamp": "2026-11-27T03:00:00.000Z",
        "sampledValue": [
            {"value": 123456.7, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 350000.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 437.5, "measurand": "Current.Import", "unitOfMeasure": {"unit": "A"}},
            {"value": 800.0, "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}},
            {"value": 42.0, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}},
        ],
    }],
}


async def bare(n: int) -> float:
    """Bare websockets: the client sends the CALL text, the server answers the CALLRESULT text."""
    call_text = encode(Call("bench-0001", "MeterValues", PAYLOAD))
    result_text = encode(CallResult("bench-0001", {}))

    async def handler(ws):  # type: ignore[no-untyped-def]
        async for _ in ws:             # echo the CALLRESULT of the same id: no parsing at all
            await ws.send(result_text)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, compression=None) as ws:
            t0 = time.perf_counter()
            for _ in range(n):
                await ws.send(call_text)
                json.loads(await ws.recv())    # a client has to parse the answer at least
            return time.perf_counter() - t0


async def harness(n: int, direct: bool = False) -> float:
    """The same peer, but the harness answers: framing, id correlation, schema validation of
    the received CALL and of the CALLRESULT it sends, and the trace of both frames.

    queued (direct=False): CALLs go through the connection's event queue to a consumer task,
    the path the scenario engine uses. direct: answered in the reader task itself
    (`OcppConnection.answer_calls`), the path of the simulators and load generators.
    """
    server = await OcppServer(versions=("2.0.1",)).start()
    done = asyncio.Event()

    async def answer(ev: IncomingCall) -> None:
        assert ev.violation is None
        await conn.reply(ev.call, {})

    async def consumer() -> None:
        while True:
            ev = await conn.next_event()
            if not isinstance(ev, IncomingCall):
                done.set()
                return
            await answer(ev)

    call_text = encode(Call("bench-0001", "MeterValues", PAYLOAD))
    async with connect(server.url("BENCH-CS"), subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                       ping_interval=None, compression=None) as ws:
        conn = (await server.accepted.get()).connection     # nothing sent yet: no race
        if direct:
            conn.answer_calls = answer
        else:
            task = asyncio.get_running_loop().create_task(consumer())
        for _ in range(50):            # warm-up: compiles the validators
            await ws.send(call_text)
            await ws.recv()
        t0 = time.perf_counter()
        for _ in range(n):
            await ws.send(call_text)
            json.loads(await ws.recv())
        elapsed = time.perf_counter() - t0
    if not direct:
        await asyncio.wait_for(task, 5)
    await server.stop()
    return elapsed


async def main(n: int, rounds: int) -> None:
    await bare(200)       # warm-up every path before measuring
    await harness(200)
    await harness(200, direct=True)
    # Interleave the paths, several rounds, and compare the best of each: on a shared 2-core
    # machine a neighbour's burst would otherwise land on one side only.
    times: dict[str, list[float]] = {"bare": [], "queued": [], "direct": []}
    for _ in range(rounds):
        times["bare"].append(await bare(n))
        times["queued"].append(await harness(n))
        times["direct"].append(await harness(n, direct=True))
    best = {k: min(v) for k, v in times.items()}
    print(f"round trips: {n} per measurement, {rounds} interleaved rounds, best of each")
    labels = {"bare": "bare websockets echo", "direct": "harness, direct answer",
              "queued": "harness, engine queue"}
    for key in ("bare", "direct", "queued"):
        t = best[key]
        ratio = "" if key == "bare" else f"   {t / best['bare']:.2f}x bare"
        print(f"{labels[key]:<23}: {n / t:8.0f} round trips/s  ({t / n * 1e6:6.1f} µs each){ratio}")
    ratio = best["direct"] / best["bare"]
    print(f"harness / bare ratio : {ratio:.2f}x  (target ≤ 1.50x, direct path) {'OK' if ratio <= 1.5 else 'OVER TARGET'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(main(args.n, args.rounds))
