"""The reports as a reader sees them: headless Chromium opens the single-file HTML report
and the certification summary from disk, offline, and we check what renders.

One run against a faulty station simulator (2 cases) feeds both pages. Chromium is
driven over the DevTools protocol on loopback (plain `websockets`, no extra package):
that gives the page's console errors and uncaught exceptions, every network request it
tries (there must be none but file:, data: and blob:), the rendered text after clicking
through the report, and full-page screenshots. Skipped with a reason where Debian's
`chromium` package is not installed; the Allure part also needs the npm allure CLI.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from test_cli_e2e import SECRETS, cli, make_library

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         # offline: nothing may resolve or go anywhere but loopback (the DevTools socket)
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9",
         "--window-size=1400,1000"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:", "devtools:")


class Chromium:
    """A headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="charger-harness-chromium-")   # fresh --user-data-dir
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and "\n" in port_file.read_text()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.skip("Chromium did not start (no DevToolsActivePort within 30 s)")
            time.sleep(0.05)
        port = port_file.read_text().split("\n")[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10).__enter__()
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            self.call(method)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + 60
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"script failed: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def open(self, path: Path) -> None:
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, predicate: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({predicate})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {predicate}; page text: {self.text()[:800]}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        size = self.call("Page.getLayoutMetrics").get("cssContentSize") or {"width": 1400, "height": 1000}
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, and requests that left the machine."""
        found = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"uncaught: {p['exceptionDetails'].get('text')} "
                             f"{(p['exceptionDetails'].get('exception') or {}).get('description', '')}"[:300])
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", []))[:300])
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                found.append(f"log error: {p['entry'].get('text')} {p['entry'].get('url', '')}"[:300])
            elif method == "Network.requestWillBeSent" and not p["request"]["url"].startswith(LOCAL_SCHEMES):
                found.append(f"network request: {p['request']['url'][:200]}")
        return found

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    b = Chromium()
    yield b
    b.close()


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`run` (with the HTML report) against the station simulator seeded with a fault."""
    tmp = tmp_path_factory.mktemp("browser-run")
    make_library(tmp, "TC_C_02_CS", "TC_RPC_01_CS")
    proc = cli("run", "-j", "1", "--fault", "authorize_invalid_still_starts", "--operator", "QA Lead", cwd=tmp)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return tmp / "reports"


