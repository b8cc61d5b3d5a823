"""bot/channels/console/inbound.py: speaking for a patient over the console channel (the simulator, ``careloop
console``): the bot answers as it would the patient, and an audit entry says who spoke for them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.channels.console.inbound import send_as_patient
from bot.models import ConversationMessage
from care.errors import NotFoundError
from care.models import PatientStatus
from security.audit import Actor, AuditEntry

SPEAKER = Actor("user", "nurse-1", "simulator")


def test_the_bot_answers_and_an_entry_says_who_spoke_for_the_patient(db, make_patient, services, clock):
    patient = make_patient()
    reply = send_as_patient(db, services, card_no=patient.card_no, text="问卷", speaker=SPEAKER, at=clock.now())
    db.flush()
    assert "做事时提不起劲或没有兴趣" in "\n".join(reply.texts)
    said = db.scalars(select(ConversationMessage).where(ConversationMessage.patient_id == patient.id)).all()
    assert said
    assert {message.channel for message in said} == {"console"}
    (entry,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "simulator.message"))
    assert (entry.patient_id, entry.actor_id, json.loads(entry.details)) == (patient.id, "nurse-1",
                                                                              {"channel": "console"})


@pytest.mark.parametrize("status", ["unknown card", "inactive"])
def test_no_active_patient_with_the_card_is_refused_and_nothing_is_said(db, make_patient, services, clock, status):
    card = "T9999999"
    if status == "inactive":
        patient = make_patient()
        patient.status = PatientStatus.INACTIVE.value
        db.flush()
        card = patient.card_no
    with pytest.raises(NotFoundError):
        send_as_patient(db, services, card_no=card, text="问卷", speaker=SPEAKER, at=clock.now())
    assert db.scalars(select(ConversationMessage)).all() == []
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "simulator.message")).all() == []
