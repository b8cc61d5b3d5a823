"""Recording and reading observations (results, readings, scores).

A reading that is a red flag opens an urgent staff task when it is recorded, once per reading:
today a glucose below 3.9 mmol/L (低血糖 level 1) or below 3.0 (level 2), any glucose code, fasting
or not (中国2型糖尿病防治指南2020年版; clinical-spec.md 7.3). :func:`record_observation` does it
for every observation it records (chat, demo); a writer that inserts observation rows in bulk (the
report importer) calls :func:`open_red_flag_tasks` with the readings it wrote.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.clinical.ranges import Classification, hypoglycaemia
from care.errors import Problem, ValidationFailedError
from care.models import Observation, Patient, StaffTask, TaskPriority
from care.reevaluation import request_at_commit
from care.tasks import task_audit, task_record
from security.audit import Actor, log
from security.fields import clock_of


def observation_record(
    patient_id: uuid.UUID,
    *,
    code: str,
    value: float | None,
    unit: str,
    effective_at: datetime,
    source: str,
    source_ref: str | None = None,
    value_text: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """A new :class:`Observation`'s attribute values (its id made here), checked.

    Raises:
        ValidationFailedError: the code, value or time cannot be recorded.
    """
    problems = []
    if not code or len(code) > 32:
        problems.append(Problem("code", "must be a LOINC code or short code of at most 32 characters"))
    if value is None and not value_text:
        problems.append(Problem("value", "is required"))
    if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
        problems.append(Problem("value", "must be a finite number"))
    if effective_at.tzinfo is None:
        problems.append(Problem("effective_at", "must carry a time zone"))
    if problems:
        raise ValidationFailedError(problems)
    return {"id": uuid.uuid4(), "patient_id": patient_id, "code": code, "value": value, "value_text": value_text,
            "unit": unit, "effective_at": effective_at, "source": source, "source_ref": source_ref,
            "recorded_at": now, "recognised": True}


def observation_audit(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a new observation (its code and source, never the value)."""
    return {"action": "observation.create", "resource_type": "observation", "resource_id": record["id"],
            "patient_id": record["patient_id"], "details": {"code": record["code"], "source": record["source"]}}


def record_observation(
    session: Session,
    patient: Patient,
    *,
    code: str,
    value: float | None,
    unit: str,
    effective_at: datetime,
    source: str,
    actor: Actor,
    source_ref: str | None = None,
    value_text: str | None = None,
    audit: bool = True,
) -> Observation:
    """Add one observation to the patient's record (the value is encrypted under the patient's key)."""
    record = observation_record(patient.id, code=code, value=value, unit=unit, effective_at=effective_at,
                                source=source, source_ref=source_ref, value_text=value_text,
                                now=clock_of(session).now())
    observation = Observation(patient=patient, **record)
    session.add(observation)
    if audit:
        log(session, actor=actor, **observation_audit(record))
    open_red_flag_tasks(session, [Reading.of(record)], actor=actor)
    request_at_commit(session, patient.id, reason="reading")
    return observation


#: The kind of the staff task a red-flag reading opens.
RED_FLAG_TASK = "reading_red_flag"

#: The staff note of each red-flag category (no value in it: the task's title and note are shown
#: on the queue; the reading itself is in the record).
_RED_FLAG_NOTES: Mapping[str, Mapping[str, str]] = {
    "hypoglycaemia_level1": {
        "zh": "低血糖1级：血糖低于3.9 mmol/L（中国2型糖尿病防治指南2020年版）。请立即联系患者，评估用药。",
        "en": "Hypoglycaemia level 1: glucose below 3.9 mmol/L (Chinese type 2 diabetes guideline 2020). "
        "Contact the patient now and review the medicines.",
    },
    "hypoglycaemia_level2": {
        "zh": "低血糖2级：血糖低于3.0 mmol/L（中国2型糖尿病防治指南2020年版）。请立即联系患者。",
        "en": "Hypoglycaemia level 2: glucose below 3.0 mmol/L (Chinese type 2 diabetes guideline 2020). "
        "Contact the patient now.",
    },
}


