"""Rendering neutral prompts for text channels and for the phone."""

from __future__ import annotations

import pytest

from flows.outputs import ChoiceOption, MessageOutput, QuestionOutput
from flows.registry import FlowLibrary
from flows.render import Gather, render, render_all
from tests.flows.helpers import Conversation

FREQUENCY = (
    ChoiceOption(1, "not_at_all", "完全不会", ("没有",)),
    ChoiceOption(2, "several_days", "好几天"),
    ChoiceOption(3, "more_than_half", "一半以上的天数"),
    ChoiceOption(4, "nearly_every_day", "几乎每天"),
)
PHQ_Q1 = QuestionOutput("q1", "（1/9）做事时提不起劲或没有兴趣", "zh", "choice", FREQUENCY)


def test_text_shows_numbered_choices_and_a_short_instruction() -> None:
    prompt = render(PHQ_Q1, "text")
    assert prompt.text == (
        "（1/9）做事时提不起劲或没有兴趣\n1. 完全不会\n2. 好几天\n3. 一半以上的天数\n4. 几乎每天\n请回复数字1-4"
    )
    assert (prompt.expects_answer, prompt.keypad, prompt.gather, prompt.record) == (True, (), None, False)


def test_text_puts_the_re_ask_message_first() -> None:
    again = QuestionOutput(
        "q1", "好吗？", "zh", "yes_no", FREQUENCY[:2], notice="请回复数字1或2。", notice_kind="invalid"
    )
    assert render(again, "text").text == "请回复数字1或2。\n好吗？\n1. 完全不会\n2. 好几天\n请回复数字1或2"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            QuestionOutput("w", "您的体重？", "zh", "number", unit="公斤", minimum=20, maximum=300),
            "您的体重？\n请回复数字（单位：公斤）",
        ),
        (
            QuestionOutput("w", "Your weight?", "en", "number", unit="kg", minimum=20, maximum=300),
            "Your weight?\nPlease reply with a number (kg)",
        ),
        (
            QuestionOutput("n", "推荐吗？", "zh", "scale", minimum=0, maximum=10, integer=True,
                           scale_labels=((0, "完全不可能"), (10, "非常愿意"))),
            "推荐吗？\n0 = 完全不可能\n10 = 非常愿意\n请回复0-10之间的数字",
        ),
        (QuestionOutput("d", "哪天？", "zh", "date"), "哪天？\n请按“年-月-日”回复，例如：2024-03-05"),
        (QuestionOutput("b", "血压？", "zh", "blood_pressure"), "血压？\n请按“高压/低压”回复，例如：135/85"),
        (
            QuestionOutput("g", "血糖？", "zh", "glucose", unit="mmol/L"),
            "血糖？\n请回复数值，例如：6.1（单位：mmol/L）",
        ),
        (QuestionOutput("r", "读数？", "zh", "reading"), "读数？\n例如：血压135/85，或者 空腹血糖6.1"),
        (QuestionOutput("t", "哪里不舒服？", "zh", "text"), "哪里不舒服？"),
        (
            QuestionOutput("m", "哪些？", "zh", "multi", FREQUENCY[:2]),
            "哪些？\n1. 完全不会\n2. 好几天\n可以选多项，请回复数字，用逗号隔开，例如：1,3",
        ),
    ],
)  # fmt: skip
def test_text_instruction_per_answer_type(output: QuestionOutput, expected: str) -> None:
    assert render(output, "text").text == expected


def test_a_message_is_its_text() -> None:
    message = MessageOutput("hello", "您好！\n欢迎。", "zh")
    assert render(message, "text").text == "您好！\n欢迎。"
    spoken = render(message, "voice")
    assert (spoken.text, spoken.gather, spoken.expects_answer) == ("您好！ 欢迎。", None, False)


def test_voice_speaks_the_choices_with_their_keys() -> None:
    prompt = render(PHQ_Q1, "voice")
    assert prompt.text == (
        "第1题，共9题。做事时提不起劲或没有兴趣 完全不会，请按1。 好几天，请按2。 一半以上的天数，请按3。 "
        "几乎每天，请按4。 您也可以直接说出您的回答。"
    )
    assert prompt.keypad == (("1", "完全不会"), ("2", "好几天"), ("3", "一半以上的天数"), ("4", "几乎每天"))
    assert prompt.gather == Gather(
        "dtmf speech", None, 1, ("完全不会", "没有", "好几天", "一半以上的天数", "几乎每天"), "zh-CN"
    )


def test_voice_in_english() -> None:
    question = QuestionOutput("q1", "(1/9) Little interest", "en", "yes_no", (
        ChoiceOption(1, "yes", "Yes"), ChoiceOption(2, "no", "No")))  # fmt: skip
    prompt = render(question, "voice")
    assert prompt.text == (
        "Question 1 of 9. Little interest For Yes, press 1. For No, press 2. You can also say your answer."
    )
    assert prompt.gather is not None
    assert prompt.gather.language == "en-US"


def test_voice_numbers_end_with_hash_and_readings_are_read_naturally() -> None:
    bp = render(QuestionOutput("bp", "请告诉我们血压，例如：135/85", "zh", "blood_pressure"), "voice")
    assert "例如：135，85" in bp.text
    assert "按星号键" in bp.text
    assert bp.gather == Gather("dtmf speech", "#", None, (), "zh-CN")
    weight = render(QuestionOutput("w", "体重？", "zh", "number", unit="公斤"), "voice")
    assert "请用按键输入数字（单位：公斤），按完请按井号键" in weight.text
    assert weight.gather is not None
    assert weight.gather.finish_on_key == "#"


def test_voice_records_free_text() -> None:
    prompt = render(QuestionOutput("t", "哪里不舒服？", "zh", "text"), "voice")
    assert prompt.record is True
    assert prompt.gather == Gather("speech", "#", None, (), "zh-CN")
    assert prompt.text.endswith("请在提示音后说出您的回答，说完请按井号键。")


def test_voice_with_many_choices_or_several_answers_ends_with_hash() -> None:
    many = tuple(ChoiceOption(number, f"c{number}", f"选项{number}") for number in range(1, 11))
    single = render(QuestionOutput("c", "选一个", "zh", "choice", many), "voice").gather
    assert single is not None
    assert (single.num_digits, single.finish_on_key) == (None, "#")
    several = render(QuestionOutput("m", "选几个", "zh", "multi", many[:3]), "voice")
    assert several.gather is not None
    assert (several.gather.num_digits, several.gather.finish_on_key) == (None, "#")
    assert "按完请按井号键" in several.text


def test_voice_readings_are_spoken_not_keyed() -> None:
    prompt = render(QuestionOutput("r", "读数？", "zh", "reading"), "voice")
    assert prompt.gather is not None
    assert prompt.gather.input == "speech"


def test_the_language_may_be_given() -> None:
    assert render(PHQ_Q1, "text", "en").text.endswith("Please reply with a number from 1 to 4")


def test_unknown_channel_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="channel_kind"):
        render(PHQ_Q1, "fax")


def test_a_library_session_renders_in_both_channels(library: FlowLibrary) -> None:
    talk = Conversation(library.get("phq9"), lang="en")
    texts = [prompt.text for prompt in render_all(talk.last.outputs, "text")]
    assert texts[1].endswith("4. Nearly every day\nPlease reply with a number from 1 to 4")
    spoken = render_all(talk.last.outputs, "voice")
    assert spoken[1].keypad[0] == ("1", "Not at all")
    talk.say("two")
    assert talk.saved()["phq9_q1"] == 1
