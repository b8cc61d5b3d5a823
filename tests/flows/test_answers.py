"""Answer types: what each accepts, what value and category it saves, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from flows.answers import Accepted, AnswerContext, AnswerType, Rejected
from flows.definition import parse_flow
from flows.nodes.question import QuestionNode
from tests.flows.helpers import NOW

FREQUENCY: list[dict[str, Any]] = [
    {"key": "not_at_all", "value": 0, "label": {"zh": "完全不会", "en": "Not at all"},
     "synonyms": {"zh": ["没有", "不会"], "en": ["never"]}},
    {"key": "several_days", "value": 1, "label": {"zh": "好几天", "en": "Several days"},
     "synonyms": {"zh": ["有几天", "几天"], "en": ["some days"]}},
    {"key": "more_than_half", "value": 2, "label": {"zh": "一半以上的天数", "en": "More than half the days"},
     "synonyms": {"zh": ["一半以上"], "en": ["more than half"]}},
    {"key": "nearly_every_day", "value": 3, "label": {"zh": "几乎每天", "en": "Nearly every day"},
     "synonyms": {"zh": ["每天"], "en": ["every day"]}},
]  # fmt: skip
SYMPTOMS = [
    {"key": "dizziness", "label": {"zh": "头晕", "en": "Dizziness"}},
    {"key": "headache", "label": {"zh": "头痛", "en": "Headache"}},
    {"key": "chest_pain", "label": {"zh": "胸闷或胸痛", "en": "Chest pain"}, "synonyms": {"zh": ["胸痛"]}},
    {"key": "none", "label": {"zh": "都没有", "en": "None of these"}, "exclusive": True},
]


def answer_type(kind: str, **settings: Any) -> AnswerType:
    """Return the answer type of a one-question flow with ``settings``."""
    question = {"id": "q", "kind": "question", "type": kind, "text": {"zh": "问题", "en": "Question"}, **settings}
    flow = {"id": "one", "version": 1, "title": {"zh": "一题", "en": "One"}, "nodes": [question]}
    definition, problems = parse_flow(flow)
    assert problems == []
    assert definition is not None
    node = definition.nodes["q"]
    assert isinstance(node, QuestionNode)
    return node.answer


def accept(answer: AnswerType, text: str, lang: str = "zh") -> Accepted | Rejected:
    return answer.accept(text, AnswerContext(lang, NOW))


CHOICE = answer_type("choice", choices=FREQUENCY)


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("1", 0), ("4", 3), ("４", 3), ("二", 1), ("three", 2), (" 2。", 1), ("(3)", 2), ("“1”", 0),
        ("好几天", 1), ("完全不会", 0), ("Several days", 1), ("NEARLY EVERY DAY", 3), ("never", 0),
        ("每天", 3), ("有几天", 1), ("嗯，好几天吧", 1), ("大概一半以上的天数", 2), ("几乎每天都这样", 3),
        ("我选2", 1), ("第3个", 2), ("I'd say more than half", 2), ("好几天，大概3天", 1),
    ],
)  # fmt: skip
def test_choice_accepts_number_label_synonym_and_speech(reply: str, value: int) -> None:
    result = accept(CHOICE, reply)
    assert isinstance(result, Accepted)
    assert result.value == value
    assert result.category == FREQUENCY[value]["key"]
    assert result.label == FREQUENCY[value]["label"]["zh"]


@pytest.mark.parametrize("reply", ["0", "5", "12", "", "   ", "😀", "不知道", "1 2", "135/85", "x" * 5000])
def test_choice_refuses_with_the_range_message(reply: str) -> None:
    result = accept(CHOICE, reply)
    assert isinstance(result, Rejected)
    assert result.text("zh") == "请回复1-4之间的数字。"
    assert result.text("en") == "Please reply with a number from 1 to 4."


def test_choice_label_is_in_the_session_language() -> None:
    result = accept(CHOICE, "2", "en")
    assert isinstance(result, Accepted)
    assert result.label == "Several days"


YES_NO = answer_type("yes_no")


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("1", True), ("2", False), ("是", True), ("是的", True), ("对", True), ("有", True), ("好的", True),
        ("yes", True), ("Y", True), ("OK", True), ("否", False), ("不是", False), ("没有", False),
        ("没有呢", False), ("no", False), ("N", False), ("不用", False), ("nope", False), ("１", True),
    ],
)  # fmt: skip
def test_yes_no_accepts_synonyms(reply: str, value: bool) -> None:
    result = accept(YES_NO, reply)
    assert isinstance(result, Accepted)
    assert result.value is value
    assert result.category == ("yes" if value else "no")


@pytest.mark.parametrize("reply", ["3", "maybe", "不一定", "", "一半"])
def test_yes_no_refuses(reply: str) -> None:
    result = accept(YES_NO, reply)
    assert isinstance(result, Rejected)
    assert result.text("zh") == "请回复数字1或2。"


def test_yes_no_custom_labels_still_accept_the_usual_words() -> None:
    answer = answer_type(
        "yes_no", labels={"yes": {"zh": "看过了", "en": "Yes, I have"}, "no": {"zh": "还没有", "en": "Not yet"}}
    )
    for reply, value in (("看过了", True), ("还没有", False), ("是", True), ("2", False)):
        result = accept(answer, reply)
        assert isinstance(result, Accepted)
        assert result.value is value


MULTI = answer_type("multi", choices=SYMPTOMS)


@pytest.mark.parametrize(
    ("reply", "keys"),
    [
        ("1,3", ["dizziness", "chest_pain"]), ("1，3", ["dizziness", "chest_pain"]),
        ("1 3", ["dizziness", "chest_pain"]), ("1、2", ["dizziness", "headache"]),
        ("13", ["dizziness", "chest_pain"]), ("3,1,1", ["dizziness", "chest_pain"]),
        ("头晕和头痛", ["dizziness", "headache"]), ("头晕、胸痛", ["dizziness", "chest_pain"]), ("2", ["headache"]),
        ("都没有", ["none"]), ("4", ["none"]), ("dizziness and headache", ["dizziness", "headache"]),
    ],
)  # fmt: skip
def test_multi_accepts_lists(reply: str, keys: list[str]) -> None:
    result = accept(MULTI, reply)
    assert isinstance(result, Accepted)
    assert result.value == keys
    assert result.category == ",".join(keys)


@pytest.mark.parametrize(
    ("reply", "reason"), [("1,4", "exclusive_combined"), ("1,9", "not_a_choice"), ("", "not_a_choice")]
)
def test_multi_refuses(reply: str, reason: str) -> None:
    result = accept(MULTI, reply)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_multi_exclusive_message_names_the_choice() -> None:
    result = accept(MULTI, "1,4")
    assert isinstance(result, Rejected)
    assert result.text("zh") == "“都没有”不能和其他选项一起选，请再回复一次。"


WEIGHT = answer_type(
    "number", min=20, max=300, unit="kg", unit_label={"zh": "公斤", "en": "kg"}, accept_units={"斤": 0.5, "jin": 0.5}
)


@pytest.mark.parametrize(
    ("reply", "value"),
    [("65", 65.0), ("65.5", 65.5), ("６５", 65.0), ("65公斤", 65.0), ("65 kg", 65.0), ("130斤", 65.0),
     ("六十五", 65.0), ("65*5", 65.5), ("大概70公斤吧", 70.0), ("20", 20.0), ("300", 300.0)],
)  # fmt: skip
def test_number_accepts_units_and_numerals(reply: str, value: float) -> None:
    result = accept(WEIGHT, reply)
    assert isinstance(result, Accepted)
    assert result.value == value


@pytest.mark.parametrize("reply", ["19", "301", "abc", "", "65 70", "-5", "1" * 2000])
def test_number_refuses_with_range_and_unit(reply: str) -> None:
    result = accept(WEIGHT, reply)
    assert isinstance(result, Rejected)
    assert result.text("zh") == "请回复20到300之间的数字（单位：公斤）。"
    assert result.text("en") == "Please reply with a number from 20 to 300 (kg)."


def test_integer_number_refuses_fractions() -> None:
    answer = answer_type("number", min=0, max=20, integer=True)
    assert accept(answer, "3") == Accepted(3)
    refused = accept(answer, "3.5")
    assert isinstance(refused, Rejected)
    assert refused.text("zh") == "请回复0到20之间的整数。"
    assert isinstance(accept(answer, "9" * 400), Rejected)  # infinity as a float: refused, not a crash


SCALE = answer_type(
    "scale",
    min=0,
    max=10,
    min_label={"zh": "不可能", "en": "Unlikely"},
    max_label={"zh": "非常可能", "en": "Very likely"},
)


@pytest.mark.parametrize(
    ("reply", "value"), [("0", 0), ("10", 10), ("十", 10), ("eight", 8), ("我打8分", 8), ("８", 8)]
)
def test_scale_accepts(reply: str, value: int) -> None:
    assert accept(SCALE, reply) == Accepted(value)


@pytest.mark.parametrize("reply", ["11", "-1", "7.5", "好", "8 9"])
def test_scale_refuses(reply: str) -> None:
    result = accept(SCALE, reply)
    assert isinstance(result, Rejected)
    assert result.text("zh") == "请回复0-10之间的数字。"


DATE = answer_type("date")
PAST = answer_type("date", allow="past")
FUTURE = answer_type("date", allow="future")


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("2024-03-05", "2024-03-05"), ("2024/3/5", "2024-03-05"), ("2024.3.5", "2024-03-05"),
        ("2024年3月5日", "2024-03-05"), ("二〇二四年三月五日", "2024-03-05"), ("20240305", "2024-03-05"),
        ("２０２４－０３－０５", "2024-03-05"), ("今天", "2025-01-06"), ("昨天", "2025-01-05"), ("前天", "2025-01-04"),
        ("tomorrow", "2025-01-07"), ("March 5, 2024", "2024-03-05"), ("5 March 2024", "2024-03-05"),
        ("3月5日", "2025-03-05"),
    ],
)  # fmt: skip
def test_date_accepts(reply: str, value: str) -> None:
    assert accept(DATE, reply) == Accepted(value)


def test_month_day_takes_the_year_that_fits() -> None:
    assert accept(PAST, "3月5日") == Accepted("2024-03-05")
    assert accept(FUTURE, "1月1日") == Accepted("2026-01-01")
    assert accept(PAST, "12月31日") == Accepted("2024-12-31")


@pytest.mark.parametrize(("answer", "reply", "message"), [
    (DATE, "2024-02-30", "请按“年-月-日”回复日期，例如：2025-01-06。"),
    (DATE, "someday", "请按“年-月-日”回复日期，例如：2025-01-06。"),
    (DATE, "1800-01-01", "请按“年-月-日”回复日期，例如：2025-01-06。"),
    (PAST, "明天", "这个日期还没到。请回复今天或以前的日期，例如：2025-01-06。"),
    (FUTURE, "昨天", "这个日期已经过去了。请回复今天或以后的日期，例如：2025-01-13。"),
])  # fmt: skip
def test_date_refuses(answer: AnswerType, reply: str, message: str) -> None:
    result = accept(answer, reply)
    assert isinstance(result, Rejected)
    assert result.text("zh") == message


TEXT = answer_type("text", max_length=10)


@pytest.mark.parametrize(
    ("reply", "value", "category"),
    [
        ("头晕两周", "头晕两周", "answered"),
        ("  无  ", "无", "none"),
        ("None.", "None.", "none"),
        ("👍", "👍", "answered"),
    ],
)
def test_text_keeps_the_words(reply: str, value: str, category: str) -> None:
    result = accept(TEXT, reply)
    assert isinstance(result, Accepted)
    assert (result.value, result.category) == (value, category)


def test_text_cuts_long_replies_and_says_so() -> None:
    result = accept(TEXT, "一二三四五六七八九十十一")
    assert isinstance(result, Accepted)
    assert result.value == "一二三四五六七八九十"
    assert result.extra == {"truncated": True}


@pytest.mark.parametrize("reply", ["", "   ", "。。。", "\u200b"])
def test_text_refuses_nothing(reply: str) -> None:
    assert isinstance(accept(TEXT, reply), Rejected)


BP = answer_type("blood_pressure")


@pytest.mark.parametrize(
    ("reply", "sbp", "dbp", "pulse"),
    [
        ("135/85", 135, 85, None), ("135／85", 135, 85, None), ("１３５／８５", 135, 85, None),
        ("135 85", 135, 85, None),
        ("135*85", 135, 85, None), ("135 over 85", 135, 85, None), ("高压135低压85", 135, 85, None),
        ("收缩压135，舒张压85", 135, 85, None), ("BP 128/82", 128, 82, None), ("一百三十五，八十五", 135, 85, None),
        ("135/85/72", 135, 85, 72), ("血压135/85 心率72", 135, 85, 72), ("135/85mmHg", 135, 85, None),
    ],
)  # fmt: skip
def test_blood_pressure_accepts(reply: str, sbp: int, dbp: int, pulse: int | None) -> None:
    result = accept(BP, reply)
    assert isinstance(result, Accepted)
    assert result.value == f"{sbp}/{dbp}"
    expected: dict[str, int] = {"sbp": sbp, "dbp": dbp}
    if pulse is not None:
        expected["pulse"] = pulse
    assert result.extra == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("135", "not_a_bp"),
        ("高", "not_a_bp"),
        ("85/135", "bp_out_of_range"),
        ("400/90", "bp_out_of_range"),
        ("120/20", "bp_out_of_range"),
    ],
)
def test_blood_pressure_refuses(reply: str, reason: str) -> None:
    result = accept(BP, reply)
    assert isinstance(result, Rejected)
    assert result.reason == reason


GLUCOSE = answer_type("glucose")
FASTING = answer_type("glucose", fasting=True)


@pytest.mark.parametrize(
    ("reply", "mmol", "unit", "fasting"),
    [
        ("6.1", 6.1, "mmol/L", None), ("6*1", 6.1, "mmol/L", None), ("六点一", 6.1, "mmol/L", None),
        ("空腹血糖 6.1", 6.1, "mmol/L", True), ("6.1 mmol/L", 6.1, "mmol/L", None),
        ("glucose 110 mg/dL", 6.1, "mg/dL", None), ("110mg/dl", 6.1, "mg/dL", None), ("126", 7.0, "mg/dL", None),
        ("餐后2小时血糖 9.0", 9.0, "mmol/L", False), ("fasting 5.4", 5.4, "mmol/L", True),
    ],
)  # fmt: skip
def test_glucose_accepts_and_converts_mg_per_dl(reply: str, mmol: float, unit: str, fasting: bool | None) -> None:
    result = accept(GLUCOSE, reply)
    assert isinstance(result, Accepted)
    assert result.value == mmol
    assert result.extra is not None
    assert result.extra["input_unit"] == unit
    assert result.extra["fasting"] is fasting


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("0.5", "glucose_out_of_range"),
        ("800", "glucose_out_of_range"),
        ("高", "not_a_glucose"),
        ("6.1 7.2", "not_a_glucose"),
    ],
)
def test_glucose_refuses(reply: str, reason: str) -> None:
    result = accept(GLUCOSE, reply)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_a_fasting_question_refuses_an_after_meal_reading() -> None:
    result = accept(FASTING, "餐后血糖 9.0")
    assert isinstance(result, Rejected)
    assert result.reason == "not_fasting"
    plain = accept(FASTING, "6.1")
    assert isinstance(plain, Accepted)
    assert plain.extra is not None
    assert plain.extra["fasting"] is True


READING = answer_type("reading")


@pytest.mark.parametrize(
    ("reply", "value", "category", "fields"),
    [
        ("血压135/85", "135/85 mmHg", "bp", {"sbp": 135, "dbp": 85, "glucose": None}),
        ("BP 128/82", "128/82 mmHg", "bp", {"sbp": 128, "dbp": 82}),
        ("135/85", "135/85 mmHg", "bp", {"sbp": 135, "dbp": 85}),
        ("空腹血糖 6.1", "6.1 mmol/L", "glucose", {"glucose": 6.1, "glucose_fasting": True, "sbp": None}),
        ("glucose 110 mg/dL", "6.1 mmol/L", "glucose", {"glucose": 6.1, "glucose_input_unit": "mg/dL"}),
        ("血压135/85 空腹血糖6.1", "135/85 mmHg, 6.1 mmol/L", "bp+glucose", {"sbp": 135, "glucose": 6.1}),
        ("餐后血糖 9.0", "9 mmol/L", "glucose", {"glucose": 9.0, "glucose_fasting": False}),
        ("血压一百三十五，八十五", "135/85 mmHg", "bp", {"sbp": 135, "dbp": 85}),
    ],
)
def test_reading_recognises_free_form(reply: str, value: str, category: str, fields: dict[str, Any]) -> None:
    result = accept(READING, reply)
    assert isinstance(result, Accepted)
    assert (result.value, result.category) == (value, category)
    assert result.extra is not None
    for key, expected in fields.items():
        assert result.extra[key] == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [("6.1", "reading_kind_unknown"), ("你好", "not_a_reading"), ("血压 300/20", "bp_out_of_range"),
     ("血糖 0.2", "glucose_out_of_range"), ("血压高", "not_a_bp"), ("血糖 110/70", "not_a_glucose")],
)  # fmt: skip
def test_reading_refuses(reply: str, reason: str) -> None:
    result = accept(READING, reply)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_reading_limited_to_glucose_takes_a_bare_number() -> None:
    answer = answer_type("reading", accept=["glucose"])
    result = accept(answer, "6.1")
    assert isinstance(result, Accepted)
    assert result.category == "glucose"
