"""A case's frame trace as an SVG sequence diagram (evidence a reader takes in at a glance).

Two lifelines, the harness and the DUT; one row per trace entry with a fixed height, so a
trace of hundreds of frames stays readable by scrolling: the time since the case started
on the left, an arrow per frame labelled with its kind, action and message id and a
shortened payload under it, connection events (connect, close, refused handshake) as a
band across both lifelines, and the harness's remarks (schema violations, correlation
errors) as a yellow note beside the arrow. CALLERROR frames are red, garbage (not OCPP-J)
purple and dashed, closes orange. Hovering any row shows the full frame (`<title>`).

Input is the trace in its JSON form (`Trace.to_json()` after redaction), so the diagram
shows exactly what the frames evidence shows; nothing here is secret-aware on its own.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

W = 1000
X_TIME, X_HARNESS, X_DUT = 8, 250, 710
X_NOTE = X_DUT + 12
ROW = 34
TOP = 96
MAX_ROWS = 5000          # beyond this the diagram stops and says where the rest is
SNIPPET = 72              # characters of payload shown under an arrow
NOTE_CHARS = 40
TITLE_CHARS = 4000

COLOURS = {
    "CALL": "#1f4e9c", "CALLRESULT": "#2e7d32", "CALLERROR": "#c62828", "GARBAGE": "#8e24aa",
    "CONNECT": "#2e7d32", "CLOSE": "#e65100", "REFUSED": "#c62828",
}
BANDS = {"CONNECT": "#e8f5e9", "CLOSE": "#fff3e0", "REFUSED": "#ffebee"}
VERDICT_COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "ERROR": "#6a1b9a", "INCONCLUSIVE": "#b26a00",
                   "NOT APPLICABLE": "#616161"}

# XML 1.0 forbids most control characters and lone surrogates even when escaped.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def esc(text: Any) -> str:
    s = _BAD_XML.sub("\ufffd", str(text))
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _cut(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def sequence_svg(entries: Iterable[dict[str, Any]], *, harness: str = "Harness", dut: str = "DUT",
                 title: str = "", verdict: str = "", reason: str = "") -> str:
    """Render trace entries (dicts as in `Trace.to_json()`) as a standalone SVG document."""
    rows = list(entries)
    shown = rows[:MAX_ROWS]
    closing = bool(verdict and verdict != "PASS" and reason)
    height = TOP + ROW * (len(shown) + closing) + 70
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
        f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        "<style>.mono{font-family:'DejaVu Sans Mono',Consolas,monospace;font-size:10.5px;fill:#555}"
        ".lbl{font-weight:bold}.t{font-family:'DejaVu Sans Mono',Consolas,monospace;font-size:11px;fill:#333}"
        ".note{font-size:11px;fill:#5d4037}</style>",
        f'<rect width="{W}" height="{height}" fill="#ffffff"/>',
        _defs(),
    ]
    head = esc(title or "Frame trace")
    out.append(f'<text x="{X_TIME}" y="20" font-size="15" class="lbl">{head}</text>')
    if verdict:
        colour = VERDICT_COLOURS.get(verdict, "#333")
        out.append(f'<text x="{W - 10}" y="20" font-size="15" text-anchor="end" class="lbl" fill="{colour}">'
                   f'{esc(verdict)}</text>')
    if reason:
        out.append(f'<text x="{X_TIME}" y="38" fill="#444"><title>{esc(reason)}</title>{esc(_cut(reason, 150))}</text>')
    for x, name in ((X_HARNESS, harness), (X_DUT, dut)):
        first, _, second = name.partition("\n")
        out.append(f'<rect x="{x - 150}" y="44" width="300" height="{34 if second else 28}" rx="4" fill="#eceff1" '
                   f'stroke="#607d8b"/><text x="{x}" y="{58 if second else 62}" text-anchor="middle" class="lbl">'
                   f'<title>{esc(name)}</title>{esc(_cut(first, 44))}</text>'
                   + (f'<text x="{x}" y="73" text-anchor="middle" font-size="11">{esc(_cut(second, 50))}</text>'
                      if second else ""))
        out.append(f'<line x1="{x}" y1="78" x2="{x}" y2="{height - 50}" stroke="#90a4ae" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{X_TIME}" y="{TOP - 6}" class="t">t [s]</text>')
    if not rows:
        out.append(f'<text x="{(X_HARNESS + X_DUT) // 2}" y="{TOP + 20}" text-anchor="middle" fill="#777">'
                   "(no frames were recorded)</text>")
    for i, e in enumerate(shown):
        out.append(_row(e, TOP + i * ROW))
    if closing:   # where the case ended, and why, right under the last frame
        y = TOP + len(shown) * ROW
        colour = VERDICT_COLOURS.get(verdict, "#333")
        out.append(f'<g><title>{esc(verdict)}: {esc(reason)}</title><rect x="{X_HARNESS - 60}" y="{y + 4}" '
                   f'width="{X_DUT - X_HARNESS + 120}" height="{ROW - 8}" rx="4" fill="#ffffff" stroke="{colour}" '
                   f'stroke-width="2"/><text x="{(X_HARNESS + X_DUT) // 2}" y="{y + 21}" text-anchor="middle" '
                   f'fill="{colour}"><tspan class="lbl">{esc(verdict)}</tspan> {esc(_cut(reason, 80))}</text></g>')
    if len(rows) > len(shown):
        out.append(f'<text x="{X_TIME}" y="{height - 40}" fill="#c62828">… {len(rows) - len(shown)} more entries '
                   "not drawn: see frames.json</text>")
    out.append(_legend(height - 18))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _defs() -> str:
    markers = []
    for kind, colour in COLOURS.items():
        markers.append(f'<marker id="a-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" '
                       f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')
    markers.append('<marker id="a-other" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" '
                   'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>')
    return "<defs>" + "".join(markers) + "</defs>"


def _row(e: dict[str, Any], y: int) -> str:
    kind = str(e.get("kind") or "")
    direction = e.get("direction")
    raw = str(e.get("raw") or "")
    note = str(e.get("note") or "")
    t = e.get("t")
    tstr = f"{float(t):9.3f}" if isinstance(t, (int, float)) else ""
    full = raw if len(raw) <= TITLE_CHARS else raw[:TITLE_CHARS] + f"… ({len(raw)} chars)"
    tip = f"#{e.get('seq', '')} {direction} {kind} {e.get('action', '')}\n{full}" + (f"\n!! {note}" if note else "")
    parts = [f'<g><title>{esc(tip)}</title>',
             f'<text x="{X_TIME}" y="{y + 20}" class="t">{esc(tstr)}</text>',
             f'<text x="{X_TIME + 76}" y="{y + 20}" class="t" fill="#999">#{esc(e.get("seq", ""))}</text>']
    if direction in ("rx", "tx"):
        colour = COLOURS.get(kind, "#555")
        marker = f"a-{kind}" if kind in COLOURS else "a-other"
        x1, x2 = (X_DUT, X_HARNESS) if direction == "rx" else (X_HARNESS, X_DUT)
        dash = ' stroke-dasharray="6 3"' if kind == "GARBAGE" else ""
        width = 2.4 if note or kind in ("CALLERROR", "GARBAGE") else 1.4
        label = " ".join(x for x in (kind, str(e.get("action") or ""),
                                     f"#{_cut(str(e.get('unique_id')), 12)}" if e.get("unique_id") else "") if x)
        parts.append(f'<line x1="{x1}" y1="{y + 17}" x2="{x2 + (-2 if x2 > x1 else 2)}" y2="{y + 17}" '
                     f'stroke="{colour}" stroke-width="{width}"{dash} marker-end="url(#{marker})"/>')
        parts.append(f'<text x="{(X_HARNESS + X_DUT) // 2}" y="{y + 12}" text-anchor="middle" class="lbl" '
                     f'fill="{colour}">{esc(_cut(label, 64))}</text>')
        parts.append(f'<text x="{X_HARNESS + 8}" y="{y + 30}" class="mono">{esc(_cut(raw, SNIPPET))}</text>')
    else:
        band = BANDS.get(kind, "#f5f5f5")
        colour = COLOURS.get(kind, "#555")
        parts.append(f'<rect x="{X_HARNESS - 60}" y="{y + 4}" width="{X_DUT - X_HARNESS + 120}" height="{ROW - 8}" '
                     f'rx="4" fill="{band}" stroke="{colour}" stroke-width="0.8"/>')
        parts.append(f'<text x="{(X_HARNESS + X_DUT) // 2}" y="{y + 21}" text-anchor="middle" fill="{colour}">'
                     f'<tspan class="lbl">{esc(kind or "EVENT")}</tspan> {esc(_cut(raw, 80))}</text>')
    if note:
        parts.append(f'<rect x="{X_NOTE}" y="{y + 3}" width="{W - X_NOTE - 6}" height="{ROW - 6}" rx="3" '
                     f'fill="#fff59d" stroke="#f9a825"/>')
        parts.append(f'<text x="{X_NOTE + 5}" y="{y + 21}" class="note">!! {esc(_cut(note, NOTE_CHARS))}</text>')
    parts.append("</g>")
    return "".join(parts)


def _legend(y: int) -> str:
    items = [("CALL", "CALL"), ("CALLRESULT", "CALLRESULT"), ("CALLERROR", "CALLERROR"),
             ("GARBAGE", "not OCPP-J"), ("CLOSE", "close")]
    out, x = [], X_TIME
    for kind, text in items:
        dash = ' stroke-dasharray="6 3"' if kind == "GARBAGE" else ""
        out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 26}" y2="{y - 4}" stroke="{COLOURS[kind]}" '
                   f'stroke-width="2"{dash}/><text x="{x + 32}" y="{y}" fill="#444">{esc(text)}</text>')
        x += 40 + 8 * len(text)
    out.append(f'<rect x="{x}" y="{y - 11}" width="14" height="12" fill="#fff59d" stroke="#f9a825"/>'
               f'<text x="{x + 20}" y="{y}" fill="#444">harness remark (violation)</text>')
    out.append(f'<text x="{W - 10}" y="{y}" text-anchor="end" fill="#777">hover a row for the full frame</text>')
    return "".join(out)
