"""``careloop erase`` and ``careloop patients hold``: the key destroyed, tombstones left, the audit trail keeping who,
when and why; a legal hold blocks it; a restore of an older backup erases the patient again."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
from sqlalchemy import func, select

from care.blobs import LocalBlobStore, get_encrypted, put_encrypted
from care.errors import NotFoundError
from care.models import Erasure, LegalHold, Observation, Patient, PatientStatus
from care.patients import find_by_card, get_patient
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import AuditEntry
from security.crypto import DataKey, DecryptionError

RECORDING = "recordings/erase-me.wav"


@pytest.fixture
def clinic(run_cli, fresh_settings) -> Settings:
    code, _, err = run_cli("demo", "--no-serve")
    assert code == 0, err
    return fresh_settings


def a_patient(settings: Settings) -> tuple[uuid.UUID, str]:
    """The first demo patient who has observations, with a recording stored for them: id and card number."""
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient_id = session.scalars(select(Observation.patient_id).order_by(Observation.patient_id)).first()
            patient = session.get(Patient, patient_id)
            assert patient is not None
            put_encrypted(session, LocalBlobStore(settings.blob_dir), owner_id=patient.id, key=RECORDING,
                          data=b"voice" * 50)
            return patient.id, str(patient.card_no)
    finally:
        runtime.close()


def assert_erased(settings: Settings, patient_id: uuid.UUID, card_no: str) -> None:
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            assert session.get(DataKey, patient_id) is None
            row = session.get(Patient, patient_id)
            assert row is not None
            assert row.status == PatientStatus.ERASED.value  # a tombstone, not a hole
            with pytest.raises(DecryptionError):
                _ = row.name
            assert session.scalar(select(func.count()).select_from(Observation)
                                  .where(Observation.patient_id == patient_id)) > 0
            with pytest.raises(DecryptionError):
                get_encrypted(session, LocalBlobStore(settings.blob_dir), owner_id=patient_id, key=RECORDING)
            assert find_by_card(session, card_no) is None
            with pytest.raises(NotFoundError):
                get_patient(session, str(patient_id))
    finally:
        runtime.close()


def test_erase_destroys_the_key_leaves_tombstones_and_the_audit_trail_says_who_when_why(run_cli, clinic):
    patient_id, card_no = a_patient(clinic)
    code, out, err = run_cli("erase", card_no, "--reason", "written request of 2026-12-01")
    assert code == 0, err
    assert out.startswith(f"patient {patient_id} erased: their data key is destroyed")
    assert_erased(clinic, patient_id, card_no)

    ledger = clinic.erasure_ledger_path
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert [json.loads(line)["patient_id"] for line in ledger.read_text().splitlines()] == [str(patient_id)]
    assert card_no not in ledger.read_text()

    runtime = build_runtime(clinic)
    try:
        with runtime.db.unit_of_work() as session:
            entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "patient.erase")).one()
            erasure = session.scalars(select(Erasure)).one()
    finally:
        runtime.close()
    assert (entry.patient_id, entry.actor_kind, json.loads(entry.details)) == (
        patient_id, "system", {"reason": "written request of 2026-12-01"})
    assert entry.actor_id.startswith("cli:")
    assert (erasure.patient_id, erasure.reason) == (patient_id, "written request of 2026-12-01")

    assert run_cli("worker", "--once")[0] == 0
    code, out, err = run_cli("audit", "verify")
    assert code == 0, err
    code, _, err = run_cli("erase", str(patient_id), "--reason", "again")
    assert (code, err) == (1, "error: no patient has this card number or id\n")


def test_a_legal_hold_blocks_erasure_until_released(run_cli, clinic):
    patient_id, card_no = a_patient(clinic)
    code, out, err = run_cli("patients", "hold", card_no, "--reason", "litigation 2026-77")
    assert (code, err) == (0, "")
    assert out == f"legal hold on patient {patient_id} placed\n"
    code, _, err = run_cli("patients", "hold", card_no, "--reason", "twice")
    assert code == 1
    assert err.startswith(f"error: patient {patient_id} is already under a legal hold")

    code, _, err = run_cli("erase", card_no, "--reason", "patient asked")
    assert code == 1
    assert err.startswith(f"error: patient {patient_id} is under a legal hold (placed ")
    assert "litigation 2026-77); it cannot be erased until the hold is released" in err
    assert err.count("\n") == 1
    assert not clinic.erasure_ledger_path.exists()
    runtime = build_runtime(clinic)
    try:
        with runtime.db.unit_of_work() as session:
            assert session.get(DataKey, patient_id) is not None  # nothing changed
            assert session.scalars(select(LegalHold)).one().placed_by.startswith("cli:")
    finally:
        runtime.close()

    code, out, err = run_cli("patients", "hold", card_no, "--release", "--reason", "case closed")
    assert (code, out) == (0, f"legal hold on patient {patient_id} released\n")
    assert run_cli("erase", card_no, "--reason", "patient asked")[0] == 0
    assert_erased(clinic, patient_id, card_no)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_an_erasure_without_a_usable_reason_changes_nothing(run_cli, clinic, reason):
    patient_id, card_no = a_patient(clinic)
    code, _, err = run_cli("erase", card_no, "--reason", reason)
    assert code == 1
    assert err.startswith("error: --reason: ")
    runtime = build_runtime(clinic)
    try:
        with runtime.db.unit_of_work() as session:
            assert session.get(DataKey, patient_id) is not None
    finally:
        runtime.close()


def test_a_backup_taken_before_an_erasure_restores_the_patient_erased(run_cli, clinic, tmp_path):
    patient_id, card_no = a_patient(clinic)
    out = tmp_path / "before-erasure.backup"
    assert run_cli("backup", "create", "--out", str(out))[0] == 0
    assert run_cli("erase", card_no, "--reason", "patient asked")[0] == 0

    restored = clinic.with_overrides(database_url=f"sqlite:///{tmp_path / 'restored.db'}",
                                     blob_dir=tmp_path / "restored-blobs")
    code, stdout, err = run_cli("backup", "restore", str(out), settings=restored)
    assert code == 0, err
    assert "1 erasure(s) of the ledger re-applied" in stdout
    assert_erased(restored, patient_id, card_no)
    code, _, err = run_cli("audit", "verify", settings=restored)
    assert code == 0, err


def test_an_altered_ledger_stops_the_restore_before_anything_is_written(run_cli, clinic, tmp_path):
    a_patient(clinic)
    out = tmp_path / "clinic.backup"
    assert run_cli("backup", "create", "--out", str(out))[0] == 0
    clinic.erasure_ledger_path.write_text(json.dumps(
        {"patient_id": str(uuid.uuid4()), "erased_at": "2026-12-01T00:00:00+00:00", "mac": "00" * 32}) + "\n")
    restored = clinic.with_overrides(database_url=f"sqlite:///{tmp_path / 'restored.db'}",
                                     blob_dir=tmp_path / "restored-blobs")
    code, _, err = run_cli("backup", "restore", str(out), settings=restored)
    assert code == 1
    assert err == (f"error: the erasure ledger {clinic.erasure_ledger_path}, line 1, does not authenticate under "
                   "this master key (altered, or another installation's)\n")
    code, _, err = run_cli("users", "list", settings=restored)
    assert (code, err) == (1, "error: the database is not initialised: run careloop init first\n")


def test_a_running_process_that_read_the_patient_drops_their_key_at_its_next_look(run_cli, clinic):
    patient_id, card_no = a_patient(clinic)
    web = build_runtime(clinic)  # another process: it read the patient, so it holds their key in memory
    try:
        with web.db.read_only() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            name = patient.name
        assert web.db.cipher.is_cached(patient_id)
        assert web.forget_erased_keys() == 0

        assert run_cli("erase", card_no, "--reason", "patient asked")[0] == 0
        assert web.forget_erased_keys() == 1
        assert not web.db.cipher.is_cached(patient_id)
        with web.db.read_only() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            with pytest.raises(DecryptionError):
                assert patient.name != name
    finally:
        web.close()


def test_the_card_number_of_an_erased_patient_enrols_a_new_patient(run_cli, clinic):
    from datetime import date

    from care.patients import EnrolmentRequest, enroll
    from tests.conftest import TEST_ACTOR

    patient_id, card_no = a_patient(clinic)
    assert run_cli("erase", card_no, "--reason", "patient asked")[0] == 0
    runtime = build_runtime(clinic)
    try:
        with runtime.db.unit_of_work() as session:
            again = enroll(session, EnrolmentRequest(card_no=card_no, name="新患者", gender="F",
                                                     birth_date=date(1960, 1, 2), phone="+8613900000999"),
                           actor=TEST_ACTOR).patient
            session.flush()
            assert again.id != patient_id
        with runtime.db.unit_of_work() as session:
            found = find_by_card(session, card_no)
            assert found is not None
            assert (found.id, found.name) == (again.id, "新患者")
    finally:
        runtime.close()
