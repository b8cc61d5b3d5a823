"""The audit trail: sealed into a keyed chain; any UPDATE, DELETE or INSERT made in SQL is found."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from security import audit
from security.audit import Actor, AuditEntry, AuditKeys
from security.keys import KeyRing

NURSE = Actor("user", "nurse-1", "10.0.0.8")


def write(db: Session, count: int) -> list[AuditEntry]:
    entries = [
        audit.log(db, actor=NURSE, action="patient.read", resource_type="patient", resource_id=f"p{n}",
                  patient_id=uuid.uuid4(), details={"n": n})
        for n in range(count)
    ]
    db.flush()
    return entries


def seal_all(db: Session, keys: AuditKeys, clock) -> int:
    return audit.seal(db, keys, now=clock.now())


@pytest.fixture
def keys(db: Session) -> AuditKeys:
    return db.info["audit_keys"]


def test_untouched_trail_verifies(db, keys, clock):
    write(db, 12)
    assert seal_all(db, keys, clock) == 12
    write(db, 3)
    report = audit.verify(db, keys)
    assert report.ok, report.problem
    assert (report.sealed, report.unsealed) == (12, 3)


def test_sealing_continues_the_chain(db, keys, clock):
    write(db, 4)
    seal_all(db, keys, clock)
    write(db, 4)
    assert seal_all(db, keys, clock) == 4
    assert audit.verify(db, keys).ok
    assert [e.seq for e in db.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == list(range(1, 9))


def test_an_update_in_sql_is_found_and_named(db, keys, clock):
    entries = write(db, 6)
    seal_all(db, keys, clock)
    target = entries[3]
    db.execute(text("UPDATE audit_log SET action = 'patient.list' WHERE id = :id"), {"id": target.id})
    db.expire_all()
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.entry_id == target.id
    assert f"entry id {target.id}" in (report.problem or "")
    assert "altered" in (report.problem or "")


def test_a_delete_in_sql_is_found(db, keys, clock):
    entries = write(db, 6)
    seal_all(db, keys, clock)
    db.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": entries[2].id})
    db.expire_all()
    report = audit.verify(db, keys)
    assert not report.ok
    assert "removed" in (report.problem or "")
    assert report.entry_id == entries[3].id


def test_removing_the_newest_entries_is_found(db, keys, clock):
    entries = write(db, 5)
    seal_all(db, keys, clock)
    db.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": entries[-1].id})
    db.expire_all()
    report = audit.verify(db, keys)
    assert not report.ok
    assert "removed" in (report.problem or "")


def test_an_insert_in_sql_is_found_and_named(db, keys, clock):
    entries = write(db, 3)
    seal_all(db, keys, clock)
    forged = AuditEntry(
        entry_id=uuid.uuid4(), occurred_at=clock.now(), actor_kind="user", actor_id="intruder",
        action="patient.read", resource_type="patient", resource_id="x", patient_id=None, source=None,
        details="{}", mac=b"\x00" * 32,
    )
    db.add(forged)
    db.flush()
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.entry_id == forged.id
    assert "inserted" in (report.problem or "")
    # A forged row is never given a place in the chain.
    assert seal_all(db, keys, clock) == 0
    assert entries[-1].seq == 3


def test_a_copied_row_is_found(db, keys, clock):
    entries = write(db, 2)
    seal_all(db, keys, clock)
    original = entries[0]
    copy = AuditEntry(
        entry_id=uuid.uuid4(), occurred_at=original.occurred_at, actor_kind=original.actor_kind,
        actor_id=original.actor_id, action=original.action, resource_type=original.resource_type,
        resource_id=original.resource_id, patient_id=original.patient_id, source=original.source,
        details=original.details, mac=original.mac,
    )
    db.add(copy)
    db.flush()
    assert not audit.verify(db, keys).ok


def test_rechaining_without_the_key_does_not_verify(db, keys, clock):
    write(db, 4)
    seal_all(db, keys, clock)
    other_keys = AuditKeys(KeyRing.generate())
    assert not audit.verify(db, other_keys).ok


def test_entries_refuse_phi_shaped_details(db):
    with pytest.raises(TypeError):
        audit.log(db, actor=NURSE, action="x", resource_type="patient", details={"nested": {"name": "x"}})
