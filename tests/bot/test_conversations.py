"""Conversations end to end over the console channel: PHQ-9, dedupe, opt-out, menu, timers."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from bot.models import ConversationMessage, ConversationSession, InboundReceipt, OutboxMessage
from bot.timers import due_timers
from bot.turns.delivery import prune_receipts
from care.models import FlowResult, Observation, StaffTask
from security.audit import AuditEntry
from tests.clinic import with_clinic

# Choices 1..4 score 0..3: points [1,2,1,2,1,1,1,0,1] -> total 10, moderate, item 9 positive (spec 6.3).
PHQ9_ANSWERS = ["2", "3", "2", "3", "2", "2", "2", "1", "2"]


def results(db, patient):
    rows = db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))
    return {row.name: row for row in rows}


def test_phq9_over_console_saves_every_answer_and_the_score(db, make_patient, say_as):
    patient = make_patient()
    first = say_as(patient.card_no, "问卷")
    assert "做事时提不起劲或没有兴趣" in "\n".join(first.texts)
    assert "1" in first.texts[-1]
    assert "完全不会" in first.texts[-1]
    transcript = []
    for answer in [*PHQ9_ANSWERS, "2"]:  # the tenth, unscored question: how difficult
        transcript.extend(say_as(patient.card_no, answer).texts)
    saved = results(db, patient)
    assert saved["phq9_q1"].value == 1
    assert saved["phq9_total"].value == 10
    assert saved["phq9_total"].category == "moderate"
    text = "\n".join(transcript)
    assert "12356" in text  # item 9 answered "several days": the safety message
    assert text.index("12356") < text.index("10 分")  # ...before the score
    tasks = list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))
    assert [task.priority for task in tasks] == ["urgent"]
    total = db.scalars(select(Observation).where(Observation.patient_id == patient.id,
                                                 Observation.code == "44261-6")).one()
    assert total.value == 10


def test_a_repeated_delivery_is_processed_once_and_answered_identically(db, make_patient, say_as):
    patient = make_patient()
    say_as(patient.card_no, "问卷")
    once = say_as(patient.card_no, "2", key="dup-1")
    twice = say_as(patient.card_no, "2", key="dup-1")
    assert once.texts == twice.texts
    assert db.scalar(select(func.count()).select_from(InboundReceipt).where(
        InboundReceipt.provider_key == "dup-1")) == 1
    assert len([r for r in results(db, patient) if r.startswith("phq9_q")]) == 1


@pytest.fixture
def settings(settings):
    """This clinic's own name, phone, templates... (tests/clinic.py), as its operator set them."""
    return with_clinic(settings)


def test_an_unknown_word_gets_the_menu_and_help_gets_the_contact(db, make_patient, say_as):
    patient = make_patient()
    assert "血压" in say_as(patient.card_no, "你好").texts[0]
    assert "021-5550-0101" in say_as(patient.card_no, "帮助").texts[0]


@pytest.mark.parametrize(("lang", "word", "name"), [("zh", "帮助", "幸福里健康管理中心"),
                                                     ("en", "HELP", "Xingfuli Health Centre")])
def test_help_names_the_configured_clinic_in_the_patients_language(make_patient, say_as, lang, word, name):
    patient = make_patient(language=lang, name="Test Person")
    reply = say_as(patient.card_no, word).texts[0]
    assert name in reply
    assert "021-5550-0101" in reply
    assert "Careloop" not in reply


@pytest.mark.parametrize(("lang", "name"), [("zh", "幸福里健康管理中心"), ("en", "Xingfuli Health Centre")])
def test_free_text_and_red_flags_name_the_configured_phone_and_emergency_number(make_patient, say_as, lang, name):
    patient = make_patient(language=lang, name="Test Person")
    question = say_as(patient.card_no, "can I change my appointment please").texts
    assert "021-5550-0101" in question[0]
    urgent = say_as(patient.card_no, "我胸痛得厉害" if lang == "zh" else "I have chest pain").texts
    assert "999" in urgent[0]
    assert "120" not in urgent[0]


