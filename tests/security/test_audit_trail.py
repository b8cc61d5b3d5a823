"""The audit trail: what someone with the database (but not the audit key) is shown unable to do unseen.

Each tamper is made in SQL, as an attacker with a copy of the database or a database login would
make it, and ``verify`` must name it with the first sequence number it affects. The chain's head
is also in the anchor file (outside the database), so deleting the whole trail or rolling its head
back is caught too; entries deleted before the worker sealed them are named by the entries their
writer wrote next. The sealer goes on past a bad row and records an incident that stays in the trail.
"""

from __future__ import annotations

import json
import os
import stat
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from security import audit
from security.audit import INCIDENT_ACTION, Actor, AuditChainHead, AuditEntry, AuditKeyError, AuditKeys, Sealing
from security.keys import derive

NURSE = Actor("user", "nurse-1", "10.0.0.8")


def write(db: Session, count: int, *, commit: bool = True) -> list[AuditEntry]:
    """``count`` entries, each committed in a transaction of its own (as requests write them)."""
    entries = []
    for n in range(count):
        entries.append(audit.log(db, actor=NURSE, action="patient.read", resource_type="patient",
                                 resource_id=f"p{n}", patient_id=uuid.uuid4(), details={"n": n}))
        if commit:
            db.commit()
        else:
            db.flush()
    return entries


def seal_all(db: Session, keys: AuditKeys, clock) -> int:
    """What the worker's seal job does: seal, commit (and so anchor)."""
    sealed = audit.seal(db, keys, now=clock.now())
    db.commit()
    return sealed


def sql(db: Session, statement: str, **values: object) -> None:
    db.execute(text(statement), values)
    db.commit()
    db.expire_all()


@pytest.fixture
def keys(db: Session) -> AuditKeys:
    return db.info["audit_keys"]


def test_untouched_trail_verifies_and_is_anchored_outside_the_database(db, keys, clock):
    write(db, 12)
    assert seal_all(db, keys, clock) == 12
    write(db, 3)
    report = audit.verify(db, keys)
    assert report.ok, report.problem
    assert (report.sealed, report.unsealed) == (12, 3)
    anchor = keys.sealing.anchor.path
    assert stat.S_IMODE(os.stat(anchor).st_mode) == 0o600
    last = json.loads(anchor.read_text().splitlines()[-1])
    assert last["seq"] == 12
    assert last["chain"] == db.get(AuditChainHead, 1).chain.hex()


def test_sealing_continues_the_chain_without_gaps(db, keys, clock):
    write(db, 4)
    seal_all(db, keys, clock)
    write(db, 4)
    assert seal_all(db, keys, clock) == 4
    assert audit.verify(db, keys).ok
    assert [e.seq for e in db.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == list(range(1, 9))
    assert len(keys.sealing.anchor.path.read_text().splitlines()) == 2


def test_an_edited_sealed_row_is_named_with_its_sequence_number(db, keys, clock):
    entries = write(db, 6)
    seal_all(db, keys, clock)
    target = entries[3]
    sql(db, "UPDATE audit_log SET action = 'patient.list' WHERE id = :id", id=target.id)
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 4
    assert report.entry_id == target.id
    assert "altered" in (report.problem or "")


def test_a_gap_is_named_with_the_missing_sequence_number(db, keys, clock):
    entries = write(db, 6)
    seal_all(db, keys, clock)
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=entries[2].id)
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 3
    assert "seq 3 was removed" in (report.problem or "")
    assert report.entry_id == entries[3].id


def test_a_truncated_trail_is_named_from_its_first_missing_entry(db, keys, clock):
    entries = write(db, 5)
    seal_all(db, keys, clock)
    sql(db, "DELETE FROM audit_log WHERE id IN (:a, :b)", a=entries[-1].id, b=entries[-2].id)
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 4
    assert "removed" in (report.problem or "")


def test_deleting_every_entry_and_the_head_is_caught_by_the_anchor(db, keys, clock):
    write(db, 5)
    seal_all(db, keys, clock)
    sql(db, "DELETE FROM audit_log")
    sql(db, "DELETE FROM audit_chain_head")
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 1
    assert "every entry was deleted" in (report.problem or "")


def test_a_rolled_back_head_is_caught_by_the_anchor(db, keys, clock):
    write(db, 3)
    seal_all(db, keys, clock)
    old = db.get(AuditChainHead, 1)
    saved = {"seq": old.seq, "chain": old.chain, "sealed_at": old.sealed_at, "mac": old.mac}
    write(db, 4)
    seal_all(db, keys, clock)
    # Remove what was sealed since, and put back the head row as it was then (a valid, older head).
    sql(db, "DELETE FROM audit_log WHERE seq > 3")
    sql(db, "UPDATE audit_chain_head SET seq = :seq, chain = :chain, sealed_at = :sealed_at, mac = :mac", **saved)
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 4
    assert "anchor" in (report.problem or "")
    assert "rolled back" in (report.problem or "")


