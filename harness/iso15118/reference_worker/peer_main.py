"""Start the reference package's own SECC or EVCC (run with the iso15118 venv's python).

    python peer_main.py secc
    python peer_main.py evcc /path/to/evcc_config.json

It does what the package's entry points (iso15118.secc.main / iso15118.evcc.main) do, with
the package's simulated EVSE/EV controllers and its EXIficient codec, plus two optional
knobs for running it as a test peer on a small, busy machine (both read from the
environment; unset means "exactly like the package"):

  ISO15118_REF_WARMUP         path to a JSON list of {"namespace": ..., "json": ...}
                              messages to encode and decode once before the peer starts,
                              so the JVM's first-message cost does not eat a 2 s timeout.
  ISO15118_REF_TIMEOUT_SCALE  multiply every ISO 15118 / DIN timeout of the package (e.g. 4).

Marker lines on stderr ("REFERENCE-PEER ...") tell the harness the peer's phase.
The rest of the configuration is the package's own environment variables
(NETWORK_INTERFACE, PROTOCOLS, AUTH_MODES, SECC_ENFORCE_TLS, PKI_PATH, LOG_LEVEL, ...).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from enum import Enum

TIMEOUT_MODULES = (
    "iso15118.shared.messages.timeouts",
    "iso15118.shared.messages.iso15118_2.timeouts",
    "iso15118.shared.messages.iso15118_20.timeouts",
    "iso15118.shared.messages.din_spec.timeouts",
)


def marker(text: str) -> None:
    print(f"REFERENCE-PEER {text}", file=sys.stderr, flush=True)


def scale_timeouts(scale: float) -> None:
    """Replace each Timeouts enum by a scaled copy before the state machines import it."""
    import importlib

    for name in TIMEOUT_MODULES:
        module = importlib.import_module(name)
        original = module.Timeouts
        scaled = Enum(  # type: ignore[misc]
            original.__name__, {name: float(m.value) * scale for name, m in original.__members__.items()},
            type=float,
        )
        module.Timeouts = scaled
    marker(f"timeouts scaled by {scale}")


def warm_up(codec, path: str) -> None:
    """Encode and decode each given message once (loads grammars and JIT-compiles the codec)."""
    started = time.monotonic()
    with open(path, encoding="utf-8") as handle:
        messages = json.load(handle)
    for item in messages:
        exi = codec.encode(item["json"], item["namespace"])
        codec.decode(bytes(exi), item["namespace"])
    marker(f"warmed up with {len(messages)} messages in {time.monotonic() - started:.1f} s")


async def run_secc(codec) -> None:
    from iso15118.secc import SECCHandler
    from iso15118.secc.controller.interface import ServiceStatus
    from iso15118.secc.controller.simulator import SimEVSEController
    from iso15118.secc.secc_settings import Config

    config = Config()
    config.load_envs()
    config.print_settings()
    controller = SimEVSEController()
    await controller.set_status(ServiceStatus.STARTING)
    marker(f"secc starting on {config.iface}")
    await SECCHandler(exi_codec=codec, evse_controller=controller, config=config).start(config.iface)


async def run_evcc(codec, config_path: str) -> None:
    from iso15118.evcc import Config, EVCCHandler
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.evcc.evcc_config import EVCCConfig, load_from_file

    # The package's loader falls back to its defaults on any error (logged at debug level
    # only), which would silently run a different EV; validate the file first, loudly.
    with open(config_path, encoding="utf-8") as handle:
        EVCCConfig(**json.load(handle)).load_raw_values()

    config = Config()
    config.load_envs()
    config.ev_config_file_path = config_path
    evcc_config = await load_from_file(config.ev_config_file_path)
    marker(f"evcc starting on {config.iface}")
    await EVCCHandler(
        evcc_config=evcc_config, iface=config.iface, exi_codec=codec,
        ev_controller=SimEVController(evcc_config),
    ).start()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("secc", "evcc") or (argv[0] == "evcc" and len(argv) != 2):
        print("usage: peer_main.py secc | evcc EVCC_CONFIG.json", file=sys.stderr)
        return 2
    scale = float(os.environ.get("ISO15118_REF_TIMEOUT_SCALE", "1") or "1")
    if scale != 1.0:
        scale_timeouts(scale)
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec

    codec = ExificientEXICodec()
    if os.environ.get("ISO15118_REF_WARMUP"):
        warm_up(codec, os.environ["ISO15118_REF_WARMUP"])
    try:
        if argv[0] == "secc":
            asyncio.run(run_secc(codec))
        else:
            asyncio.run(run_evcc(codec, argv[1]))
    except KeyboardInterrupt:
        marker("stopped")
    marker("exited")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
