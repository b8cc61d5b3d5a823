"""GAD-7 anxiety severity.

Source: Spitzer RL, Kroenke K, Williams JBW, Löwe B. A brief measure for assessing generalized anxiety
disorder: the GAD-7. Arch Intern Med 2006;166:1092-1097, doi:10.1001/archinte.166.10.1092
(clinical-spec.md 6.3). Bands 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe.

Inputs (JSON)::

    {"items": [2, 2, 1, 1, 0, 1, 1]}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.risk.base import INPUTS, questionnaire_items, register
from care.clinical.risk.questionnaire import Questionnaire


@register
class Gad7(Questionnaire):
    """GAD-7 (Spitzer 2006; spec 6.3)."""

    name = "gad7"
    title = Label("焦虑症状筛查(GAD-7)", "Generalized Anxiety Disorder scale (GAD-7)")
    citation = (
        "Spitzer RL, Kroenke K, Williams JBW, Löwe B. Arch Intern Med 2006;166:1092-1097, "
        "doi:10.1001/archinte.166.10.1092"
    )
    version = "GAD7-2006"
    scheme = "gad7"
    item_count = 7
    # Item 2 is 68509-9; 68509-1 is a frequently seen wrong code (spec 6.3).
    item_loinc = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
    total_loinc = "70274-6"
    short_form = "gad2"
    inputs = (questionnaire_items("items", 7), INPUTS["age"])
