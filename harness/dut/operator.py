"""The operator prompt of the `manual` adapter: instructions, a live countdown, an answer.

The prompt talks to a terminal device of its own (`/dev/tty` by default), never to
stdout/stdin, so it works while pytest captures output and from an xdist-free run started
by the CLI. The terminal is put in cbreak mode for the prompt's lifetime: keys are read
one by one (with `select`, so the countdown keeps ticking while nobody types) and the
answer line is redrawn by rich's `Live` together with the countdown.

Answers: `done` (or just Enter), `skip`, `fail`, each optionally followed by a note —
`fail cable latch broken`. Ctrl-D skips. Anything else is refused with a hint.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass
from typing import Any

DONE_WORDS = ("d", "done", "y", "yes", "ok")
SKIP_WORDS = ("s", "skip", "n", "no")
FAIL_WORDS = ("f", "fail", "failed")
TICK_S = 0.25                  # countdown refresh; also how fast a cancelled prompt notices
_prompt_lock = threading.Lock()   # one question on the operator's terminal at a time


@dataclass
class Answer:
    status: str                # done | skipped | failed
    note: str = ""
    at: float = 0.0            # epoch seconds


class NoTerminal(Exception):
    """No terminal to ask on (message says why)."""


def non_interactive_reason() -> str | None:
    """Why nobody can be asked here (CI), or None. CHARGER_HARNESS_FORCE_TTY=1 overrides."""
    if os.environ.get("CHARGER_HARNESS_FORCE_TTY"):
        return None
    ci = os.environ.get("CI", "")
    if ci and ci.lower() not in ("0", "false", "no"):
        return (f"non-interactive run (CI={ci}): nobody to answer operator prompts; "
                "set CHARGER_HARNESS_FORCE_TTY=1 to prompt anyway, or use the sim/command adapter")
    return None


def open_terminal(path: str) -> int:
    """Open the operator's terminal for reading and writing; NoTerminal with the reason if impossible."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        raise NoTerminal(f"no operator terminal ({path}: {exc.strerror or exc}): non-interactive run; "
                         "run from a terminal, set CHARGER_HARNESS_TTY to one, or use the sim/command adapter") from None
    if not os.isatty(fd):
        os.close(fd)
        raise NoTerminal(f"{path} is not a terminal: nobody to answer operator prompts")
    return fd


def parse_answer(text: str) -> tuple[str, str] | None:
    """'done …' / 'skip …' / 'fail …' (or Enter) → (status, note); None if not an answer."""
    word, _, note = text.strip().partition(" ")
    word, note = word.lower(), note.strip()
    if word in DONE_WORDS or (word == "" and not note):
        return "done", note
    if word in SKIP_WORDS:
        return "skipped", note
    if word in FAIL_WORDS:
        return "failed", note
    return None


def ask(fd: int, *, action: str, say: str, params: dict[str, Any], timeout: float, operator: str,
        cancel: threading.Event | None = None, close: bool = True) -> Answer | None:
    """Ask on terminal `fd` and wait up to `timeout` s. None: no answer in time (or cancelled).

    Blocking (run it in a thread); `cancel` ends it within a tick. Closes `fd` when done
    unless `close=False`, so a caller that stopped waiting never closes it under our feet.
    """
    cancel = cancel or threading.Event()
    deadline = time.monotonic() + timeout
    try:
        if not _prompt_lock.acquire(timeout=max(0.0, timeout)):
            return None                    # another prompt held the terminal for the whole time
        try:
            if cancel.is_set():
                return None
            return _Prompt(fd, action, say, params, timeout, deadline, operator, cancel).run()
        finally:
            _prompt_lock.release()
    finally:
        if close:
            os.close(fd)


