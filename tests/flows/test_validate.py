"""``validate_files``: each kind of broken definition, with its own fixture file, is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.problems import Problem
from flows.registry import LIBRARY_DIR
from flows.validate import validate_files
from tests.flows.helpers import FIXTURES

BROKEN = FIXTURES / "broken"

#: fixture file -> every (node id, kind, words of the reason) it must produce, and nothing else.
EXPECTED: dict[str, list[tuple[str | None, str, str]]] = {
    "yaml_syntax.yaml": [(None, "yaml_syntax", "not valid YAML")],
    "duplicate_key.yaml": [(None, "duplicate_key", "the key 'kind' is given twice (line 7")],
    "schema.yaml": [
        (None, "schema", "'expiry_hours' must be a number"),
        (None, "schema", "'title' is required"),
        (None, "schema", "'version' is required"),
        ("done", "schema", "'status' must be one of completed, skipped, handed_off"),
    ],
    "unknown_field.yaml": [("hello", "schema", "unknown field 'nxt'")],
    "unknown_kind.yaml": [
        ("ask", "unknown_kind", "unknown node kind 'questionn'"),
        ("ask_type", "unknown_kind", "unknown question type 'colour'"),
    ],
    "duplicate_node_id.yaml": [("hello", "duplicate_node_id", "the node id 'hello' is used twice")],
    "unknown_target.yaml": [
        ("ask", "unknown_target", "'next' names the node 'nowhere'"),
        ("check", "unknown_target", "'cases[1].next' names the node 'also_nowhere'"),
        ("check", "unreachable_node", "no path from the start"),
        ("done", "unreachable_node", "no path from the start"),
    ],
    "unreachable_node.yaml": [("orphan", "unreachable_node", "no path from the start leads to this node")],
    "branch_without_default.yaml": [("check", "branch_without_default", "a branch needs a 'default'")],
    "missing_translation.yaml": [
        (None, "missing_translation", "'title' has no en text"),
        ("ask", "missing_translation", "'choices[2].label' has no en text"),
        ("ask", "missing_translation", "'text' has no en text"),
        ("bye", "missing_translation", "'text' has no en text"),
        ("bye", "missing_translation", "'text' must give the text per language"),
    ],
    "bad_expression.yaml": [
        ("forbidden", "bad_expression", "calling '__import__('os').system' is not allowed"),
        ("forbidden", "bad_expression", "a comprehension is not allowed"),
        ("forbidden", "bad_expression", "calling 'lambda: 1' is not allowed"),
        ("forbidden", "bad_expression", "the field '__class__' is not allowed"),
        ("syntax", "bad_expression", "syntax error"),
        ("unknown_name", "bad_expression", "unknown name 'scor'"),
    ],
    "bad_template.yaml": [
        ("done", "bad_template", "uses {disclaimer}, but the flow has no 'disclaimer'"),
        ("reply", "bad_template", "uses {ask.colour}: results have only label, category, unit"),
        ("reply", "bad_template", "uses {total}, but no result or fact has that name"),
    ],
    "duplicate_result.yaml": [("second", "duplicate_result", "the result 'answer' is also saved by the node 'first'")],
    "reserved_name.yaml": [("ask_age", "reserved_name", "the result name 'age' is reserved")],
    "loop_without_question.yaml": [
        ("spin", "loop_without_question", "these nodes loop without asking a question: spin -> again -> spin")
    ],
    "bad_code.yaml": [
        ("record", "bad_code", "'code' 'SBP' is not a valid LOINC code"),
        ("worry", "bad_code", "'code' '68509-1' is not a valid LOINC code (format or check digit)"),
        ("worry", "bad_code", "must be a LOINC answer code such as LA6568-5, got '6568-5'"),
    ],
    "bad_choices.yaml": [
        ("only_one", "bad_choices", "needs at least two choices"),
        ("twice", "bad_choices", "the choice key 'same' is used twice"),
        ("twice", "bad_choices", "the choice value 1 is used twice"),
        ("twice", "bad_choices", "two choices have the same zh label"),
    ],
    "bad_range.yaml": [
        (None, "bad_range", "'after_hours' must be more than 0 and less than 'expiry_hours'"),
        ("followup", "bad_range", "'in_days' must be between 1 and 3650, got 0"),
        ("score", "bad_range", "bands must go up"),
        ("weight", "bad_range", "'min' (300) must be below 'max' (20)"),
    ],
    "unknown_flow.yaml": [("next_flow", "unknown_flow", "names the flow 'no_such_flow', not in the library")],
    "unknown_result.yaml": [("alert", "unknown_result", "'include' names 'asked', which no node saves")],
}


def test_every_fixture_is_listed() -> None:
    assert sorted(path.name for path in BROKEN.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_fixture_reports_each_problem(name: str) -> None:
    problems = validate_files([BROKEN / name])
    found = sorted((problem.node_id or "", problem.kind) for problem in problems)
    wanted = sorted((node_id or "", kind) for node_id, kind, _words in EXPECTED[name])
    assert found == wanted, "\n".join(map(str, problems))
    for node_id, kind, words in EXPECTED[name]:
        assert any(
            problem.node_id == node_id and problem.kind == kind and words in problem.reason for problem in problems
        ), f"{name}: no {kind} problem at {node_id} saying {words!r}"
    assert all(problem.file == str(BROKEN / name) for problem in problems)


def test_each_problem_reads_file_node_reason() -> None:
    problem = validate_files([BROKEN / "unreachable_node.yaml"])[0]
    assert str(problem) == f"{BROKEN / 'unreachable_node.yaml'}:orphan: no path from the start leads to this node"
    flow_level = validate_files([BROKEN / "yaml_syntax.yaml"])[0]
    assert str(flow_level).startswith(f"{BROKEN / 'yaml_syntax.yaml'}:-: not valid YAML")


def test_a_directory_is_validated_file_by_file_and_sorted() -> None:
    problems = validate_files([BROKEN])
    assert {Path(problem.file).name for problem in problems} == set(EXPECTED)
    assert problems == sorted(problems, key=Problem.sort_key)
    assert len(problems) == sum(len(items) for items in EXPECTED.values())


def test_the_library_and_the_valid_fixtures_have_no_problem() -> None:
    assert validate_files([LIBRARY_DIR, FIXTURES / "valid", FIXTURES / "versions"]) == []


def test_flows_may_name_each_other_when_validated_together(tmp_path: Path) -> None:
    first = (BROKEN.parent / "valid" / "mechanics.yaml").read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(first.replace("flow: mechanics", "flow: companion"), encoding="utf-8")
    assert [problem.kind for problem in validate_files([tmp_path / "a.yaml"])] == ["unknown_flow", "unknown_flow"]
    companion = (BROKEN.parent / "versions" / "demo.v1.yaml").read_text(encoding="utf-8")
    (tmp_path / "b.yaml").write_text(companion.replace("id: demo", "id: companion"), encoding="utf-8")
    assert validate_files([tmp_path]) == []
    assert validate_files([tmp_path / "a.yaml"], known_flows=["companion"]) == []


def test_the_same_id_and_version_twice_is_a_problem(tmp_path: Path) -> None:
    text = (FIXTURES / "versions" / "demo.yaml").read_text(encoding="utf-8")
    (tmp_path / "one.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "two.yaml").write_text(text, encoding="utf-8")
    problems = validate_files([tmp_path])
    assert [problem.reason for problem in problems] == [f"demo v2 is also defined in {tmp_path / 'one.yaml'}"]


def test_unreadable_files_are_problems_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "list.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    problems = validate_files([tmp_path])
    assert {Path(problem.file).name for problem in problems} == {"binary.yaml", "list.yaml", "empty.yaml"}
    assert all(problem.node_id is None for problem in problems)
