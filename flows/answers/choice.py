"""``type: choice`` - one answer out of numbered choices.

Example::

    - id: phq9_q1
      kind: question
      type: choice
      text: {zh: 做事时提不起劲或没有兴趣, en: Little interest or pleasure in doing things}
      choices:
        - {key: not_at_all, value: 0, label: {zh: 完全不会, en: Not at all}, code: LA6568-5}
        - {key: several_days, value: 1, label: {zh: 好几天, en: Several days}, code: LA6569-3}

The patient may reply with the number ("1", "１", "一", "one"), the label, a synonym, or speech that
contains one. The result's value is the choice's ``value`` and its category the choice's ``key``.
"""

from __future__ import annotations

from collections.abc import Iterator

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.answers.choices import Choice, choice_matcher, choice_texts, read_choices
from flows.answers.matching import ChoiceMatcher
from flows.reader import Reader
from flows.text import LocalText


def choice_rejection(count: int) -> Rejected:
    """Return the re-ask for a reply that names none of ``count`` choices ("请回复1-4之间的数字")."""
    if count == 2:
        return Rejected("not_a_choice", "invalid.choice2")
    return Rejected("not_a_choice", "invalid.choice", {"first": 1, "last": count})


@register
class ChoiceAnswer(AnswerType):
    """One of several numbered choices."""

    name = "choice"
    fhir_type = "choice"

    def __init__(self, choices: tuple[Choice, ...]) -> None:
        self.choices = choices
        self.matcher: ChoiceMatcher = choice_matcher(choices)
        self._rejection = choice_rejection(len(choices))

    @classmethod
    def parse(cls, reader: Reader) -> ChoiceAnswer:
        """Read ``choices``."""
        return cls(read_choices(reader))

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the chosen choice, or the re-ask."""
        index = self.matcher.match(text)
        if index is None:
            return self._rejection
        choice = self.choices[index]
        return Accepted(choice.value, choice.key, choice.label.plain(context.lang))

    def prompt(self, lang: str) -> Prompt:
        """Return the numbered options."""
        return Prompt(choices=tuple(choice.option(number, lang) for number, choice in enumerate(self.choices, 1)))

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the choice labels."""
        return choice_texts(self.choices)
