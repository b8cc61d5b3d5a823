"""``type: text`` - free text, in the patient's own words (on the phone: a recording or its transcript).

Example::

    - id: chief_complaint
      kind: question
      type: text
      text: {zh: 这次最主要是哪里不舒服？, en: What is bothering you most at the moment?}
      max_length: 500        # longer replies are cut here (default 1000); extra.truncated is set

Any reply with a letter, digit or emoji is accepted. The category is ``none`` when the reply means
"nothing" (无, 没有, 没, none, no, nothing, n/a) and ``answered`` otherwise.
"""

from __future__ import annotations

import unicodedata

from flows.answers.base import Accepted, AnswerContext, AnswerType, Rejected, register
from flows.normalize import fold
from flows.reader import Reader

NONE_WORDS = frozenset(
    {"无", "没有", "没", "都没有", "暂无", "没什么", "没有了", "不知道", "none", "no", "nothing", "n/a", "na", "nil"}
)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)


@register
class TextAnswer(AnswerType):
    """Free text up to ``max_length`` characters."""

    name = "text"
    fhir_type = "text"

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    @classmethod
    def parse(cls, reader: Reader) -> TextAnswer:
        """Read ``max_length`` (1-5000, default 1000)."""
        return cls(reader.integer("max_length", default=1000, minimum=1, maximum=5000) or 1000)

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the text as written (trimmed), or the re-ask when there is nothing in it."""
        clean = text[: self.max_length * 2].translate(_INVISIBLE).strip()
        if not any(unicodedata.category(ch)[0] in "LNS" for ch in clean):
            return Rejected("empty", "invalid.text")
        extra = None
        if len(clean) > self.max_length:
            clean = clean[: self.max_length]
            extra = {"truncated": True}
        category = "none" if fold(clean) in NONE_WORDS else "answered"
        return Accepted(clean, category, None, extra)
