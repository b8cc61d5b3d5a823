"""What a turn reads before it steps (bot/turns/context): no record for a plain answer, nothing lost under a race."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

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


def message(patient: Patient, text_: str, clock: FixedClock) -> InboundMessage:
    return InboundMessage(channel="console", provider_key=f"test:{uuid.uuid4()}", sender=patient.card_no or "",
                          kind="text", text=text_, received_at=clock.now())


def _reads_and_writes(statements: list[str]) -> list[str]:
    """Each statement as its kind and first table (``SELECT patients``, ``INSERT INTO audit_entries``, ...)."""
    found = []
    for statement in statements:
        words = statement.split()
        verb = words[0].upper()
        if verb == "WITH":
            found.append("WITH")  # PostgreSQL: a batch, or the claim with its lock and read
        elif verb == "SELECT":
            found.append("SELECT " + words[words.index("FROM") + 1] if "FROM" in words else "SELECT")
        else:
            found.append(" ".join(words[:3]) if verb == "INSERT" else " ".join(words[:2]))
    return found


def test_an_answer_to_a_waiting_question_reads_no_record_and_writes_once(db, make_patient, services: BotServices,
                                                                          clock: FixedClock, statements: list[str]):
    patient = make_patient()
    handle_inbound(db, services, message(patient, "问卷", clock))
    db.flush()
    db.expunge_all()  # the next turn starts with nothing of the patient's loaded
    statements.clear()
    reply = handle_inbound(db, services, message(patient, "2", clock))
    assert "（2/9）" in "".join(reply.texts)
    seen = _reads_and_writes(statements)
    assert not any(kind.startswith("SELECT patients") and "claim" not in kind for kind in seen[3:]), seen
    if db.get_bind().dialect.name == "postgresql":
        assert seen == ["WITH", "WITH"], seen  # claim + lock + read; the batch
    else:
        # The sender's patient, the claim, the turn's context; then each table once, the updates last.
        reads, writes = seen[:3], seen[3:]
        assert reads[0] == "SELECT patients", seen
        assert reads[1].startswith("INSERT INTO inbound_receipts"), seen
        assert reads[2] == "SELECT patients", seen
        assert sorted(writes) == sorted(set(writes)), seen
        assert sorted(writes[-2:]) == ["UPDATE conversation_sessions", "UPDATE inbound_receipts"], seen
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    db.refresh(conversation)
    assert conversation.state
    receipt = db.scalars(select(InboundReceipt).where(InboundReceipt.patient_id == patient.id)
                         .order_by(InboundReceipt.received_at.desc())).first()
    assert receipt is not None
    assert receipt.reply is not None
    assert receipt.reply["texts"]


def test_a_whole_questionnaire_by_answers_keeps_every_audit_entry_valid(db, make_patient, services: BotServices,
                                                                        clock: FixedClock):
    patient = make_patient()
    for step, answer in enumerate(SCRIPT):
        reply = handle_inbound(db, services, message(patient, answer, clock))
        assert reply.texts, step
    db.flush()
    results = {row.name: row.value for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))}
    assert results["phq9_q1"] == 1
    assert "phq9_total" in results
    assert db.scalars(select(Observation).where(Observation.patient_id == patient.id)).first() is not None
    logged = list(db.scalars(select(ConversationMessage).where(ConversationMessage.patient_id == patient.id)))
    assert sum(1 for row in logged if row.direction == "in") == len(SCRIPT)
    keys = db.info["audit_keys"]
    assert isinstance(keys, AuditKeys)
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.patient_id == patient.id)))
    assert len(entries) > 9
    assert all(keys.entry_mac(entry) == entry.mac for entry in entries)


def test_consent_words_are_never_answers_and_an_opted_out_channel_gets_no_question(db, make_patient, services,
                                                                                   clock):
    patient = make_patient()
    handle_inbound(db, services, message(patient, "问卷", clock))
    handle_inbound(db, services, message(patient, "STOP", clock))
    assert handle_inbound(db, services, message(patient, "2", clock)).texts == []  # opted out: no answer
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


def test_the_turns_conversation_is_a_plain_row_and_its_scene_writes_what_changed(
        db, make_patient, services: BotServices, clock: FixedClock):
    from bot.turns.context import load_turn
    from bot.turns.scene import write_scenes

    patient = make_patient()
    handle_inbound(db, services, message(patient, "问卷", clock))
    db.commit()
    db.expunge_all()
    context = load_turn(db, patient.id, "console", None)
    conversation = context.conversation
    assert conversation is not None
    # A plain row: nothing for the unit of work to walk at a flush or expire at commit.
    assert not any(isinstance(loaded, ConversationSession) for loaded in db.identity_map.values())
    assert conversation.state  # its sealed state, opened with the key the turn read
    asked = dict(conversation.state)
    conversation.state = {**asked, "probe": 1}
    conversation.channel = "sms"
    assert conversation.state["probe"] == 1  # what was assigned reads back before it is written
    write_scenes(db)
    db.commit()
    stored = db.scalars(select(ConversationSession).where(ConversationSession.id == conversation.id)).one()
    assert stored.state == {**asked, "probe": 1}
    assert stored.channel == "sms"
    # Written once: another write of the same scene has nothing left to write.
    context.scene.write()
    db.commit()
    db.refresh(stored)
    assert stored.state == {**asked, "probe": 1}


def test_answers_of_one_shape_reuse_the_statements_built_for_the_first(db, make_patient, services: BotServices,
                                                                       clock: FixedClock):
    from security import dialects

    patients = [make_patient() for _ in range(3)]
    for patient in patients:
        handle_inbound(db, services, message(patient, "问卷", clock))
    db.commit()
    handle_inbound(db, services, message(patients[0], "2", clock))  # the first answer of its shape builds them
    db.commit()
    built = dialects._batch_statements.cache_info().misses, dialects._prepared.cache_info().misses
    for patient in patients[1:]:
        handle_inbound(db, services, message(patient, "2", clock))
        db.commit()
    # Building and compiling the batch's statement again on every turn costs more than the rest of the turn.
    assert (dialects._batch_statements.cache_info().misses, dialects._prepared.cache_info().misses) == built
