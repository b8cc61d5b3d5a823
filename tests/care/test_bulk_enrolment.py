"""Bulk enrolment (the import's path) writes what enroll() writes, and keys are fetched in bulk."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from care.identifiers import id_number_check_character
from care.models import Card, ChannelConsent, Patient
from care.patients import (
    EnrolmentOutcome,
    EnrolmentRequest,
    enroll,
    enroll_many,
    find_by_card,
    find_by_id_number,
    find_by_phone,
)
from careloop.db import Database
from security.audit import AuditEntry
from security.clock import FixedClock
from security.crypto import DataKey, DecryptionError
from security.keys import KeyRing
from tests.conftest import TEST_ACTOR


def _id_number(born: date, sequence: int) -> str:
    first17 = f"110101{born:%Y%m%d}{sequence:03d}"
    return first17 + id_number_check_character(first17)


def _request(number: int, **overrides: Any) -> EnrolmentRequest:
    born = date(1950 + number % 40, 1 + number % 12, 1 + number % 28)
    values: dict[str, Any] = {
        "card_no": f"BULK{number:05d}", "name": f"批量{number}", "gender": "M", "birth_date": born,
        "phone": f"+86137{number:08d}", "id_number": _id_number(born, 2 * (number % 400) + 1),
        "package": "年度体检VIP", "language": "zh",
    }
    values.update(overrides)
    return EnrolmentRequest(**values)


def test_bulk_enrolment_writes_the_records_enroll_writes(db: Session) -> None:
    requests = [_request(n, wechat_openid=f"oBulk{n}" if n % 2 else None) for n in range(1, 6)]
    results = enroll_many(db, requests, actor=TEST_ACTOR)
    db.flush()
    assert [r.outcome for r in results] == [EnrolmentOutcome.CREATED] * 5
    for request, result in zip(requests, results, strict=True):
        patient = find_by_card(db, request.card_no)
        assert patient is not None
        assert patient.id == result.patient_id
        assert (patient.name, patient.gender, patient.birth_date, patient.phone, patient.id_number,
                patient.wechat_openid) == (request.name, request.gender, request.birth_date, request.phone,
                                           request.id_number, request.wechat_openid)
        assert [card.package for card in patient.cards] == ["年度体检VIP"]
        assert sorted(c.channel for c in patient.consents) == ["sms", "voice", "wechat"]
        assert all(c.consented and not c.recording_consent for c in patient.consents)
        assert find_by_phone(db, request.phone) == [patient]
        assert find_by_id_number(db, request.id_number or "") == patient
        audited = select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "patient.enroll", AuditEntry.patient_id == patient.id
        )
        assert db.scalar(audited) == 1
        assert db.get(DataKey, patient.id) is not None


def test_bulk_rows_are_encrypted_and_bound_to_their_row(db: Session) -> None:
    first, second = (r.patient_id for r in enroll_many(db, [_request(11), _request(12)], actor=TEST_ACTOR))
    db.flush()
    table = Patient.__table__
    raw = db.execute(select(table.c.name).where(table.c.id == first)).scalar_one()
    assert "批量11".encode() not in raw
    # A ciphertext copied to another row does not decrypt there.
    db.execute(update(table).where(table.c.id == second).values(name=raw))
    db.expire_all()
    moved = db.get(Patient, second)
    assert moved is not None
    with pytest.raises(DecryptionError):
        _ = moved.name


def test_bulk_enrolment_refuses_what_enroll_refuses_and_writes_nothing_of_it(db: Session) -> None:
    enroll(db, _request(21), actor=TEST_ACTOR)
    db.flush()
    taken = _request(21).id_number
    requests = [
        _request(22, id_number=taken),  # held by an enrolled card
        _request(23),
        _request(24, id_number=_request(23).id_number),  # taken earlier in this batch
        _request(23, name="重复"),  # the same new card twice in one batch
        _request(21, phone="+8613700000999"),  # an enrolled card: updated
    ]
    results = enroll_many(db, requests, actor=TEST_ACTOR)
    db.flush()
    assert [r.outcome for r in results] == [None, EnrolmentOutcome.CREATED, None, None, EnrolmentOutcome.UPDATED]
    assert [p.field for p in results[0].problems] == ["id_number"]
    assert [p.field for p in results[2].problems] == ["id_number"]
    assert [p.field for p in results[3].problems] == ["card_no"]
    assert find_by_card(db, "BULK00022") is None
    assert find_by_card(db, "BULK00024") is None
    created = find_by_card(db, "BULK00023")
    assert created is not None
    assert created.name == "批量23"
    updated = find_by_card(db, "BULK00021")
    assert updated is not None
    assert updated.phone == "+8613700000999"
    assert db.scalar(select(func.count()).select_from(Card).join(Patient)) == 2
    assert db.scalar(select(func.count()).select_from(ChannelConsent)) == 6


def test_reading_many_patients_fetches_their_keys_in_one_query(
    db: Session, engine: Engine, connection: Connection, key_ring: KeyRing, clock: FixedClock,
    statements: list[str],
) -> None:
    enroll_many(db, [_request(n) for n in range(31, 61)], actor=TEST_ACTOR)
    db.flush()
    reader = Database(engine, key_ring=key_ring, clock=clock, bind=connection)  # a cold key cache
    with reader.sessions() as session:
        patients = session.scalars(select(Patient)).all()
        statements.clear()
        names = [patient.name for patient in patients]
    assert len(names) == 30
    assert len([s for s in statements if "data_keys" in s]) == 1


def test_writing_patients_one_by_one_looks_their_keys_up_once_per_flush(
    db: Session, statements: list[str]
) -> None:
    # No ID number, so enroll() runs no uniqueness query and the ten patients wait for one flush.
    for n in range(41, 51):
        enroll(db, _request(n, id_number=None), actor=TEST_ACTOR, look_up=False)
    statements.clear()
    db.flush()
    assert len([s for s in statements if "data_keys" in s]) == 2  # one look-up, one INSERT of ten keys
    assert db.scalar(select(func.count()).select_from(DataKey)) == 10
