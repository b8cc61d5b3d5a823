"""``type: yes_no`` - a yes-or-no question, numbered 1 (yes) and 2 (no).

Example::

    - id: read_report
      kind: question
      type: yes_no
      text: {zh: 您看过体检报告了吗？, en: Have you read your checkup report?}
      labels:                      # optional; default 是/否, Yes/No
        yes: {zh: 看过了, en: Yes, I have}
        no: {zh: 还没有, en: Not yet}

Accepted: 1/2, 是/否, 是的, 对, 有, 好, 没有, 不是, 不用, yes/no, y/n, ok... The value is ``true`` or
``false``, the category ``yes`` or ``no``.
"""

from __future__ import annotations

from collections.abc import Iterator

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.answers.choices import Choice, choice_matcher, choice_texts
from flows.i18n import CATALOGUE
from flows.reader import Reader
from flows.text import LocalText

YES_WORDS = (
    "是", "是的", "对", "对的", "对啊", "有", "有的", "好", "好的", "嗯", "嗯嗯", "可以", "要", "需要", "行",
    "yes", "y", "yeah", "yep", "yup", "ok", "okay", "sure", "true", "correct",
)  # fmt: skip
NO_WORDS = (
    "否", "不", "不是", "不对", "没有", "没", "无", "不要", "不需要", "不用", "还没", "还没有", "没有的",
    "no", "n", "nope", "none", "false", "never", "no thanks",
)  # fmt: skip


@register
class YesNoAnswer(AnswerType):
    """Yes (1) or no (2)."""

    name = "yes_no"
    fhir_type = "boolean"

    def __init__(self, yes_label: LocalText, no_label: LocalText) -> None:
        self.choices = (
            Choice("yes", True, yes_label, {"*": YES_WORDS}),
            Choice("no", False, no_label, {"*": NO_WORDS}),
        )
        self.matcher = choice_matcher(self.choices)
        self.custom_labels = yes_label.raw != CATALOGUE["yes"] or no_label.raw != CATALOGUE["no"]

    @classmethod
    def parse(cls, reader: Reader) -> YesNoAnswer:
        """Read the optional ``labels: {yes: ..., no: ...}``."""
        yes_label = LocalText.of(CATALOGUE["yes"])
        no_label = LocalText.of(CATALOGUE["no"])
        labels = reader.mapping("labels")
        if labels is not None:
            child = reader.child(labels, "labels")
            yes_label = child.text("yes", required=True) or yes_label
            no_label = child.text("no", required=True) or no_label
            child.finish()
        return cls(yes_label, no_label)

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return yes or no, or the re-ask."""
        index = self.matcher.match(text)
        if index is None:
            return Rejected("not_a_choice", "invalid.choice2")
        choice = self.choices[index]
        return Accepted(choice.value, choice.key, choice.label.plain(context.lang))

    def prompt(self, lang: str) -> Prompt:
        """Return the two numbered options."""
        return Prompt(choices=tuple(choice.option(number, lang) for number, choice in enumerate(self.choices, 1)))

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield custom labels (the default ones are the engine's)."""
        if self.custom_labels:
            return choice_texts(self.choices)
        return iter(())