def test_stop_turns_the_channel_off_at_once_and_start_turns_it_back_on(db, make_patient, say_as):
    patient = make_patient()
    assert "退订" in say_as(patient.card_no, "退订").texts[0]
    consent = patient.consent_for("console")
    assert consent is not None
    assert consent.opted_out
    assert say_as(patient.card_no, "问卷").texts == []
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "consent.opt_out", AuditEntry.patient_id == patient.id)) == 1
    say_as(patient.card_no, "START")
    assert not consent.opted_out
    assert say_as(patient.card_no, "问卷").texts


def test_an_invalid_answer_is_asked_again_in_the_patients_language(db, make_patient, say_as):
    patient = make_patient(language="en", name="Test Person")
    say_as(patient.card_no, "mood")
    reply = say_as(patient.card_no, "banana")
    assert "1-4" in "\n".join(reply.texts) or "1 to 4" in "\n".join(reply.texts)
    assert "Little interest" in "\n".join(reply.texts)


def test_the_conversation_log_keeps_both_directions_encrypted(db, make_patient, say_as):
    patient = make_patient()
    say_as(patient.card_no, "问卷")
    directions = [m.direction for m in db.scalars(select(ConversationMessage).where(
        ConversationMessage.patient_id == patient.id).order_by(ConversationMessage.created_at))]
    assert directions[0] == "in"
    assert "out" in directions


def test_silence_brings_a_neutral_reminder_then_expiry(db, make_patient, say_as, services, clock):
    patient = make_patient()
    say_as(patient.card_no, "问卷")
    clock.advance(hours=25)
    assert due_timers(db, services) == 1
    reminders = list(db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)))
    assert len(reminders) == 1
    assert "随访" in reminders[0].payload["text"]
    assert "做事" not in reminders[0].payload["text"]  # minimum disclosure: no health content
    clock.advance(hours=72)
    due_timers(db, services)
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert conversation.status == "ended"
    assert conversation.end_status == "expired"
    assert conversation.active_patient_id is None


def test_old_delivery_claims_are_pruned(db, make_patient, say_as, clock):
    patient = make_patient()
    say_as(patient.card_no, "你好", key="old-1")
    clock.advance(days=8)
    say_as(patient.card_no, "你好", key="new-1")
    assert prune_receipts(db) == 1
    keys = set(db.scalars(select(InboundReceipt.provider_key)))
    assert "old-1" not in keys
    assert "new-1" in keys


def test_a_picture_gets_a_kind_request_for_text_and_a_voice_note_counts_by_its_transcript(db, make_patient, say_as,
                                                                                          services, clock):
    from bot.messages import InboundMessage
    from bot.router import handle_inbound

    patient = make_patient()
    say_as(patient.card_no, "问卷")
    picture = InboundMessage(channel="console", provider_key="pic-1", sender=patient.card_no, kind="media",
                             received_at=clock.now(), extra={"media": "image"})
    assert "文字" in handle_inbound(db, services, picture).texts[0]
    voice = InboundMessage(channel="console", provider_key="voice-1", sender=patient.card_no, kind="media",
                           received_at=clock.now(), extra={"media": "voice", "recognition": "好几天"})
    handle_inbound(db, services, voice)
    db.flush()
    assert results(db, patient)["phq9_q1"].value == 1


@pytest.mark.parametrize(("templates", "used"), [
    ({"FOLLOWUP": "TPL-1", "REMINDER": "TPL-R"}, "TPL-R"),  # a reminder's own template
    ({"FOLLOWUP": "TPL-1"}, "TPL-1"),  # none for reminders: the follow-up one
])
def test_a_wechat_reminder_outside_the_48_hour_window_is_a_template_message(db, make_patient, services, clock,
                                                                            templates, used):
    from dataclasses import replace

    from bot.conversations import begin
    from tests.conftest import TEST_ACTOR

    wechat = replace(services, config=replace(services.config, wechat_templates=templates),
                     adapters={**services.adapters, "wechat": object()})
    patient = make_patient(wechat_openid="o-window-test")
    begin(db, wechat, patient, "phq9", channel="wechat", actor=TEST_ACTOR)
    db.flush()
    clock.advance(hours=49)  # the first reminder is due at 24 h; nobody wrote since
    due_timers(db, wechat)
    reminder = db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)).one()
    assert reminder.kind == "template"
    assert reminder.payload["template_id"] == used
    assert "做事" not in str(reminder.payload)


