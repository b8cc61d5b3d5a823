"""Quiet hours: local times of day without outbound messages, written ``HH:MM-HH:MM``.

A range may cross midnight (``21:00-08:00``); equal ends mean none. The clinic has its own
(``CARELOOP_QUIET_HOURS``); a patient may have theirs (:func:`care.patients.set_quiet_hours`),
which wins for them. Both are read in the patient's own time zone (``bot.consent.in_quiet_hours``).
"""

from __future__ import annotations

import functools
import re
from datetime import time

_CLOCK = r"([01]?[0-9]|2[0-3]):([0-5][0-9])"
_RANGE = re.compile(rf"^\s*{_CLOCK}\s*-\s*{_CLOCK}\s*$")
#: How a range is asked for (errors name it).
FORMAT = "HH:MM-HH:MM (such as 21:00-08:00)"


@functools.lru_cache(maxsize=256)
def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """The (start, end) local times of ``text``, or None when it is not an ``HH:MM-HH:MM`` range."""
    match = _RANGE.match(text)
    if match is None:
        return None
    hour, minute, end_hour, end_minute = (int(part) for part in match.groups())
    return time(hour, minute), time(end_hour, end_minute)


def quiet_hours_text(hours: tuple[time, time]) -> str:
    """The range as stored and shown: ``21:30-07:30``."""
    start, end = hours
    return f"{start:%H:%M}-{end:%H:%M}"
