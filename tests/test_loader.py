"""Loading test-case YAML: valid cases, includes with vars, and positioned errors with hints."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.scenario.loader import CaseLoadError, LoadIssue, iter_case_files, load_case, validate_paths
from harness.scenario.model import Step, TestCase

HEADER_201 = """\
id: {id}
title: A probe case
ocpp: "2.0.1"
role: csms
profile: Core
"""


def write(root: Path, rel: str, *parts: str) -> Path:
    """Write a YAML file from parts, each dedented on its own (a header + an indented body)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(textwrap.dedent(p) for p in parts), "utf-8")
    return path


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A test library with one fragment in _common/."""
    root = tmp_path / "testcases"
    write(root, "_common/booted.yaml", """\
        # a fragment: steps only
        steps:
          - expect: BootNotification
            name: boots
            reply: {status: Accepted, currentTime: $now, interval: $hb}
          - expect: StatusNotification
        """)
    return root


def issues(path: Path) -> list[LoadIssue]:
    with pytest.raises(CaseLoadError) as exc:
        load_case(path)
    assert str(exc.value) == "\n".join(str(i) for i in exc.value.issues)
    return exc.value.issues


def only(path: Path, contains: str) -> LoadIssue:
    found = [i for i in issues(path) if contains in i.message]
    assert len(found) == 1, [str(i) for i in issues(path)]
    return found[0]


def at(issue: LoadIssue, path: Path, line: int, column: int) -> None:
    assert (issue.file, issue.line, issue.column) == (str(path), line, column), str(issue)
    assert str(issue).startswith(f"{path}:{line}:{column}: ")


# ---- valid cases ---------------------------------------------------------------------------------

def test_valid_case_loads_with_header_and_defaults(lib):
    path = write(lib, "ocpp201/TC_Z_01_CS.yaml", HEADER_201.format(id="TC_Z_01_CS"), """\
        block: Z
        feature: Probing
        use_cases: [Z01]
        requirements: [Z01.FR.01]
        severity: critical
        pics: [reset]
        timeout: 12.5
        description: a probe
        defaults:
          Authorize: {idTokenInfo: {status: Blocked}}
        steps:
          - expect: Heartbeat
            timeout: 2
            requirement: G02.FR.01
            match: {}
          - send: Reset
            payload: {type: Immediate}
            expect_result: {status: Accepted}
          - wait: 0.5
        """)
    case = load_case(path)
    assert isinstance(case, TestCase)
    assert (case.id, case.title, case.ocpp, case.role, case.profile) == ("TC_Z_01_CS", "A probe case", "2.0.1", "csms", "Core")
    assert (case.block, case.feature, case.use_cases, case.requirements) == ("Z", "Probing", ["Z01"], ["Z01.FR.01"])
    assert case.severity == "critical" and case.pics == ["reset"] and case.timeout == 12.5
    assert case.defaults == {"Authorize": {"idTokenInfo": {"status": "Blocked"}}}
    assert case.dut_kind == "charging_station" and case.mandatory is True
    assert [s.kind for s in case.steps] == ["expect", "send", "wait"]
    assert [s.line for s in case.steps] == [17, 21, 24]
    assert all(s.source == str(path) for s in case.steps)
    first = case.steps[0]
    assert first.timeout == 2.0 and first.target == "Heartbeat" and first.describe() == "expect Heartbeat"
    assert case.steps[2].timeout == 10.0          # the documented default
    # plain Python values, not ruamel's subclasses
    assert type(case.steps[1].spec["payload"]) is dict and type(case.steps[2].spec["wait"]) is float


def test_minimal_case_defaults(lib):
    path = write(lib, "ocpp16/TC_Z_02_CSMS.yaml", """\
        id: TC_Z_02_CSMS
        title: Harness as station
        ocpp: "1.6"
        role: cs
        profile: Core
        steps:
          - connect: {}
          - disconnect:
        """)
    case = load_case(path)
    assert case.timeout == 60.0 and case.severity == "normal" and case.pics == [] and case.defaults == {}
    assert case.dut_kind == "csms"
    assert [s.kind for s in case.steps] == ["connect", "disconnect"]


def test_include_with_vars_expands_fragment_steps(lib):
    path = write(lib, "ocpp201/TC_Z_03_CS.yaml", HEADER_201.format(id="TC_Z_03_CS"), """\
        steps:
          - include: booted
            vars: {hb: 7}
          - expect: Heartbeat
        """)
    case = load_case(path)
    frag = lib / "_common" / "booted.yaml"
    assert [s.kind for s in case.steps] == ["expect", "expect", "expect"]
    assert [s.target for s in case.steps] == ["BootNotification", "StatusNotification", "Heartbeat"]
    assert [(s.source, s.line) for s in case.steps] == [(str(frag), 3), (str(frag), 6), (str(path), 9)]
    assert case.steps[0].spec["_vars"] == {"hb": 7} and case.steps[1].spec["_vars"] == {"hb": 7}
    assert "_vars" not in case.steps[2].spec
    assert case.steps[0].describe() == "boots"


def test_nested_include_merges_vars(lib):
    write(lib, "_common/outer.yaml", """\
        steps:
          - include: booted
            vars: {hb: 3}
          - expect: Heartbeat
        """)
    path = write(lib, "ocpp201/TC_Z_04_CS.yaml", HEADER_201.format(id="TC_Z_04_CS"), """\
        steps:
          - include: outer
            vars: {token: T1}
        """)
    case = load_case(path)
    assert [s.target for s in case.steps] == ["BootNotification", "StatusNotification", "Heartbeat"]
    assert case.steps[0].spec["_vars"] == {"token": "T1", "hb": 3}
    assert case.steps[2].spec["_vars"] == {"token": "T1"}


def test_self_including_fragment_is_stopped(lib):
    write(lib, "_common/loop.yaml", "steps:\n  - include: loop\n")
    path = write(lib, "ocpp201/TC_Z_05_CS.yaml", HEADER_201.format(id="TC_Z_05_CS"), "steps:\n  - include: loop\n")
    (issue,) = issues(path)
    assert "nested deeper than" in issue.message and "including itself" in issue.hint


def test_iter_case_files_skips_fragments_and_non_tc_files(lib):
    write(lib, "ocpp201/TC_Z_06_CS.yaml", HEADER_201.format(id="TC_Z_06_CS"), "steps:\n  - wait: 0\n")
    write(lib, "ocpp201/notes.yaml", "x: 1\n")
    write(lib, "_common/TC_fragment_lookalike.yaml", "steps:\n  - wait: 0\n")
    assert [p.name for p in iter_case_files([lib])] == ["TC_Z_06_CS.yaml"]
    assert validate_paths([lib]) == []


# ---- malformed cases: exact positions and hints ---------------------------------------------------

def test_yaml_syntax_error(lib):
    path = write(lib, "ocpp201/TC_Y_01_CS.yaml", HEADER_201.format(id="TC_Y_01_CS"), """\
        steps:
          - expect: [Heartbeat
        """)
    (issue,) = issues(path)
    at(issue, path, 8, 1)
    assert issue.message.startswith("YAML syntax:")
    assert "indentation" in issue.hint


def test_yaml_bad_indentation(lib):
    path = write(lib, "ocpp201/TC_Y_02_CS.yaml", HEADER_201.format(id="TC_Y_02_CS"), """\
        steps:
          - expect: Heartbeat
           timeout: 3
        """)
    (issue,) = issues(path)
    at(issue, path, 8, 4)
    assert issue.message.startswith("YAML syntax:")


def test_duplicate_key(lib):
    path = write(lib, "ocpp201/TC_Y_03_CS.yaml", HEADER_201.format(id="TC_Y_03_CS"), """\
        steps:
          - expect: Heartbeat
            timeout: 3
            timeout: 4
        """)
    (issue,) = issues(path)
    at(issue, path, 9, 5)
    assert "duplicate key" in issue.message


def test_unknown_header_key_with_did_you_mean(lib):
    path = write(lib, "ocpp201/TC_Y_04_CS.yaml", HEADER_201.format(id="TC_Y_04_CS"), """\
        severty: critical
        steps:
          - wait: 1
        """)
    issue = only(path, "severty")
    at(issue, path, 6, 1)
    assert "Additional properties are not allowed" in issue.message
    assert issue.hint == "did you mean 'severity'?"


def test_unknown_step_key_with_did_you_mean(lib):
    path = write(lib, "ocpp201/TC_Y_05_CS.yaml", HEADER_201.format(id="TC_Y_05_CS"), """\
        steps:
          - expect: Heartbeat
            tiemout: 3
        """)
    issue = only(path, "tiemout")
    at(issue, path, 8, 5)
    assert issue.message.startswith("steps/0: ")
    assert issue.hint == "did you mean 'timeout'?"


def test_unknown_key_without_close_match_lists_allowed_keys(lib):
    path = write(lib, "ocpp201/TC_Y_06_CS.yaml", HEADER_201.format(id="TC_Y_06_CS"), """\
        steps:
          - expect: Heartbeat
            zzzzzz: 1
        """)
    issue = only(path, "zzzzzz")
    at(issue, path, 8, 5)
    assert issue.hint.startswith("allowed keys: ") and "match" in issue.hint


def test_wrong_enum(lib):
    path = write(lib, "ocpp201/TC_Y_07_CS.yaml", """\
        id: TC_Y_07_CS
        title: A probe case
        ocpp: "2.0.1"
        role: cms
        profile: Core
        severity: high
        steps:
          - wait: 1
        """)
    role = only(path, "role:")
    at(role, path, 4, 1)
    assert "'cms' is not one of ['csms', 'cs', 'secc']" in role.message
    assert role.hint == "did you mean 'csms' or 'cs'?"
    sev = only(path, "severity:")
    at(sev, path, 6, 1)
    assert sev.hint.startswith("one of blocker, critical")


def test_unquoted_version_gets_a_quoting_hint(lib):
    path = write(lib, "ocpp16/TC_Y_08_CS.yaml", """\
        id: TC_Y_08_CS
        title: A probe case
        ocpp: 1.6
        role: csms
        profile: Core
        steps:
          - wait: 1
        """)
    found = issues(path)
    assert all((i.line, i.column) == (3, 1) for i in found)
    assert any("quote it" in i.hint for i in found)


def test_missing_required_header_key(lib):
    path = write(lib, "ocpp201/TC_Y_09_CS.yaml", """\
        id: TC_Y_09_CS
        title: A probe case
        ocpp: "2.0.1"
        profile: Core
        steps:
          - wait: 1
        """)
    issue = only(path, "'role' is a required property")
    at(issue, path, 1, 1)
    assert "missing key" in issue.hint


def test_unknown_ocpp_action(lib):
    path = write(lib, "ocpp201/TC_Y_10_CS.yaml", HEADER_201.format(id="TC_Y_10_CS"), """\
        steps:
          - wait: 1
          - expect: BootNotificaton
          - send: Rest
            payload: {}
        """)
    boot = only(path, "BootNotificaton")
    at(boot, path, 8, 5)
    assert boot.message == "steps/1: OCPP 2.0.1 has no action 'BootNotificaton'"
    assert boot.hint.startswith("did you mean 'BootNotification'")
    reset = only(path, "'Rest'")
    at(reset, path, 9, 5)
    assert reset.hint == "did you mean 'Reset'?"


def test_action_of_the_other_version_is_unknown(lib):
    path = write(lib, "ocpp16/TC_Y_11_CS.yaml", """\
        id: TC_Y_11_CS
        title: A probe case
        ocpp: "1.6"
        role: csms
        profile: Core
        steps:
          - expect: TransactionEvent
        """)
    issue = only(path, "TransactionEvent")
    at(issue, path, 7, 5)
    assert issue.message == "steps/0: OCPP 1.6 has no action 'TransactionEvent'"


def test_raw_send_may_use_a_non_standard_action(lib):
    path = write(lib, "ocpp201/TC_Y_12_CS.yaml", HEADER_201.format(id="TC_Y_12_CS"), """\
        steps:
          - send: NoSuchAction
            raw: '[2,"$uid","NoSuchAction",{}]'
            expect_error: {code: NotImplemented}
        """)
    assert load_case(path).steps[0].spec["raw"] == '[2,"$uid","NoSuchAction",{}]'


def test_several_step_kinds(lib):
    path = write(lib, "ocpp201/TC_Y_13_CS.yaml", HEADER_201.format(id="TC_Y_13_CS"), """\
        steps:
          - expect: Heartbeat
          - wait: 1
            expect: Heartbeat
        """)
    (issue,) = issues(path)
    at(issue, path, 8, 5)
    assert issue.message == "steps/1: step has several kinds: wait, expect"
    assert issue.hint.startswith("each step has exactly one of: expect, send")


def test_step_without_kind(lib):
    path = write(lib, "ocpp201/TC_Y_14_CS.yaml", HEADER_201.format(id="TC_Y_14_CS"), """\
        steps:
          - name: what am I
            timeout: 3
        """)
    (issue,) = issues(path)
    at(issue, path, 7, 5)
    assert issue.message == "steps/0: step has no kind"


def test_conflicting_answers(lib):
    path = write(lib, "ocpp201/TC_Y_15_CS.yaml", HEADER_201.format(id="TC_Y_15_CS"), """\
        steps:
          - expect: Heartbeat
            reply: {currentTime: $now}
            reply_error: {code: GenericError}
          - send: Reset
            payload: {type: Immediate}
            expect_result: {}
            expect_error: {code: NotSupported}
        """)
    reply = only(path, "both reply and reply_error")
    at(reply, path, 7, 5)
    assert reply.hint == "answer with one of them"
    result = only(path, "both expect_result and expect_error")
    at(result, path, 10, 5)


def test_missing_fragment(lib):
    path = write(lib, "ocpp201/TC_Y_16_CS.yaml", HEADER_201.format(id="TC_Y_16_CS"), """\
        steps:
          - wait: 1
          - include: boted
        """)
    (issue,) = issues(path)
    at(issue, path, 8, 5)
    assert issue.message.startswith("steps/1: no fragment 'boted' in ")
    assert issue.hint == "did you mean 'booted'?"


def test_missing_fragment_without_close_match_lists_known_ones(lib):
    path = write(lib, "ocpp201/TC_Y_17_CS.yaml", HEADER_201.format(id="TC_Y_17_CS"), """\
        steps:
          - include: xyzzy
        """)
    (issue,) = issues(path)
    assert issue.hint == "known fragments: booted"


def test_id_differs_from_file_name(lib):
    path = write(lib, "ocpp201/TC_Y_18_CS.yaml", HEADER_201.format(id="TC_Y_99_CS"), """\
        steps:
          - wait: 1
        """)
    (issue,) = issues(path)
    at(issue, path, 1, 1)
    assert issue.message == "id 'TC_Y_99_CS' differs from the file name 'TC_Y_18_CS'"
    assert issue.hint == "name the file after the id"


def test_bad_id_pattern_and_value_types(lib):
    path = write(lib, "ocpp201/TC_Y_19_CS.yaml", """\
        id: tc-lowercase
        title: A probe case
        ocpp: "2.0.1"
        role: csms
        profile: Core
        timeout: -1
        steps:
          - wait: one second
        """)
    found = issues(path)
    pattern = [i for i in found if i.message.startswith("id:")]
    assert len(pattern) == 1 and (pattern[0].line, pattern[0].column) == (1, 1)
    assert pattern[0].hint == "must match ^TC_[A-Za-z0-9_]+$"
    timeout = [i for i in found if i.message.startswith("timeout:")]
    assert len(timeout) == 1 and (timeout[0].line, timeout[0].column) == (6, 1)
    wait = [i for i in found if i.message.startswith("steps/0/wait:")]
    assert len(wait) == 1 and (wait[0].line, wait[0].column) == (8, 5)


def test_all_issues_reported_at_once(lib):
    path = write(lib, "ocpp201/TC_Y_20_CS.yaml", """\
        id: TC_Y_20_CS
        title: A probe case
        ocpp: "2.0.1"
        role: cms
        profile: Core
        steps:
          - expect: Hartbeat
          - include: nope
        """)
    assert len(issues(path)) == 3


def test_not_a_mapping(lib):
    path = write(lib, "ocpp201/TC_Y_21_CS.yaml", "- just\n- a list\n")
    (issue,) = issues(path)
    at(issue, path, 1, 1)
    assert "a test case is a YAML mapping" in issue.message


def test_empty_steps(lib):
    path = write(lib, "ocpp201/TC_Y_22_CS.yaml", HEADER_201.format(id="TC_Y_22_CS"), "steps: []\n")
    issue = only(path, "steps:")
    at(issue, path, 6, 1)


# ---- fragments are checked like cases ---------------------------------------------------------

def test_bad_fragment_is_reported_at_its_own_position(lib):
    frag = write(lib, "_common/broken.yaml", """\
        steps:
          - name: no kind in a fragment
          - expect: Heartbeet
          - wait: 1
            tiemout: 2
        """)
    path = write(lib, "ocpp201/TC_Y_23_CS.yaml", HEADER_201.format(id="TC_Y_23_CS"), """\
        steps:
          - include: broken
        """)
    found = issues(path)
    assert all(i.file == str(frag) for i in found)
    nokind = [i for i in found if "step has no kind" in i.message]
    assert len(nokind) == 1 and (nokind[0].line, nokind[0].column) == (2, 5)
    action = [i for i in found if "Heartbeet" in i.message]
    assert len(action) == 1 and (action[0].line, action[0].column) == (3, 5)
    assert action[0].hint == "did you mean 'Heartbeat'?"
    key = [i for i in found if "tiemout" in i.message]
    assert len(key) == 1 and (key[0].line, key[0].column) == (5, 5) and key[0].hint == "did you mean 'timeout'?"


def test_fragment_yaml_error_names_the_fragment(lib):
    frag = write(lib, "_common/syntax.yaml", "steps:\n  - expect: [Heartbeat\n")
    path = write(lib, "ocpp201/TC_Y_24_CS.yaml", HEADER_201.format(id="TC_Y_24_CS"), "steps:\n  - include: syntax\n")
    (issue,) = issues(path)
    assert issue.file == str(frag) and issue.message.startswith("YAML syntax:")


def test_fragment_without_steps(lib):
    frag = write(lib, "_common/nosteps.yaml", "just: a mapping\n")
    path = write(lib, "ocpp201/TC_Y_25_CS.yaml", HEADER_201.format(id="TC_Y_25_CS"), "steps:\n  - include: nosteps\n")
    (issue,) = issues(path)
    assert issue.file == str(frag) and "a fragment is a mapping with a 'steps' list" in issue.message


# ---- the step model ---------------------------------------------------------------------------------

def test_step_describe_variants():
    assert Step("wait", {"wait": 2}).describe() == "wait 2"
    assert Step("expect_none", {"expect_none": ["A", "B"]}).describe() == "expect_none A, B"
    assert Step("connect", {"connect": {}}).describe() == "connect"
    assert Step("expect", {"expect": "Heartbeat", "name": "beat"}).describe() == "beat"


# ---- charger-harness validate ---------------------------------------------------------------------

def test_cli_validate_reports_positions_and_exits_1(lib):
    bad = write(lib, "ocpp201/TC_Y_30_CS.yaml", HEADER_201.format(id="TC_Y_30_CS"), """\
        severty: critical
        steps:
          - expect: Hartbeat
        """)
    write(lib, "ocpp201/TC_Y_31_CS.yaml", HEADER_201.format(id="TC_Y_31_CS"), "steps:\n  - wait: 1\n")
    result = CliRunner().invoke(app, ["validate", str(lib)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert f"{bad}:6:1: <document>: Additional properties are not allowed ('severty' was unexpected)" in lines
    assert f"{bad}:8:5: steps/0: OCPP 2.0.1 has no action 'Hartbeat'" in lines
    assert "    hint: did you mean 'severity'?" in lines
    assert "2 file(s) checked, 1 with problems, 2 problem(s)" in result.output


def test_cli_validate_valid_file_exits_0(lib):
    good = write(lib, "ocpp201/TC_Y_32_CS.yaml", HEADER_201.format(id="TC_Y_32_CS"), """\
        steps:
          - include: booted
            vars: {hb: 2}
          - expect: Heartbeat
        """)
    result = CliRunner().invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "1 file(s) checked, 0 with problems, 0 problem(s)" in result.output
