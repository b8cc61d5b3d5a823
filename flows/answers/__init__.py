"""Answer types of questions, one module each, registered under their ``type:`` name in ``ANSWER_TYPES``."""

from flows.answers import (  # noqa: F401 - importing registers each type
    blood_pressure,
    choice,
    date,
    free_text,
    glucose,
    multi,
    number,
    reading,
    scale,
    yes_no,
)
from flows.answers.base import ANSWER_TYPES, Accepted, AnswerContext, AnswerType, Prompt, Rejected

__all__ = ["ANSWER_TYPES", "Accepted", "AnswerContext", "AnswerType", "Prompt", "Rejected"]
