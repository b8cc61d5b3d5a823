"""Whether a report's results can be true: the one place an import rejects a value as implausible.

Every format calls :func:`plausibility_problems` with each complete report's results (the tabular
formats also with each row alone, so that every bad row of a file is named in one run), and refuses
the report when it returns anything. It applies :mod:`care.clinical.plausibility` (the same ranges
and the same rules across the results of one report - SBP above DBP, HDL-C and LDL-C below total
cholesterol - that the risk models apply before any arithmetic), and the indicator table's own
ranges for the indicators the clinical layer does not compute on. Results kept as they came
(unknown codes, values that are not numbers) are never judged: nothing uses them.

A reason names the indicator and the rule, never the value (results are PHI)::

    row 3, value: sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)
"""

from __future__ import annotations

from collections.abc import Sequence

from care.clinical import plausibility
from care.imports.report_formats.base import ReportProblem, ResultLine
from care.indicator_table import INDICATORS


def plausibility_problems(results: Sequence[ResultLine]) -> list[ReportProblem]:
    """Return a problem for each result (or combination of results) that cannot be true."""
    problems: list[ReportProblem] = []
    judged: dict[str, tuple[ResultLine, float]] = {}
    for line in results:
        if line.indicator is None or line.value is None:
            continue
        if plausibility.range_of(line.indicator) is not None:
            failed = plausibility.check_value(line.indicator, line.value)
            if failed is not None:
                problems.append(ReportProblem(line.where, line.column, failed.text))
            else:
                judged[line.indicator] = (line, line.value)
            continue
        indicator = INDICATORS[line.indicator]
        if indicator.is_plausible(line.value):
            continue
        bounds = indicator.plausible_range()
        limits = f" {bounds[0]:g}-{bounds[1]:g} {indicator.unit}".rstrip() if bounds is not None else ""
        problems.append(ReportProblem(line.where, line.column,
                                      f"{indicator.key} is outside the plausible range{limits}"))
    # Rules across the results of one report (SBP above DBP, HDL-C and LDL-C below TC): the same
    # rules the clinical layer applies before any arithmetic.
    for failed in plausibility.check_values({key: value for key, (_line, value) in judged.items()}):
        line = judged[plausibility.code_of(failed.names[-1])][0]
        problems.append(ReportProblem(line.where, line.column, failed.text))
    return problems