CHAIN_FLOW = """
id: chain_check
version: 1
title: {zh: 转接测试, en: Chain check}
expiry_hours: 24
nodes:
  - id: ready
    kind: question
    type: scale
    min: 0
    max: 10
    text: {zh: 请打0到10分。, en: Please give a score from 0 to 10.}
  - id: next
    kind: start_flow
    flow: phq9
  - id: done
    kind: end
    text: {zh: 谢谢！, en: Thank you!}
"""


def test_a_flow_that_ends_by_starting_another_opens_it_in_the_same_turn(db, make_patient, services, clock, tmp_path):
    from dataclasses import replace

    from bot.messages import InboundMessage
    from bot.router import handle_inbound
    from flows.registry import FlowLibrary

    (tmp_path / "chain_check.yaml").write_text(CHAIN_FLOW, encoding="utf-8")
    chained = replace(services, library=FlowLibrary([tmp_path]),
                      config=replace(services.config, keywords={**services.config.keywords, "转接": "chain_check"}))
    patient = make_patient()

    def say(text: str) -> list[str]:
        message = InboundMessage(channel="console", provider_key=f"chain:{text}", sender=patient.card_no,
                                 kind="text", text=text, received_at=clock.now())
        reply = handle_inbound(db, chained, message)
        db.flush()
        return reply.texts

    assert "0到10" in "".join(say("转接"))
    texts = "".join(say("7"))
    assert texts.index("谢谢") < texts.index("（1/9）")  # the first flow's end, then PHQ-9's first question
    sessions = list(db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)
                               .order_by(ConversationSession.flow_id)))
    assert [(row.flow_id, row.status) for row in sessions] == [("chain_check", "ended"), ("phq9", "waiting")]
    assert "（2/9）" in "".join(say("2"))


def _table_writes(statements):
    """The tables written, in order, one entry for consecutive statements on the same table (the
    rows of one flush; SQLite's driver may take them one statement each)."""
    writes: list[str] = []
    for statement in statements:
        # A batched write on PostgreSQL is one statement whose data-modifying CTEs write each table.
        for found in re.finditer(r"\b(INSERT INTO \S+|UPDATE \S+ SET|DELETE FROM \S+)", statement):
            table = found.group(1)
            if not writes or writes[-1] != table:
                writes.append(table)
    return writes


def test_a_turn_writes_each_table_once(db, make_patient, say_as, statements):
    # Reads in the middle of a turn flush only the kind of record they read: the message just
    # logged waits for the commit instead of being inserted before the flow's first query.
    patient = make_patient()
    statements.clear()
    say_as(patient.card_no, "问卷")
    start = _table_writes(statements)
    for answer in PHQ9_ANSWERS:
        say_as(patient.card_no, answer)
    statements.clear()
    say_as(patient.card_no, "2")  # the last question: results, score, tags, a staff task, the next follow-up
    end = _table_writes(statements)
    assert "INSERT INTO conversation_messages" in start
    assert "INSERT INTO patient_tags" in end
    for writes in (start, end):
        assert len(writes) == len(set(writes)), "\n".join(writes)
    assert results(db, patient)["phq9_total"].value == 10


def test_a_tag_added_twice_or_removed_and_added_back_in_one_unit_of_work_is_kept_once(db, make_patient):
    from care.tags import add_tag, remove_tag, tags_of
    from tests.conftest import TEST_ACTOR

    patient = make_patient()
    assert add_tag(db, patient, "Sleep", source="test", actor=TEST_ACTOR)
    assert not add_tag(db, patient, "sleep", source="test", actor=TEST_ACTOR)  # pending, not yet flushed
    assert tags_of(db, patient) == {"sleep"}
    db.flush()
    assert remove_tag(db, patient, "sleep", actor=TEST_ACTOR)
    assert tags_of(db, patient) == set()
    assert add_tag(db, patient, "sleep", source="test", actor=TEST_ACTOR)
    db.flush()
    assert tags_of(db, patient) == {"sleep"}


