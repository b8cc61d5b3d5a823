"""The visit classification of the national chronic-disease follow-up, in one place for both forms.

Source: 国家基本公共卫生服务规范（第三版）, 2017: 高血压患者健康管理服务规范 and 2型糖尿病患者健康管理服务规范,
as tabled in clinical-spec.md section 10b (rule pack ``NBPHS-2017``). Every visit of the national
hypertension or type-2 diabetes form (高血压患者随访服务记录表, 2型糖尿病患者随访服务记录表) ends with one of:

    urgent_referral        紧急转诊      refer at once; follow up within 2 weeks that the patient reached care
    controlled             控制满意      next regular follow-up in 3 months
    not_controlled         控制不满意    first time: a clinician adjusts the medicines; re-visit within 2 weeks
    not_controlled_twice   两次控制不满意 not controlled at this and the previous visit, or an adverse reaction
                                         that is not tolerable, or a new or worse complication: refer; follow
                                         up within 2 weeks

The rules are tried in that order of severity: an urgent sign wins over everything; then a referral
(twice in a row, intolerable adverse reaction, new complication); then the target. A tolerable adverse
reaction is not "controlled" (the table's controlled row asks for no adverse reaction; the standard
sends it to the medication review), so it counts as not controlled.

The flows call :func:`hypertension_visit_class` and :func:`diabetes_visit_class` through the
expression functions ``national_htn_class(...)`` and ``national_dm_class(...)`` (see
``flows.expressions``); this module imports nothing of Careloop's, so the engine stays pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

RULE_PACK = "NBPHS-2017"

URGENT_REFERRAL = "urgent_referral"
CONTROLLED = "controlled"
NOT_CONTROLLED = "not_controlled"
NOT_CONTROLLED_TWICE = "not_controlled_twice"

#: The classification codes, most severe first, with their zh/en labels.
LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    URGENT_REFERRAL: MappingProxyType({"zh": "紧急转诊", "en": "urgent referral"}),
    NOT_CONTROLLED_TWICE: MappingProxyType({
        "zh": "连续两次控制不满意或不良反应、并发症，需转诊",
        "en": "not controlled twice, or adverse reaction or complication: referral",
    }),
    NOT_CONTROLLED: MappingProxyType({"zh": "控制不满意", "en": "not controlled"}),
    CONTROLLED: MappingProxyType({"zh": "控制满意", "en": "controlled"}),
})

#: Days to the next visit of each classification (2 weeks, or the regular 3 months).
NEXT_VISIT_DAYS: Mapping[str, int] = MappingProxyType({
    URGENT_REFERRAL: 14, NOT_CONTROLLED_TWICE: 14, NOT_CONTROLLED: 14, CONTROLLED: 90,
})

#: A previous visit's classification that, with this one not controlled, makes it twice in a row.
_UNCONTROLLED = frozenset({NOT_CONTROLLED, NOT_CONTROLLED_TWICE})

#: The danger symptoms of the hypertension standard (choice keys of the form's symptom question):
#: confusion, severe headache or dizziness, nausea and vomiting, blurred vision or eye pain, chest
#: pain, palpitations, breathlessness.
HTN_DANGER_SYMPTOMS: frozenset[str] = frozenset({
    "confusion", "severe_headache", "nausea_vomiting", "blurred_vision", "chest_pain", "palpitations",
    "breathlessness",
})

#: The danger symptoms of the type-2 diabetes standard: confusion, fruity (acetone) breath, deep fast
#: breathing, fever above 39 °C (a heart rate above 100 is asked as a number).
DM_DANGER_SYMPTOMS: frozenset[str] = frozenset({"confusion", "fruity_breath", "deep_fast_breathing", "high_fever"})

#: Adverse reaction answers of both forms.
ADVERSE_REACTIONS = ("none", "tolerable", "intolerable")


@dataclass(frozen=True)
class Thresholds:
    """The numbers of the standard (mmHg, mmol/L, /min); data, so that a revision changes one place."""

    urgent_sbp: float = 180           # SBP >= 180
    urgent_dbp: float = 110           # DBP >= 110
    target_sbp: float = 140           # controlled: SBP < 140 and DBP < 90
    target_dbp: float = 90
    older_age: int = 65               # aged >= 65: SBP < 150 and DBP < 90
    older_target_sbp: float = 150
    raised_sbp: float = 140           # pregnancy or lactation with BP at or above 140/90 is urgent
    raised_dbp: float = 90
    urgent_glucose_high: float = 16.7  # glucose >= 16.7 mmol/L
    urgent_glucose_low: float = 3.9    # glucose <= 3.9 mmol/L
    target_fpg: float = 7.0            # controlled: FPG < 7.0 mmol/L
    urgent_heart_rate: float = 100     # heart rate > 100 /min (diabetes)


STANDARD = Thresholds()


class ClassificationError(ValueError):
    """An input of the classification is of the wrong kind (a list where a number belongs, ...)."""


def _number(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClassificationError(f"{name} must be a number or None, not {type(value).__name__}")
    return float(value)


def _keys(name: str, value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if not isinstance(value, Iterable) or not all(isinstance(item, str) for item in value):
        raise ClassificationError(f"{name} must be a list of choice keys or None")
    return frozenset(value)


def _adverse(value: object) -> str | None:
    if value is None:
        return None
    if value not in ADVERSE_REACTIONS:
        raise ClassificationError(f"adverse reaction must be one of {', '.join(ADVERSE_REACTIONS)}, not {value!r}")
    return str(value)


def _previous(value: object) -> str | None:
    if value is None or value == "":
        return None
    if value not in LABELS:
        raise ClassificationError(f"the previous classification must be one of {', '.join(LABELS)}, not {value!r}")
    return str(value)


def _urgent_bp(sbp: float | None, dbp: float | None, limits: Thresholds) -> bool:
    return (sbp is not None and sbp >= limits.urgent_sbp) or (dbp is not None and dbp >= limits.urgent_dbp)


def _settle(on_target: bool, adverse: str | None, complication: object, previous: str | None) -> str:
    """The non-urgent classes: referral, then first not controlled, else controlled."""
    if adverse == "intolerable" or complication is True:
        return NOT_CONTROLLED_TWICE
    if on_target and adverse != "tolerable":
        return CONTROLLED
    return NOT_CONTROLLED_TWICE if previous in _UNCONTROLLED else NOT_CONTROLLED


def hypertension_visit_class(
    *, sbp: object, dbp: object, age: object = None, symptoms: object = None, pregnant: object = None,
    adverse: object = None, complication: object = None, previous: object = None,
    limits: Thresholds = STANDARD,
) -> str | None:
    """Classify a hypertension visit (高血压患者健康管理服务规范, NBPHS-2017; clinical-spec.md 10b).

    Urgent referral: SBP >= 180 or DBP >= 110, a danger symptom (:data:`HTN_DANGER_SYMPTOMS`), or
    pregnancy or lactation with BP >= 140/90. Controlled: SBP < 140 and DBP < 90 (aged >= 65: SBP < 150),
    no adverse reaction and no new complication. Returns None when neither an urgent sign nor the
    blood pressure is known (the health manager completes the visit by phone).
    """
    high, low = _number("sbp", sbp), _number("dbp", dbp)
    years = _number("age", age)
    if _urgent_bp(high, low, limits) or _keys("symptoms", symptoms) & HTN_DANGER_SYMPTOMS:
        return URGENT_REFERRAL
    raised = (high is not None and high >= limits.raised_sbp) or (low is not None and low >= limits.raised_dbp)
    if pregnant is True and raised:
        return URGENT_REFERRAL
    if high is None or low is None:
        return None
    target = limits.older_target_sbp if years is not None and years >= limits.older_age else limits.target_sbp
    on_target = high < target and low < limits.target_dbp
    return _settle(on_target, _adverse(adverse), complication, _previous(previous))


def diabetes_visit_class(
    *, glucose: object, sbp: object = None, dbp: object = None, heart_rate: object = None, symptoms: object = None,
    adverse: object = None, complication: object = None, previous: object = None,
    limits: Thresholds = STANDARD,
) -> str | None:
    """Classify a type-2 diabetes visit (2型糖尿病患者健康管理服务规范, NBPHS-2017; clinical-spec.md 10b).

    Urgent referral: glucose >= 16.7 or <= 3.9 mmol/L, SBP >= 180 or DBP >= 110, heart rate > 100,
    or a danger symptom (:data:`DM_DANGER_SYMPTOMS`). Controlled: FPG < 7.0 mmol/L, no adverse
    reaction and no new complication. Returns None when neither an urgent sign nor the glucose is known.
    """
    value = _number("glucose", glucose)
    rate = _number("heart_rate", heart_rate)
    urgent_glucose = value is not None and (value >= limits.urgent_glucose_high or value <= limits.urgent_glucose_low)
    fast_heart = rate is not None and rate > limits.urgent_heart_rate
    if urgent_glucose or fast_heart or _urgent_bp(_number("sbp", sbp), _number("dbp", dbp), limits) \
            or _keys("symptoms", symptoms) & DM_DANGER_SYMPTOMS:
        return URGENT_REFERRAL
    if value is None:
        return None
    return _settle(value < limits.target_fpg, _adverse(adverse), complication, _previous(previous))


def national_htn_class(sbp: object, dbp: object, age: object, symptoms: object, pregnant: object, adverse: object,
                       complication: object, previous: object) -> str | None:
    """The expression function ``national_htn_class(sbp, dbp, age, symptoms, pregnant, adverse, complication,
    previous)``: :func:`hypertension_visit_class` with its arguments in that order."""
    return hypertension_visit_class(sbp=sbp, dbp=dbp, age=age, symptoms=symptoms, pregnant=pregnant,
                                    adverse=adverse, complication=complication, previous=previous)


def national_dm_class(glucose: object, sbp: object, dbp: object, heart_rate: object, symptoms: object,
                      adverse: object, complication: object, previous: object) -> str | None:
    """The expression function ``national_dm_class(glucose, sbp, dbp, heart_rate, symptoms, adverse,
    complication, previous)``: :func:`diabetes_visit_class` with its arguments in that order."""
    return diabetes_visit_class(glucose=glucose, sbp=sbp, dbp=dbp, heart_rate=heart_rate, symptoms=symptoms,
                                adverse=adverse, complication=complication, previous=previous)



def national_next_visit_days(visit_class: object) -> int:
    """The expression function ``national_next_visit_days(visit_class)``: :data:`NEXT_VISIT_DAYS` of a class."""
    if not isinstance(visit_class, str) or visit_class not in NEXT_VISIT_DAYS:
        raise ClassificationError(f"no visit classification {visit_class!r}")
    return NEXT_VISIT_DAYS[visit_class]
