"""Whole V2G sessions of the harness EVCC against the iso15118 package's SECC, timed.

Each run puts our EVCC and the reference SECC into two network namespaces joined by a veth
pair (harness.iso15118.netns), does SDP, TCP/TLS, SupportedAppProtocol and one DC session,
and prints per request: how often it was sent, median / max response time, and how many
exchanges broke a timing rule (SECC performance time) — plus the session's wall time.

    python bench/v2g_session.py --protocol iso2 --auth pnc --runs 3
    python bench/v2g_session.py --protocol iso20_dc --dynamic --loops 20

Needs the iso15118 venv (scripts/iso15118_venv.sh), Java 17 and rootless namespaces.
The reference SECC's JVM-backed codec dominates the response times; the numbers measure the
reference peer and the plumbing, not a charger.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


from harness.iso15118.reference.pki_layout import reference_pki_layout  # noqa: E402

from harness.iso15118.netns import SideSpec, netns_available, run_pair  # noqa: E402
from harness.iso15118.reference import reference_available  # noqa: E402
from harness.pki.v2g import make_v2g_pki  # noqa: E402

REFERENCE_PROTOCOL = {"din": "DIN_SPEC_70121", "iso2": "ISO_15118_2", "iso20_dc": "ISO_15118_20_DC"}


def one_session(work: Path, args: argparse.Namespace) -> dict:
    iso20 = args.protocol.startswith("iso20")
    tls = args.tls or args.auth == "pnc" or iso20
    ev_kwargs = {"protocol": args.protocol, "tls": tls, "auth": args.auth, "connect_timeout": 30,
                 "timeouts": {"scale": args.timeout_scale}, "tls_group": "prime256v1" if iso20 else None,
                 "ev": {"preset": args.ev},
                 "plan": {"loops": args.loops, "precharge_cycles": 3, "dynamic": args.dynamic, "loop_interval": 0.0}}
    peer = {"timeout_scale": 4.0, "protocols": [REFERENCE_PROTOCOL[args.protocol]],
            "auth_modes": ["PNC", "EIM"] if args.auth == "pnc" else ["EIM"],
            "env": {"ENABLE_TLS_1_3": "true"} if iso20 else {}}
    if tls:
        # The reference -20 SECC verifies signatures with ECDSA-SHA256 only: P-256 keys for -20 PnC.
        pki = make_v2g_pki(work / "pki", "iso20-ec" if iso20 and args.auth == "eim" else "iso2")
        ev_kwargs["pki_dir"] = str(pki.dir)
        peer["pki_path"] = str(reference_pki_layout(pki, work / "reference-pki"))
    result = run_pair(SideSpec("harness.iso15118.evcc:evcc_side", kwargs=ev_kwargs),
                      SideSpec("harness.iso15118.reference.sides:reference_secc_side",
                               kwargs={"peer": peer, "session_timeout": 100}), work / "run", timeout=130)
    return result.ev


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(REFERENCE_PROTOCOL), default="iso2")
    parser.add_argument("--auth", choices=("eim", "pnc"), default="eim")
    parser.add_argument("--tls", action="store_true", help="TLS also for EIM (-2/DIN)")
    parser.add_argument("--dynamic", action="store_true", help="-20: dynamic instead of scheduled mode")
    parser.add_argument("--loops", type=int, default=10, help="charge loop cycles per session")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ev", choices=("car", "truck", "mcs_truck"), default="truck")
    parser.add_argument("--timeout-scale", type=float, default=5.0,
                        help="multiply the standard's EVCC timeouts (the reference SECC is slow)")
    args = parser.parse_args()
    reason = reference_available() or netns_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    times: dict[str, list[float]] = defaultdict(list)
    late: dict[str, int] = defaultdict(int)
    sessions = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="v2g-session-") as tmp:
            started = time.monotonic()
            ev = one_session(Path(tmp), args)
            wall = time.monotonic() - started
        if "error" in ev:
            print(f"run {i + 1}: {ev['error']}", file=sys.stderr)
            return 1
        sessions.append((ev["session_s"], wall))
        for e in ev["exchanges"]:
            times[e["request"]].append(e["elapsed_s"])
            late[e["request"]] += any("Performance_Time" in v for v in e["violations"])
    print(f"{args.protocol} {args.auth} tls={args.tls or args.auth == 'pnc' or args.protocol.startswith('iso20')}"
          f" runs={args.runs} loops={args.loops}")
    print(f"{'request':34} {'n':>4} {'median s':>9} {'max s':>7} {'late':>5}")
    for name, values in times.items():
        print(f"{name:34} {len(values):4d} {statistics.median(values):9.3f} {max(values):7.3f} {late[name]:5d}")
    for i, (session_s, wall) in enumerate(sessions, 1):
        print(f"run {i}: EV session {session_s:.1f} s (connect → SessionStopRes), "
              f"with namespaces and JVM start {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
