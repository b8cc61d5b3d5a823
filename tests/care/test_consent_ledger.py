"""The consent ledger: decisions appended, audited and read back; what stands is the latest one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care.consents import consent_history, consent_stands, current_consent, record_consent
from care.errors import ValidationFailedError
from care.models import AppendOnlyError, ConsentEntry
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR

VERSION = "recording-notice:test"


def decide(db, patient, granted, *, purpose="call_recording", source="staff", source_ref=None):
    return record_consent(db, patient, channel="voice", purpose=purpose, granted=granted, wording_version=VERSION,
                          source=source, source_ref=source_ref, actor=TEST_ACTOR)


def test_a_patient_never_asked_has_no_consent(db, make_patient):
    patient = make_patient()
    assert current_consent(db, patient.id, channel="voice", purpose="call_recording") is None
    assert not consent_stands(db, patient.id, channel="voice", purpose="call_recording")


def test_the_latest_decision_stands_even_within_one_clock_instant(db, clock, make_patient):
    patient = make_patient()
    decide(db, patient, True, source="voice_keypad", source_ref="CA" + "1" * 32)
    assert consent_stands(db, patient.id, channel="voice", purpose="call_recording")
    decide(db, patient, False, source="voice_speech", source_ref="CA" + "1" * 32)  # the same instant
    assert not consent_stands(db, patient.id, channel="voice", purpose="call_recording")
    history = consent_history(db, patient.id, channel="voice", purpose="call_recording")
    assert [(row.seq, row.granted, row.source, row.recorded_at) for row in history] == [
        (1, True, "voice_keypad", clock.now()), (2, False, "voice_speech", clock.now())]
    assert patient.consent_for("voice").recording_consent is False


def test_purposes_are_separate_streams_and_only_recording_moves_the_cache(db, make_patient):
    patient = make_patient()
    decide(db, patient, True, purpose="messages")
    assert consent_stands(db, patient.id, channel="voice", purpose="messages")
    assert not consent_stands(db, patient.id, channel="voice", purpose="call_recording")
    assert patient.consent_for("voice").recording_consent is False
    decide(db, patient, True)
    assert patient.consent_for("voice").recording_consent is True
    assert [row.seq for row in consent_history(db, patient.id)] == [1, 1]


def test_every_decision_is_audited(db, make_patient):
    patient = make_patient()
    granted = decide(db, patient, True)
    withdrawn = decide(db, patient, False)
    db.flush()
    rows = db.execute(select(AuditEntry.action, AuditEntry.resource_id).where(
        AuditEntry.patient_id == patient.id, AuditEntry.resource_type == "consent")).all()
    assert sorted(rows) == sorted([("consent.granted", str(granted.id)), ("consent.withdrawn", str(withdrawn.id))])


@pytest.mark.parametrize(("field", "values"), [
    ("channel", {"channel": "fax"}),
    ("purpose", {"purpose": "marketing"}),
    ("source", {"source": "guess"}),
    ("wording_version", {"wording_version": ""}),
    ("source_ref", {"source_ref": "x" * 65}),
])
def test_a_bad_decision_is_refused_and_nothing_is_written(db, make_patient, field, values):
    patient = make_patient()
    arguments = {"channel": "voice", "purpose": "call_recording", "granted": True, "wording_version": VERSION,
                 "source": "staff", **values}
    with pytest.raises(ValidationFailedError) as refused:
        record_consent(db, patient, actor=TEST_ACTOR, **arguments)
    assert [problem.field for problem in refused.value.problems] == [field]
    assert consent_history(db, patient.id) == []


def test_the_ledger_is_append_only(db, make_patient):
    patient = make_patient()
    entry = decide(db, patient, True)
    db.flush()
    entry.granted = False
    with pytest.raises(AppendOnlyError):
        db.flush()
    db.rollback()
    patient = make_patient()
    entry = decide(db, patient, True)
    db.flush()
    db.delete(entry)
    with pytest.raises(AppendOnlyError):
        db.flush()
    db.rollback()
    assert db.scalars(select(ConsentEntry)).all() == []
