"""The frame every risk model shares: typed inputs, the result, the registry.

Input names and units are those of clinical-spec.md ("Input names for `careloop risk`"). A model:

1. checks the type of every given input (:class:`InputError` names the input);
2. checks plausibility before any arithmetic (:mod:`care.clinical.plausibility`, spec 10a): a value
   outside its physiological range, SBP not above DBP, HDL-C or LDL-C not below TC gives
   ``value=None``, ``category="implausible"`` (``null`` in the CLI's JSON) and an ``error``;
3. derives what the spec allows to derive (BMI from weight and height), nothing else, and checks it too;
4. checks the model's validated population (:class:`Population`, spec 10a): outside it the result has
   ``value=None``, ``category="out_of_range"`` and the range in its ``error``;
5. lists the required inputs that are still missing: then the result has ``value=None`` and
   ``category="incomplete"``; nothing is ever imputed (spec section 0);
6. computes in float64 and rounds only for display; categories apply to the displayed value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal, TypeVar

from care.clinical import plausibility
from care.clinical.common import DISCLAIMER, ClinicalError, Label, display_round
from care.clinical.config import ClinicalConfig
from care.clinical.ranges import BandPack, Classification, band_pack, pack_for

InputKind = Literal["number", "bool", "choice", "items"]
Number = int | float
InputValue = Number | bool | str | tuple[int | None, ...]

INCOMPLETE = "incomplete"
NOT_APPLICABLE = "not_applicable"
#: An input failed a plausibility check (printed as ``"category": null`` by the CLI, spec 10a).
IMPLAUSIBLE = "implausible"
#: The person is outside the model's validated population (spec 10a).
OUT_OF_RANGE = "out_of_range"
#: The categories of a result without a value.
NO_VALUE_CATEGORIES = frozenset({INCOMPLETE, NOT_APPLICABLE, IMPLAUSIBLE, OUT_OF_RANGE})
INCOMPLETE_LABEL = Label("信息不全", "Incomplete")
NOT_APPLICABLE_LABEL = Label("不适用", "Not applicable")
IMPLAUSIBLE_LABEL = Label("数值不合理", "Implausible input")
OUT_OF_RANGE_LABEL = Label("超出模型适用人群", "Outside the model's validated population")


class InputError(ClinicalError):
    """An input of the wrong type, outside its plausible range, or unknown to the model."""


class UnknownModelError(ClinicalError):
    """No risk model is registered under the name."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One named input: its kind, unit, plausible range or choices, and a one-line description."""

    name: str
    kind: InputKind
    description: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    count: int = 0
    item_max: int = 3

    def describe(self) -> str:
        """Return ``name (kind, unit, range)`` for ``careloop risk --list``."""
        if self.kind == "number":
            detail = f"number, {self.unit}" if self.unit else "number"
            if self.minimum is not None and self.maximum is not None:
                detail += f", {self.minimum:g}-{self.maximum:g}"
        elif self.kind == "bool":
            detail = "true/false"
        elif self.kind == "choice":
            detail = " | ".join(f'"{choice}"' for choice in self.choices)
        else:
            detail = f"list of {self.count} item scores 0-{self.item_max}"
        return f"{self.name} ({detail}): {self.description}"


def _number(name: str, unit: str, description: str) -> InputSpec:
    """A number input; its plausible range (for ``--list``) is the one of :mod:`care.clinical.plausibility`."""
    limits = plausibility.range_of(name)
    if limits is None:
        raise ClinicalError(f"input {name!r} has no plausible range")
    return InputSpec(name, "number", description, unit=unit, minimum=limits.low, maximum=limits.high)


def _bool(name: str, description: str) -> InputSpec:
    return InputSpec(name, "bool", description)


