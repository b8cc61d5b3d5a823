"""Every job the worker runs, gathered from the packages that own them."""

from __future__ import annotations

from careloop.worker import FOUNDATION_JOBS, Job


def all_jobs() -> tuple[Job, ...]:
    return FOUNDATION_JOBS
