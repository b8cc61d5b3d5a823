"""``type: multi`` - several answers out of numbered choices.

Example::

    - id: symptoms
      kind: question
      type: multi
      text: {zh: 最近有没有下面这些不舒服？, en: Have you had any of these lately?}
      choices:
        - {key: dizziness, label: {zh: 头晕, en: Dizziness}}
        - {key: headache, label: {zh: 头痛, en: Headache}}
        - {key: none, label: {zh: 都没有, en: None of these}, exclusive: true}

Replies: "1,3", "1 3", "1、3", "13" (with at most nine choices), "头晕和头痛", or one choice alone.
The value is the list of chosen values (in choice order), the category their keys joined by commas.
An ``exclusive`` choice cannot be combined with others.
"""

from __future__ import annotations

from collections.abc import Iterator

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.answers.choices import Choice, choice_matcher, choice_texts, read_choices
from flows.i18n import t
from flows.reader import Reader
from flows.text import LocalText


@register
class MultiAnswer(AnswerType):
    """Any number (at least one) of several numbered choices."""

    name = "multi"
    fhir_type = "choice"

    def __init__(self, choices: tuple[Choice, ...]) -> None:
        self.choices = choices
        self.matcher = choice_matcher(choices)

    @classmethod
    def parse(cls, reader: Reader) -> MultiAnswer:
        """Read ``choices`` (each may be ``exclusive``)."""
        return cls(read_choices(reader, multiple=True))

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the chosen choices, or the re-ask."""
        picks = self.matcher.match_many(text)
        if not picks:
            return Rejected("not_a_choice", "invalid.multi")
        chosen = [self.choices[index] for index in picks]
        if len(chosen) > 1:
            for choice in chosen:
                if choice.exclusive:
                    return Rejected("exclusive_combined", "invalid.multi_exclusive", {"label": choice.label.plain})
        separator = t("list_separator", context.lang)
        return Accepted(
            [choice.value for choice in chosen],
            ",".join(choice.key for choice in chosen),
            separator.join(choice.label.plain(context.lang) for choice in chosen),
        )

    def prompt(self, lang: str) -> Prompt:
        """Return the numbered options."""
        return Prompt(choices=tuple(choice.option(number, lang) for number, choice in enumerate(self.choices, 1)))

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the choice labels."""
        return choice_texts(self.choices)
