"""Risk models and guideline categories, one module per model, registered by name.

Use::

    from care.clinical.risk import evaluate, get_model, models
    result = evaluate("phq9", {"items": [1, 2, 1, 2, 1, 1, 1, 0, 1]})
    result.value, result.category, result.flags     # 10, "moderate", ("suicide_risk",)

Every model's docstring shows its JSON inputs (names and units of clinical-spec.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from care.clinical.config import ClinicalConfig
from care.clinical.risk import (  # noqa: F401 - importing a model module registers it
    bmi,
    bp,
    cdrs,
    china_par,
    egfr,
    findrisc,
    fpg,
    framingham,
    gad7,
    lipids,
    pce,
    phq9,
    uric_acid,
    waist,
)
from care.clinical.risk.base import (
    IMPLAUSIBLE,
    INCOMPLETE,
    NO_VALUE_CATEGORIES,
    NOT_APPLICABLE,
    OUT_OF_RANGE,
    REGISTRY,
    InputError,
    InputSpec,
    Population,
    RiskModel,
    RiskResult,
    UnknownModelError,
)

#: Model names in the order of clinical-spec.md's list.
MODEL_ORDER = (
    "china-par", "framingham", "pce", "findrisc", "cdrs", "phq9", "gad7",
    "bmi", "waist", "bp", "fpg", "lipids", "uric-acid", "egfr",
)


def models() -> list[RiskModel]:
    """Return every registered model, in the spec's order."""
    return [REGISTRY[name] for name in MODEL_ORDER if name in REGISTRY] + [
        model for name, model in sorted(REGISTRY.items()) if name not in MODEL_ORDER
    ]


def get_model(name: str) -> RiskModel:
    """Return the model registered under ``name``; raise :class:`UnknownModelError`."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(MODEL_ORDER)
        raise UnknownModelError(f"unknown risk model {name!r} (known: {known})") from None


def evaluate(
    name: str, inputs: Mapping[str, object], *, config: ClinicalConfig | None = None, strict: bool = False
) -> RiskResult:
    """Evaluate model ``name`` on ``inputs`` (see :meth:`RiskModel.evaluate`)."""
    return get_model(name).evaluate(inputs, config=config, strict=strict)


__all__ = [
    "IMPLAUSIBLE",
    "INCOMPLETE",
    "MODEL_ORDER",
    "NOT_APPLICABLE",
    "NO_VALUE_CATEGORIES",
    "OUT_OF_RANGE",
    "InputError",
    "InputSpec",
    "Population",
    "RiskModel",
    "RiskResult",
    "UnknownModelError",
    "evaluate",
    "get_model",
    "models",
]
