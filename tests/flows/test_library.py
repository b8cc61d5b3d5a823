"""The library of standard flows: scripted paths per language, invalid answers, expiry, and the clinical rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from flows.events import Event
from flows.facts import Facts
from flows.outputs import MessageOutput
from flows.registry import FlowLibrary
from tests.flows.helpers import Conversation, all_of


@dataclass(frozen=True)
class Script:
    """A patient's answers to one flow, and what must come of them."""

    flow: str
    lang: str
    answers: list[str]
    saved: dict[str, Any]
    events: dict[str, int] = field(default_factory=dict)
    last_text: str = ""
    status: str = "completed"


SCRIPTS = [
    Script(
        "phq9", "zh", ["2", "3", "1", "2", "1", "4", "1", "2", "1", "2"],
        {"phq9_q1": 1, "phq9_q2": 2, "phq9_q3": 0, "phq9_q4": 1, "phq9_q5": 0, "phq9_q6": 3, "phq9_q7": 0,
         "phq9_q8": 1, "phq9_q9": 0, "phq9_suicide_risk": False, "phq9_total": 8, "phq9_difficulty": 1},
        {"tag_removed": 1, "followup_scheduled": 1, "staff_notified": 0},
        "一个月后我们会再请您填写这份问卷。",
    ),
    Script(
        "phq9", "en",
        ["nearly every day", "4", "3", "3", "more than half the days", "Several days", "1", "not at all", "never",
         "very difficult"],
        {"phq9_q1": 3, "phq9_q2": 3, "phq9_q3": 2, "phq9_q4": 2, "phq9_q5": 2, "phq9_q6": 1, "phq9_q7": 0,
         "phq9_q8": 0, "phq9_q9": 0, "phq9_suicide_risk": False, "phq9_total": 13, "phq9_difficulty": 2},
        {"tag_added": 1, "staff_notified": 1, "followup_scheduled": 1},
        "Our health manager will contact you within 2 working days",
    ),
    Script(
        "gad7", "zh", ["1", "1", "2", "1", "完全不会", "1", "1"],
        {"gad7_q1": 0, "gad7_q2": 0, "gad7_q3": 1, "gad7_q4": 0, "gad7_q5": 0, "gad7_q6": 0, "gad7_q7": 0,
         "gad7_total": 1},
        {"tag_removed": 1, "staff_notified": 0, "followup_scheduled": 0},
        "您最近的状态总体平稳。",
    ),
    Script(
        "gad7", "en", ["nearly every day", "4", "4", "3", "3", "2", "2"],
        {"gad7_q1": 3, "gad7_q2": 3, "gad7_q3": 3, "gad7_q4": 2, "gad7_q5": 2, "gad7_q6": 1, "gad7_q7": 1,
         "gad7_total": 15},
        {"tag_added": 1, "staff_notified": 1, "followup_scheduled": 1},
        "worry and nerves have been troubling you quite a lot",
    ),
    Script(
        "intake", "zh",
        ["头晕两周", "早上起床时头晕，持续几分钟", "1,2", "1和3", "有", "是", "有", "氨氯地平 5mg 每天一次", "有",
         "青霉素过敏", "3", "2", "是", "150", "不是", "偏咸", "7", "一般", "长江以北", "城市"],
        {"chief_complaint": "头晕两周", "present_illness": "早上起床时头晕，持续几分钟",
         "past_history": ["hypertension", "diabetes"], "family_history": ["hypertension", "mi"],
         "premature_cvd": True, "second_degree_diabetes": True, "medications": True,
         "medication_list": "氨氯地平 5mg 每天一次", "bp_medicine": True, "allergies": "青霉素过敏",
         "smoking": "current", "alcohol": "occasional", "daily_activity": True, "exercise_minutes": 150,
         "veg_fruit": False, "salt": "high", "sleep_hours": 7.0, "sleep_quality": "fair", "region_north": "north",
         "urban": "city"},
        {"profile_field_set": 24},
        "看诊时医生会和您再一起确认。",
    ),
    Script(
        "intake", "en",
        ["none", "9", "6", "2", "no", "none", "1", "1", "yes", "2 hours", "yes", "1", "7.5", "well", "south", "2"],
        {"chief_complaint": "none", "past_history": ["none"], "family_history": ["none"],
         "second_degree_diabetes": False, "medications": False, "allergies": "none", "smoking": "never",
         "alcohol": "never", "daily_activity": True, "exercise_minutes": 120, "veg_fruit": True, "salt": "low",
         "sleep_hours": 7.5, "sleep_quality": "good", "region_north": "south", "urban": "rural"},
        {"profile_field_set": 21},
        "Your doctor will go over them with you at your visit.",
    ),
    Script(
        "post_checkup", "zh", ["1", "2", "1", "5"],
        {"read_report": True, "explained": "questions", "booked": "booked", "satisfaction": 5},
        {"staff_notified": 1},
        "谢谢您的回复！祝您身体健康。",
    ),
    Script(
        "post_checkup", "en", ["not yet", "yes please", "4"],
        {"read_report": False, "call_offer": True, "satisfaction": 4},
        {"staff_notified": 1},
        "Thank you for your answers! Take good care.",
    ),
    Script(
        "hypertension_followup", "zh", ["128/82", "1", "7", "1"],
        {"bp": "128/82", "adherence": "on_time", "symptoms": ["none"], "salt": "low"},
        {"observation_recorded": 2, "staff_notified": 0, "tag_removed": 1, "followup_scheduled": 1},
        "这次记录的血压是 128/82 mmHg，在目标范围内，请继续保持。",
    ),
    Script(
        "hypertension_followup", "en", ["150 over 95, pulse 80", "2", "1,2", "3"],
        {"bp": "150/95", "adherence": "sometimes_missed", "symptoms": ["dizziness", "headache"], "salt": "high"},
        {"observation_recorded": 3, "staff_notified": 1, "tag_added": 1, "followup_scheduled": 1},
        "We recorded 150/95 mmHg, above target.",
    ),
    Script(
        "diabetes_followup", "zh", ["6.1", "1", "2", "1", "2"],
        {"fpg": 6.1, "adherence": "on_time", "hypo_symptoms": False, "foot_check": True, "foot_problem": False},
        {"observation_recorded": 1, "staff_notified": 0, "tag_removed": 1, "followup_scheduled": 1},
        "这次记录的空腹血糖是 6.1 mmol/L，在目标范围内，请继续保持。",
    ),
    Script(
        "diabetes_followup", "en", ["153 mg/dL", "often", "yes", "once", "no", "no"],
        {"fpg": 8.5, "adherence": "often_missed", "hypo_symptoms": True, "hypo_count": "once",
         "foot_check": False, "foot_problem": False},
        {"observation_recorded": 1, "staff_notified": 2, "tag_added": 1, "followup_scheduled": 1},
        "We recorded a fasting blood sugar of 8.5 mmol/L, above target.",
    ),
    Script(
        "national_hypertension_followup", "zh",
        ["9", "132/84", "65", "72", "0", "0", "3", "30", "1", "1", "1", "1", "1", "2"],
        {"symptoms": ["none"], "bp": "132/84", "weight": 65, "heart_rate": 72, "cigarettes": 0, "alcohol": 0,
         "exercise_times": 3, "exercise_minutes": 30, "salt": "low", "mood": "good", "compliance": "good",
         "adherence": "regular", "side_effects": "none", "complication": False, "visit_class": "controlled",
         "next_visit": "2025-04-06"},
        {"observation_recorded": 4, "profile_field_set": 4, "staff_notified": 1, "followup_scheduled": 1},
        "下次随访大约在 2025-04-06。",
    ),
    Script(
        "national_hypertension_followup", "en",
        ["none", "150/95", "80", "80", "5", "1", "0", "heavy", "so-so", "so-so", "on and off", "tolerable", "no"],
        {"symptoms": ["none"], "bp": "150/95", "weight": 80, "heart_rate": 80, "cigarettes": 5, "alcohol": 1,
         "exercise_times": 0, "salt": "high", "mood": "fair", "compliance": "fair", "adherence": "intermittent",
         "side_effects": "tolerable", "complication": False, "visit_class": "not_controlled",
         "next_visit": "2025-01-20"},
        {"observation_recorded": 4, "profile_field_set": 3, "staff_notified": 2, "followup_scheduled": 1},
        "We will follow up again by 2025-01-20.",
    ),
    Script(
        "national_diabetes_followup", "zh",
        ["9", "6.2", "128/80", "60", "70", "0", "0", "0", "1", "1", "1", "1", "1", "1", "2"],
        {"symptoms": ["none"], "fpg": 6.2, "bp": "128/80", "weight": 60, "heart_rate": 70, "cigarettes": 0,
         "alcohol": 0, "exercise_times": 0, "salt": "low", "mood": "good", "compliance": "good", "adherence": "regular",
         "hypo_reactions": "none", "side_effects": "none", "complication": False, "visit_class": "controlled",
         "next_visit": "2025-04-06"},
        {"observation_recorded": 5, "profile_field_set": 3, "staff_notified": 1, "followup_scheduled": 1},
        "下次随访大约在 2025-04-06。",
    ),
    Script(
        "national_diabetes_followup", "en",
        ["none", "17.2", "130/80", "70", "76", "0", "0", "0", "light", "well", "well", "regularly", "none", "none",
         "no"],
        {"symptoms": ["none"], "fpg": 17.2, "bp": "130/80", "weight": 70, "heart_rate": 76, "cigarettes": 0,
         "alcohol": 0, "exercise_times": 0, "salt": "low", "mood": "good", "compliance": "good", "adherence": "regular",
         "hypo_reactions": "none", "side_effects": "none", "complication": False, "visit_class": "urgent_referral",
         "next_visit": "2025-01-20"},
        {"observation_recorded": 5, "profile_field_set": 3, "staff_notified": 2, "followup_scheduled": 1},
        "We will contact you again by 2025-01-20 to hear how it went.",
    ),
    Script(
        "home_monitoring", "zh", ["血压135/85 心率72"],
        {"reading": "135/85 mmHg"},
        {"observation_recorded": 3, "staff_notified": 0},
        "谢谢您坚持测量！",
    ),
    Script(
        "home_monitoring", "en", ["glucose 110 mg/dL"],
        {"reading": "6.1 mmol/L"},
        {"observation_recorded": 1, "staff_notified": 0},
        "Thank you for keeping up your readings!",
    ),
    Script(
        "satisfaction", "zh", ["我打9分", "医生很耐心"],
        {"nps": 9, "comment": "医生很耐心"},
        {"staff_notified": 0},
        "谢谢您抽时间回答！祝您身体健康。",
    ),
    Script(
        "satisfaction", "en", ["3", "The waiting time was too long"],
        {"nps": 3, "comment": "The waiting time was too long"},
        {"staff_notified": 1},
        "Thank you for your time! Take good care.",
    ),
    Script(
        "weight_checkin", "zh", ["131斤"],
        {"weight": 65.5},
        {"observation_recorded": 1},
        "已记录：65.5 公斤。谢谢您坚持打卡！",
    ),
    Script(
        "weight_checkin", "en", ["82 kg"],
        {"weight": 82},
        {"observation_recorded": 1},
        "Recorded: 82 kg. Thank you for keeping it up!",
    ),
]  # fmt: skip