def test_a_conversation_opened_or_closed_in_this_unit_of_work_is_seen_as_it_is_left(db, make_patient, services):
    from bot.conversations import close, invite, open_conversation

    patient = make_patient()
    invited = invite(db, services, patient, "phq9", channel="console")
    assert open_conversation(db, patient) is invited  # pending, not yet flushed
    db.flush()
    close(db, invited, "cancelled")
    assert open_conversation(db, patient) is None


def test_a_flow_begun_for_a_patient_enrolled_in_the_same_unit_of_work_is_written_after_the_patient(db, services):
    from bot.conversations import begin
    from care.patients import EnrolmentRequest, enroll
    from tests.conftest import TEST_ACTOR

    request = EnrolmentRequest(card_no="T9900001", name="测试同批", gender="M", birth_date=date(1958, 3, 2),
                               phone="+8613899000001", language="zh")
    patient = enroll(db, request, actor=TEST_ACTOR).patient  # not flushed
    turn = begin(db, services, patient, "phq9", channel="console", actor=TEST_ACTOR)
    db.flush()
    assert db.scalar(select(ConversationSession.patient_id).where(ConversationSession.id == turn.conversation.id)) \
        == patient.id


def test_free_text_outside_a_flow_goes_to_the_care_team_not_the_menu(db, make_patient, say_as):
    patient = make_patient()
    reply = say_as(patient.card_no, "我头很痛怎么办").texts
    assert len(reply) == 1
    assert "医护人员会尽快回复您" in reply[0]
    assert "血压 / 血糖" not in reply[0]
    say_as(patient.card_no, "能改一下预约时间吗")
    [task] = db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).all()
    assert (task.kind, task.priority) == ("patient_message", "normal")
    assert [entry["message"] for entry in task.details["messages"]] == ["我头很痛怎么办", "能改一下预约时间吗"]


def test_free_text_in_english_gets_the_same_promise(db, make_patient, say_as):
    patient = make_patient(language="en", name="Test Person")
    reply = say_as(patient.card_no, "can I change my appointment").texts
    assert reply[0].startswith("We have your message")


def test_a_greeting_or_a_bare_number_outside_a_flow_gets_the_menu(db, make_patient, say_as):
    patient = make_patient()
    for text in ("你好", "hi", "1", "菜单"):
        assert "血压" in say_as(patient.card_no, text).texts[0]
    assert db.scalar(select(func.count()).select_from(StaffTask).where(StaffTask.patient_id == patient.id)) == 0


# The emergency number is the configured one (tests/clinic.py: 999), not a hard-coded 120.
@pytest.mark.parametrize(("lang", "text", "advice", "kind"), [
    ("zh", "我胸痛得厉害", "999", "chest_pain"),
    ("zh", "突然呼吸困难", "999", "breathing"),
    ("zh", "我不想活了，想死", "12356", "self_harm"),
    ("zh", "我妈昏迷了", "999", "unconscious"),
    ("en", "I have chest pain", "999", "chest_pain"),
    ("en", "I want to kill myself", "12356", "self_harm"),
])
def test_a_red_flag_message_gets_the_emergency_advice_first_and_an_urgent_task(
    db, make_patient, say_as, lang, text, advice, kind
):
    patient = make_patient(language=lang, name="Red Flag")
    reply = say_as(patient.card_no, text).texts
    assert advice in reply[0]
    assert len(reply) == 2
    tasks = list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))
    assert [(task.kind, task.priority, task.reason) for task in tasks] == [
        ("red_flag_message", "urgent", f"red_flag:{kind}")]
    assert tasks[0].details["message"] == text
