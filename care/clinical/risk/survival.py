"""The Cox-model form shared by China-PAR, Framingham and the Pooled Cohort Equations.

``risk10 = 1 - S10 ^ exp(Σβᵢ·Xᵢ - mean)`` (clinical-spec.md sections 1.1, 2 and 3), computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Equation:
    """One equation: coefficients by term, the mean of Σβ·X and the baseline survival S10."""

    coefficients: Mapping[str, float]
    mean: float
    s10: float


def linear_predictor(equation: Equation, x: Mapping[str, float]) -> float:
    """Return Σβᵢ·Xᵢ over the equation's terms; every term must have a value in ``x``."""
    return math.fsum(beta * x[term] for term, beta in equation.coefficients.items())


def ten_year_risk(equation: Equation, predictor: float) -> float:
    """Return 1 - S10 ^ exp(Σβ·X - mean) as a fraction."""
    risk: float = 1.0 - equation.s10 ** math.exp(predictor - equation.mean)
    return risk
