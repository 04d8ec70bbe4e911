"""pytest plugin: YAML test cases become pytest items; verdicts become pytest outcomes.

`pytest testcases/ --dut fixtures/duts/X.yaml` collects `TC_*.yaml`, routes each case to
the DUT profile whose kind matches the case's role, runs it through `execute`, writes the
Allure result, and reports the DESIGN.md verdict:

    PASS → passed · FAIL → failed · ERROR → failed, shown as ERROR
    INCONCLUSIVE / NOT APPLICABLE → skipped, shown under their own names

A test case that cannot be loaded is not a collection error (that would stop the run):
it becomes an item whose verdict is ERROR with the file:line:column of each problem.
Works under pytest-xdist: everything a verdict needs travels in `user_properties`.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from . import __version__
from .dut.builtin import builtin_profiles
from .dut.profile import DutProfile, ProfileError, load_profile
from .execute import Execution, close_persistent_endpoints, execute
from .loop import HarnessHung, background_loop, shutdown
from .loop import is_running as loop_running
from .ocpp.trace import Trace
from .scenario.loader import CaseLoadError, load_case
from .scenario.model import TestCase
from .scenario.verdict import CaseResult, Verdict

VERDICT_KEY = "charger_harness_verdict"
OUTER_GUARD_S = 60.0    # beyond the case's own timeout: set-up and teardown, each bounded
_CATEGORY = {
    Verdict.INCONCLUSIVE: ("inconclusive", "I", "INCONCLUSIVE"),
    Verdict.NOT_APPLICABLE: ("not applicable", "N", "NOT APPLICABLE"),
    Verdict.ERROR: ("error", "E", "ERROR"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("charger-harness")
    g.addoption("--dut", action="append", default=[], metavar="FILE",
                help="DUT profile (repeatable: one charging station and/or one CSMS). Default: the built-in simulators.")
    g.addoption("--sim-fault", default=None, metavar="NAME", help="start the built-in simulators with this fault")
    g.addoption("--allure-results", default=None, metavar="DIR", help="write Allure results here")
    g.addoption("--verdicts-json", default=None, metavar="FILE", help="write every case's verdict to this JSON file")
    g.addoption("--operator", default=None, help="name recorded for manual answers")
    g.addoption("--case", action="append", default=[], metavar="ID",
                help="run only the case with exactly this id (repeatable); with --resume it is run again")
    g.addoption("--progress", default=None, metavar="FILE",
                help="append each finished case's verdict to this JSON-lines file (for --resume)")
    g.addoption("--resume", action="store_true", default=False,
                help="skip the cases already finished in the last run with the same DUT profile(s) and test "
                     "library (read from --progress); their verdicts are carried into this run's summary")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("ocpp16: OCPP 1.6J case", "ocpp201: OCPP 2.0.1 case",
                 "role_csms: the harness plays the CSMS (DUT is a charging station)",
                 "role_cs: the harness plays the charging station (DUT is a CSMS)",
                 "iso15118: ISO 15118 case against an EV (the harness plays the SECC)",
                 "role_secc: the harness plays a charger's ISO 15118 SECC (DUT is an EV)"):
        config.addinivalue_line("markers", line)
    _session_verdicts.clear()   # the CLI may run several sessions in one process
    _setup_progress(config)


def _setup_progress(config: pytest.Config) -> None:
    """Resume/record: every process reads the history now, before this run writes anything."""
    global _progress
    _progress = None
    path = config.getoption("--progress")
    if config.getoption("--resume") and not path:
        raise pytest.UsageError("--resume needs --progress FILE (charger-harness run passes reports/progress.jsonl)")
    if not path:
        return
    from .dut.progress import open_progress

    log = open_progress(Path(path), _profiles(config), Path(str(config.rootpath)) / "testcases",
                        fault=config.getoption("--sim-fault"), resume=config.getoption("--resume"),
                        rerun=config.getoption("--case"))
    config._harness_progress = log  # type: ignore[attr-defined]
    if not _is_worker(config):
        _progress = log
        _session_verdicts.extend(log.carried)   # the final verdicts and summary cover both parts


def _profiles(config: pytest.Config) -> list[DutProfile]:
    cached = getattr(config, "_harness_profiles", None)
    if cached is not None:
        return cached
    paths = config.getoption("--dut")
    try:
        profiles = [load_profile(p) for p in paths] if paths else builtin_profiles()
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    config._harness_profiles = profiles  # type: ignore[attr-defined]
    return profiles


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and file_path.name.startswith("TC_") and "_common" not in file_path.parts:
        return CaseFile.from_parent(parent, path=file_path)
    return None


def _marker_name(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


class CaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            case = load_case(self.path)
        except CaseLoadError as exc:
            yield BrokenCaseItem.from_parent(self, name=self.path.stem, error=exc)
            return
        item = CaseItem.from_parent(self, name=case.id, case=case)
        edition = {"1.6": "ocpp16", "2.0.1": "ocpp201"}.get(case.ocpp, "iso15118")
        markers = [edition, f"role_{case.role}",
                   f"profile_{_marker_name(case.profile)}"]
        if case.block:
            markers.append(f"block_{_marker_name(case.block)}")
        for m in markers:
            self.config.addinivalue_line("markers", f"{m}: charger-harness case attribute")
            item.add_marker(m)
        yield item


class CaseItem(pytest.Item):
    def __init__(self, *, case: TestCase, **kw: Any):
        super().__init__(**kw)
        self.case = case
        self.execution: Execution | None = None
        self.user_properties += [("case_id", case.id), ("profile", case.profile), ("ocpp", case.ocpp),
                                 ("role", case.role), ("mandatory", case.mandatory)]

    def dut(self) -> DutProfile | None:
        for p in _profiles(self.config):
            if p.kind == self.case.dut_kind:
                return p
        return None

    def runtest(self) -> None:
        profile = self.dut()
        assert profile is not None   # deselected otherwise
        fault = self.config.getoption("--sim-fault")
        coro = execute(self.case, profile, fault=fault, operator=self.config.getoption("--operator"))
        try:
            self.execution = background_loop().run(coro, guard=self.case.timeout + OUTER_GUARD_S)
        except HarnessHung as exc:
            now = time.time()
            self.execution = Execution(CaseResult(self.case.id, Verdict.ERROR, f"harness hung: {exc}", start=now,
                                                  stop=now), Trace())
        result = self.execution.result
        self._publish(profile, result, fault)
        if result.verdict == Verdict.PASS:
            return
        if result.verdict == Verdict.FAIL:
            raise CaseFailed(result, self.execution)
        if result.verdict == Verdict.ERROR:
            raise CaseErrored(result, self.execution)
        pytest.skip(f"{result.verdict.value}: {result.message}")

    def _publish(self, profile: DutProfile, result: CaseResult, fault: str | None) -> None:
        self.user_properties.append((VERDICT_KEY, result.verdict.value))
        self.user_properties.append(("message", result.message))
        self.user_properties.append(("dut", profile.name))
        self.user_properties += [("title", self.case.title), ("requirement", result.requirement or ""),
                                 ("failed_step", result.failed_step or ""), ("failed_step_name", result.failed_step_name)]
        if result.dut_identity:
            self.user_properties.append(("dut_identity", json.dumps(result.dut_identity)))
        outdir = self.config.getoption("--allure-results")
        if outdir:
            from .report.publish import publish_case

            publish_case(Path(outdir), self.case, result, self.execution.trace if self.execution else None,
                         profile, fault=fault, logs=self.execution.logs if self.execution else None)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        exc = excinfo.value
        if isinstance(exc, (CaseFailed, CaseErrored)):
            return exc.render()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.case.id}: {self.case.title}"


class BrokenCaseItem(pytest.Item):
    """A test case file that cannot be loaded: its verdict is ERROR, the run goes on."""

    def __init__(self, *, error: CaseLoadError, **kw: Any):
        super().__init__(**kw)
        self.error = error
        self.user_properties += [("case_id", self.name), ("profile", "(unloadable)"), ("mandatory", True)]

    def runtest(self) -> None:
        self.user_properties.append((VERDICT_KEY, Verdict.ERROR.value))
        self.user_properties.append(("message", str(self.error).splitlines()[0]))
        outdir = self.config.getoption("--allure-results")
        if outdir:
            from .report.publish import publish_broken

            publish_broken(Path(outdir), self.path, self.error)
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"ERROR (test case cannot be loaded)\n{excinfo.value}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.name}: unloadable test case"


class CaseFailed(Exception):
    def __init__(self, result: CaseResult, execution: Execution):
        super().__init__(result.message)
        self.result, self.execution = result, execution

    def render(self) -> str:
        tail = "\n".join(f"    {e.direction:5} {e.kind:10} {e.action:22} {e.raw[:160]}"
                         for e in self.execution.trace.last(8))
        return f"{self.result.summary()}\n  last frames:\n{tail}"


class CaseErrored(CaseFailed):
    pass


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    profiles = _profiles(config)
    kinds = {p.kind for p in profiles}
    keep, drop = [], []
    for item in items:
        if isinstance(item, CaseItem) and item.case.dut_kind not in kinds:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config._harness_deselected = len(drop)  # type: ignore[attr-defined]
    _select_cases_and_resume(config, items)


def _item_case_id(item: pytest.Item) -> str:
    return item.case.id if isinstance(item, CaseItem) else item.name


def _select_cases_and_resume(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--case ID: exactly those ids (not -k's substring match). --resume: drop what the last run finished."""
    wanted = set(config.getoption("--case"))
    log = getattr(config, "_harness_progress", None)
    done = log.done() if log is not None else set()
    drop = [i for i in items if (wanted and _item_case_id(i) not in wanted) or i.nodeid in done]
    if drop:
        config.hook.pytest_deselected(items=drop)
        dropped = set(drop)
        items[:] = [i for i in items if i not in dropped]
    config._harness_already_done = sum(1 for i in drop if i.nodeid in done)  # type: ignore[attr-defined]
    config._harness_unknown_cases = sorted(wanted - {_item_case_id(i) for i in items})  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    log = getattr(config, "_harness_progress", None)
    if log is None or not config.getoption("--resume"):
        return None
    if log.previous is None:
        return ["charger-harness --resume: no earlier run with this DUT profile and test library; running everything"]
    return [f"charger-harness --resume: continuing run {log.previous.run_id} (started {log.previous.started}); "
            f"already done: {len(log.carried)}"]


