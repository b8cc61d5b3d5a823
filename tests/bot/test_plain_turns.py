"""The plain turn (bot/plain_turns) writes what the general path writes, and loses nothing under a race."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import plain_turns, router
from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.models import ConversationMessage, ConversationSession, InboundReceipt
from bot.router import handle_inbound
from care.models import FlowResult, Observation, Patient
from care.patients import EnrolmentRequest, enroll
from careloop.bot_runtime import bot_for
from careloop.runtime import Runtime
from security.audit import AuditEntry, AuditKeys
from security.clock import FixedClock
from tests.bot.conftest import while_held
from tests.conftest import TEST_ACTOR

# The keyword, nine answers (item 9 positive: the score's observation and a staff alert), the tenth.
SCRIPT = ["问卷", "2", "3", "2", "3", "2", "2", "2", "1", "2", "2"]


@pytest.fixture
def plain_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each call of the plain path answered (a spy: the real function runs)."""
    calls: list[bool] = []
    real = plain_turns.answer_plainly

    def spy(*args: Any, **kwargs: Any) -> Reply | None:
        reply = real(*args, **kwargs)
        calls.append(reply is not None)
        return reply

    monkeypatch.setattr(plain_turns, "answer_plainly", spy)
    return calls


def message(patient: Patient, text_: str, clock: FixedClock) -> InboundMessage:
    return InboundMessage(channel="console", provider_key=f"test:{uuid.uuid4()}", sender=patient.card_no or "",
                          kind="text", text=text_, received_at=clock.now())


def record_of(db: Session, patient: Patient) -> dict[str, Any]:
    """Everything an answer writes for ``patient``, without ids, MACs or ciphertexts (order-free where rows share
    a timestamp)."""
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)
                              .order_by(ConversationSession.started_at)).first()
    assert conversation is not None
    audit = db.scalars(select(AuditEntry).where(AuditEntry.patient_id == patient.id))
    return {
        "results": Counter((row.name, repr(row.value), row.label, row.category, row.code, row.unit, row.flow_id,
                            row.flow_version, row.session_id == conversation.id, row.recorded_at)
                           for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))),
        "observations": Counter((row.code, row.value, row.unit, row.source, row.source_ref == str(conversation.id),
                                 row.effective_at)
                                for row in db.scalars(select(Observation).where(Observation.patient_id == patient.id))),
        "log": Counter((row.direction, row.channel, row.text, row.session_id == conversation.id, row.created_at)
                       for row in db.scalars(select(ConversationMessage)
                                             .where(ConversationMessage.patient_id == patient.id))),
        "audit": Counter((row.action, row.resource_type, row.details, row.actor_kind, row.source, row.occurred_at)
                         for row in audit if row.action != "patient.enroll"),
        "receipts": Counter((tuple(reply["texts"]), reply["deferred"], repr(reply["voice"]),
                             reply["patient_id"] == str(patient.id),
                             reply["session_id"] in (None, str(conversation.id)))
                            for reply in (row.reply for row in db.scalars(
                                select(InboundReceipt).where(InboundReceipt.patient_id == patient.id)))),
        "conversation": (conversation.state, conversation.facts, conversation.status, conversation.channel,
                         conversation.expires_at, conversation.next_timer_at, conversation.end_status),
    }


def test_a_plain_turn_writes_exactly_what_the_general_path_writes(db, make_patient, services: BotServices,
                                                                  clock: FixedClock, plain_calls: list[bool]):
    plain, general = make_patient(), make_patient()
    for step, answer in enumerate(SCRIPT):
        by_plain = handle_inbound(db, services, message(plain, answer, clock))
        by_general = router._handle(db, services, message(general, answer, clock), router._never, plain=False)
        db.flush()
        # The same reply, apart from whose conversation it names.
        assert by_plain.texts == by_general.texts, step
        mine, theirs = record_of(db, plain), record_of(db, general)
        assert mine == theirs, step
    # The keyword, item 9 answered positively (a staff alert) and the last answer (scoring, tags, the next
    # follow-up) take the general path; the other eight answers, the score's observation included, are plain.
    assert plain_calls == [False, *[True] * 8, False, False]
    # Every audit entry the plain path wrote carries a valid MAC.
    keys = db.info["audit_keys"]
    assert isinstance(keys, AuditKeys)
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.patient_id == plain.id)))
    assert len(entries) > 9
    assert all(keys.entry_mac(entry) == entry.mac for entry in entries)


def test_a_plain_turn_is_not_taken_for_consent_words_or_an_opted_out_channel(db, make_patient, services,
                                                                              clock, plain_calls):
    patient = make_patient()
    handle_inbound(db, services, message(patient, "问卷", clock))
    handle_inbound(db, services, message(patient, "STOP", clock))
    assert plain_calls == [False, False]  # the keyword starts a flow; a consent word is never an answer
    assert handle_inbound(db, services, message(patient, "2", clock)).texts == []  # opted out: no answer
    assert plain_calls == [False, False, False]
    assert db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id)).first() is None


# -- two messages of one patient at once, on a database of their own ---------------------------------------
@dataclass
class Race:
    patient: Patient
    first: Reply
    second: Reply


def race(runtime: Runtime, first_text: str, second_text: str) -> Race:
    """A patient with PHQ-9 open sends two messages at once: the second waits for the first's lock.

    The first is handled and holds the lock, not yet committed, while the second starts (and, on
    PostgreSQL, reads in the statement that waits for the lock); then the first commits.
    """
    services = bot_for(runtime).services
    clock = runtime.clock
    with runtime.db.unit_of_work() as session:
        patient = enroll(session, EnrolmentRequest(card_no="C0000042", name="竞态测试", gender="M",
                                                   birth_date=date(1960, 1, 1), phone="+8613900000042",
                                                   language="zh"), actor=TEST_ACTOR).patient
        handle_inbound(session, services, message(patient, "问卷", clock))
    replies: list[Reply] = []

    def second() -> None:
        with runtime.db.unit_of_work() as session:
            replies.append(handle_inbound(session, services, message(patient, second_text, clock)))

    first_reply = while_held(
        runtime, lambda first: handle_inbound(first, services, message(patient, first_text, clock)), second)
    return Race(patient, first_reply, replies[0])


def saved_results(runtime: Runtime, patient: Patient) -> dict[str, Any]:
    with runtime.db.unit_of_work() as session:
        return {row.name: row.value for row in session.scalars(select(FlowResult)
                                                               .where(FlowResult.patient_id == patient.id))}


def test_an_answer_that_waited_for_the_patients_lock_sees_the_answer_before_it(live_runtime: Runtime):
    raced = race(live_runtime, "2", "4")
    assert "（2/9）" in "".join(raced.first.texts)
    # The second answer went to the second question, not again to the first.
    assert "（3/9）" in "".join(raced.second.texts)
    assert saved_results(live_runtime, raced.patient) == {"phq9_q1": 1, "phq9_q2": 3}


def test_an_answer_that_waited_while_the_patient_opted_out_is_not_answered(live_runtime: Runtime):
    raced = race(live_runtime, "STOP", "2")
    assert raced.second.texts == []  # the channel is off: no next question
    assert saved_results(live_runtime, raced.patient) == {}
