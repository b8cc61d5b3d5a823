"""Program files for the intervention tests: the console channel only (what the tests' bot has)."""

from __future__ import annotations

from flows.registry import FlowLibrary

FLOWS = set(FlowLibrary.builtin().ids())


def program_text(program_id: str = "bp_care", version: int = 1, *, days: int = 90, tag: str | None = None,
                 goals: str | None = None, every: str = "{days: 14}", education: str | None = None,
                 extra: str = "") -> str:
    """A program of home blood-pressure check-ins every two weeks and three education messages."""
    goals = goals or ("  - {id: sbp_below_130, indicator: sbp, target: {below: 130}}\n"
                      "  - {id: weight_down_5, indicator: weight, change_percent: -5}\n")
    education = education or ('  - {day: 1, message: diet_salt, at: "10:00"}\n'
                              '  - {day: 30, message: exercise_walking, at: "10:00"}\n'
                              '  - {day: 60, message: sleep_routine, at: "10:00"}\n')
    return (f"id: {program_id}\nversion: {version}\ntitle: {{zh: 血压管理, en: Blood-pressure care}}\n"
            f"duration_days: {days}\n" + (f"start_on_tag: {tag}\n" if tag else "")
            + f"goals:\n{goals}"
            f"check_ins:\n  - flow: home_monitoring\n    every: {every}\n    at: \"09:30\"\n    channels: [console]\n"
            f"    retry: {{attempts: 1, answer_window_hours: 48}}\n    on_silence: []\n"
            f"education:\n{education}education_channels: [console]\n{extra}")
