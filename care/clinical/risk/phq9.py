"""PHQ-9 depression severity, with the mandatory item-9 safety flag.

Source: Kroenke K, Spitzer RL, Williams JB. The PHQ-9: validity of a brief depression severity
measure. J Gen Intern Med 2001;16:606-613, doi:10.1046/j.1525-1497.2001.016009606.x
(clinical-spec.md 6.1, 6.2). Bands 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe,
20-27 severe. Item 9 >= 1 raises ``suicide_risk`` whatever the total, even when other items are
unanswered (spec 6.2): the caller shows the crisis message before the score and creates an urgent
clinician task.

Inputs (JSON)::

    {"items": [1, 2, 1, 2, 1, 1, 1, 0, 1]}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.risk.base import INPUTS, questionnaire_items, register
from care.clinical.risk.questionnaire import Questionnaire

SUICIDE_ITEM = 9
SUICIDE_FLAG = "suicide_risk"
SUICIDE_NOTE = Label(
    zh="第9题阳性：请立即显示危机求助信息，并通知医护人员跟进(不论总分)。",
    en="Item 9 is positive: show the crisis message now and alert a clinician, whatever the total.",
)


@register
class Phq9(Questionnaire):
    """PHQ-9 (Kroenke 2001; spec 6.1-6.2)."""

    name = "phq9"
    title = Label("抑郁症状筛查(PHQ-9)", "Patient Health Questionnaire (PHQ-9)")
    citation = (
        "Kroenke K, Spitzer RL, Williams JB. J Gen Intern Med 2001;16:606-613, "
        "doi:10.1046/j.1525-1497.2001.016009606.x"
    )
    version = "PHQ9-2001"
    scheme = "phq9"
    item_count = 9
    item_loinc = (
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8",
    )
    total_loinc = "44261-6"
    short_form = "phq2"
    inputs = (questionnaire_items("items", 9), INPUTS["age"])

    def item_flags(self, items: tuple[int | None, ...]) -> tuple[str, ...]:
        """Raise ``suicide_risk`` when item 9 is 1 or more (spec 6.2 trigger)."""
        item9 = items[SUICIDE_ITEM - 1]
        return (SUICIDE_FLAG,) if item9 is not None and item9 >= 1 else ()

    def item_notes(self, flags: tuple[str, ...]) -> tuple[Label, ...]:
        """Explain the safety flag to staff."""
        return (SUICIDE_NOTE,) if SUICIDE_FLAG in flags else ()