def test_every_library_flow_has_a_script_in_each_language(library: FlowLibrary) -> None:
    covered = {(script.flow, script.lang) for script in SCRIPTS}
    assert covered == {(flow_id, lang) for flow_id in library.ids() for lang in ("zh", "en")}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: f"{script.flow}-{script.lang}")
def test_happy_path(library: FlowLibrary, script: Script) -> None:
    facts = Facts.build(age=62, sex="female", language=script.lang)
    talk = Conversation(library.get(script.flow), facts, lang=script.lang)
    for answer in script.answers:
        assert not talk.ended, f"the flow ended before {answer!r}"
        talk.say(answer)
        assert talk.events("answer_rejected") == [], f"{answer!r} was refused: {talk.last.outputs}"
    assert talk.ended
    assert talk.end_status() == script.status
    assert talk.saved() == script.saved
    kinds = talk.event_types()
    for kind, count in script.events.items():
        assert kinds.count(kind) == count, f"{kind}: {kinds.count(kind)} != {count}"
    assert talk.events("flow_error") == []
    assert script.last_text in talk.texts()[-1]
    # Every text the patient saw is in the session language (no stray placeholder or other language).
    for text in talk.texts():
        assert "{" not in text
        if script.lang == "en":
            assert not any("\u4e00" <= char <= "\u9fff" for char in text), text


