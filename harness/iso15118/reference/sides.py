"""Namespace side entry points (see harness.iso15118.netns) that run a reference peer.

    run_pair(SideSpec("harness.iso15118.reference.sides:reference_evcc_side", kwargs={...}),
             SideSpec("harness.iso15118.reference.sides:reference_secc_side", kwargs={...}), ...)

kwargs: {"peer": {...keyword arguments of start_reference_secc / start_reference_evcc...},
         "session_timeout": seconds to wait for the session to end}.
Either side can later be swapped for the harness's own EVCC/SECC entry point.
"""

from __future__ import annotations

import re
from typing import Any

from harness.iso15118.reference.peers import (
    SECC_SESSION_ENDED,
    SESSION_STOPPED_EV,
    start_reference_evcc,
    start_reference_secc,
)


async def reference_secc_side(side: Any) -> dict:
    """Run the package's SECC on this side's interface until one session has ended."""
    kwargs = dict(side.kwargs)
    with start_reference_secc(side.iface, side.workdir, **kwargs.get("peer", {})) as secc:
        # Ready as soon as it is spawned: the EVCC repeats its SDP request (50 tries) while
        # the SECC's JVM starts, as an EV does while a charger boots; the two start-ups overlap.
        side.ready()
        match = await secc.wait_for_async(SECC_SESSION_ENDED, float(kwargs.get("session_timeout", 45)))
        return {"ended_in": match.group(1), "reason": match.group(2), "messages": secc.messages()}


async def reference_evcc_side(side: Any) -> dict:
    """Run the package's EVCC on this side's interface for one session (it then exits)."""
    kwargs = dict(side.kwargs)
    with start_reference_evcc(side.iface, side.workdir, **kwargs.get("peer", {})) as evcc:
        await evcc.wait_for_async(SESSION_STOPPED_EV, float(kwargs.get("session_timeout", 45)))
        sdp = re.search(r"SDPResponse received: .*Security: (\w+)", evcc.log())
        return {"messages": evcc.messages(), "security": sdp.group(1) if sdp else None}
