"""The follow-up export (care.followups.export_rows): every record with its answers, read per chunk, not per row."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.followups import export_rows, schedule_followup
from care.models import FlowResult, FollowUp
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR


def _followups_with_answers(db: Session, make_patient, clock: FixedClock, patients: int, each: int) -> list[FollowUp]:
    made = []
    for _ in range(patients):
        patient = make_patient()
        for number in range(each):
            followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now() + timedelta(days=number),
                                         actor=TEST_ACTOR)
            followup.session_id = uuid.uuid4()
            db.add(FlowResult(patient_id=patient.id, session_id=followup.session_id, flow_id="phq9", flow_version=2,
                              name="q1", value="2", label=f"=cmd|{number}", recorded_at=clock.now()))
            made.append(followup)
    db.flush()
    return made


def test_each_record_carries_its_own_answers_and_no_cell_runs_as_a_formula(db: Session, make_patient, clock):
    followups = _followups_with_answers(db, make_patient, clock, patients=3, each=2)
    header, *rows = list(export_rows(db, followups, lang="en", actor=TEST_ACTOR))
    assert header[0]
    assert len(rows) == 6
    for row, followup in zip(rows, followups, strict=True):
        number = int(followup.due_at.date().toordinal() - clock.now().date().toordinal())
        assert str(row[-1]).endswith(f"q1==cmd|{number}")
        assert not str(row[-1]).startswith("=")


def test_the_queries_do_not_grow_with_the_records(db: Session, make_patient, clock, statements: list[str]):
    few = [followup.id for followup in _followups_with_answers(db, make_patient, clock, patients=2, each=2)]
    many = [followup.id for followup in _followups_with_answers(db, make_patient, clock, patients=10, each=4)]

    def exported(ids: list[uuid.UUID]) -> int:
        db.expunge_all()  # nothing of theirs loaded: the export reads it, as the CLI's streamed query hands it over
        statements.clear()
        followups = db.scalars(select(FollowUp).where(FollowUp.id.in_(ids)).order_by(FollowUp.due_at, FollowUp.id))
        rows = list(export_rows(db, followups, lang="zh", actor=TEST_ACTOR))
        assert len(rows) == len(ids) + 1
        return len([statement for statement in statements if statement.lstrip().upper().startswith("SELECT")])

    assert exported(many) <= exported(few) + 1  # a data key look-up more at most, not a query per follow-up