INVALID = [
    ("phq9", "0", "请回复1-4之间的数字。", "handed_off", None),
    ("gad7", "很多", "请回复1-4之间的数字。", "handed_off", None),
    ("intake", "。。。", "请用文字回复几句话。", None, "past_history"),
    ("post_checkup", "maybe", "请回复数字1或2。", None, "explained"),
    ("hypertension_followup", "high", "请按“高压/低压”回复，例如：135/85。", "handed_off", None),
    ("diabetes_followup", "sweet", "请回复血糖的数值，例如：6.1。", "handed_off", None),
    ("home_monitoring", "你好", "请这样回复：血压135/85，或者 空腹血糖6.1。", "skipped", None),
    ("satisfaction", "great", "请回复0-10之间的数字。", "completed", None),
]


@pytest.mark.parametrize(("flow_id", "bad", "notice", "status", "next_node"), INVALID, ids=[row[0] for row in INVALID])
def test_invalid_answers_are_re_asked_then_take_the_on_invalid_exit(
    library: FlowLibrary, flow_id: str, bad: str, notice: str, status: str | None, next_node: str | None
) -> None:
    definition = library.get(flow_id)
    talk = Conversation(definition)
    first = talk.question().node_id
    talk.say(bad)
    assert talk.question().node_id == first
    assert talk.question().notice == notice
    talk.say(bad, bad)
    rejected = talk.events("answer_rejected")
    assert [event.to_dict()["attempts"] for event in rejected] == [1, 2, 3]
    if status is not None:
        assert talk.end_status() == status
    else:
        assert talk.question().node_id == next_node
        assert talk.events("question_skipped")[0].to_dict()["node_id"] == first
    if status == "handed_off":
        task = talk.events("staff_notified")[-1].to_dict()
        assert (task["priority"], task["reason"]) == ("normal", "unanswered_question")
        assert talk.texts()[-1] == "没关系，我们的工作人员会尽快联系您。"


