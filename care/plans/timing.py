"""When a plan's occurrence is due: an offset or the n-th repetition after an anchor, at a local time of day."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, tzinfo

from care.plans.definition import Period, When

#: The most occurrences looked through for the first one due after a moment (a daily plan over ten years).
MAX_SEARCH = 4000


def shifted(local: datetime, period: Period, times: int = 1) -> datetime:
    """``local`` moved by ``times`` × ``period`` on the wall clock (a month after the 31st: the last day)."""
    months = period.months * times
    if months:
        total = local.month - 1 + months
        year, month = local.year + total // 12, total % 12 + 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        local = local.replace(year=year, month=month, day=day)
    days = (period.weeks * 7 + period.days) * times
    return local + timedelta(days=days) if days else local


def due_at(when: When, anchor: datetime, occurrence: int, zone: tzinfo) -> datetime:
    """The moment (UTC) of ``occurrence`` of ``when`` after ``anchor`` where the patient lives.

    A one-off step has one occurrence (0), ``offset`` after the anchor; a recurring step's n-th
    occurrence (1, 2, ...) is n × ``every`` after it. With ``at`` the time of day is that local time.
    """
    local = anchor.astimezone(zone)
    moved = shifted(local, when.every, occurrence) if when.every is not None else shifted(local, when.offset)
    if when.at is not None:
        moved = datetime.combine(moved.date(), when.at, tzinfo=zone)
    return moved.astimezone(UTC)


def first_occurrence(when: When, anchor: datetime, zone: tzinfo, *, not_before: datetime,
                     after: int = 0) -> tuple[int, datetime] | None:
    """The first occurrence after ``after`` due at or after ``not_before``: (its number, its moment).

    A one-off step: (0, its moment) when that is not before ``not_before`` and ``after`` is 0, else None.
    """
    if when.every is None:
        moment = due_at(when, anchor, 0, zone)
        return (0, moment) if after == 0 and moment >= not_before else None
    for occurrence in range(max(after + 1, 1), after + 1 + MAX_SEARCH):
        moment = due_at(when, anchor, occurrence, zone)
        if moment >= not_before:
            return occurrence, moment
    return None


def day_start(moment: date, zone: tzinfo) -> datetime:
    """Midnight of ``moment`` where the patient lives, in UTC."""
    return datetime.combine(moment, datetime.min.time(), tzinfo=zone).astimezone(UTC)
