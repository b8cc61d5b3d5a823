"""A low glucose opens one urgent staff task when it is recorded (clinical-spec.md 7.3; issue 13 item 3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from care.models import Observation, Patient, StaffTask
from care.observations import RED_FLAG_TASK, Reading, open_red_flag_tasks, record_observation
from care.tasks import open_tasks
from tests.conftest import TEST_ACTOR

WHEN = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)


def tasks_of(db: Session, patient: Patient) -> list[StaffTask]:
    return list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))


def record(db: Session, patient: Patient, code: str, value: float, unit: str = "mmol/L", *,
           source: str = "flow:home_monitoring", source_ref: str | None = "conversation-1",
           when: datetime = WHEN) -> Observation:  # fmt: skip
    observation = record_observation(db, patient, code=code, value=value, unit=unit, effective_at=when,
                                     source=source, source_ref=source_ref, actor=TEST_ACTOR)  # fmt: skip
    db.flush()
    return observation


@pytest.mark.parametrize(
    ("code", "value", "unit", "reason"),
    [
        ("14771-0", 2.5, "mmol/L", "hypoglycaemia_level2"),
        ("14771-0", 2.9, "mmol/L", "hypoglycaemia_level2"),
        ("14771-0", 3.0, "mmol/L", "hypoglycaemia_level1"),
        ("14771-0", 3.8, "mmol/L", "hypoglycaemia_level1"),
        ("1558-6", 50, "mg/dL", "hypoglycaemia_level2"),
        ("2345-7", 60, "mg/dL", "hypoglycaemia_level1"),
        ("fpg", 3.5, "mmol/L", "hypoglycaemia_level1"),
    ],
)
def test_a_hypoglycaemic_reading_opens_an_urgent_task(
    db: Session, make_patient: Callable[..., Patient], code: str, value: float, unit: str, reason: str
) -> None:
    patient = make_patient()
    observation = record(db, patient, code, value, unit)
    (task,) = tasks_of(db, patient)
    assert (task.kind, task.priority, task.status, task.reason) == (RED_FLAG_TASK, "urgent", "open", reason)
    assert task.details["observation_id"] == str(observation.id)
    assert task.details["category"] == reason
    assert task.details["note"]["zh"].startswith("低血糖")
    assert task.details["note"]["en"].startswith("Hypoglycaemia level")
    assert open_tasks(db)[0].id == task.id  # urgent first on the queue


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [("14771-0", 3.9, "mmol/L"), ("14771-0", 6.2, "mmol/L"), ("1558-6", 70, "mg/dL"), ("8480-6", 2.5, "mmHg"),
     ("4548-4", 2.5, "%"), ("14771-0", 0.5, "mmol/L")],
)  # fmt: skip
def test_other_readings_open_no_task(
    db: Session, make_patient: Callable[..., Patient], code: str, value: float, unit: str
) -> None:
    patient = make_patient()
    record(db, patient, code, value, unit)
    assert tasks_of(db, patient) == []


def test_the_task_names_no_value(db: Session, make_patient: Callable[..., Patient]) -> None:
    """The title (reason) is a category key, the note says the threshold: no PHI beyond the patient it concerns."""
    patient = make_patient()
    record(db, patient, "14771-0", 2.7)
    (task,) = tasks_of(db, patient)
    assert task.reason == "hypoglycaemia_level2"
    shown = task.reason + task.details["note"]["zh"] + task.details["note"]["en"]
    assert "2.7" not in shown
    assert patient.name not in shown
    assert (patient.card_no or "-") not in shown


def test_once_per_reading(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    record(db, patient, "14771-0", 2.5)
    record(db, patient, "14771-0", 2.5)  # the same reading recorded again (same code, time, source)
    assert len(tasks_of(db, patient)) == 1
    record(db, patient, "14771-0", 3.2, when=WHEN + timedelta(days=1))  # another reading
    record(db, patient, "14771-0", 3.2, source_ref="conversation-2")  # another conversation
    assert [task.reason for task in tasks_of(db, patient)].count("hypoglycaemia_level1") == 2
    assert len(tasks_of(db, patient)) == 3


def test_readings_written_in_bulk_open_their_tasks_once(db: Session, make_patient: Callable[..., Patient]) -> None:
    """The call a bulk writer (the report importer) makes after inserting its rows; a re-import is the same reading."""
    first, second = make_patient(), make_patient()
    report = str(uuid.uuid4())

    def rows(patient: Patient, values: list[float]) -> list[Reading]:
        return [Reading(observation_id=uuid.uuid4(), patient_id=patient.id, code=code, value=value, unit="mmol/L",
                        effective_at=WHEN, source="report:csv", source_ref=report)
                for code, value in zip(["14771-0", "14647-2"], values, strict=True)]  # fmt: skip

    readings = [*rows(first, [2.4, 5.0]), *rows(second, [5.0, 5.0])]
    opened = open_red_flag_tasks(db, readings, actor=TEST_ACTOR)
    db.flush()
    assert [(task.patient_id, task.reason) for task in opened] == [(first.id, "hypoglycaemia_level2")]
    again = open_red_flag_tasks(db, rows(first, [2.4, 5.0]), actor=TEST_ACTOR)  # new row ids, same reading
    db.flush()
    assert again == []
    assert len(tasks_of(db, first)) == 1
    assert tasks_of(db, second) == []


def test_an_unflushed_task_counts_for_the_same_reading(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    reading = Reading(observation_id=uuid.uuid4(), patient_id=patient.id, code="14771-0", value=2.0, unit="mmol/L",
                      effective_at=WHEN, source="report:fhir", source_ref="r1")  # fmt: skip
    assert len(open_red_flag_tasks(db, [reading, reading], actor=TEST_ACTOR)) == 1


# --- assessments from the record check plausibility and populations too --------------------------------


def test_a_reversed_pair_in_the_record_is_stored_as_implausible_not_graded(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    from datetime import date

    from care.assessments import assess_risks, latest_risk_results

    patient = make_patient(birth_date=date(1960, 5, 17))
    record(db, patient, "8480-6", 80, "mmHg", source="checkup", source_ref="r1")
    record(db, patient, "8462-4", 120, "mmHg", source="checkup", source_ref="r1")
    record(db, patient, "14771-0", 2.5, source="checkup", source_ref="r1")
    rows = {row.model: row for row in assess_risks(db, patient, actor=TEST_ACTOR, on=date(2026, 11, 29))}
    db.flush()
    assert rows["bp"].value is None
    assert rows["bp"].category == "implausible"
    assert rows["fpg"].category == "hypoglycaemia_level2"
    stored = {result.model: result for result in latest_risk_results(db, patient)}
    assert stored["bp"].category == "implausible"
    assert stored["bp"].to_dict()["category"] is None


def test_a_childs_questionnaire_is_out_of_range_but_keeps_the_safety_flag() -> None:
    from care.clinical.risk import evaluate

    result = evaluate("phq9", {"items": [0, 0, 0, 0, 0, 0, 0, 0, 1], "age": 11})
    assert (result.value, result.category) == (None, "out_of_range")
    assert "suicide_risk" in result.flags
    assert evaluate("phq9", {"items": [0, 0, 0, 0, 0, 0, 0, 0, 1], "age": 12}).value == 1