@pytest.mark.parametrize("flow_id", sorted(FlowLibrary.builtin().ids()))
def test_an_unanswered_flow_is_reminded_then_expires(library: FlowLibrary, flow_id: str) -> None:
    definition = library.get(flow_id)
    talk = Conversation(definition, lang="en")
    asked = talk.question()
    assert definition.reminder_max >= 1
    for count in range(1, definition.reminder_max + 1):
        reminded = talk.timer("reminder")
        assert [getattr(output, "notice", None) for output in reminded.outputs] == [
            "Hello, we are still waiting for your reply."
        ]
        assert reminded.outputs[0].text == asked.text
        assert talk.state["reminder_count"] == count
    assert talk.state["wait_until"] is None
    expired = talk.timer("expiry")
    assert expired.ended
    assert expired.state["end_status"] == "expired"
    assert [event.type for event in expired.events] == ["session_ended"]
    # Reminders do not move the expiry: it falls expiry_hours after the question was asked.
    asked_at = datetime.fromisoformat(talk.results[0].state["waiting_since"])
    assert talk.now == asked_at + timedelta(hours=definition.expiry_hours)


def _frequency_answers(scores: list[int]) -> list[str]:
    return [str(score + 1) for score in scores]


def _scores_for(total: int, items: int) -> list[int]:
    scores = [3] * (total // 3) + ([total % 3] if total % 3 else [])
    return scores + [0] * (items - len(scores))


PHQ9_EDGES = [
    (0, "minimal", "无或极轻微"), (4, "minimal", "无或极轻微"), (5, "mild", "轻度"), (9, "mild", "轻度"),
    (10, "moderate", "中度"), (14, "moderate", "中度"), (15, "moderately_severe", "中重度"),
    (19, "moderately_severe", "中重度"), (20, "severe", "重度"), (24, "severe", "重度"), (27, "severe", "重度"),
]  # fmt: skip


@pytest.mark.parametrize(("total", "band", "label"), PHQ9_EDGES)
def test_phq9_total_and_band_at_every_edge(library: FlowLibrary, total: int, band: str, label: str) -> None:
    scores = _scores_for(total, 9) if total <= 24 else [3] * 9
    assert sum(scores) == total
    talk = Conversation(library.get("phq9"))
    talk.say(*_frequency_answers(scores))
    if total > 0:
        assert talk.question().node_id == "q10"
        talk.say("1")
    assert talk.ended
    result = all_of(talk.events("result_saved"), name="phq9_total")[0].to_dict()
    assert (result["value"], result["category"], result["label"], result["code"]) == (total, band, label, "44261-6")
    assert result["disclaimer"] == "本结果只用于健康筛查，不能代替医生的诊断。"
    assert f"您这次的得分是 {total} 分（满分27分），在“{label}”范围。" in talk.texts()[-2]
    positive = total >= 10
    tags = [event.to_dict()["tag"] for event in talk.events("tag_added")]
    assert ("phq9_positive" in tags) is positive
    high = all_of(talk.events("staff_notified"), priority="high")
    assert bool(high) is (positive and scores[8] == 0)


def test_phq9_worked_example_from_the_spec(library: FlowLibrary) -> None:
    talk = Conversation(library.get("phq9"))
    talk.say(*_frequency_answers([1, 2, 1, 2, 1, 1, 1, 0, 1]), "2")
    saved = talk.saved()
    assert (saved["phq9_total"], talk.categories()["phq9_total"]) == (10, "moderate")
    assert saved["phq9_suicide_risk"] is True


def _position(events: list[Event], predicate: Any) -> int:
    return next(index for index, event in enumerate(events) if predicate(event))


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_phq9_item9_raises_an_urgent_task_and_a_safety_message_before_the_score(
    library: FlowLibrary, item9: int
) -> None:
    scores = [0, 0, 0, 0, 0, 0, 0, 0, item9]
    talk = Conversation(library.get("phq9"))
    talk.say(*_frequency_answers(scores))
    events = talk.events()
    urgent = all_of(talk.events("staff_notified"), priority="urgent")
    assert len(urgent) == 1
    task = urgent[0].to_dict()
    assert task["reason"] == "phq9_item9_positive"
    assert task["details"]["results"] == {"phq9_q9": item9}
    assert task["details"]["at"] == "2025-01-06T09:00:00+08:00"
    assert "PHQ-9 item 9 positive" in task["details"]["note"]["en"]
    # The safety message, with the crisis line and emergency numbers, is said in the same step...
    safety = [output for output in talk.last.outputs if isinstance(output, MessageOutput)]
    assert safety[0].node_id == "safety_message"
    for number in ("12356", "120", "110"):
        assert number in safety[0].text
    # ... after the urgent task and before the score is worked out or shown.
    task_at = _position(events, lambda event: event.type == "staff_notified")
    safety_at = _position(events, lambda event: event.type == "msg_created" and event.node_id == "safety_message")
    total_at = _position(events, lambda event: event.type == "result_saved" and event.name == "phq9_total")
    assert task_at < safety_at < total_at
    talk.say("1")
    assert talk.texts()[-2].startswith(f"谢谢您！您这次的得分是 {item9} 分")
    assert "12356" in talk.texts()[-1]
    wording = " ".join(talk.texts())
    assert "抑郁症" not in wording
    assert talk.saved()["phq9_suicide_risk"] is True


def test_phq9_item9_not_at_all_raises_no_urgent_task(library: FlowLibrary) -> None:
    talk = Conversation(library.get("phq9"))
    talk.say(*_frequency_answers([3, 3, 3, 3, 3, 3, 3, 3, 0]), "4")
    assert all_of(talk.events("staff_notified"), priority="urgent") == []
    assert talk.saved()["phq9_suicide_risk"] is False
    assert all(output.node_id != "safety_message" for output in talk.outputs())


GAD7_EDGES = [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "severe"), (21, "severe"),
]  # fmt: skip


