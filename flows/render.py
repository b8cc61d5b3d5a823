"""Render a neutral prompt for a kind of channel: text (WeChat, SMS, console) or voice (phone).

Text channels get the question with numbered choices and a short instruction::

    （1/9）做事时提不起劲或没有兴趣
    1. 完全不会
    2. 好几天
    3. 一半以上的天数
    4. 几乎每天
    请回复数字1-4

Voice gets a script to speak ("完全不会，请按1。好几天，请按2。…"), the keypad map, and a ``gather``
hint: what input to collect (keypad and/or speech), when the keypad entry ends (one digit, or ``#``),
words that help speech recognition, and the recognition language. Free-text questions ask for a
recording (``record=True``). Whatever comes back - digits, or the speech transcript - goes to the
engine as a ``TextInput``: a choice may be its number or speech that matches its label or a synonym.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flows.i18n import t
from flows.outputs import MessageOutput, Output, QuestionOutput

CHANNEL_KINDS = ("text", "voice")
SPEECH_LANGUAGES = {"zh": "zh-CN", "en": "en-US"}

_PROGRESS = re.compile(r"[（(](\d+)\s*/\s*(\d+)[）)]")
_PAIR = re.compile(r"(?<![\d.])(\d{2,3})\s*/\s*(\d{2,3})(?![\d.])")


@dataclass(frozen=True, slots=True)
class Gather:
    """What a voice channel collects after the prompt (Twilio ``<Gather>`` and the like).

    ``input`` is ``"dtmf speech"``, ``"dtmf"`` or ``"speech"``; ``num_digits`` ends keypad entry after
    that many keys (choices 1-9); otherwise ``finish_on_key`` (``"#"``) does. ``hints`` help speech
    recognition; ``language`` is its BCP-47 code.
    """

    input: str
    finish_on_key: str | None
    num_digits: int | None
    hints: tuple[str, ...]
    language: str


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """One prompt, ready for a channel.

    ``text`` is the message to send (text channels) or the script to speak (voice). ``keypad`` maps
    keys to choice labels (voice). ``gather`` is set when an answer is expected on voice; ``record``
    when the answer should be recorded (free text on voice). ``expects_answer`` is true for questions.
    """

    channel_kind: str
    text: str
    keypad: tuple[tuple[str, str], ...] = ()
    gather: Gather | None = None
    record: bool = False
    expects_answer: bool = False


def render(output: Output, channel_kind: str, lang: str | None = None) -> RenderedPrompt:
    """Return ``output`` rendered for ``channel_kind`` (``"text"`` or ``"voice"``) in ``lang``.

    ``lang`` defaults to the output's own language (the session's).
    """
    if channel_kind not in CHANNEL_KINDS:
        raise ValueError(f"channel_kind must be 'text' or 'voice', not {channel_kind!r}")
    language = lang or output.lang
    if isinstance(output, MessageOutput):
        if channel_kind == "text":
            return RenderedPrompt("text", output.text)
        return RenderedPrompt("voice", _speakable(output.text, language))
    if channel_kind == "text":
        return _text_question(output, language)
    return _voice_question(output, language)


def render_all(
    outputs: tuple[Output, ...] | list[Output], channel_kind: str, lang: str | None = None
) -> list[RenderedPrompt]:
    """Return every output rendered, in order."""
    return [render(output, channel_kind, lang) for output in outputs]


def _unit(output: QuestionOutput, lang: str) -> str:
    return t("unit", lang, unit=output.unit) if output.unit else ""


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _instruction(output: QuestionOutput, lang: str) -> str:
    kind = output.answer_type
    if kind in ("choice", "yes_no"):
        count = len(output.choices)
        return t("text.choice2", lang) if count == 2 else t("text.choice", lang, first=1, last=count)
    if kind == "multi":
        return t("text.multi", lang)
    if kind == "number":
        return t("text.number", lang, unit=_unit(output, lang))
    if kind == "scale":
        return t("text.scale", lang, min=_number(output.minimum), max=_number(output.maximum))
    if kind == "date":
        return t("text.date", lang, example="2024-03-05")
    if kind == "blood_pressure":
        return t("text.bp", lang)
    if kind == "glucose":
        return t("text.glucose", lang, unit=_unit(output, lang))
    if kind == "reading":
        return t("text.reading", lang)
    return ""


def _text_question(output: QuestionOutput, lang: str) -> RenderedPrompt:
    lines: list[str] = []
    if output.notice:
        lines.append(output.notice)
    lines.append(output.text)
    lines.extend(f"{choice.number}. {choice.label}" for choice in output.choices)
    lines.extend(t("text.scale_ends", lang, value=value, label=label) for value, label in output.scale_labels)
    instruction = _instruction(output, lang)
    if instruction and instruction not in output.text:
        lines.append(instruction)
    return RenderedPrompt("text", "\n".join(lines), expects_answer=True)


def _speakable(text: str, lang: str) -> str:
    """Return ``text`` as it should be spoken: no line breaks, "(1/9)" and "135/85" read naturally."""
    if lang == "zh":
        text = _PROGRESS.sub(lambda m: f"第{m.group(1)}题，共{m.group(2)}题。", text)
        text = _PAIR.sub(lambda m: f"{m.group(1)}，{m.group(2)}", text)
    else:
        text = _PROGRESS.sub(lambda m: f"Question {m.group(1)} of {m.group(2)}.", text)
        text = _PAIR.sub(lambda m: f"{m.group(1)} over {m.group(2)}", text)
    return " ".join(text.split())


def _voice_question(output: QuestionOutput, lang: str) -> RenderedPrompt:
    language = SPEECH_LANGUAGES.get(lang, "zh-CN")
    parts: list[str] = []
    if output.notice:
        parts.append(output.notice)
    parts.append(output.text)
    keypad: tuple[tuple[str, str], ...] = ()
    hints: list[str] = []
    record = False
    kind = output.answer_type
    if output.choices:
        keypad = tuple((str(choice.number), choice.label) for choice in output.choices)
        parts.extend(t("voice.press", lang, label=choice.label, number=choice.number) for choice in output.choices)
        if kind == "multi":
            parts.append(t("voice.multi", lang))
        parts.append(t("voice.say", lang))
        for choice in output.choices:
            hints.append(choice.label)
            hints.extend(choice.synonyms)
        single_key = kind != "multi" and len(output.choices) <= 9
        gather = Gather(
            "dtmf speech", None if single_key else "#", 1 if single_key else None, tuple(hints), language
        )
    elif kind == "text":
        parts.append(t("voice.text", lang))
        record = True
        gather = Gather("speech", "#", None, (), language)
    elif kind == "reading":
        parts.append(t("voice.reading", lang))
        gather = Gather("speech", None, None, ("血压", "血糖", "空腹", "blood pressure", "glucose"), language)
    else:
        if kind == "scale":
            stop = "。" if lang == "zh" else "."
            parts.extend(t("text.scale_ends", lang, value=v, label=label) + stop for v, label in output.scale_labels)
            parts.append(t("voice.scale", lang, min=_number(output.minimum), max=_number(output.maximum)))
        elif kind == "blood_pressure":
            parts.append(t("voice.bp", lang))
        elif kind == "glucose":
            parts.append(t("voice.glucose", lang))
        elif kind == "date":
            parts.append(t("voice.date", lang))
        else:
            parts.append(t("voice.number", lang, unit=_unit(output, lang)))
        gather = Gather("dtmf speech", "#", None, (), language)
    script = " ".join(_speakable(part, lang) for part in parts)
    return RenderedPrompt("voice", script, keypad, gather, record, expects_answer=True)
