"""Property tests: any sequence of inputs on any library flow never raises, never runs on without waiting,
and always ends or waits; the same inputs always give the same results."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.engine import StepResult, TextInput, Timer, start, step
from flows.facts import Facts
from flows.nodes.question import QuestionNode
from flows.outputs import QuestionOutput
from flows.registry import FlowLibrary
from flows.render import render
from tests.flows.helpers import NOW

LIBRARY = FlowLibrary.builtin()

FULL_WIDTH = st.text(alphabet="０１２３４５６７８９／，．　ａｂｃ", min_size=1, max_size=12)
EMOJI = st.text(alphabet="😀😢👍🙏❤🩺💊🇨🇳\u200d\ufe0f", min_size=1, max_size=8)
VERY_LONG = st.builds(lambda chunk, times: chunk * times, st.text(min_size=1, max_size=5), st.integers(2000, 20000))
JUNK = st.one_of(st.text(max_size=40), FULL_WIDTH, EMOJI, st.sampled_from(["", "   ", "\n", "？？"]), VERY_LONG)


def facts_for(lang: str) -> Facts:
    return Facts.build(age=66, sex="male", language=lang, tags={"hypertension"}, observations={"sbp": 150})


def _answers_for(question: QuestionNode) -> list[str]:
    """Return replies that answer ``question`` (some at the edges of what it takes)."""
    answer: Any = question.answer
    kind = answer.name
    if kind in ("choice", "multi", "yes_no"):
        count = len(answer.choices)
        replies = [str(number) for number in range(1, count + 1)]
        replies += [choice.label.plain("zh") for choice in answer.choices]
        replies += [choice.label.plain("en") for choice in answer.choices]
        if kind == "multi":
            replies += ["1,2", "1 3", "13"]
        return replies
    if kind in ("number", "scale"):
        low, high = answer.minimum, answer.maximum
        return [str(int(low)), str(int(high)), str(int((low + high) / 2)), f"{(low + high) / 2 + 0.5:g}"]
    if kind == "date":
        return ["2024-03-05", "昨天", "today", "3月5日"]
    if kind == "blood_pressure":
        return ["135/85", "185/115", "120 80", "高压150低压95", "179/109"]
    if kind == "glucose":
        return ["6.1", "2.5", "20", "110 mg/dL", "3.5", "空腹血糖7.2"]
    if kind == "reading":
        return ["血压135/85", "空腹血糖 6.1", "BP 190/100", "glucose 45 mg/dL", "餐后血糖9", "血压135/85 血糖6.1"]
    return ["头晕两周", "无", "none", "还好"]


def draw_turns(flow_id: str, lang: str, data: st.DataObject, steps: int = 40) -> list[tuple[TextInput | Timer, int]]:
    """Play a session, drawing each input as it goes: mostly an answer to the question being asked
    (so that runs reach deep into the flow), sometimes junk, sometimes a timer. Return the inputs."""
    definition = LIBRARY.get(flow_id)
    facts = facts_for(lang)
    now = NOW
    result = start(definition, facts, lang=lang, now=now)
    turns: list[tuple[TextInput | Timer, int]] = []
    for _ in range(data.draw(st.integers(0, steps), label="steps")):
        pick = data.draw(st.integers(0, 9), label="pick")
        node = definition.nodes.get(result.state["node"] or "")
        event: TextInput | Timer
        if pick < 7 and isinstance(node, QuestionNode):
            event = TextInput(data.draw(st.sampled_from(_answers_for(node)), label="answer"))
        elif pick < 9:
            event = TextInput(data.draw(JUNK, label="junk"))
        else:
            event = Timer(data.draw(st.sampled_from(["reminder", "expiry"]), label="timer"))
        hours = data.draw(st.integers(0, 30), label="hours")
        now += timedelta(hours=hours)
        result = step(definition, result.state, facts, event, now=now)
        turns.append((event, hours))
    return turns


def play(flow_id: str, lang: str, turns: list[tuple[TextInput | Timer, int]]) -> list[StepResult]:
    """Run ``turns`` (input, hours after the previous one), checking every step's invariants."""
    definition = LIBRARY.get(flow_id)
    facts = facts_for(lang)
    now = NOW
    results = [start(definition, facts, lang=lang, now=now)]
    check(definition.nodes, results[0], None)
    for event, hours in turns:
        now += timedelta(hours=hours)
        before = results[-1]
        result = step(definition, before.state, facts, event, now=now)
        check(definition.nodes, result, before, event)
        results.append(result)
    return results


def check(nodes: Any, result: StepResult, before: StepResult | None, event: Any = None) -> None:
    state = result.state
    assert result.status in ("waiting", "ended")
    assert json.loads(json.dumps(state)) == state
    json.dumps([output.to_dict() for output in result.outputs])
    json.dumps([item.to_dict() for item in result.events])
    assert len(result.events) < 200
    if result.status == "waiting":
        # It waits on a question, with a clock, and the last thing said is that question.
        assert isinstance(nodes[state["node"]], QuestionNode)
        assert state["expires_at"] is not None
        if result.outputs:
            assert isinstance(result.outputs[-1], QuestionOutput)
            assert result.outputs[-1].node_id == state["node"]
    else:
        assert state["end_status"] in ("completed", "expired", "handed_off", "skipped")
        assert state["node"] is None
    if before is None:
        assert result.outputs, "a session starts by saying something"
        return
    if before.status == "ended":
        assert (result.outputs, result.events) == ((), ())
        assert result.state == before.state
    elif isinstance(event, TextInput):
        # A reply never goes unanswered: a re-ask, the next question, or the end.
        assert result.outputs or result.status == "ended"
        assert result.events
    for output in result.outputs:
        for channel in ("text", "voice"):
            assert render(output, channel).text


@pytest.mark.parametrize("flow_id", LIBRARY.ids())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), lang=st.sampled_from(["zh", "en"]))
def test_any_inputs_never_raise_and_always_end_or_wait(flow_id: str, data: st.DataObject, lang: str) -> None:
    play(flow_id, lang, draw_turns(flow_id, lang, data))


@pytest.mark.parametrize("flow_id", LIBRARY.ids())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), lang=st.sampled_from(["zh", "en"]))
def test_the_same_inputs_give_the_same_results(flow_id: str, data: st.DataObject, lang: str) -> None:
    turns = draw_turns(flow_id, lang, data)
    first = [result.to_dict() for result in play(flow_id, lang, turns)]
    second = [result.to_dict() for result in play(flow_id, lang, turns)]
    assert first == second


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_every_answer_type_takes_any_text_without_raising(text: str) -> None:
    from flows.answers import AnswerContext

    context = AnswerContext("zh", NOW)
    for definition in LIBRARY.list():
        for question in definition.questions():
            question.answer.accept(text, context)