@pytest.mark.parametrize(("total", "band"), GAD7_EDGES)
def test_gad7_total_and_band_at_every_edge(library: FlowLibrary, total: int, band: str) -> None:
    scores = _scores_for(total, 7)
    talk = Conversation(library.get("gad7"), lang="en")
    talk.say(*_frequency_answers(scores))
    assert talk.ended
    result = all_of(talk.events("result_saved"), name="gad7_total")[0].to_dict()
    assert (result["value"], result["category"], result["code"]) == (total, band, "70274-6")
    assert result["disclaimer"] == "This result is for screening only. It is not a diagnosis."
    assert bool(all_of(talk.events("staff_notified"), reason="gad7_positive")) is (total >= 10)


def test_gad7_worked_example_from_the_spec(library: FlowLibrary) -> None:
    talk = Conversation(library.get("gad7"))
    talk.say(*_frequency_answers([2, 2, 1, 1, 0, 1, 1]))
    assert (talk.saved()["gad7_total"], talk.categories()["gad7_total"]) == (8, "mild")


def test_phq9_and_gad7_use_the_spec_loinc_codes(library: FlowLibrary) -> None:
    phq9 = [node.code for node in library.get("phq9").questions()]
    assert phq9 == ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
                    "44260-8", "69722-7"]  # fmt: skip
    gad7 = [node.code for node in library.get("gad7").questions()]
    assert gad7 == ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    answers = [option.key for option in library.get("phq9").questions()[0].prompt("en").choices]
    assert answers == ["not_at_all", "several_days", "more_than_half", "nearly_every_day"]
    codes = [choice.code for choice in library.get("gad7").questions()[0].answer.choices]  # type: ignore[attr-defined]
    assert codes == ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


