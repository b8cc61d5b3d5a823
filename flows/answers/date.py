"""``type: date`` - a calendar date.

Example::

    - id: visit_date
      kind: question
      type: date
      text: {zh: 您是哪天做的体检？, en: On what day was your checkup?}
      allow: past            # past (today or before), future (today or after) or any (default)

Replies: "2024-03-05", "2024/3/5", "2024.3.5", "2024年3月5日", "二〇二四年三月五日", "20240305" (keypad),
"3月5日" (the nearest such day allowed), "March 5, 2024", "5 March 2024", "今天", "昨天", "前天",
"明天", "today", "yesterday", "tomorrow". The value is the ISO date ``YYYY-MM-DD``; "today" is the day
of the ``now`` the host passes, in its time zone.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from flows.answers.base import Accepted, AnswerContext, AnswerType, Rejected, register
from flows.normalize import fold, spell_out_numerals
from flows.reader import Reader

_RELATIVE = {
    "今天": 0, "今日": 0, "today": 0, "昨天": -1, "昨日": -1, "yesterday": -1, "前天": -2,
    "明天": 1, "明日": 1, "tomorrow": 1, "后天": 2,
}  # fmt: skip
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12, "january": 1, "february": 2, "march": 3, "april": 4, "june": 6,
    "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip
_FULL = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_MONTH_DAY = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")
_EN_MONTH_FIRST = re.compile(r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s*(\d{4})?$")
_EN_DAY_FIRST = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s*(\d{4})?$")


def _safe_date(year: int, month: int, day: int) -> date | None:
    if not 1900 <= year <= 2100:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


@register
class DateAnswer(AnswerType):
    """A date, optionally only in the past or only in the future."""

    name = "date"
    fhir_type = "date"

    def __init__(self, allow: str) -> None:
        self.allow = allow

    @classmethod
    def parse(cls, reader: Reader) -> DateAnswer:
        """Read ``allow`` (past, future or any)."""
        return cls(reader.one_of("allow", ("past", "future", "any"), default="any") or "any")

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the ISO date, or the re-ask."""
        today = context.now.date()
        example = (today if self.allow != "future" else today + timedelta(days=7)).isoformat()
        parsed = self._read(fold(text), today)
        if parsed is None:
            return Rejected("not_a_date", "invalid.date", {"example": example})
        if self.allow == "past" and parsed > today:
            return Rejected("date_in_future", "invalid.date_future", {"example": today.isoformat()})
        if self.allow == "future" and parsed < today:
            return Rejected("date_in_past", "invalid.date_past", {"example": example})
        return Accepted(parsed.isoformat())

    def _read(self, folded: str, today: date) -> date | None:
        if folded in _RELATIVE:
            return today + timedelta(days=_RELATIVE[folded])
        if len(folded) > 40:
            return None
        text = spell_out_numerals(folded)
        for pattern in (_FULL, _COMPACT):
            match = pattern.match(text)
            if match:
                return _safe_date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        match = _MONTH_DAY.match(text)
        if match:
            return self._nearest(int(match.group(1)), int(match.group(2)), today)
        match = _EN_MONTH_FIRST.match(text)
        if match and match.group(1) in _MONTHS:
            month, day, year = _MONTHS[match.group(1)], int(match.group(2)), match.group(3)
            return _safe_date(int(year), month, day) if year else self._nearest(month, day, today)
        match = _EN_DAY_FIRST.match(text)
        if match and match.group(2) in _MONTHS:
            month, day, year = _MONTHS[match.group(2)], int(match.group(1)), match.group(3)
            return _safe_date(int(year), month, day) if year else self._nearest(month, day, today)
        return None

    def _nearest(self, month: int, day: int, today: date) -> date | None:
        """Return month/day in the year that fits ``allow`` best (a past date for ``past``...)."""
        this_year = _safe_date(today.year, month, day)
        if this_year is None:
            # 29 February: try the neighbouring years.
            step = -1 if self.allow == "past" else 1
            for offset in range(1, 5):
                found = _safe_date(today.year + step * offset, month, day)
                if found is not None:
                    return found
            return None
        if self.allow == "past" and this_year > today:
            return _safe_date(today.year - 1, month, day)
        if self.allow == "future" and this_year < today:
            return _safe_date(today.year + 1, month, day)
        return this_year
