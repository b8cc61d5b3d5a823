"""The engine: steps, re-asks, exits, actions, timers, pinning, determinism and safety."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest

from flows.definition import FlowDefinition, parse_flow, read_yaml
from flows.engine import StateError, TextInput, Timer, start, step
from flows.events import event_from_dict
from flows.facts import Facts
from flows.outputs import MessageOutput, QuestionOutput
from tests.flows.helpers import FIXTURES, NOW, Conversation, all_of, fixture_flow


def test_start_says_hello_and_asks_the_first_question(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    first = talk.last
    assert [type(output) for output in first.outputs] == [MessageOutput, QuestionOutput]
    assert first.outputs[0].text == "您好，58岁的朋友！"
    question = talk.question()
    assert (question.node_id, question.answer_type, question.unit) == ("weight", "number", "公斤")
    assert (question.minimum, question.maximum) == (20, 300)
    assert talk.event_types() == ["session_started", "msg_created", "msg_created", "session_waiting"]
    waiting = talk.events("session_waiting")[0]
    assert waiting.to_dict() == {
        "type": "session_waiting",
        "node_id": "weight",
        "wait_until": "2025-01-06T21:00:00+08:00",
        "expires_at": "2025-01-08T09:00:00+08:00",
    }
    assert talk.state["status"] == "waiting"
    assert talk.state["node"] == "weight"
    assert (talk.state["flow_id"], talk.state["version"], talk.state["lang"]) == ("mechanics", 3, "zh")


def test_a_message_with_when_is_said_only_when_true(mechanics: FlowDefinition) -> None:
    older = Conversation(mechanics, Facts.build(age=70))
    assert older.texts()[:2] == ["您好，70岁的朋友！", "我们会把字写大一点。"]
    unknown_age = Conversation(mechanics, Facts.build())
    assert unknown_age.texts()[0] == "您好，—岁的朋友！"
    assert unknown_age.events("flow_error")[0].to_dict()["node_id"] == "elder_note"


def test_answers_are_saved_with_value_category_label_and_input(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("１３０斤")
    saved = talk.events("result_saved")[0].to_dict()
    assert saved == {
        "type": "result_saved",
        "name": "weight",
        "value": 65.0,
        "category": "ok",
        "label": "正常",
        "code": None,
        "unit": "kg",
        "node_id": "weight",
        "input": "１３０斤",
        "extra": None,
        "disclaimer": None,
    }
    assert talk.events("profile_field_set")[0].to_dict() == {
        "type": "profile_field_set", "field": "sleep_hours", "value": 65.0,
    }  # fmt: skip
    assert talk.events("observation_recorded")[0].to_dict() == {
        "type": "observation_recorded",
        "code": "29463-7",
        "value": 65.0,
        "unit": "kg",
        "short_code": "weight",
        "node_id": "rec_weight",
        "observed_at": NOW.isoformat(),
    }
    assert talk.question().node_id == "mood"


def test_an_invalid_answer_is_asked_again_with_the_specific_message(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("a lot")
    question = talk.question()
    assert question.node_id == "weight"
    assert question.notice == "请回复20到300之间的数字（单位：公斤）。"
    assert question.notice_kind == "invalid"
    assert talk.state["invalid_count"] == 1
    assert talk.last.events[0].to_dict() == {
        "type": "answer_rejected", "node_id": "weight", "reason": "not_a_number", "attempts": 1,
    }  # fmt: skip
    assert talk.last.events[1].to_dict()["purpose"] == "reask"


def test_a_question_may_word_its_own_re_ask(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("70", "maybe")
    assert talk.question().notice == "请回复1、2或3。"


def test_after_max_invalid_a_handoff_question_hands_the_patient_to_staff(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("70", "maybe", "perhaps")
    assert talk.ended
    assert talk.end_status() == "handed_off"
    last = talk.last
    kinds = [event.type for event in last.events]
    assert kinds == ["answer_rejected", "staff_notified", "msg_created", "session_ended"]
    notified = last.events[1].to_dict()
    assert (notified["priority"], notified["reason"]) == ("normal", "unanswered_question")
    assert notified["details"]["question"] == "今天心情如何？"
    assert notified["details"]["attempts"] == 2
    assert notified["details"]["note"]["zh"] == "患者连续2次没能回答这个问题，请人工联系。"
    assert [output.text for output in last.outputs] == ["我们会请同事联系您。"]
    assert talk.state["node"] is None
    assert talk.state["expires_at"] is None


def test_after_max_invalid_a_skip_question_goes_on_without_an_answer(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("x", "y", "z")
    assert talk.last.events[1].to_dict() == {"type": "question_skipped", "node_id": "weight", "result": "weight"}
    assert talk.events("profile_field_set") == []
    assert talk.events("observation_recorded") == []
    assert talk.question().node_id == "mood"
    talk.say("好")
    # The score needs the weight: the failure is reported and the flow goes on, without the score.
    errors = [event.to_dict()["node_id"] for event in talk.events("flow_error")]
    assert errors == ["score", "hidden", "then"]
    assert "wellbeing" not in talk.saved()
    assert talk.texts()[-1] == "得分—（—）。仅供参考。"
    assert talk.end_status() == "completed"


def test_scores_bands_tags_staff_tasks_and_followups(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("48", "不好")
    assert talk.categories() == {"weight": "light", "mood": "bad", "wellbeing": "low"}
    score = all_of(talk.events("result_saved"), name="wellbeing")[0].to_dict()
    assert (score["value"], score["label"], score["disclaimer"]) == (0, "较低", "仅供参考。")
    assert [event.to_dict() for event in talk.events("tag_added")] == [{"type": "tag_added", "tag": "low_mood"}]
    notified = talk.events("staff_notified")[0].to_dict()
    assert notified["priority"] == "high"
    assert notified["details"]["results"] == {"mood": 0, "wellbeing": 0}
    assert notified["details"]["note"] == {"zh": "心情不好，得分0。", "en": "Mood Bad, score 0."}
    assert notified["details"]["at"] == NOW.isoformat()
    # The tag added earlier in the session is seen by the branch that follows.
    assert talk.events("followup_scheduled")[0].to_dict() == {
        "type": "followup_scheduled", "flow_id": "mechanics", "in_days": 7, "due_at": "2025-01-13T09:00:00+08:00",
    }  # fmt: skip
    assert talk.events("flow_started") == []
    assert "helper" not in talk.saved()
    assert talk.state["results"]["helper"] == {
        "value": 1, "category": None, "label": None, "node": "hidden", "saved": False,
    }  # fmt: skip
    assert talk.texts()[-1] == "得分0（较低）。仅供参考。"
    assert talk.last.events[-1].to_dict() == {"type": "session_ended", "status": "completed"}


def test_facts_steer_branches(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58, tags={"vip", "low_mood"}))
    talk.say("70", "1")
    assert "感谢您一直以来的支持！" in talk.texts()
    assert [event.to_dict() for event in talk.events("tag_removed")] == [{"type": "tag_removed", "tag": "low_mood"}]
    assert talk.saved()["wellbeing"] == 25


def test_the_session_speaks_the_patients_language(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58, language="en"), lang="en")
    talk.say("70 kg", "great")
    assert talk.texts()[0] == "Hello, friend aged 58!"
    assert talk.texts()[-1] == "Score 25 (high). For information only."
    assert talk.state["lang"] == "en"


def test_an_unknown_language_falls_back_to_the_flows_first(mechanics: FlowDefinition) -> None:
    result = start(mechanics, Facts.build(language="fr"), now=NOW)
    assert result.state["lang"] == "zh"
    assert start(mechanics, Facts.build(language="en"), now=NOW).state["lang"] == "en"


def test_reminders_re_ask_at_most_max_times_then_stop(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    early = talk.timer("reminder", at=NOW + timedelta(hours=11))
    assert (early.outputs, early.events) == ((), ())
    assert early.state == talk.results[0].state

    first = talk.timer("reminder")
    assert talk.now == NOW + timedelta(hours=12)
    assert [getattr(output, "notice", None) for output in first.outputs] == ["提醒您回复哦。"]
    assert isinstance(first.outputs[0], QuestionOutput)
    assert first.outputs[0].notice_kind == "reminder"
    assert first.state["reminder_count"] == 1
    assert first.events[0].to_dict()["purpose"] == "reminder"
    assert first.events[-1].to_dict() == {
        "type": "session_waiting",
        "node_id": "weight",
        "wait_until": "2025-01-07T09:00:00+08:00",
        "expires_at": "2025-01-08T09:00:00+08:00",
    }

    second = talk.timer("reminder")
    assert second.state["reminder_count"] == 2
    assert second.state["wait_until"] is None
    assert second.state["expires_at"] == "2025-01-08T09:00:00+08:00"

    third = step(mechanics, second.state, talk.facts, Timer("reminder"), now=NOW + timedelta(hours=40))
    assert (third.outputs, third.events) == ((), ())


def test_expiry_ends_the_session_when_its_time_is_up(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    early = talk.timer("expiry", at=NOW + timedelta(hours=47, minutes=59))
    assert (early.outputs, early.events) == ((), ())
    expired = talk.timer("expiry")
    assert expired.ended
    assert expired.state["end_status"] == "expired"
    assert [output.text for output in expired.outputs] == ["这次问答已结束。"]
    assert [event.type for event in expired.events] == ["msg_created", "session_ended"]
    assert expired.events[-1].to_dict() == {"type": "session_ended", "status": "expired"}


def test_any_answer_restarts_the_clocks(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.timer("reminder")
    talk.later(hours=1)
    talk.say("？？")
    assert talk.state["reminder_count"] == 0
    assert talk.state["expires_at"] == "2025-01-08T22:00:00+08:00"
    assert talk.state["wait_until"] == "2025-01-07T10:00:00+08:00"
    talk.later(hours=2)
    talk.say("65")
    assert talk.state["invalid_count"] == 0
    assert talk.state["waiting_since"] == "2025-01-07T00:00:00+08:00"


def test_a_stale_timer_changes_nothing(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    old_due = datetime.fromisoformat(talk.state["wait_until"])
    talk.later(hours=11)
    talk.say("65")
    stale = step(mechanics, talk.state, talk.facts, Timer("reminder"), now=old_due)
    assert (stale.outputs, stale.events) == ((), ())
    assert stale.state == talk.state


def test_an_ended_session_ignores_everything(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("65", "好")
    assert talk.ended
    for event in (TextInput("hello"), Timer("reminder"), Timer("expiry")):
        result = step(mechanics, talk.state, talk.facts, event, now=NOW + timedelta(days=30))
        assert (result.outputs, result.events, result.status) == ((), (), "ended")
        assert result.state == talk.state


def test_the_same_inputs_give_the_same_outputs_and_state(mechanics: FlowDefinition) -> None:
    def run() -> list[dict[str, object]]:
        talk = Conversation(mechanics, Facts.build(age=70, tags={"vip"}))
        talk.say("１３０斤", "huh")
        talk.timer("reminder")
        talk.say("一般")
        return [result.to_dict() for result in talk.results]

    first, second = run(), run()
    assert first == second
    assert json.dumps(first, ensure_ascii=False) == json.dumps(second, ensure_ascii=False)


def test_the_state_is_not_shared_with_the_caller(mechanics: FlowDefinition) -> None:
    facts = Facts.build(age=58)
    begun = start(mechanics, facts, now=NOW)
    before = json.dumps(begun.state, sort_keys=True)
    step(mechanics, begun.state, facts, TextInput("65"), now=NOW)
    step(mechanics, begun.state, facts, TextInput("zz"), now=NOW)
    assert json.dumps(begun.state, sort_keys=True) == before


def test_events_round_trip_through_their_dictionaries(mechanics: FlowDefinition) -> None:
    talk = Conversation(mechanics, Facts.build(age=58))
    talk.say("48", "3")
    for event in talk.events():
        data = json.loads(json.dumps(event.to_dict()))
        assert event_from_dict(data) == event
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_dict({"type": "nothing_happened"})


def test_a_state_of_another_flow_or_version_is_refused(mechanics: FlowDefinition, library: object) -> None:
    facts = Facts.build()
    state = start(mechanics, facts, now=NOW).state
    other = fixture_flow("hostile")
    with pytest.raises(StateError, match="belongs to mechanics v3, not hostile v1"):
        step(other, state, facts, TextInput("1"), now=NOW)
    with pytest.raises(StateError, match="lacks"):
        step(mechanics, {"flow_id": "mechanics"}, facts, TextInput("1"), now=NOW)
    with pytest.raises(StateError, match="not a question"):
        step(mechanics, {**state, "node": "hello"}, facts, TextInput("1"), now=NOW)
    with pytest.raises(StateError, match="unknown state status"):
        step(mechanics, {**state, "status": "paused"}, facts, TextInput("1"), now=NOW)


def test_time_must_be_timezone_aware(mechanics: FlowDefinition) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        start(mechanics, Facts.build(), now=datetime(2025, 1, 6, 9, 0))


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="reminder' or 'expiry"):
        Timer("snooze")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a str"):
        TextInput(5)  # type: ignore[arg-type]


def test_a_flow_that_goes_round_without_asking_is_handed_to_staff() -> None:
    data = read_yaml((FIXTURES / "broken" / "loop_without_question.yaml").read_text(encoding="utf-8"), "loop", [])
    definition, problems = parse_flow(data, "loop")
    assert definition is not None
    assert [problem.kind for problem in problems] == ["loop_without_question"]
    facts = Facts.build()
    begun = start(definition, facts, now=NOW)
    started = time.perf_counter()
    result = step(definition, begun.state, facts, TextInput("是"), now=NOW)
    assert time.perf_counter() - started < 2
    assert result.state["end_status"] == "handed_off"
    error = [event for event in result.events if event.type == "flow_error"][0].to_dict()
    assert error["reason"] == "the flow went round without asking anything"
    notified = [event for event in result.events if event.type == "staff_notified"][0].to_dict()
    assert (notified["priority"], notified["reason"]) == ("high", "flow_error")
    # Nothing the runaway loop produced reaches the patient: only the hand-off message.
    assert [output.text for output in result.outputs] == ["没关系，我们的工作人员会尽快联系您。"]
    assert [event.to_dict()["node_id"] for event in result.events if event.type == "msg_created"] == ["spin"]


def test_hostile_expressions_fail_quickly_and_the_flow_goes_on() -> None:
    definition = fixture_flow("hostile")
    talk = Conversation(definition)
    started = time.perf_counter()
    talk.say("abc")
    assert time.perf_counter() - started < 1.0
    failed = [event.to_dict()["node_id"] for event in talk.events("flow_error")]
    assert failed == ["tower", "huge_product", "repeat", "format", "divide", "which", "which"]
    assert talk.saved()["long_list"] == 9
    assert talk.texts()[-1] == "完成"
    assert talk.end_status() == "completed"
