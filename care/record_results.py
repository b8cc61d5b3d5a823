"""The results of a patient's record as staff see and export them: every one, the kept ones included.

Each observation becomes a :class:`RecordedResult`: its date in the patient's time zone, its code
and code system, its name (the indicator table's for a code it knows, else the sender's display
text, else the code), its value as a number or as text, its unit, whether Careloop uses it (a
result kept as it came is shown and exported, but no rule, trend or risk model reads it), and where
it came from. :func:`export_rows` gives the rows of ``careloop export observations``::

    card_no | date       | code  | code_system      | name  | value | unit | used | source
    T000001 | 2024-03-05 | 718-7 | http://loinc.org | 血红蛋白 | 135 | g/L | yes | report:fhir
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from care.clinical.common import Label, Lang
from care.indicator_table import LOINC_SYSTEM, find
from care.indicators import zone_of
from care.models import Observation, Patient
from care.observations import observations_of
from security.audit import Actor, log

EXPORT_HEADER: dict[Lang, tuple[str, ...]] = {
    "en": ("card_no", "date", "code", "code_system", "name", "value", "unit", "used", "source"),
    "zh": ("卡号", "日期", "代码", "代码体系", "名称", "结果", "单位", "参与评估", "来源"),
}
USED: dict[Lang, tuple[str, str]] = {"en": ("yes", "no (kept as it came)"), "zh": ("是", "否（原样保存）")}


@dataclass(frozen=True)
class RecordedResult:
    """One result of the record, as shown and exported."""

    day: date
    code: str
    code_system: str | None
    name: Label
    value: float | str | None
    unit: str
    used: bool
    source: str


def _name(observation: Observation) -> Label:
    indicator = find(observation.code) if observation.recognised or observation.code_system == LOINC_SYSTEM else None
    if indicator is not None:
        return indicator.name
    text = observation.display or observation.code
    return Label(text, text)


def recorded_results(session: Session, patient: Patient) -> list[RecordedResult]:
    """Return every result of the patient's record, oldest first, kept ones included."""
    zone = zone_of(patient)
    found = []
    for observation in observations_of(session, patient, kept_too=True):
        value: float | str | None = observation.value if observation.value is not None else observation.value_text
        found.append(RecordedResult(
            day=observation.effective_at.astimezone(zone).date(), code=observation.code,
            code_system=observation.code_system or (LOINC_SYSTEM if find(observation.code) is not None else None),
            name=_name(observation), value=value, unit=observation.unit, used=observation.recognised,
            source=observation.source,
        ))
    return found


def export_rows(
    session: Session, patients: Iterable[Patient], *, lang: Lang, actor: Actor
) -> Iterator[tuple[object, ...]]:
    """Yield the export's rows (header first), patient by patient; each patient's export is audited."""
    yield EXPORT_HEADER[lang]
    used, kept = USED[lang]
    for patient in patients:
        results = recorded_results(session, patient)
        log(session, actor=actor, action="observation.export", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"results": len(results)})
        for result in results:
            yield (patient.card_no, result.day.isoformat(), result.code, result.code_system or "",
                   result.name.get(lang), result.value, result.unit, used if result.used else kept, result.source)
