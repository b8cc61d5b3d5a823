"""Interventions (健康干预/健康调养): programs with goals, education and check-ins
(:mod:`care.interventions.definition`), the content library (:mod:`care.interventions.content`),
enrolments (:mod:`care.interventions.service`) and their progress (:mod:`care.interventions.progress`).
The built-in programs are in ``care/interventions/library``."""

from pathlib import Path

from care.interventions.content import ContentItem, content_library
from care.interventions.definition import ProgramDefinition, ProgramInvalidError, parse_program
from care.interventions.service import (
    add_program,
    end,
    end_due,
    end_for_patient,
    enrolments_of,
    get_program,
    list_enrolments,
    list_programs,
    progress,
    start,
    tag_set,
)

LIBRARY_DIR = Path(__file__).resolve().parent / "library"

__all__ = [
    "LIBRARY_DIR",
    "ContentItem",
    "ProgramDefinition",
    "ProgramInvalidError",
    "add_program",
    "content_library",
    "end",
    "end_due",
    "end_for_patient",
    "enrolments_of",
    "get_program",
    "list_enrolments",
    "list_programs",
    "parse_program",
    "progress",
    "start",
    "tag_set",
]
