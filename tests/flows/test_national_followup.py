"""The national follow-up's visit classification (clinical-spec.md 10b) and what the flows do with it.

The classification is one pure function per form (flows/national_followup.py); both library forms call
it through the expression functions, so these edges hold for the flows too (the flows' own runs are in
flows/library/scripts, the record's side in tests/bot/test_national_followup.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flows.definition import parse_flow
from flows.events import FlowError, FollowupScheduled, ResultSaved, StaffNotified
from flows.expressions import Evaluator, ExpressionError, compile_expression
from flows.facts import Facts
from flows.national_followup import (
    LABELS,
    NEXT_VISIT_DAYS,
    ClassificationError,
    diabetes_visit_class,
    hypertension_visit_class,
)
from flows.nodes.compute import ComputeNode
from flows.registry import FlowLibrary
from tests.flows.helpers import NOW, Conversation

URGENT, CONTROLLED, NOT_CONTROLLED, TWICE = "urgent_referral", "controlled", "not_controlled", "not_controlled_twice"


def htn(sbp: float | None, dbp: float | None, **other: Any) -> str | None:
    return hypertension_visit_class(sbp=sbp, dbp=dbp, **other)


def dm(glucose: float | None, **other: Any) -> str | None:
    return diabetes_visit_class(glucose=glucose, **other)


@pytest.mark.parametrize(("sbp", "dbp", "age", "expected"), [
    (139, 89, 50, CONTROLLED),
    (140, 89, 50, NOT_CONTROLLED),
    (139, 90, 50, NOT_CONTROLLED),
    (140, 90, 50, NOT_CONTROLLED),
    (149, 89, 65, CONTROLLED),       # aged 65 and over: < 150/90
    (149, 89, 64, NOT_CONTROLLED),
    (150, 89, 65, NOT_CONTROLLED),
    (149, 90, 65, NOT_CONTROLLED),
    (149, 89, None, NOT_CONTROLLED),  # age unknown: the adult target
    (179, 109, 50, NOT_CONTROLLED),
    (180, 80, 50, URGENT),
    (150, 110, 50, URGENT),
    (180, 110, 80, URGENT),
])
def test_hypertension_targets_and_urgent_pressures(sbp: float, dbp: float, age: int | None, expected: str) -> None:
    assert htn(sbp, dbp, age=age, adverse="none", complication=False) == expected


@pytest.mark.parametrize("symptom", ["confusion", "severe_headache", "nausea_vomiting", "blurred_vision", "chest_pain",
                                     "palpitations", "breathlessness"])
def test_each_hypertension_danger_symptom_is_an_urgent_referral(symptom: str) -> None:
    assert htn(120, 70, symptoms=[symptom]) == URGENT
    assert htn(None, None, symptoms=["other_mild", symptom]) == URGENT


def test_milder_symptoms_are_not_urgent() -> None:
    assert htn(120, 70, symptoms=["other_mild"]) == CONTROLLED
    assert htn(120, 70, symptoms=["none"]) == CONTROLLED


def test_pregnancy_with_raised_pressure_is_urgent_and_on_target_is_not() -> None:
    assert htn(140, 80, pregnant=True) == URGENT
    assert htn(130, 90, pregnant=True) == URGENT
    assert htn(139, 89, pregnant=True) == CONTROLLED
    assert htn(140, 80, pregnant=False) == NOT_CONTROLLED


@pytest.mark.parametrize(("previous", "expected"), [
    (None, NOT_CONTROLLED), (CONTROLLED, NOT_CONTROLLED), (URGENT, NOT_CONTROLLED),
    (NOT_CONTROLLED, TWICE), (TWICE, TWICE),
])
def test_not_controlled_twice_in_a_row_is_a_referral(previous: str | None, expected: str) -> None:
    assert htn(150, 95, age=50, previous=previous) == expected
    assert dm(8.0, previous=previous) == expected


def test_a_controlled_visit_after_an_uncontrolled_one_is_controlled() -> None:
    assert htn(130, 80, previous=NOT_CONTROLLED) == CONTROLLED
    assert dm(6.0, previous=TWICE) == CONTROLLED


def test_adverse_reactions_and_complications() -> None:
    # Intolerable, or a new or worse complication: referral, whatever the reading.
    assert htn(120, 70, adverse="intolerable") == TWICE
    assert htn(120, 70, complication=True) == TWICE
    assert dm(6.0, adverse="intolerable") == TWICE
    assert dm(6.0, complication=True) == TWICE
    # Tolerable: not "controlled" (the controlled row asks for no adverse reaction): the medication review.
    assert htn(120, 70, adverse="tolerable") == NOT_CONTROLLED
    assert dm(6.0, adverse="tolerable", previous=NOT_CONTROLLED) == TWICE
    # Urgent signs come first.
    assert htn(185, 95, adverse="intolerable", complication=True) == URGENT


@pytest.mark.parametrize(("glucose", "expected"), [
    (6.9, CONTROLLED), (7.0, NOT_CONTROLLED), (16.6, NOT_CONTROLLED), (16.7, URGENT), (20.0, URGENT),
    (3.9, URGENT), (4.0, CONTROLLED), (2.5, URGENT),
])
def test_diabetes_glucose_edges(glucose: float, expected: str) -> None:
    assert dm(glucose, adverse="none", complication=False) == expected


def test_diabetes_urgent_pressure_heart_rate_and_symptoms() -> None:
    assert dm(6.0, sbp=180, dbp=80) == URGENT
    assert dm(6.0, sbp=150, dbp=110) == URGENT
    assert dm(6.0, sbp=179, dbp=109) == CONTROLLED  # the diabetes target is the FPG alone
    assert dm(6.0, heart_rate=100) == CONTROLLED
    assert dm(6.0, heart_rate=101) == URGENT
    for symptom in ("confusion", "fruity_breath", "deep_fast_breathing", "high_fever"):
        assert dm(6.0, symptoms=[symptom]) == URGENT
    assert dm(6.0, symptoms=["thirst_urination", "numbness"]) == CONTROLLED
    assert dm(None, symptoms=["confusion"]) == URGENT


def test_without_the_deciding_reading_there_is_no_classification() -> None:
    assert htn(None, None) is None
    assert htn(150, None) is None
    assert dm(None, sbp=120, dbp=70) is None


def test_wrong_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(ClassificationError, match="sbp"):
        htn("150", 90)
    with pytest.raises(ClassificationError, match="adverse"):
        htn(120, 70, adverse="bad")
    with pytest.raises(ClassificationError, match="previous"):
        dm(6.0, previous="so-so")
    with pytest.raises(ClassificationError, match="symptoms"):
        dm(6.0, symptoms=[1, 2])


def test_the_expression_functions_take_positional_arguments_and_report_errors() -> None:
    evaluator = Evaluator()
    names = {"s": ["confusion"]}
    htn_call = compile_expression("national_htn_class(130, 80, 70, [], False, 'none', False, None)")
    assert evaluator.evaluate(htn_call, names) == CONTROLLED
    urgent = compile_expression("national_dm_class(6.0, 120, 70, 80, s, 'none', False, 'not_controlled')")
    assert evaluator.evaluate(urgent, names) == URGENT
    assert evaluator.evaluate(compile_expression("national_next_visit_days('controlled')"), {}) == 90
    with pytest.raises(ExpressionError, match="no visit classification"):
        evaluator.evaluate(compile_expression("national_next_visit_days('maybe')"), {})
    with pytest.raises(ExpressionError, match="adverse"):
        evaluator.evaluate(compile_expression("national_htn_class(130, 80, 70, [], False, 'x', False, None)"), {})


def test_next_visit_days_follow_the_standard() -> None:
    assert NEXT_VISIT_DAYS == {URGENT: 14, TWICE: 14, NOT_CONTROLLED: 14, CONTROLLED: 90}


@pytest.mark.parametrize("flow_id", ["national_hypertension_followup", "national_diabetes_followup"])
def test_both_forms_label_the_classes_as_the_module_does(flow_id: str) -> None:
    definition = FlowLibrary().get(flow_id)
    node = definition.nodes["classify"]
    assert isinstance(node, ComputeNode)
    labels = {band.category: band.label.raw if band.label is not None else None for band in node.bands}
    assert labels == {code: dict(text) for code, text in LABELS.items()}


SCHEDULE = {
    "id": "days", "version": 1, "title": {"zh": "天数", "en": "Days"},
    "nodes": [
        {"id": "n", "kind": "question", "type": "number", "min": 0, "max": 5000, "unit": "d",
         "unit_label": {"zh": "天", "en": "days"}, "text": {"zh": "几天？", "en": "How many days?"}},
        {"id": "alert", "kind": "notify_staff", "priority": "high", "reason": "check", "due_in_hours": 24,
         "note": {"zh": "请看看。", "en": "Please look."}},
        {"id": "again", "kind": "schedule_followup", "flow": "days", "in_days": "n", "result": "next_visit"},
        {"id": "done", "kind": "end", "text": {"zh": "下次：{next_visit}", "en": "Next: {next_visit}"}},
    ],
}


def test_schedule_followup_takes_its_days_from_an_expression_and_saves_the_date() -> None:
    definition, problems = parse_flow(SCHEDULE, "days")
    assert problems == []
    assert definition is not None
    talk = Conversation(definition, Facts.build(), lang="en")
    talk.say("30")
    scheduled = [event for event in talk.events() if isinstance(event, FollowupScheduled)]
    assert [(event.flow_id, event.in_days) for event in scheduled] == [("days", 30)]
    due = (NOW + timedelta(days=30)).date().isoformat()
    saved = [event for event in talk.events() if isinstance(event, ResultSaved) and event.name == "next_visit"]
    assert [event.value for event in saved] == [due]
    assert talk.texts()[-1] == f"Next: {due}"
    alert = next(event for event in talk.events() if isinstance(event, StaffNotified))
    assert alert.details["due_at"] == (NOW + timedelta(hours=24)).isoformat()


@pytest.mark.parametrize("days", ["0", "4000"])
def test_days_out_of_range_schedule_nothing_and_tell_the_flows_authors(days: str) -> None:
    definition, _ = parse_flow(SCHEDULE, "days")
    assert definition is not None
    talk = Conversation(definition, Facts.build(), lang="en")
    talk.say(days)
    assert not [event for event in talk.events() if isinstance(event, FollowupScheduled)]
    assert [event.node_id for event in talk.events() if isinstance(event, FlowError)] == ["again"]
    assert talk.ended


def test_a_bad_days_expression_or_due_time_is_a_problem_when_the_flow_is_read() -> None:
    bad = {**SCHEDULE, "nodes": [dict(node) for node in SCHEDULE["nodes"]]}
    bad["nodes"][1]["due_in_hours"] = -1
    bad["nodes"][2]["in_days"] = "n +"
    _, problems = parse_flow(bad, "days")
    assert {problem.kind for problem in problems} >= {"bad_range", "bad_expression"}
