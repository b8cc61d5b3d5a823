"""A patient's advice lines (饮食/运动/心理健康建议) and the clinician's per-patient edits of them.

The lines come from :func:`care.clinical.advice.advise` over the patient's latest risk results and
lifestyle answers (:data:`LIFESTYLE_FIELDS`: the profile fields that hold them). A clinician may
suppress a line or replace its text for one patient, by line id; locked lines (the crisis line)
can be neither. Every edit is stored (:class:`AdviceOverride`, the text encrypted) and audited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.assessments import latest_risk_results, profile_facts
from care.clinical.advice import AdviceFacts, AdviceResult, LifestyleAnswers, advice_rules, advise
from care.clinical.common import Label
from care.clinical.risk import RiskResult
from care.errors import ConflictError, Problem, ValidationFailedError
from care.indicators import today_of
from care.models import AdviceOverride, Patient
from security.audit import Actor, log
from security.fields import clock_of

#: :class:`LifestyleAnswers` field -> the profile field that holds it (the intake flow's names first).
LIFESTYLE_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "moderate_minutes_per_week": ("weekly_moderate_minutes", "moderate_minutes_per_week"),
    "vigorous_minutes_per_week": ("weekly_vigorous_minutes", "vigorous_minutes_per_week"),
    "salt_g_per_day": ("salt_g_per_day",),
    "oil_g_per_day": ("oil_g_per_day",),
    "alcohol_g_per_day": ("alcohol_g_per_day",),
})
MAX_TEXT = 500


def lifestyle_answers(session: Session, patient: Patient) -> LifestyleAnswers:
    """Return the patient's lifestyle answers from the profile (an answer of the wrong type is left out)."""
    facts = profile_facts(patient)
    numbers: dict[str, float] = {}
    for name, sources in LIFESTYLE_FIELDS.items():
        for source in sources:
            value = facts.get(source)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                numbers[name] = float(value)
                break
    smoker = facts.get("smoker")
    return LifestyleAnswers(
        smoker=smoker if isinstance(smoker, bool) else None,
        age=patient.age_on(today_of(session, patient)),
        **numbers,
    )


def advice_overrides(session: Session, patient: Patient) -> list[AdviceOverride]:
    """Return the clinician's edits for the patient, by line id."""
    found = session.scalars(select(AdviceOverride).where(AdviceOverride.patient_id == patient.id))
    return sorted(found, key=lambda override: override.line_id or "")


def patient_advice(
    session: Session, patient: Patient, *, results: Sequence[RiskResult] | None = None
) -> AdviceResult:
    """Return the advice for the patient now: from the latest risk results, the answers and the clinician's edits."""
    found = latest_risk_results(session, patient) if results is None else results
    facts = AdviceFacts.from_results(found, lifestyle_answers(session, patient))
    suppressed: set[str] = set()
    texts: dict[str, Label] = {}
    for override in advice_overrides(session, patient):
        line_id = override.line_id or ""
        if override.suppressed:
            suppressed.add(line_id)
        text = override.text
        if isinstance(text, dict) and text.get("zh") and text.get("en"):
            texts[line_id] = Label(str(text["zh"]), str(text["en"]))
    return advise(facts, suppressed=suppressed, overrides=texts)


def _editable(line_id: str) -> None:
    rule = advice_rules().rule(line_id)
    if rule is None:
        raise ValidationFailedError([Problem("line_id", f"{line_id!r} is not an advice line")])
    if rule.locked:
        raise ConflictError(f"advice line {line_id} is locked (safety): it cannot be suppressed or edited")


def _override(session: Session, patient: Patient, line_id: str, actor: Actor) -> AdviceOverride:
    found = session.scalars(
        select(AdviceOverride).where(AdviceOverride.patient_id == patient.id,
                                     AdviceOverride.line_id.matches(session, line_id, owner_id=patient.id))
    ).one_or_none()
    now = clock_of(session).now()
    if found is None:
        found = AdviceOverride(patient_id=patient.id, line_id=line_id, suppressed=False, created_at=now)
        session.add(found)
    found.updated_by = actor.id[:64]
    found.updated_at = now
    return found


def suppress_advice_line(session: Session, patient: Patient, line_id: str, *, actor: Actor) -> AdviceOverride:
    """Stop giving line ``line_id`` to this patient.

    Raises:
        ValidationFailedError: no such line.
        ConflictError: the line is locked.
    """
    _editable(line_id)
    override = _override(session, patient, line_id, actor)
    override.suppressed = True
    log(session, actor=actor, action="advice.suppress", resource_type="advice_override", resource_id=override.id,
        patient_id=patient.id)
    return override


def edit_advice_line(session: Session, patient: Patient, line_id: str, text: Label, *, actor: Actor) -> AdviceOverride:
    """Give this patient ``text`` (zh and en) instead of line ``line_id``'s own text.

    Raises:
        ValidationFailedError: no such line, or a text missing or longer than 500 characters.
        ConflictError: the line is locked.
    """
    _editable(line_id)
    problems = [
        Problem(f"text.{lang}", f"is required and at most {MAX_TEXT} characters")
        for lang, value in (("zh", text.zh), ("en", text.en))
        if not value.strip() or len(value) > MAX_TEXT
    ]
    if problems:
        raise ValidationFailedError(problems)
    override = _override(session, patient, line_id, actor)
    override.text = {"zh": text.zh.strip(), "en": text.en.strip()}
    log(session, actor=actor, action="advice.edit", resource_type="advice_override", resource_id=override.id,
        patient_id=patient.id)
    return override


def restore_advice_line(session: Session, patient: Patient, line_id: str, *, actor: Actor) -> bool:
    """Undo the clinician's edits of line ``line_id`` for this patient; False when there were none."""
    found = session.scalars(
        select(AdviceOverride).where(AdviceOverride.patient_id == patient.id,
                                     AdviceOverride.line_id.matches(session, line_id, owner_id=patient.id))
    ).one_or_none()
    if found is None:
        return False
    session.delete(found)
    log(session, actor=actor, action="advice.restore", resource_type="advice_override", resource_id=found.id,
        patient_id=patient.id)
    return True
