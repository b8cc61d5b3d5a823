"""The audit trail as the processes meet it: who holds the audit key, concurrent writers and sealers,
and ``careloop audit verify`` naming a tamper made on the committed database."""

from __future__ import annotations

import os
import stat
import threading
import uuid

from sqlalchemy import select, text

from careloop.app import create_app
from careloop.runtime import build_runtime
from careloop.worker import seal_audit_batch
from security import audit
from security.audit import Actor, AuditEntry

NURSE = Actor("user", "nurse-1", "10.0.0.8")


def entries(runtime, count: int) -> None:
    for n in range(count):
        with runtime.db.unit_of_work() as session:
            audit.log(session, actor=NURSE, action="patient.read", resource_type="patient", resource_id=f"p{n}")


def test_init_makes_a_private_audit_key_that_only_the_sealing_processes_open(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    audit_key = fresh_settings.audit_key_path
    assert stat.S_IMODE(os.stat(audit_key).st_mode) == 0o600
    web = create_app(fresh_settings).extensions["careloop"]
    assert not web.db.audit_keys.can_seal  # the web process is never given the audit key
    web.close()
    worker = build_runtime(fresh_settings, sealing=True)
    assert worker.db.audit_keys.can_seal
    worker.close()
    assert run_cli("worker", "--once")[0] == 0
    anchor = fresh_settings.audit_anchor_path
    assert anchor.parent == audit_key.parent
    assert stat.S_IMODE(os.stat(anchor).st_mode) == 0o600
    assert run_cli("audit", "verify")[0] == 0


def test_without_the_audit_key_the_worker_and_verify_refuse_with_one_line(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    fresh_settings.audit_key_path.unlink()
    for command in (("worker", "--once"), ("audit", "verify")):
        code, _, err = run_cli(*command)
        assert code == 1
        assert "audit key" in err
        assert len(err.strip().splitlines()) == 1


def test_verify_names_a_deleted_trail_with_its_first_sequence_number(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    runtime = build_runtime(fresh_settings)
    entries(runtime, 3)
    assert run_cli("worker", "--once")[0] == 0
    assert run_cli("audit", "verify")[0] == 0
    with runtime.db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))
        connection.execute(text("DELETE FROM audit_chain_head"))
    runtime.close()
    code, out, err = run_cli("audit", "verify")
    assert code == 1
    assert err.startswith("audit trail BROKEN, first affected seq 1:")
    assert "every entry was deleted" in err
    assert len(err.strip().splitlines()) == 1


def test_the_worker_seals_past_a_bad_row_and_verify_reports_the_incident(run_cli, fresh_settings):
    assert run_cli("init")[0] == 0
    runtime = build_runtime(fresh_settings)
    entries(runtime, 3)
    with runtime.db.engine.begin() as connection:  # edited while it waited for sealing
        connection.execute(text("UPDATE audit_log SET actor_id = 'intruder' WHERE resource_id = 'p1'"))
    entries(runtime, 2)
    assert run_cli("worker", "--once")[0] == 0
    with runtime.db.unit_of_work() as session:
        everything = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    runtime.close()
    assert all(entry.seq is not None for entry in everything)  # the rows after the bad one were sealed too
    bad = next(entry for entry in everything if entry.actor_id == "intruder")
    assert everything[-1].action == audit.INCIDENT_ACTION
    code, out, err = run_cli("audit", "verify")
    assert code == 1
    assert f"first affected seq {bad.seq}" in err
    assert "incident recorded by the sealer" in out


def test_concurrent_writers_with_rollbacks_and_concurrent_sealers_leave_no_gap_and_no_duplicate(fresh_settings,
                                                                                                 run_cli):
    assert run_cli("init")[0] == 0
    runtime = build_runtime(fresh_settings, sealing=True)
    entries(runtime, 1)
    with runtime.db.unit_of_work() as session:
        seal_audit_batch(session)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            for n in range(12):
                session = runtime.db.sessions()
                try:
                    audit.log(session, actor=NURSE, action="patient.read", resource_type="patient",
                              resource_id=f"w{number}-{n}", patient_id=uuid.uuid4())
                    session.flush()  # the id is taken from the sequence, rolled back or not
                    if n % 3 == 2:
                        session.rollback()
                    else:
                        session.commit()
                finally:
                    session.close()
        except BaseException as failure:  # noqa: BLE001 - reported by the test below
            failures.append(failure)

    def sealer() -> None:
        try:
            for _ in range(6):
                with runtime.db.unit_of_work() as session:
                    seal_audit_batch(session)
        except BaseException as failure:  # noqa: BLE001 - reported by the test below
            failures.append(failure)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    threads += [threading.Thread(target=sealer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    with runtime.db.unit_of_work() as session:
        while seal_audit_batch(session):
            pass
    with runtime.db.unit_of_work() as session:
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        report = audit.verify(session, runtime.db.audit_keys)
    runtime.close()
    expected_entries = 1 + 4 * 8
    assert len([seq for seq in seqs if seq is not None]) >= expected_entries
    assert seqs == list(range(1, len(seqs) + 1))
    assert report.ok, report.problem
