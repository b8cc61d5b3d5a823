"""A copy of the database cannot be counted by tag: no stored value is shared by the patients who have one.

A tag's blind index was the same HMAC on every patient who had the tag, so a copy of
``patient_tags`` grouped the patients by tag and counted each group: the largest group of a
checkup centre is its hypertension, the group ``flow:phq9`` added is its positive depression
screens. Now each row's index is keyed by its patient as well (``HMAC(HMAC(k, tag), patient_id)``),
the tag's source is encrypted, and the same holds for the advice lines a clinician overrides
(``mental.depression_assessment`` names a condition). "The patients with tag T" is still one
query: the query's side computes the tag's trapdoor once and checks each row's index against it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import select, text

from care.advice_lines import suppress_advice_line
from care.models import AuditEntry, PatientTag
from care.tags import add_tag, patient_ids_with_tag, remove_tag, tags_of
from careloop import migrate
from careloop.db import Database, make_engine
from security.clock import FixedClock
from security.crypto import FieldCipher
from security.keys import KeyRing
from security.storage import UtcDateTime
from tests.conftest import TEST_ACTOR

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
#: Columns that only say which row and when, not what it holds (``suppressed``, ``pinned``: that staff
#: decided about a row, never which line or tag it is).
ROW_COLUMNS = {"id", "patient_id", "added_at", "created_at", "updated_at", "updated_by", "suppressed", "pinned"}


def stored_rows(db, table: str) -> list[dict[str, object]]:
    """The rows of ``table`` as a copy of the database holds them."""
    db.flush()
    result = db.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - a table name of the test's own
    return [dict(row._mapping) for row in result]


def shared_values(rows: list[dict[str, object]]) -> dict[str, int]:
    """Each column whose value appears in more than one row, with how many rows share its commonest value."""
    shared = {}
    for column in rows[0].keys() - ROW_COLUMNS:
        counts = Counter(bytes(value) if isinstance(value, bytes | memoryview) else value
                         for row in rows if (value := row[column]) is not None)
        if counts and counts.most_common(1)[0][1] > 1:
            shared[column] = counts.most_common(1)[0][1]
    return shared


def tag_patients(db, make_patient) -> dict[str, list]:
    tagged = {"phq9_positive": [make_patient() for _ in range(5)], "gad7_positive": [make_patient() for _ in range(2)]}
    for tag, patients in tagged.items():
        for patient in patients:
            assert add_tag(db, patient, tag, source=f"flow:{tag[:4]}", actor=TEST_ACTOR)
    return tagged


def test_patients_with_the_same_tag_share_no_stored_value(db, make_patient):
    tag_patients(db, make_patient)
    rows = stored_rows(db, "patient_tags")
    assert len(rows) == 7
    assert shared_values(rows) == {}
    assert not any(b"phq9" in bytes(row["source"]) for row in rows)  # the flow that added it is not in clear


def test_the_patients_with_a_tag_are_one_query(db, make_patient, statements):
    tagged = tag_patients(db, make_patient)
    remove_tag(db, tagged["phq9_positive"][0], "phq9_positive", actor=TEST_ACTOR)
    db.flush()
    statements.clear()
    found = patient_ids_with_tag(db, " PHQ9_Positive")
    assert set(found) == {patient.id for patient in tagged["phq9_positive"][1:]}
    assert len(statements) == 1
    assert "patient_tags" in statements[0]
    assert set(patient_ids_with_tag(db, "gad7_positive")) == {p.id for p in tagged["gad7_positive"]}


def test_a_patients_own_tags_are_still_found_one_by_one(db, make_patient):
    patient = make_patient()
    assert add_tag(db, patient, "Hypertension", source="staff", actor=TEST_ACTOR)
    db.flush()
    assert not add_tag(db, patient, "hypertension ", source="rule:bp", actor=TEST_ACTOR)  # found: the same tag
    assert tags_of(db, patient) == {"hypertension"}
    assert remove_tag(db, patient, "HYPERTENSION", actor=TEST_ACTOR)
    assert tags_of(db, patient) == set()


def test_the_audit_entry_of_a_tag_names_the_kind_of_source_not_the_flow(db, make_patient):
    patient = make_patient()
    add_tag(db, patient, "phq9_item9_positive", source="flow:phq9", actor=TEST_ACTOR)
    db.flush()
    [details] = db.scalars(select(AuditEntry.details).where(AuditEntry.action == "tag.add",
                                                            AuditEntry.patient_id == patient.id)).all()
    assert json.loads(details) == {"source": "flow"}


def test_patients_with_the_same_advice_line_overridden_share_no_stored_value(db, make_patient):
    for _ in range(3):
        suppress_advice_line(db, make_patient(), "follow_up.bp_confirm", actor=TEST_ACTOR)
    rows = stored_rows(db, "advice_overrides")
    assert len(rows) == 3
    assert shared_values(rows) == {}


# -- the migration: indexes made before it are re-keyed by patient, sources sealed ----------------------------
PATIENTS = sa.table("patients", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("card_no", sa.LargeBinary()), ("name", sa.LargeBinary()), ("gender", sa.LargeBinary()),
    ("birth_date", sa.LargeBinary()), ("language", sa.String()), ("timezone", sa.String()), ("status", sa.String()),
    ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))
TAGS = sa.table("patient_tags", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("tag", sa.LargeBinary()), ("tag_bidx", sa.LargeBinary()),
    ("source", sa.String()), ("added_at", UtcDateTime())]))
OVERRIDES = sa.table("advice_overrides", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("line_id", sa.LargeBinary()), ("line_id_bidx", sa.LargeBinary()),
    ("suppressed", sa.Boolean()), ("updated_by", sa.String()), ("created_at", UtcDateTime()),
    ("updated_at", UtcDateTime())]))


def seed_before(engine: sa.Engine, key_ring: KeyRing) -> list[uuid.UUID]:
    """Two patients with the tag ``diabetes`` and the same overridden line, as revision 0002_worker stored them."""
    from sqlalchemy.orm import Session

    from security.crypto import field_aad

    patients = [uuid.uuid4(), uuid.uuid4()]
    cipher = FieldCipher(key_ring)
    with engine.begin() as connection:
        connection.execute(PATIENTS.insert(), [
            {"id": pid, "card_no": b"x" * 29, "name": b"x" * 29, "gender": b"x" * 29, "birth_date": b"x" * 29,
             "language": "zh", "timezone": "Asia/Shanghai", "status": "active", "created_at": NOW, "updated_at": NOW}
            for pid in patients])
        with Session(bind=connection) as session:
            keys = {pid: cipher.data_key(session, pid, create=True, now=NOW) for pid in patients}
            session.flush()
        tags, overrides = [], []
        for pid in patients:
            tag_id, line_row = uuid.uuid4(), uuid.uuid4()
            tags.append({"id": tag_id, "patient_id": pid, "source": "flow:intake", "added_at": NOW,
                         "tag": cipher.seal(keys[pid], field_aad("patient_tags", "tag", tag_id), b"diabetes"),
                         "tag_bidx": cipher.blind_index("tag", "diabetes")})
            overrides.append({"id": line_row, "patient_id": pid, "suppressed": True, "updated_by": "doctor-1",
                              "created_at": NOW, "updated_at": NOW,
                              "line_id": cipher.seal(keys[pid], field_aad("advice_overrides", "line_id", line_row),
                                                     b"mental.depression_assessment"),
                              "line_id_bidx": cipher.blind_index("advice_line", "mental.depression_assessment")})
        connection.execute(TAGS.insert(), tags)
        connection.execute(OVERRIDES.insert(), overrides)
    return patients


def test_the_migration_rekeys_earlier_indexes_by_patient_and_seals_sources(fresh_database_url, tmp_path):
    engine = make_engine(fresh_database_url)
    try:
        migrate.upgrade(engine, "0002_worker")
        key_ring = KeyRing.generate()
        patients = seed_before(engine, key_ring)
        migrate.upgrade(engine, key_ring=key_ring)
        with engine.connect() as connection:
            assert len(set(connection.execute(text("SELECT tag_bidx FROM patient_tags")).scalars())) == 2
            assert len(set(connection.execute(text("SELECT line_id_bidx FROM advice_overrides")).scalars())) == 2
            assert not any(b"intake" in bytes(value)
                           for value in connection.execute(text("SELECT source FROM patient_tags")).scalars())
        database = Database(engine, key_ring=key_ring, clock=FixedClock(NOW))
        with database.unit_of_work() as session:
            assert set(patient_ids_with_tag(session, "diabetes")) == set(patients)
            assert {row.source for row in session.scalars(select(PatientTag))} == {"flow:intake"}

        migrate.downgrade(engine, "0002_worker", key_ring=key_ring)
        with engine.connect() as connection:
            old = FieldCipher(key_ring).blind_index("tag", "diabetes")
            assert [bytes(v) for v in connection.execute(text("SELECT tag_bidx FROM patient_tags")).scalars()] == [
                old, old]
            assert set(connection.execute(text("SELECT source FROM patient_tags")).scalars()) == {"flow:intake"}
    finally:
        engine.dispose()
