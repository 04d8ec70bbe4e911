"""A record of every frame on a connection, both directions, with monotonic timestamps.

The trace is the evidence behind every verdict: it is attached to each test case as JSON
and as a readable sequence view. Entries keep the raw text exactly as sent or received
(a garbage frame is evidence too); secrets never pass through here because credentials
travel in HTTP headers, which are not recorded.
"""

from __future__ import annotations

import json
from collections import deque
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Direction = Literal["rx", "tx", "event"]   # rx = DUT → harness, tx = harness → DUT


@dataclass(slots=True)   # one per frame: slots make creation and memory cheaper
class TraceEntry:
    seq: int
    mono: float                 # time.monotonic() at send/receive
    wall: float                 # epoch seconds; shown as UTC ISO-8601 (formatting is deferred: hot path)
    direction: Direction
    peer: str                   # which connection (station id / endpoint)
    raw: str                    # exact text on the wire, or an event description
    kind: str = ""              # CALL / CALLRESULT / CALLERROR / GARBAGE / CONNECT / CLOSE
    action: str = ""
    unique_id: str = ""
    note: str = ""              # schema violation, framing error, correlation remark


@dataclass
class Trace:
    entries: list[TraceEntry] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    keep: int = 0               # > 0: a ring of the last `keep` entries (long runs, load)
    total: int = 0              # entries ever added: the next seq, whatever the ring dropped

    def __post_init__(self) -> None:
        if self.keep > 0:
            self.entries = deque(self.entries, maxlen=self.keep)   # type: ignore[assignment]

    def add(self, direction: Direction, peer: str, raw: str, *, kind: str = "", action: str = "",
            unique_id: str = "", note: str = "") -> TraceEntry:
        self.total += 1
        entry = TraceEntry(
            seq=self.total, mono=time.monotonic(), wall=time.time(),
            direction=direction, peer=peer, raw=raw, kind=kind, action=action,
            unique_id=unique_id, note=note,
        )
        self.entries.append(entry)
        return entry

    def event(self, peer: str, text: str, kind: str) -> TraceEntry:
        return self.add("event", peer, text, kind=kind)

    def to_json(self) -> str:
        return json.dumps([self._jsonable(e) for e in self.entries], indent=1, ensure_ascii=False)

    def _jsonable(self, e: TraceEntry) -> dict[str, Any]:
        d = asdict(e)
        d["wall"] = datetime.fromtimestamp(e.wall, timezone.utc).isoformat(timespec="milliseconds")
        d["t"] = round(e.mono - self.t0, 6)
        return d

    def sequence_view(self, harness: str = "HARNESS", dut: str = "DUT") -> str:
        """Plain-text sequence diagram, one line per frame: readable in any Allure viewer."""
        lines = [f"{'t [s]':>9}  {harness:<10} {'':<4} {dut}"]
        for e in self.entries:
            t = f"{e.mono - self.t0:9.3f}"
            label = " ".join(x for x in (e.kind, e.action, f"id={e.unique_id}" if e.unique_id else "") if x)
            if e.direction == "tx":
                arrow = "  ------>  "
            elif e.direction == "rx":
                arrow = "  <------  "
            else:
                arrow = "  ======  "
            body = e.raw if len(e.raw) <= 400 else e.raw[:400] + f"… ({len(e.raw)} chars)"
            lines.append(f"{t}  {arrow} {label}")
            lines.append(f"{'':9}      {body}")
            if e.note:
                lines.append(f"{'':9}      !! {e.note}")
        return "\n".join(lines)

    def last(self, n: int = 6) -> list[TraceEntry]:
        return list(self.entries)[-n:]      # a ring (deque) cannot be sliced