@dataclass(frozen=True)
class Reading:
    """What the red-flag rules read of one recorded observation (the value in its recorded unit)."""

    observation_id: uuid.UUID
    patient_id: uuid.UUID
    code: str
    value: float | None
    unit: str
    effective_at: datetime
    source: str
    source_ref: str | None = None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Reading:
        """The reading of an observation row as :func:`observation_record` builds it."""
        return cls(observation_id=record["id"], patient_id=record["patient_id"], code=record["code"],
                   value=record["value"], unit=record["unit"], effective_at=record["effective_at"],
                   source=record["source"], source_ref=record.get("source_ref"))

    def key(self) -> str:
        """The reading's identity (``reading:`` + 40 hex digits), the same when it is recorded again.

        Code, time, source and source reference, never the value: a re-imported report (whose
        observations get new ids) or a repeated delivery names the same reading.
        """
        moment = self.effective_at.astimezone(UTC).isoformat()
        text = "|".join((str(self.patient_id), self.code, moment, self.source, self.source_ref or ""))
        return "reading:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def red_flag_of(code: str, value: float | None, unit: str) -> Classification | None:
    """Return the red-flag category of a reading (低血糖 level 1 or 2), or None."""
    if value is None:
        return None
    return hypoglycaemia(code, value, unit)


def red_flag_tasks(session: Session, readings: Iterable[Reading]) -> list[dict[str, Any]]:
    """The urgent staff tasks (records, see :func:`care.tasks.task_record`) that red-flag ``readings`` open.

    One per red-flag reading that has none yet, never a second for the same reading (also within
    ``readings``). Only red-flag readings cost a query; nothing is written here.
    """
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for reading in readings:
        found = red_flag_of(reading.code, reading.value, reading.unit)
        if found is None:
            continue
        key = reading.key()
        if key in seen:
            continue
        seen.add(key)
        # Red flags are rare: this query may flush what the unit of work holds (a task opened earlier in it).
        exists = session.scalar(select(StaffTask.id).where(
            StaffTask.patient_id == reading.patient_id, StaffTask.kind == RED_FLAG_TASK,
            StaffTask.source_ref == key).limit(1))
        if exists is not None:
            continue
        records.append(task_record(
            reading.patient_id, kind=RED_FLAG_TASK, priority=TaskPriority.URGENT.value, reason=found.key,
            details={"note": dict(_RED_FLAG_NOTES[found.key]), "category": found.key, "rule_pack": found.rule_pack,
                     "observation_id": str(reading.observation_id), "code": reading.code, "source": reading.source},
            source_ref=key, now=clock_of(session).now()))
    return records


def open_red_flag_tasks(session: Session, readings: Iterable[Reading], *, actor: Actor) -> list[StaffTask]:
    """Open one urgent staff task for each red-flag reading (see :func:`red_flag_tasks`); the caller commits."""
    opened: list[StaffTask] = []
    for record in red_flag_tasks(session, readings):
        task = StaffTask(**record)
        session.add(task)
        log(session, actor=actor, **task_audit(record))
        opened.append(task)
    return opened


def observations_of(
    session: Session, patient: Patient, codes: Iterable[str] | None = None, *, kept_too: bool = False
) -> list[Observation]:
    """The patient's observations, oldest first (optionally only some codes).

    Results kept as they came (``recognised`` False: a code outside the indicator table, a value
    its indicator does not take) are left out unless ``kept_too``: whatever computes on the record
    (trends, risk, rules) never sees them; the record's display and exports ask for them.
    """
    query = select(Observation).where(Observation.patient_id == patient.id)
    if not kept_too:
        query = query.where(Observation.recognised.is_(True))
    if codes is not None:
        query = query.where(Observation.code.in_(list(codes)))
    return list(session.scalars(query.order_by(Observation.effective_at, Observation.recorded_at)))


def latest_values(session: Session, patient: Patient) -> dict[str, Observation]:
    """The newest recognised observation of each code (one query; only those rows are read and decrypted).

    What flows and rules see of the record: results kept as they came are left out.
    """
    return latest_values_of(session, [patient.id]).get(patient.id, {})


def latest_values_of(session: Session, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Observation]]:
    """:func:`latest_values` of each of these patients, in one query (a chunk of a rule's bulk run)."""
    newest_first = func.row_number().over(
        partition_by=(Observation.patient_id, Observation.code),
        order_by=(Observation.effective_at.desc(), Observation.recorded_at.desc()),
    )
    ranked = (
        select(Observation.id, newest_first.label("rank"))
        .where(Observation.patient_id.in_(list(patient_ids)), Observation.recognised.is_(True)).subquery()
    )
    query = select(Observation).join(ranked, Observation.id == ranked.c.id).where(ranked.c.rank == 1)
    found: dict[uuid.UUID, dict[str, Observation]] = {}
    for observation in session.scalars(query):
        found.setdefault(observation.patient_id, {})[observation.code] = observation
    return found