def test_certification_summary_renders_offline(faulty_run: Path, browser: Chromium) -> None:
    page = faulty_run / "certification-summary.html"
    browser.open(page)
    text = browser.text()
    for expected in ("Certification summary", "NOT PASSED", "Verdicts per certification profile", "Core",
                     "Failures (FAIL) — 1", "TC_C_02_CS", "C01.FR.02", "DUT sent TransactionEvent",
                     "QA Lead", "authorize_invalid_still_starts", "RefSim-DC400", "SIM-0001",
                     "Evidence manifest (SHA-256)", "TC_RPC_01_CS"):
        assert expected in text, expected
    # The FAIL row's diagram link points at an SVG that opens, offline, from the page's folder.
    href = browser.js("[...document.querySelectorAll('a')].find(a => a.textContent === 'diagram').getAttribute('href')")
    assert href == "evidence/TC_C_02_CS/sequence.svg" and (faulty_run / href).is_file()
    shot = browser.screenshot(faulty_run.parent / "screenshots" / "certification-summary.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    browser.open(faulty_run / href)
    assert "FAIL" in browser.js("document.documentElement.textContent")
    browser.screenshot(faulty_run.parent / "screenshots" / "TC_C_02_CS-sequence.png")
    assert browser.problems() == []


EXPAND_TREE = """(async () => {
  const count = () => document.querySelectorAll('[data-testid=tree-section],[data-testid=tree-leaf]').length;
  for (let round = 0; round < 10; round++) {
    // an open section's arrow icon carries the (CSS-module hashed) "…--opened…" class
    const closed = [...document.querySelectorAll('[data-testid=tree-section]')]
      .filter(s => !((s.querySelector('[data-testid=tree-arrow] svg') || {}).getAttribute?.('class') || '')
                     .includes('--opened'));
    if (!closed.length) break;
    const before = count();
    closed.forEach(s => s.querySelector('[data-testid=tree-section-title]').click());
    for (let i = 0; i < 40 && count() === before; i++) await new Promise(r => setTimeout(r, 50));
  }
  return [...document.querySelectorAll('[data-testid=tree-section-title],[data-testid=tree-leaf-title]')]
    .map(e => e.textContent.trim());
})()"""


def _click(browser: Chromium, selector_js: str) -> None:
    assert browser.js(f"(() => {{ const e = {selector_js}; if (!e) return false; e.click(); return true; }})()"), \
        f"nothing to click: {selector_js}"


def test_single_file_html_report_renders_offline(faulty_run: Path, browser: Chromium) -> None:
    index = faulty_run / "html" / "index.html"
    if not index.is_file():
        pytest.skip("the HTML report was not rendered (npm allure CLI missing: run `npm install`)")
    assert [p.name for p in index.parent.iterdir() if p.suffix in (".js", ".css")] == []    # one file
    browser.open(index)
    browser.wait_for("document.querySelector('[data-testid=tree-section-title]')")
    overview = browser.text()
    assert "Cert. Core" in overview and "NOT PASSED" in overview       # per-profile verdicts

    titles = browser.js(EXPAND_TREE)
    shown = [t.split(" ")[0] if t.startswith("TC_") else t for t in titles]   # the tree, depth first:
    assert shown == ["OCPP 2.0.1", "Core", "Authorization", "TC_C_02_CS",       # version → profile → block
                     "RPC framework", "TC_RPC_01_CS"], titles
    browser.screenshot(faulty_run.parent / "screenshots" / "allure-tree.png")

    _click(browser, "[...document.querySelectorAll('[data-testid=tree-leaf-title]')]"
                    ".find(e => e.textContent.includes('TC_C_02_CS'))")
    browser.wait_for("document.body.innerText.includes('requirement C01.FR.02')")
    _click(browser, "[...document.querySelectorAll('button')].find(b => b.textContent.trim().startsWith('Attachments'))")
    browser.wait_for("[...document.querySelectorAll('*')].some(e => e.children.length === 0 && "
                     "e.textContent.trim() === 'sequence.svg')")
    _click(browser, "[...document.querySelectorAll('*')].find(e => e.children.length === 0 && "
                    "e.textContent.trim() === 'sequence.svg')")
    browser.wait_for("[...document.images].some(i => i.complete && i.naturalWidth >= 900)")   # the diagram drew
    browser.screenshot(faulty_run.parent / "screenshots" / "allure-case.png")

    browser.open(index)                               # back to the overview: the summary is a global attachment
    browser.wait_for("document.querySelector('[data-testid=nav-tab-globalAttachments]')")
    _click(browser, "document.querySelector('[data-testid=nav-tab-globalAttachments]') || "
                    "[...document.querySelectorAll('button')].find(b => b.textContent.includes('Global Attachments'))")
    browser.wait_for("document.body.innerText.includes('Certification summary')")
    _click(browser, "[...document.querySelectorAll('*')].find(e => e.children.length === 0 && "
                    "e.textContent.trim() === 'Certification summary')")
    browser.wait_for("document.querySelector('iframe')")        # the page, shown inside the report
    browser.screenshot(faulty_run.parent / "screenshots" / "allure-summary-attachment.png")
    assert browser.problems() == []
    html = index.read_text("utf-8")
    assert all(s not in html for s in SECRETS)


def test_report_again_keeps_one_history_point_per_run(faulty_run: Path) -> None:
    """`run` then `report` renders the same run twice; the DUT's trend must count it once."""
    if not (faulty_run / "html" / "index.html").is_file():
        pytest.skip("the HTML report was not rendered (npm allure CLI missing: run `npm install`)")
    (history,) = (faulty_run / "history").glob("*.jsonl")
    assert history.name == "reference-charging-station-simulator+fault-authorize-invalid-still-starts.jsonl"
    proc = cli("report", "--out", str(faulty_run), cwd=faulty_run.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(history.read_text().splitlines()) == 1
    assert "index.html" in proc.stdout and "NOT PASSED" in proc.stdout