def _verdict_of(report: pytest.TestReport) -> Verdict | None:
    for k, v in report.user_properties:
        if k == VERDICT_KEY:
            return Verdict(v)
    return None


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    if report.when != "call":
        return None
    verdict = _verdict_of(report)
    if verdict in _CATEGORY:
        return _CATEGORY[verdict]
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    verdict = _verdict_of(report)
    if verdict is None:
        return
    props = dict(report.user_properties)
    _session_verdicts.append({
        "nodeid": report.nodeid, "case_id": props.get("case_id"), "profile": props.get("profile"),
        "ocpp": props.get("ocpp"), "role": props.get("role"), "mandatory": props.get("mandatory", True),
        "verdict": verdict.value, "message": props.get("message", ""), "dut": props.get("dut", ""),
        "dut_identity": json.loads(props["dut_identity"]) if "dut_identity" in props else {},
        "duration": round(report.duration, 3),
        **{k: props[k] for k in ("title", "requirement", "failed_step", "failed_step_name") if k in props},
    })
    if _progress is not None:
        _progress.record(_session_verdicts[-1])


_session_verdicts: list[dict[str, Any]] = []
_progress: Any = None          # ProgressLog of this run (controller only)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for cid in getattr(config, "_harness_unknown_cases", []):
        terminalreporter.write_line(f"--case {cid}: no case with this id among the collected cases for the given DUT profile(s)")
    if _is_worker(config) or not _session_verdicts:
        return
    from .report.publish import render_verdict_table

    terminalreporter.write_sep("=", "charger-harness verdicts")
    terminalreporter.write_line(render_verdict_table(_session_verdicts))
    deselected = getattr(config, "_harness_deselected", 0)
    if deselected:
        terminalreporter.write_line(f"{deselected} case(s) deselected: no DUT profile of the kind they test "
                                    "(give --dut for a charging station and/or a CSMS)")
    if _progress is not None and _progress.carried:
        terminalreporter.write_line(f"already done: {len(_progress.carried)} case(s), carried over from run "
                                    f"{_progress.previous.run_id} (--resume); the table above includes them")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if loop_running():
        try:
            background_loop().run(close_persistent_endpoints(), guard=30)
        except HarnessHung:
            pass
        shutdown()
    if _is_worker(config):
        return
    if _progress is not None:
        _progress.close()
    path = config.getoption("--verdicts-json")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(_session_verdicts, indent=1))
    outdir = config.getoption("--allure-results")
    if outdir and _session_verdicts:
        from .report.publish import publish_session

        publish_session(Path(outdir), _session_verdicts, _profiles(config), harness_version=__version__,
                        library_root=Path(str(config.rootpath)) / "testcases", fault=config.getoption("--sim-fault"),
                        operator=config.getoption("--operator"))
    if os.environ.get("CHARGER_HARNESS_DEBUG"):
        print(json.dumps(_session_verdicts, indent=1))
