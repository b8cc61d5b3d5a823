"""Reading flow files into definitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.definition import MAX_FILE_BYTES, load_flow
from flows.nodes.question import QuestionNode
from flows.problems import FlowValidationError
from tests.flows.helpers import FIXTURES

SMALL = """
id: small
version: 2
title: {zh: 小流程, en: Small flow}
nodes:
  - id: ask
    kind: question
    type: yes_no
    labels:
      yes: {zh: 要, en: "Yes, please"}
      no: {zh: 不要, en: "No, thanks"}
    text: {zh: 要吗？, en: "Would you like it?"}
  - id: colour
    kind: question
    type: choice
    text: {zh: 颜色？, en: "Colour?"}
    choices:
      - {key: red, label: {zh: 红, en: Red}, synonyms: [on, yes, off]}
      - {key: blue, label: {zh: 蓝, en: Blue}}
  - id: thanks
    kind: message
    text: {zh: 谢谢, en: Thanks}
"""


def test_load_from_text_path_and_str_path(tmp_path: Path) -> None:
    definition = load_flow(SMALL)
    assert (definition.id, definition.version, definition.source) == ("small", 2, "<string>")
    file = tmp_path / "small.yaml"
    file.write_text(SMALL, encoding="utf-8")
    assert load_flow(file).source == str(file)
    assert load_flow(str(file)).key == ("small", 2)


def test_nodes_fall_through_in_list_order_and_the_last_ends() -> None:
    definition = load_flow(SMALL)
    assert definition.start == "ask"
    assert definition.order == ("ask", "colour", "thanks")
    assert definition.nodes["ask"].next_id == "colour"
    assert definition.nodes["thanks"].next_id is None


def test_yes_no_and_on_off_stay_words_not_booleans() -> None:
    definition = load_flow(SMALL)
    ask = definition.nodes["ask"]
    colour = definition.nodes["colour"]
    assert isinstance(ask, QuestionNode)
    assert isinstance(colour, QuestionNode)
    assert [option.label for option in ask.prompt("en").choices] == ["Yes, please", "No, thanks"]
    assert colour.prompt("zh").choices[0].synonyms == ("on", "yes", "off")


def test_result_names_and_structured_results_are_collected() -> None:
    definition = load_flow(FIXTURES / "valid" / "mechanics.yaml")
    assert definition.result_names == frozenset({"weight", "mood", "wellbeing", "helper"})
    hypertension = load_flow(Path("flows/library/hypertension_followup.yaml"))
    assert hypertension.structured_results == frozenset({"bp"})


def test_errors_carry_every_problem() -> None:
    with pytest.raises(FlowValidationError) as caught:
        load_flow(FIXTURES / "broken" / "bad_choices.yaml")
    assert len(caught.value.problems) == 4
    assert str(caught.value).startswith("invalid flow definition: ")
    assert "(and 3 more)" in str(caught.value)


def test_flow_references_are_not_checked_by_load_flow() -> None:
    definition = load_flow(FIXTURES / "broken" / "unknown_flow.yaml")
    assert [flow for _node, _where, flow in definition.flow_refs()] == ["no_such_flow", "phq9"]


def test_an_oversized_file_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="larger than"):
        load_flow("id: big\n# " + "x" * MAX_FILE_BYTES)


def test_start_names_the_first_node() -> None:
    definition = load_flow(SMALL.replace("version: 2", "version: 2\nstart: ask"))
    assert definition.start == "ask"
    with pytest.raises(FlowValidationError) as skipped:
        load_flow(SMALL.replace("version: 2", "version: 2\nstart: colour"))
    assert [(problem.node_id, problem.kind) for problem in skipped.value.problems] == [("ask", "unreachable_node")]
    with pytest.raises(FlowValidationError) as missing:
        load_flow(SMALL.replace("version: 2", "version: 2\nstart: nowhere"))
    assert [problem.kind for problem in missing.value.problems] == ["unknown_target"]


def test_the_first_flow_in_the_docs_is_valid() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "flows.md").read_text(encoding="utf-8")
    example = docs.split("## A first flow", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    definition = load_flow(example)
    assert (definition.id, definition.order) == ("flu_vaccine", ("ask", "route", "offer", "thanks"))
