"""Follow-up plans (自动随访): definitions (:mod:`care.plans.definition`), timing (:mod:`care.plans.timing`)
and the plans in the database (:mod:`care.plans.service`). The built-in plans are in ``care/plans/library``."""

from pathlib import Path

from care.plans.definition import PlanDefinition, PlanInvalidError, PlanProblem, parse_plan
from care.plans.service import (
    DEFAULT_GRACE,
    add_plan,
    enrol,
    enrol_many,
    enrolments_of,
    event_happened,
    get_plan,
    leave,
    list_plans,
    retime_patient,
    retime_plan,
    schedule_next,
    tag_changed,
)

LIBRARY_DIR = Path(__file__).resolve().parent / "library"

__all__ = [
    "DEFAULT_GRACE",
    "LIBRARY_DIR",
    "PlanDefinition",
    "PlanInvalidError",
    "PlanProblem",
    "add_plan",
    "enrol",
    "enrol_many",
    "enrolments_of",
    "event_happened",
    "get_plan",
    "leave",
    "list_plans",
    "parse_plan",
    "retime_patient",
    "retime_plan",
    "schedule_next",
    "tag_changed",
]