class _Prompt:
    def __init__(self, fd: int, action: str, say: str, params: dict[str, Any], timeout: float, deadline: float,
                 operator: str, cancel: threading.Event):
        from rich.console import Console

        self.fd, self.action, self.say, self.params = fd, action, say, params
        self.timeout, self.deadline, self.operator, self.cancel = timeout, deadline, operator, cancel
        self.buffer = ""
        self.hint = ""
        try:
            width = os.get_terminal_size(fd).columns or 100
        except OSError:
            width = 100
        self.out = os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="replace", closefd=True)
        self.console = Console(file=self.out, force_terminal=True, width=max(40, min(width, 120)),
                               highlight=False, soft_wrap=False)

    # ---- drawing -----------------------------------------------------------------

    def _render(self, final: str = "") -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        left = max(0.0, self.deadline - time.monotonic())
        body: list[Any] = [Text(self.say, style="bold")]
        if self.params:
            body.append(Text("  " + "  ".join(f"{k}={v}" for k, v in self.params.items()), style="cyan"))
        if final:
            body.append(Text.from_markup(final))
        else:
            clock = Table.grid(padding=(0, 1))
            clock.add_row(ProgressBar(total=self.timeout or 1, completed=(self.timeout - left), width=30,
                                      complete_style="yellow" if left > 10 else "red"),
                          Text(f"{left:4.0f} s left", style="bold red" if left <= 10 else "bold"))
            body.append(clock)
            body.append(Text.from_markup("[green]done[/] (Enter) · [yellow]skip[/] · [red]fail[/]"
                                         "   optionally followed by a note, e.g. [dim]fail latch broken[/]"))
            if self.hint:
                body.append(Text(self.hint, style="red"))
            body.append(Text(f"{self.operator}> {self.buffer}█"))
        title = "OPERATOR CHECK" if self.action == "operator" else f"OPERATOR ACTION · {self.action}"
        return Panel(Group(*body), title=f"[bold yellow]{title}[/]", border_style="yellow", expand=True)

    # ---- reading -----------------------------------------------------------------

    def run(self) -> Answer | None:
        import termios
        import tty as ttymod

        from rich.live import Live

        saved = None
        try:
            saved = termios.tcgetattr(self.fd)
            ttymod.setcbreak(self.fd)
        except termios.error:
            saved = None
        answer: Answer | None = None
        final = ""
        try:
            self.out.write("\a\n")       # bell: someone has to act
            self.out.flush()
            with Live(self._render(), console=self.console, auto_refresh=False, transient=False) as live:
                answer, final = self._loop(live)
                live.update(self._render(final), refresh=True)
        finally:
            if saved is not None:
                try:
                    termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
                except termios.error:
                    pass
            try:
                self.out.write("\n")
                self.out.close()
            except OSError:
                pass
        return answer

    def _loop(self, live: Any) -> tuple[Answer | None, str]:
        while True:
            if self.cancel.is_set():
                return None, "[dim]cancelled: the test case ended before an answer[/]"
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None, f"[yellow]no answer within {self.timeout:g} s: skipped (INCONCLUSIVE)[/]"
            ready, _, _ = select.select([self.fd], [], [], min(TICK_S, left))
            if ready:
                try:
                    data = os.read(self.fd, 1024)
                except OSError:
                    data = b""
                if not data:
                    return None, "[yellow]terminal closed: skipped[/]"
                for ch in data.decode("utf-8", "replace"):
                    got = self._key(ch)
                    if got is not None:
                        word = {"done": "[green]done[/]", "skipped": "[yellow]skipped[/]", "failed": "[red]fail[/]"}
                        stamp = time.strftime("%H:%M:%S", time.localtime(got.at))
                        return got, (f"{word[got.status]} — answered by [bold]{self.operator}[/] at {stamp}"
                                     + (f": {got.note}" if got.note else ""))
            live.update(self._render(), refresh=True)

    def _key(self, ch: str) -> Answer | None:
        if ch in ("\r", "\n"):
            parsed = parse_answer(self.buffer)
            if parsed is None:
                self.hint = f"'{self.buffer.split(' ')[0]}' is not an answer: type done, skip or fail"
                self.buffer = ""
                return None
            return Answer(parsed[0], parsed[1], time.time())
        if ch == "\x04":                                  # Ctrl-D
            return Answer("skipped", "operator pressed Ctrl-D", time.time())
        if ch in ("\x7f", "\b"):
            self.buffer = self.buffer[:-1]
        elif ch == "\x15":                                # Ctrl-U
            self.buffer = ""
        elif ch.isprintable():
            self.buffer += ch
            self.hint = ""
        return None
