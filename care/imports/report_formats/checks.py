"""Whether a report's results can be true: the one place an import rejects a value as implausible.

Every format calls :func:`plausibility_problems` with each complete report's results (the tabular
formats also with each row alone, so that every bad row of a file is named in one run), and refuses
the report when it returns anything. Today it applies each indicator's physiological range (rule
pack ``PLAUSIBILITY-1``: :mod:`care.clinical.codes` for the indicators risk and rules use, the
indicator table for the others); rules across results of one report (SBP above DBP, HDL below total
cholesterol) belong here too, from the clinical plausibility rules, so that imports and the clinical
layer refuse the same inputs. Results kept as they came (unknown codes, values that are not
numbers) are never judged: nothing uses them.

A reason names the indicator and the rule, never the value (results are PHI)::

    row 3, value: sbp is outside the plausible range 40-300 mmHg
"""

from __future__ import annotations

from collections.abc import Sequence

from care.imports.report_formats.base import ReportProblem, ResultLine
from care.indicator_table import INDICATORS


def plausibility_problems(results: Sequence[ResultLine]) -> list[ReportProblem]:
    """Return a problem for each result (or combination of results) that cannot be true."""
    problems: list[ReportProblem] = []
    for line in results:
        if line.indicator is None or line.value is None:
            continue
        indicator = INDICATORS[line.indicator]
        if indicator.is_plausible(line.value):
            continue
        bounds = indicator.plausible_range()
        limits = f" {bounds[0]:g}-{bounds[1]:g} {indicator.unit}".rstrip() if bounds is not None else ""
        problems.append(ReportProblem(line.where, line.column,
                                      f"{indicator.key} is outside the plausible range{limits}"))
    return problems