@pytest.mark.parametrize(
    ("reading", "category", "urgent"),
    [("180/100", "red_flag", True), ("150/110", "red_flag", True), ("179/109", "above_target", False),
     ("135/80", "above_target", False), ("130/85", "above_target", False), ("134/84", "in_target", False)],
)  # fmt: skip
def test_hypertension_red_flags_notify_staff_urgently(
    library: FlowLibrary, reading: str, category: str, urgent: bool
) -> None:
    talk = Conversation(library.get("hypertension_followup"))
    talk.say(reading)
    assert talk.categories()["bp"] == category
    tasks = all_of(talk.events("staff_notified"), priority="urgent", reason="bp_red_flag")
    assert bool(tasks) is urgent
    if urgent:
        assert "请马上拨打120" in talk.texts()[-2]
    sbp, dbp = (float(part) for part in reading.split("/"))
    recorded = [(event.to_dict()["code"], event.to_dict()["value"]) for event in talk.events("observation_recorded")]
    assert recorded == [("8480-6", sbp), ("8462-4", dbp)]


def test_hypertension_alarm_symptoms_are_urgent(library: FlowLibrary) -> None:
    talk = Conversation(library.get("hypertension_followup"))
    talk.say("140/90", "1", "头晕、胸痛")
    task = all_of(talk.events("staff_notified"), reason="bp_alarm_symptoms")[0].to_dict()
    assert task["priority"] == "urgent"
    assert task["details"]["results"] == {"symptoms": ["dizziness", "chest_pain"], "bp": "140/90"}


@pytest.mark.parametrize(
    ("said", "observations", "reason"),
    [
        ("血压135/85", [("8480-6", 135.0, "mmHg"), ("8462-4", 85.0, "mmHg")], None),
        ("空腹血糖 6.1", [("14771-0", 6.1, "mmol/L")], None),
        ("BP 128/82", [("8480-6", 128.0, "mmHg"), ("8462-4", 82.0, "mmHg")], None),
        ("glucose 110 mg/dL", [("14771-0", 6.1, "mmol/L")], None),
        ("１３５／８５", [("8480-6", 135.0, "mmHg"), ("8462-4", 85.0, "mmHg")], None),
        ("血压185/95", [("8480-6", 185.0, "mmHg"), ("8462-4", 95.0, "mmHg")], "bp_red_flag"),
        # A recorded low glucose opens its urgent task from the record (care.observations), not the flow.
        ("空腹血糖 2.8", [("14771-0", 2.8, "mmol/L")], None),
        ("血糖 20", [("14771-0", 20.0, "mmol/L")], "glucose_red_flag"),
        ("血糖 3.5", [("14771-0", 3.5, "mmol/L")], None),
        ("餐后血糖 9.0", [], None),
        ("餐后血糖 3.5", [], "glucose_low"),
    ],
)
def test_home_monitoring_turns_free_form_readings_into_observations(
    library: FlowLibrary, said: str, observations: list[tuple[str, float, str]], reason: str | None
) -> None:
    talk = Conversation(library.get("home_monitoring"))
    talk.say(said)
    assert talk.ended
    found = [(event.to_dict()["code"], event.to_dict()["value"], event.to_dict()["unit"])
             for event in talk.events("observation_recorded")]  # fmt: skip
    assert found == observations
    assert [event.to_dict()["reason"] for event in talk.events("staff_notified")] == ([reason] if reason else [])


