"""A turn's rows are collected in its scene and written once, by one batched writer."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from bot.models import ConversationMessage, Direction
from bot.turns.effects import log_message
from bot.turns.scene import Scene, table_of, write_scenes
from care.models import FlowResult, Patient, StaffTask
from care.results import result_audit, result_record
from care.tags import add_tag
from security.audit import AuditEntry
from security.dialects import Guard, GuardFailedError
from tests.conftest import TEST_ACTOR


def _count(db: Session, model: type, patient: Patient) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.patient_id == patient.id)) or 0)


def _writes(statements: list[str]) -> list[str]:
    return [found.group(1) for statement in statements
            for found in re.finditer(r"\b(INSERT INTO \S+|UPDATE \S+ SET)", statement)]


def _say(scene: Scene, text_: str) -> None:
    log_message(scene, conversation_id=None, channel="console", direction=Direction.OUT, text=text_)


def test_rows_of_a_scene_are_sealed_and_read_back_as_the_objects_the_services_write(db, make_patient):
    patient = make_patient()
    scene = Scene.of(db, patient.id)
    record = result_record(patient.id, flow_id="phq9", flow_version=1, name="phq9_q9", value=3,
                           category="nearly_every_day", label="几乎每天", now=scene.now)
    scene.add(FlowResult, record)
    scene.audit(actor=TEST_ACTOR, **result_audit(record))
    scene.write()
    stored = db.get(FlowResult, record["id"])
    assert stored is not None
    assert (stored.value, stored.category, stored.label) == (3, "nearly_every_day", "几乎每天")
    raw = db.execute(text("SELECT category FROM flow_results WHERE id = :id"),
                     {"id": record["id"] if db.get_bind().dialect.name == "postgresql" else record["id"].hex}).scalar()
    assert raw is not None
    assert b"nearly_every_day" not in bytes(raw)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.resource_id == str(record["id"]))).one()
    assert db.info["audit_keys"].entry_mac(entry) == entry.mac


def test_one_scene_per_patient_in_a_unit_of_work_and_each_table_written_once(db, make_patient, statements):
    patient = make_patient()
    db.flush()
    first, again = Scene.of(db, patient.id), Scene.of(db, patient.id)
    assert first is again
    for line in ("一", "二", "三"):
        _say(first, line)
    statements.clear()
    write_scenes(db)
    assert _writes(statements).count("INSERT INTO conversation_messages") == 1
    assert _count(db, ConversationMessage, patient) == 3
    assert Scene.of(db, patient.id) is not first  # a written scene ends; the next turn begins afresh


def test_the_entries_the_services_added_join_the_scenes_audit_rows(db, make_patient, statements):
    patient = make_patient()
    db.flush()
    scene = Scene.of(db, patient.id)
    add_tag(db, patient, "hypertension", source="test", actor=TEST_ACTOR)  # an object and its audit entry
    record = result_record(patient.id, flow_id="f", flow_version=1, name="n", value=1, category=None, now=scene.now)
    scene.add(FlowResult, record)
    scene.audit(actor=TEST_ACTOR, **result_audit(record))
    statements.clear()
    scene.write()
    assert _writes(statements).count("INSERT INTO audit_log") == 1
    actions = set(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id)))
    assert {"tag.add", "result.save"} <= actions


def test_updates_of_one_row_in_a_scene_are_merged_into_one_write(db, make_patient, statements):
    patient = make_patient()
    db.flush()
    task = StaffTask(patient_id=patient.id, kind="k", priority="normal", status="open", reason="r", details={},
                     created_at=Scene.of(db, patient.id).now)
    db.add(task)
    db.flush()
    scene = Scene.of(db, patient.id)
    scene.update(StaffTask, task.id, {"status": "acknowledged"})
    scene.update(StaffTask, task.id, {"reason": "电话随访"})
    statements.clear()
    scene.write()
    assert _writes(statements).count("UPDATE staff_tasks SET") == 1
    db.expire_all()
    stored = db.get(StaffTask, task.id)
    assert stored is not None
    assert (stored.status, stored.reason) == ("acknowledged", "电话随访")


def test_a_scene_not_written_by_its_turn_is_written_at_commit_and_forgotten_at_rollback(runtime, make_patient, db):
    patient = make_patient()
    db.commit()
    with runtime.db.unit_of_work() as session:
        _say(Scene.of(session, patient.id), "提交时写入")
    session = runtime.db.sessions()
    try:
        _say(Scene.of(session, patient.id), "回滚后不留")
        session.rollback()
        _say(Scene.of(session, patient.id), "新的一轮")
        session.commit()
    finally:
        session.close()
    texts = {row.text for row in db.scalars(select(ConversationMessage)
                                               .where(ConversationMessage.patient_id == patient.id))}
    assert texts == {"提交时写入", "新的一轮"}


def test_a_guarded_write_whose_row_changed_keeps_nothing(db, make_patient):
    patient = make_patient()
    db.flush()
    task = StaffTask(patient_id=patient.id, kind="k", priority="normal", status="done", reason="r", details={},
                     created_at=Scene.of(db, patient.id).now)
    db.add(task)
    db.flush()
    scene = Scene.of(db, patient.id)
    _say(scene, "不该留下")
    scene.update(StaffTask, task.id, {"status": "acknowledged"})
    still_open = Guard(table_of(StaffTask).c.status == bindparam("seen_status"), {"seen_status": "open"})
    savepoint = db.begin_nested()
    with pytest.raises(GuardFailedError):
        scene.write(guard=still_open)
    savepoint.rollback()
    assert _count(db, ConversationMessage, patient) == 0
    db.expire_all()
    assert db.get(StaffTask, task.id).status == "done"


def test_a_write_of_nothing_sends_no_statement(db, make_patient, statements: list[str]):
    patient: Patient = make_patient()
    db.flush()
    statements.clear()
    Scene.of(db, patient.id).write()
    assert _writes(statements) == []



def test_an_update_of_several_rows_at_once_is_refused(db):
    from security.dialects import TableRows, write_batch

    rows = [{"id": uuid4(), "status": "done"}, {"id": uuid4(), "status": "done"}]
    with pytest.raises(ValueError, match="one row"):
        write_batch(db.connection(), [TableRows(table_of(StaffTask), rows, update=True)])


def test_a_plain_row_gives_each_change_once_and_a_guarded_one_is_checked_even_unchanged(db, make_patient):
    from datetime import UTC, datetime

    from bot.models import ConversationSession
    from bot.turns.context import ConversationRow

    patient = make_patient()
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    stored = ConversationSession(patient_id=patient.id, active_patient_id=patient.id, flow_id="phq9", flow_version=2,
                                 lang="zh", channel="console", status="waiting", state={"at": "q1"}, facts={},
                                 started_at=now, updated_at=now)
    db.add(stored)
    db.flush()
    row = ConversationRow(id=stored.id, patient_id=patient.id, active_patient_id=patient.id, flow_id="phq9",
                          flow_version=2, lang="zh", channel="console", status="waiting", state={"at": "q1"},
                          facts={}, next_timer_at=None, expires_at=None, end_status=None, followup_id=None,
                          call_sid=None, started_at=now, updated_at=now, ended_at=None)
    assert row.take_changes() == {}
    row.state = {"at": "q1"}  # equal: no change
    row.state = {"at": "q2"}
    row.channel = "sms"
    assert row.take_changes() == {"channel": "sms", "state": {"at": "q2"}}
    assert row.take_changes() == {}
    scene = Scene.of(db, patient.id)
    scene.track(row, guard=Guard(text("1 = 0"), {}))  # a guard that never holds
    with pytest.raises(GuardFailedError):
        scene.write()  # nothing changed, and the guard was checked all the same
