"""The PyPI iso15118 package (0.31.2) as an independent reference: its EXI codec and its SECC/EVCC.

It lives in its own venv (scripts/iso15118_venv.sh; path: ISO15118_VENV, default
.venv-iso15118) because it pins cryptography/pydantic versions that clash with ours; its
EXI codec is a Java 17 jar. Everything here runs in OUR venv and drives that venv through
subprocesses: reference_worker/exi_worker.py (the codec, JSON lines over pipes) and
reference_worker/peer_main.py (the SECC or the EVCC).

    reference_available()              -> None, or why the codec cannot run here
    with ReferenceExi() as ref:         canonical dict <-> EXI bytes, as the package encodes
    start_reference_secc / start_reference_evcc (peers.py), sides.py for netns.run_pair
"""

from harness.iso15118.reference.exi import (
    ReferenceError,
    ReferenceExi,
    ReferenceUnavailable,
    reference_available,
)
from harness.iso15118.reference.peers import (
    PeerError,
    ReferencePeer,
    make_reference_pki,
    start_reference_evcc,
    start_reference_secc,
    write_warmup_file,
)

__all__ = [
    "PeerError", "ReferenceError", "ReferenceExi", "ReferencePeer", "ReferenceUnavailable",
    "make_reference_pki", "reference_available", "start_reference_evcc", "start_reference_secc",
    "write_warmup_file",
]