#: Every input a model may take, named and unitised as in clinical-spec.md.
INPUTS: dict[str, InputSpec] = {
    spec.name: spec
    for spec in (
        InputSpec("sex", "choice", "biological sex", choices=("male", "female")),
        _number("age", "years", "age in years (whole years when only a birth date is known)"),
        _number("sbp", "mmHg", "systolic blood pressure"),
        _number("dbp", "mmHg", "diastolic blood pressure"),
        _bool("bp_treated", "currently on antihypertensive medication"),
        _number("tc", "mmol/L", "total cholesterol"),
        _number("hdl", "mmol/L", "HDL cholesterol"),
        _number("ldl", "mmol/L", "LDL cholesterol"),
        _number("tg", "mmol/L", "triglycerides"),
        _number("waist", "cm", "waist circumference"),
        _number("height", "cm", "body height"),
        _number("weight", "kg", "body weight"),
        _number("bmi", "kg/m2", "body-mass index (or give weight and height)"),
        _bool("smoker", "current smoker"),
        _bool("diabetes", "has diabetes"),
        _bool("region_north", "lives north of the Yangtze River"),
        _bool("urban", "urban residence"),
        _bool("family_history_ascvd", "a parent or sibling had a heart attack or stroke"),
        InputSpec(
            "family_history_diabetes",
            "choice",
            "relatives with diabetes",
            choices=("none", "second_degree", "first_degree"),
        ),
        _bool("physically_active", "at least 30 minutes of activity daily"),
        _bool("daily_veg_fruit", "eats vegetables, fruit or berries every day"),
        _bool("ever_bp_medication", "ever regularly took antihypertensive medication"),
        _bool("ever_high_glucose", "ever found to have high blood glucose"),
        _number("fpg", "mmol/L", "fasting plasma glucose"),
        _number("hba1c", "%", "HbA1c (NGSP)"),
        _number("creatinine", "µmol/L", "serum creatinine"),
        _number("uric_acid", "µmol/L", "serum uric acid"),
        # Extensions beyond the spec's table, needed to apply the models' own rules:
        _bool("known_ascvd", "known ASCVD (MI, stroke, revascularisation): China-PAR does not apply"),
        InputSpec(
            "race",
            "choice",
            "PCE equation set (the guideline uses the white equations for other groups)",
            choices=("white", "african_american", "other"),
        ),
    )
}


def questionnaire_items(name: str, count: int) -> InputSpec:
    """Return the ``items`` input of a questionnaire with ``count`` items scored 0-3."""
    return InputSpec(name, "items", f"the {count} item scores in order, each 0-3", count=count)


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "the number " + repr(value)
    if isinstance(value, str):
        return "the text " + repr(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_input(spec: InputSpec, value: object) -> InputValue:
    """Return ``value`` checked against ``spec``; raise :class:`InputError` with one clear line."""
    name = spec.name
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"input '{name}' must be true or false, got {_kind_of(value)}")
        return value
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            allowed = ", ".join(spec.choices)
            raise InputError(f"input '{name}' must be one of: {allowed}; got {_kind_of(value)}")
        return value
    if spec.kind == "number":
        # Only the type here: the range (and finiteness) is plausibility's, checked before arithmetic.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"input '{name}' must be a number in {spec.unit}, got {_kind_of(value)}")
        return value
    return _check_items(spec, value)


def _check_items(spec: InputSpec, value: object) -> tuple[int | None, ...]:
    shape = f"a list of {spec.count} item scores, each 0-{spec.item_max} (null for an unanswered item)"
    if not isinstance(value, list | tuple) or len(value) != spec.count:
        raise InputError(f"input '{spec.name}' must be {shape}; got {_kind_of(value)}")
    items: list[int | None] = []
    for position, item in enumerate(value, start=1):
        if item is None:
            items.append(None)
            continue
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= spec.item_max:
            raise InputError(f"input '{spec.name}' item {position} must be 0-{spec.item_max}, got {_kind_of(item)}")
        items.append(item)
    return tuple(items)


def bmi_from(weight_kg: float, height_cm: float) -> float:
    """Return BMI = kg / m² (clinical-spec.md section 0), unrounded."""
    metres = height_cm / 100.0
    return weight_kg / (metres * metres)


def _as_float(value: InputValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {_kind_of(value)}")
    return float(value)


def _derive_bmi(values: Mapping[str, InputValue]) -> InputValue:
    return bmi_from(_as_float(values["weight"]), _as_float(values["height"]))


def _numbers(values: Mapping[str, InputValue]) -> dict[str, float]:
    """The number inputs of ``values`` (what plausibility checks)."""
    return {
        name: float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


#: How an input may be derived from others when it is not given (clinical-spec.md input table).
DERIVATIONS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, InputValue]], InputValue]]] = {
    "bmi": (("weight", "height"), _derive_bmi),
}


