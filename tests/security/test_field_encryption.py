"""Field encryption: round trip, and loud failures for tampering, moved ciphertexts and wrong keys."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from care.models import HealthProfile, Observation, Patient
from care.observations import record_observation
from care.profiles import set_profile_field
from careloop.db import Database
from security.crypto import DecryptionError, KeyDestroyedError
from security.keys import KeyRing
from tests.conftest import TEST_ACTOR


def raw(db: Session, table: str, column: str, row_id: object, key: str = "id") -> bytes:
    query = text(f"SELECT {column} FROM {table} WHERE {key} = :id").bindparams(bindparam("id", type_=Uuid()))
    return bytes(db.execute(query, {"id": row_id}).scalar_one())


def overwrite(db: Session, table: str, column: str, row_id: object, value: bytes, key: str = "id") -> None:
    query = text(f"UPDATE {table} SET {column} = :v WHERE {key} = :id").bindparams(bindparam("id", type_=Uuid()))
    db.execute(query, {"v": value, "id": row_id})


def reread(db: Session, patient: Patient) -> Patient:
    db.flush()
    db.expunge_all()
    found = db.get(Patient, patient.id)
    assert found is not None
    return found


def test_every_kind_of_field_round_trips(db, make_patient, clock):
    patient = make_patient(name="李秀英", birth_date=date(1950, 2, 3), id_number="11010519491231002X",
                           gender="F")
    set_profile_field(db, patient, "allergies", "青霉素：皮疹", actor=TEST_ACTOR)
    record_observation(db, patient, code="8480-6", value=146.5, unit="mmHg", effective_at=clock.now(),
                       source="test", actor=TEST_ACTOR)
    fresh = reread(db, patient)
    assert fresh.name == "李秀英"
    assert fresh.birth_date == date(1950, 2, 3)
    assert fresh.id_number == "11010519491231002X"
    assert fresh.profile is not None
    assert fresh.profile.allergies == {"allergies": "青霉素：皮疹"}
    observation = db.scalars(select(Observation).where(Observation.patient_id == patient.id)).one()
    assert observation.value == 146.5


def test_stored_bytes_are_not_the_plaintext(db, make_patient):
    patient = make_patient(name="王建华")
    db.flush()
    stored = raw(db, "patients", "name", patient.id)
    assert "王建华".encode() not in stored
    assert len(stored) >= 1 + 12 + 16


def test_a_flipped_byte_fails_loudly(db, make_patient):
    patient = make_patient(name="赵敏")
    db.flush()
    stored = bytearray(raw(db, "patients", "name", patient.id))
    stored[-5] ^= 0x01
    overwrite(db, "patients", "name", patient.id, bytes(stored))
    fresh = reread(db, patient)
    with pytest.raises(DecryptionError):
        _ = fresh.name


def test_a_ciphertext_moved_to_another_row_fails(db, make_patient):
    first = make_patient(name="孙伟")
    second = make_patient(name="周芳")
    db.flush()
    overwrite(db, "patients", "name", second.id, raw(db, "patients", "name", first.id))
    with pytest.raises(DecryptionError):
        _ = reread(db, second).name


def test_a_ciphertext_moved_to_another_column_fails(db, make_patient):
    patient = make_patient(name="马丽", gender="F")
    db.flush()
    overwrite(db, "patients", "gender", patient.id, raw(db, "patients", "name", patient.id))
    with pytest.raises(DecryptionError):
        _ = reread(db, patient).gender


def test_another_patients_row_cannot_be_read_with_a_swapped_key(db, make_patient):
    first = make_patient(name="胡军")
    second = make_patient(name="高娟")
    db.flush()
    first_wrapped = raw(db, "data_keys", "wrapped", first.id, key="owner_id")
    overwrite(db, "data_keys", "wrapped", second.id, first_wrapped, key="owner_id")
    db.info["cipher"]._cache.clear()
    with pytest.raises(DecryptionError):
        _ = reread(db, second).name


def test_a_wrong_master_key_fails_loudly(db, make_patient, engine, connection, clock):
    patient = make_patient(name="郭涛")
    db.flush()
    stranger = Database(engine, key_ring=KeyRing.generate(), clock=clock, bind=connection)
    with stranger.sessions() as session:
        found = session.get(Patient, patient.id)
        assert found is not None
        with pytest.raises(DecryptionError):
            _ = found.name


def test_destroyed_key_makes_the_record_unreadable(db, make_patient):
    patient = make_patient(name="林桂英")
    db.flush()
    cipher = db.info["cipher"]
    assert cipher.destroy(db, patient.id)
    fresh = reread(db, patient)
    with pytest.raises(KeyDestroyedError):
        _ = fresh.name


def test_profile_sections_are_encrypted_json(db, make_patient):
    patient = make_patient()
    set_profile_field(db, patient, "smoking_status", "current", actor=TEST_ACTOR)
    db.flush()
    profile = db.scalars(select(HealthProfile).where(HealthProfile.patient_id == patient.id)).one()
    assert b"smoking" not in raw(db, "health_profiles", "lifestyle", profile.id)
