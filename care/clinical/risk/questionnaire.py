"""The frame of the PHQ-9 and GAD-7 questionnaires: all items are required before a total.

Missing items are listed as ``items[N]`` (1-based) and the total is not reported: prorating is not
in the original papers (clinical-spec.md 6.1), so a patient-facing product does not do it.
Validated from age 12 (spec 10a): with an ``age`` under 12 the result is ``out_of_range``, but the
flags of single items (PHQ-9 item 9) are raised all the same.
"""

from __future__ import annotations

from typing import ClassVar

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import Population, RiskModel, RiskResult, Values

#: Answer scores shared by PHQ-9 and GAD-7 with their LOINC answer codes (spec section 6).
ANSWERS: tuple[tuple[int, Label, str], ...] = (
    (0, Label("完全不会", "Not at all"), "LA6568-5"),
    (1, Label("好几天", "Several days"), "LA6569-3"),
    (2, Label("一半以上的天数", "More than half the days"), "LA6570-1"),
    (3, Label("几乎每天", "Nearly every day"), "LA6571-9"),
)
#: Screen positive when the two-item version (items 1-2) totals >= 3 (spec 6.1, 6.3).
SHORT_FORM_POSITIVE = 3


class Questionnaire(RiskModel):
    """A questionnaire scored as the sum of its items, each 0-3."""

    item_count: ClassVar[int]
    #: LOINC code of each item, in order
    item_loinc: ClassVar[tuple[str, ...]]
    total_loinc: ClassVar[str]
    short_form: ClassVar[str]
    unit = "points"
    required = ("items",)
    validated_population = Population(min_age=12)

    def safety_flags(self, values: Values) -> tuple[str, ...]:
        """The item flags, raised even when there is no total."""
        return self.item_flags(values.items("items")) if "items" in values else ()

    def item_flags(self, items: tuple[int | None, ...]) -> tuple[str, ...]:
        """Return flags raised by single items, even when other items are missing."""
        del items
        return ()

    def item_notes(self, flags: tuple[str, ...]) -> tuple[Label, ...]:
        """Return the staff notes that go with :meth:`item_flags`."""
        del flags
        return ()

    def evaluate_items(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Return the total and band, or the missing items (item flags are raised either way)."""
        items = values.items("items")
        flags = self.item_flags(items)
        notes = self.item_notes(flags)
        missing = tuple(f"items[{i}]" for i, item in enumerate(items, start=1) if item is None)
        if missing:
            return self.incomplete(values, missing, config=config, flags=flags, staff_notes=notes)
        scores = [item for item in items if item is not None]
        total = sum(scores)
        short = scores[0] + scores[1]
        details = {
            "total_loinc": self.total_loinc,
            f"{self.short_form}_total": short,
            f"{self.short_form}_positive": short >= SHORT_FORM_POSITIVE,
            "item_loinc": list(self.item_loinc),
        }
        return self.categorised(
            values, self.pack(config).classify(total), flags=flags, staff_notes=notes, details=details
        )

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Score the questionnaire."""
        return self.evaluate_items(values, config)