class Values:
    """The checked inputs of one evaluation, with typed accessors."""

    def __init__(self, data: Mapping[str, InputValue]) -> None:
        self._data = dict(data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def as_dict(self) -> dict[str, InputValue]:
        """Return a copy of the inputs (for storage next to the result)."""
        return dict(self._data)

    def number(self, name: str) -> float:
        """Return a number input as float."""
        value = self._data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"input '{name}' is not a number")
        return float(value)

    def flag(self, name: str) -> bool:
        """Return a yes/no input."""
        value = self._data[name]
        assert isinstance(value, bool)  # noqa: S101 - checked on entry
        return value

    def flag_or(self, name: str, default: bool) -> bool:
        """Return a yes/no input, or ``default`` when the input is optional and absent."""
        return self.flag(name) if name in self._data else default

    def choice(self, name: str) -> str:
        """Return a choice input."""
        value = self._data[name]
        assert isinstance(value, str)  # noqa: S101 - checked on entry
        return value

    def items(self, name: str) -> tuple[int | None, ...]:
        """Return a questionnaire's item scores (None for an unanswered item)."""
        value = self._data[name]
        assert isinstance(value, tuple)  # noqa: S101 - checked on entry
        return value


@dataclass(frozen=True, slots=True)
class InputLimit:
    """A bound of the validated population on one input, in the unit the model's source states.

    ``convert`` turns the canonical value into that unit (PCE: TC and HDL in mg/dL); the converted
    value is rounded to 1 decimal before the comparison, so a value given exactly at a limit is inside.
    """

    name: str
    low: float
    high: float
    unit: str
    what: Label
    convert: Callable[[float], float] = float

    def contains(self, value: float) -> bool:
        """Return True when ``value`` (canonical unit) is inside the bound."""
        return self.low <= display_round(self.convert(value), 1) <= self.high

    def text(self) -> Label:
        """Return the bound as text: ``总胆固醇 130-320 mg/dL``."""
        span = f"{self.low:g}-{self.high:g} {self.unit}"
        return Label(f"{self.what.zh} {span}", f"{self.what.en} {span}")