def test_intake_fills_the_profile_fields_the_risk_models_use(library: FlowLibrary) -> None:
    script = next(script for script in SCRIPTS if script.flow == "intake" and script.lang == "zh")
    talk = Conversation(library.get("intake"))
    talk.say(*script.answers)
    profile = {event.to_dict()["field"]: event.to_dict()["value"] for event in talk.events("profile_field_set")}
    assert profile == {
        "chief_complaint": "头晕两周",
        "present_illness": "早上起床时头晕，持续几分钟",
        "past_history": ["hypertension", "diabetes"],
        "diabetes": True,
        "hypertension": True,
        "known_ascvd": False,
        "family_history": ["hypertension", "mi"],
        "family_history_ascvd": True,
        "family_history_premature_cvd": True,
        "family_history_diabetes": "second_degree",
        "medications": "氨氯地平 5mg 每天一次",
        "bp_treated": True,
        "allergies": "青霉素过敏",
        "smoking_status": "current",
        "smoker": True,
        "alcohol": "occasional",
        "physically_active": True,
        "weekly_moderate_minutes": 150,
        "daily_veg_fruit": False,
        "salt_preference": "high",
        "sleep_hours": 7.0,
        "sleep_quality": "fair",
        "region_north": True,
        "urban": True,
    }


# Item wording as clinical-spec.md section 6.1 and 6.3 give it.
PHQ9_ITEMS = [
    ("做事时提不起劲或没有兴趣", "Little interest or pleasure in doing things"),
    ("感到心情低落、沮丧或绝望", "Feeling down, depressed, or hopeless"),
    ("入睡困难、睡不安稳或睡眠过多", "Trouble falling or staying asleep, or sleeping too much"),
    ("感觉疲倦或没有活力", "Feeling tired or having little energy"),
    ("食欲不振或吃太多", "Poor appetite or overeating"),
    ("觉得自己很糟——或觉得自己很失败，或让自己或家人失望",
     "Feeling bad about yourself — or that you are a failure or have let yourself or your family down"),
    ("对事物专注有困难，例如阅读报纸或看电视时",
     "Trouble concentrating on things, such as reading the newspaper or watching television"),
    ("动作或说话速度缓慢到别人已经察觉？或正好相反——烦躁或坐立不安、动来动去的情况更胜于平常",
     "Moving or speaking so slowly that other people could have noticed? Or the opposite — being so fidgety or "
     "restless that you have been moving around a lot more than usual"),
    ("有不如死掉或用某种方式伤害自己的念头",
     "Thoughts that you would be better off dead or of hurting yourself in some way"),
]  # fmt: skip
GAD7_ITEMS = [
    ("感觉紧张，焦虑或急切", "Feeling nervous, anxious, or on edge"),
    ("不能够停止或控制担忧", "Not being able to stop or control worrying"),
    ("对各种各样的事情担忧过多", "Worrying too much about different things"),
    ("很难放松下来", "Trouble relaxing"),
    ("由于不安而无法静坐", "Being so restless that it is hard to sit still"),
    ("变得容易烦恼或急躁", "Becoming easily annoyed or irritable"),
    ("感到似乎将有可怕的事情发生而害怕", "Feeling afraid, as if something awful might happen"),
]
STEM = ("在过去两个星期，有多少时候您受到以下任何问题所困扰？",
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?")  # fmt: skip
ANSWERS = (
    ["完全不会", "好几天", "一半以上的天数", "几乎每天"],
    ["Not at all", "Several days", "More than half the days", "Nearly every day"],
)


@pytest.mark.parametrize(("flow_id", "items"), [("phq9", PHQ9_ITEMS), ("gad7", GAD7_ITEMS)])
def test_instrument_wording_is_the_specs(library: FlowLibrary, flow_id: str, items: list[tuple[str, str]]) -> None:
    definition = library.get(flow_id)
    questions = definition.questions()[: len(items)]
    count = len(items)
    for number, (question, (zh, en)) in enumerate(zip(questions, items, strict=True), start=1):
        assert question.text.plain("zh") == f"（{number}/{count}）{zh}"
        assert question.text.plain("en") == f"({number}/{count}) {en}"
        assert [option.label for option in question.prompt("zh").choices] == ANSWERS[0]
        assert [option.label for option in question.prompt("en").choices] == ANSWERS[1]
    intro = definition.nodes["intro"]
    for lang, stem in zip(("zh", "en"), STEM, strict=True):
        assert stem in intro.text.plain(lang)  # type: ignore[attr-defined]