def test_entries_deleted_while_the_worker_is_down_are_named_by_the_next_entry(db, keys, clock):
    write(db, 3)
    seal_all(db, keys, clock)
    written = write(db, 3)  # the worker is down: these wait for sealing
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=written[-1].id)
    after = write(db, 1)[0]  # the web process goes on writing
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.entry_id == after.id
    assert "missing" in (report.problem or "")
    # The worker comes back: it seals on, records the incident, and verify names the affected entry's seq.
    assert seal_all(db, keys, clock) == 3 + 1
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == db.get(AuditEntry, after.id).seq == 6
    incident = db.scalars(select(AuditEntry).where(AuditEntry.action == INCIDENT_ACTION)).one()
    assert json.loads(incident.details) == {"problem": "previous_missing", "seq": 6}
    assert any("incident recorded by the sealer" in problem.message for problem in report.problems)


def test_a_rolled_back_transaction_leaves_no_gap_and_no_false_alarm(db, keys, clock):
    write(db, 2)
    audit.log(db, actor=NURSE, action="patient.read", resource_type="patient", resource_id="gone")
    db.flush()
    db.rollback()  # that entry never happened: nothing may name it
    write(db, 2)
    assert seal_all(db, keys, clock) == 4
    report = audit.verify(db, keys)
    assert report.ok, report.problem


def test_a_forged_row_is_named_then_sealed_past_with_an_incident(db, keys, clock):
    entries = write(db, 3)
    seal_all(db, keys, clock)
    forged = AuditEntry(
        entry_id=uuid.uuid4(), occurred_at=clock.now(), actor_kind="user", actor_id="intruder",
        action="patient.read", resource_type="patient", resource_id="x", patient_id=None, source=None,
        details="{}", mac=b"\x00" * 32,
    )
    db.add(forged)
    db.commit()
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.entry_id == forged.id
    assert "inserted" in (report.problem or "")
    later = write(db, 2)
    # One bad row does not stop sealing: it takes its place, an incident follows, later rows are sealed.
    assert seal_all(db, keys, clock) == 1 + 2 + 1
    assert entries[-1].seq == 3
    assert db.get(AuditEntry, forged.id).seq == 4
    assert [db.get(AuditEntry, entry.id).seq for entry in later] == [5, 6]
    report = audit.verify(db, keys)
    assert not report.ok
    assert report.first_seq == 4
    assert report.entry_id == forged.id
    messages = "\n".join(problem.message for problem in report.problems)
    assert "incident recorded by the sealer at seq 7" in messages
    # And it stays reported: the next seal has nothing new to say.
    write(db, 1)
    assert seal_all(db, keys, clock) == 1
    assert audit.verify(db, keys).first_seq == 4


def test_a_row_edited_before_sealing_is_sealed_past_and_reported(db, keys, clock):
    entries = write(db, 4)
    sql(db, "UPDATE audit_log SET actor_id = 'someone-else' WHERE id = :id", id=entries[1].id)
    assert seal_all(db, keys, clock) == 4 + 1
    report = audit.verify(db, keys)
    assert report.first_seq == 2
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == INCIDENT_ACTION)) == 1


def test_a_copied_row_is_found(db, keys, clock):
    entries = write(db, 2)
    seal_all(db, keys, clock)
    original = entries[0]
    copy = AuditEntry(
        entry_id=uuid.uuid4(), occurred_at=original.occurred_at, actor_kind=original.actor_kind,
        actor_id=original.actor_id, action=original.action, resource_type=original.resource_type,
        resource_id=original.resource_id, patient_id=original.patient_id, source=original.source,
        details=original.details, prev_entry_id=original.prev_entry_id, mac=original.mac,
    )
    db.add(copy)
    db.commit()
    assert not audit.verify(db, keys).ok


def test_a_sealed_row_given_another_place_is_found(db, keys, clock):
    entries = write(db, 4)
    seal_all(db, keys, clock)
    sql(db, "UPDATE audit_log SET seq = 99 WHERE id = :id", id=entries[1].id)
    report = audit.verify(db, keys)
    assert report.first_seq == 2


def test_an_edited_anchor_line_is_reported(db, keys, clock):
    write(db, 2)
    seal_all(db, keys, clock)
    path = keys.sealing.anchor.path
    line = json.loads(path.read_text())
    line["seq"] = 1
    path.write_text(json.dumps(line) + "\n")
    report = audit.verify(db, keys)
    assert not report.ok
    assert "anchor file" in (report.problem or "")


def test_rechaining_without_the_audit_key_does_not_verify(db, keys, clock, key_ring, tmp_path):
    write(db, 4)
    seal_all(db, keys, clock)
    other = AuditKeys(key_ring, Sealing(os.urandom(32), tmp_path / "other.anchor"))
    assert not audit.verify(db, other).ok


def test_the_master_key_alone_cannot_seal_or_derive_the_chain_key(db, keys, key_ring, clock, audit_secret):
    web = AuditKeys(key_ring)  # what the web process holds
    assert not web.can_seal
    write(db, 1)
    with pytest.raises(AuditKeyError):
        audit.seal(db, web, now=clock.now())
    with pytest.raises(AuditKeyError):
        audit.verify(db, web)
    derived_from_root = {derive(key_ring.root, purpose) for purpose in ("audit-chain", "audit-entry", "audit")}
    assert keys.chain_key not in derived_from_root
    assert keys.chain_key == derive(audit_secret, "audit-chain")


def test_entries_refuse_phi_shaped_details(db):
    with pytest.raises(TypeError):
        audit.log(db, actor=NURSE, action="x", resource_type="patient", details={"nested": {"name": "x"}})