@dataclass(frozen=True, slots=True)
class Population:
    """The population a model was derived or validated in (clinical-spec.md 10a).

    ``min_age``/``max_age`` are whole years, inclusive; None means no bound. Outside it the model
    answers ``out_of_range`` and never computes.
    """

    min_age: int | None = None
    max_age: int | None = None
    sexes: tuple[str, ...] = ("male", "female")
    limits: tuple[InputLimit, ...] = ()

    def ages(self) -> Label:
        """Return the age range as text: ``40-79岁`` / ``ages 40-79``."""
        low, high = self.min_age, self.max_age
        if low is not None and high is not None:
            return Label(f"{low}-{high}岁", f"ages {low}-{high}")
        if low is not None:
            return Label(f"{low}岁及以上", f"ages {low} and over")
        if high is not None:
            return Label(f"{high}岁及以下", f"ages {high} and under")
        return Label("所有年龄", "all ages")

    def age_inside(self, age: float) -> bool:
        """Return True when ``age`` (in whole years, floored) is inside the age range."""
        years = math.floor(age)
        return (self.min_age is None or years >= self.min_age) and (self.max_age is None or years <= self.max_age)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping (ages, sexes, the other bounds)."""
        return {
            "min_age": self.min_age,
            "max_age": self.max_age,
            "sexes": list(self.sexes),
            "limits": [
                {"input": limit.name, "low": limit.low, "high": limit.high, "unit": limit.unit} for limit in self.limits
            ],
        }


@dataclass(frozen=True)
class RiskResult:
    """The outcome of one model: what the record stores, the CLI prints and the report shows."""

    model: str
    value: float | int | None
    unit: str
    category: str
    category_label: Label
    citation: str
    rule_pack: str
    missing: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    #: every note: the patient-facing ones and those for staff only (e.g. [U] caveats)
    notes: tuple[Label, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)
    inputs: Mapping[str, object] = field(default_factory=dict)
    disclaimer: Label = DISCLAIMER
    #: the notes fit to show a patient (a subset of ``notes``)
    patient_notes: tuple[Label, ...] = ()
    #: why there is no value, for staff (implausible input, outside the population), in zh and en
    error: Label | None = None

    @property
    def complete(self) -> bool:
        """True when the model produced a value."""
        return self.value is not None

    def to_dict(self) -> dict[str, object]:
        """Return the JSON object of the CLI contract, contract keys first.

        An implausible input has no category at all: ``"category": null`` (spec 10a).
        """
        return {
            "model": self.model,
            "value": self.value,
            "unit": self.unit,
            "category": None if self.category == IMPLAUSIBLE else self.category,
            "citation": self.citation,
            "missing": list(self.missing),
            "error": None if self.error is None else self.error.en,
            "error_label": None if self.error is None else self.error.to_dict(),
            "category_label": self.category_label.to_dict(),
            "rule_pack": self.rule_pack,
            "flags": list(self.flags),
            "notes": [note.to_dict() for note in self.notes],
            "patient_notes": [note.to_dict() for note in self.patient_notes],
            "details": dict(self.details),
            "disclaimer": self.disclaimer.to_dict(),
        }


class RiskModel(ABC):
    """A registered model. Subclasses set the class attributes and implement :meth:`compute`."""

    name: ClassVar[str]
    title: ClassVar[Label]
    citation: ClassVar[str]
    version: ClassVar[str]
    scheme: ClassVar[str]
    unit: ClassVar[str]
    #: every input the model reads, required or optional
    inputs: ClassVar[tuple[InputSpec, ...]]
    #: names of the inputs without which there is no result
    required: ClassVar[tuple[str, ...]]
    #: True for models that are only a guideline category of a measurement (bmi, bp, ...): then
    #: the category pack is the whole rule and its citation and version are the result's.
    category_only: ClassVar[bool] = False
    #: the validated population (clinical-spec.md 10a); None for a category of any adult reading
    validated_population: ClassVar[Population | None] = None

    def population(self, config: ClinicalConfig) -> Population | None:
        """Return the population the model computes for (a model may make it depend on ``config``)."""
        del config
        return self.validated_population

    def safety_flags(self, values: Values) -> tuple[str, ...]:
        """Return flags that must be raised even when nothing is computed (PHQ-9 item 9)."""
        del values
        return ()

    def input_spec(self, name: str) -> InputSpec | None:
        """Return the spec of input ``name`` if the model reads it."""
        return next((spec for spec in self.inputs if spec.name == name), None)

    def required_inputs(self, values: Values, config: ClinicalConfig) -> tuple[str, ...]:
        """Return the inputs required for these values (a model may widen it, e.g. by sex)."""
        del values, config
        return self.required

    def parse(self, raw: Mapping[str, object], *, strict: bool = False) -> Values:
        """Check every given input, then its plausibility; derive BMI when allowed (and check it).

        Unknown names fail only when ``strict``. Raises :class:`InputError` (a wrong type or name)
        or :class:`care.clinical.plausibility.ImplausibleError` (every failed plausibility rule);
        nothing is derived from an implausible value.
        """
        checked: dict[str, InputValue] = {}
        for name, value in raw.items():
            spec = self.input_spec(name)
            if spec is None:
                if strict:
                    known = ", ".join(sorted(s.name for s in self.inputs))
                    raise InputError(f"unknown input '{name}' for model {self.name} (known: {known})")
                continue
            if value is None:
                continue
            checked[name] = check_input(spec, value)
        plausibility.require_plausible(_numbers(checked))
        derived: dict[str, InputValue] = {}
        for name, (sources, derive) in DERIVATIONS.items():
            if name not in checked and self.input_spec(name) is not None and all(s in checked for s in sources):
                derived[name] = check_input(INPUTS[name], derive(checked))
        plausibility.require_plausible(_numbers(derived))
        return Values({**checked, **derived})

    def outside_population(self, values: Values, config: ClinicalConfig) -> tuple[str, Label] | None:
        """Return ``(flag, reason)`` when the given inputs are outside the validated population."""
        population = self.population(config)
        if population is None:
            return None
        title = self.title
        if "age" in values and not population.age_inside(values.number("age")):
            ages = population.ages()
            return "age_out_of_range", Label(
                f"{title.zh}仅适用于{ages.zh}人群（模型的验证人群），该年龄超出范围，不计算。",
                f"{title.en} is validated for {ages.en} only; this age is outside that range, so it is not computed.",
            )
        if "sex" in values and values.choice("sex") not in population.sexes:
            return "sex_out_of_range", Label(
                f"{title.zh}不适用于该性别。", f"{title.en} is not validated for this sex."
            )
        for limit in population.limits:
            if limit.name in values and not limit.contains(values.number(limit.name)):
                bound = limit.text()
                return f"{limit.name}_out_of_range", Label(
                    f"{title.zh}仅适用于{bound.zh}（模型的验证范围），该数值超出范围，不计算。",
                    f"{title.en} is validated for {bound.en} only; this value is outside it, so it is not computed.",
                )
        return None

    def evaluate(
        self, raw: Mapping[str, object], *, config: ClinicalConfig | None = None, strict: bool = False
    ) -> RiskResult:
        """Evaluate the model on ``raw`` inputs (see the module docstring for the steps)."""
        chosen = config if config is not None else ClinicalConfig()
        try:
            values = self.parse(raw, strict=strict)
        except plausibility.ImplausibleError as failed:
            return self.implausible(raw, failed.problems, config=chosen)
        missing = tuple(name for name in self.required_inputs(values, chosen) if name not in values)
        outside = self.outside_population(values, chosen)
        if outside is not None:
            return self.out_of_range(values, *outside, missing=missing, config=chosen)
        if missing:
            return self.incomplete(values, missing, config=chosen)
        return self.compute(values, chosen)

    @abstractmethod
    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Compute the result from complete, checked inputs."""

    def severity(self, category: str, config: ClinicalConfig | None = None) -> int | None:
        """Return how far ``category`` is from the most desirable one (0), None for no category.

        Used to say whether a later result improved or worsened.
        """
        if category in NO_VALUE_CATEGORIES:
            return None
        return pack_for(self.scheme, config).severity(category)

    # --- helpers for subclasses ---------------------------------------------------------------

    def pack(self, config: ClinicalConfig) -> BandPack:
        """Return the category pack of this model's scheme."""
        return band_pack(self.scheme, config)

    def rule_pack_name(self, pack_name: str) -> str:
        """Return the stored rule-pack version: the model's version, plus the category pack if different."""
        if self.category_only or pack_name == self.version:
            return pack_name
        return f"{self.version}+{pack_name}"

    def version_for(self, config: ClinicalConfig) -> str:
        """Return the rule-pack version that ``config`` selects for this model."""
        if self.category_only:
            return self.rule_pack_name(pack_for(self.scheme, config).name)
        return self.version

    def citation_for(self, config: ClinicalConfig) -> str:
        """Return the citation of the rule ``config`` selects for this model."""
        return pack_for(self.scheme, config).citation if self.category_only else self.citation

    def incomplete(
        self,
        values: Values,
        missing: Sequence[str],
        *,
        config: ClinicalConfig,
        flags: Sequence[str] = (),
        staff_notes: Sequence[Label] = (),
    ) -> RiskResult:
        """Return the result that lists ``missing`` inputs instead of guessing them."""
        return RiskResult(
            model=self.name,
            value=None,
            unit=self.unit,
            category=INCOMPLETE,
            category_label=INCOMPLETE_LABEL,
            citation=self.citation_for(config),
            rule_pack=self.version_for(config),
            missing=tuple(missing),
            flags=tuple(flags),
            notes=tuple(staff_notes),
            inputs=MappingProxyType(values.as_dict()),
        )

    def implausible(
        self, raw: Mapping[str, object], problems: Sequence[plausibility.Implausible], *, config: ClinicalConfig
    ) -> RiskResult:
        """Return the result for inputs that failed plausibility: no value, no category, the reasons."""
        error = Label("；".join(p.message.zh for p in problems), "; ".join(p.message.en for p in problems))
        return RiskResult(
            model=self.name,
            value=None,
            unit=self.unit,
            category=IMPLAUSIBLE,
            category_label=IMPLAUSIBLE_LABEL,
            citation=self.citation_for(config),
            rule_pack=self.version_for(config),
            flags=tuple(dict.fromkeys(f"implausible_{p.rule}" for p in problems)),
            notes=(error,),
            details=MappingProxyType(
                {"implausible": [p.to_dict() for p in problems], "plausibility_rule_pack": plausibility.RULE_PACK}
            ),
            inputs=MappingProxyType({name: value for name, value in raw.items() if self.input_spec(name)}),
            error=error,
        )

    def out_of_range(
        self, values: Values, flag: str, reason: Label, *, missing: Sequence[str], config: ClinicalConfig
    ) -> RiskResult:
        """Return the result for a person outside the validated population (spec 10a)."""
        population = self.population(config)
        return RiskResult(
            model=self.name,
            value=None,
            unit=self.unit,
            category=OUT_OF_RANGE,
            category_label=OUT_OF_RANGE_LABEL,
            citation=self.citation_for(config),
            rule_pack=self.version_for(config),
            missing=tuple(missing),
            flags=(flag, *self.safety_flags(values)),
            notes=(reason,),
            patient_notes=(reason,),
            details=MappingProxyType({"population": None if population is None else population.to_dict()}),
            inputs=MappingProxyType(values.as_dict()),
            error=reason,
        )

    def not_applicable(self, values: Values, reason: str, note: Label, *, config: ClinicalConfig) -> RiskResult:
        """Return the result for a person the model does not apply to (flag ``reason``)."""
        return RiskResult(
            model=self.name,
            value=None,
            unit=self.unit,
            category=NOT_APPLICABLE,
            category_label=NOT_APPLICABLE_LABEL,
            citation=self.citation_for(config),
            rule_pack=self.version_for(config),
            flags=(reason,),
            notes=(note,),
            patient_notes=(note,),
            inputs=MappingProxyType(values.as_dict()),
        )

    def categorised(
        self,
        values: Values,
        classification: Classification,
        *,
        flags: Sequence[str] = (),
        notes: Sequence[Label] = (),
        staff_notes: Sequence[Label] = (),
        details: Mapping[str, object] | None = None,
    ) -> RiskResult:
        """Return a complete result whose value is the classification's displayed value.

        ``notes`` are fit for patients; ``staff_notes`` (caveats, instructions) only for staff.
        """
        patient = tuple(dict.fromkeys((*classification.notes, *classification.messages, *notes)))
        return RiskResult(
            model=self.name,
            value=classification.shown,
            unit=self.unit,
            category=classification.key,
            category_label=classification.label,
            citation=classification.citation if self.category_only else self.citation,
            rule_pack=self.rule_pack_name(classification.rule_pack),
            flags=tuple(dict.fromkeys((*classification.flags, *flags))),
            notes=tuple(dict.fromkeys((*patient, *staff_notes))),
            patient_notes=patient,
            details=MappingProxyType(dict(details or {})),
            inputs=MappingProxyType(values.as_dict()),
        )

    def percent(
        self,
        values: Values,
        risk: float,
        config: ClinicalConfig,
        *,
        flags: Sequence[str] = (),
        notes: Sequence[Label] = (),
        staff_notes: Sequence[Label] = (),
        details: Mapping[str, object] | None = None,
    ) -> RiskResult:
        """Return a 10-year-risk result: % rounded to 1 decimal, categorised on that (spec section 0)."""
        percent = risk * 100.0
        classification = self.pack(config).classify(percent)
        return self.categorised(
            values,
            classification,
            flags=flags,
            notes=notes,
            staff_notes=staff_notes,
            details={"risk_percent_unrounded": percent, **(details or {})},
        )


M = TypeVar("M", bound=type[RiskModel])

#: model name -> model instance, filled by :func:`register`.
REGISTRY: dict[str, RiskModel] = {}


def register(cls: M) -> M:
    """Register a model class under its ``name`` (STYLE.md habit 5: registries, not if-chains)."""
    if cls.name in REGISTRY:
        raise ClinicalError(f"risk model {cls.name!r} registered twice")
    missing = [name for name in cls.required if not any(spec.name == name for spec in cls.inputs)]
    if missing:
        raise ClinicalError(f"risk model {cls.name!r} requires undeclared inputs {missing}")
    REGISTRY[cls.name] = cls()
    return cls
