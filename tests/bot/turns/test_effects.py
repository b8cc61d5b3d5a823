"""A low glucose sent by chat opens one urgent staff task, on the general path and on the plain turn's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.router import handle_inbound
from care.models import Observation, Patient, StaffTask
from flows.registry import FlowLibrary
from security.clock import FixedClock


def tasks_of(db: Session, patient: Patient) -> list[StaffTask]:
    return list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))


def glucose_of(db: Session, patient: Patient) -> list[float | None]:
    return [row.value for row in db.scalars(select(Observation).where(Observation.patient_id == patient.id,
                                                                      Observation.code == "14771-0"))]  # fmt: skip


@pytest.mark.parametrize(
    ("said", "reason"), [("空腹血糖 2.5", "hypoglycaemia_level2"), ("血糖 3.5", "hypoglycaemia_level1")]
)
def test_a_low_home_glucose_opens_one_urgent_task(
    db: Session, make_patient: Callable[..., Patient], say_as: Callable[..., Reply], said: str, reason: str
) -> None:
    patient = make_patient()
    say_as(patient.card_no, "血糖")
    reply = say_as(patient.card_no, said)
    assert "15克" in "\n".join(reply.texts)  # the patient's advice comes from the flow
    assert glucose_of(db, patient) == [float(said.split()[-1])]
    (task,) = tasks_of(db, patient)  # one task for the reading: the record's, not also the flow's
    assert (task.kind, task.priority, task.reason) == ("reading_red_flag", "urgent", reason)


def test_a_low_after_meal_glucose_is_not_recorded_but_still_urgent(
    db: Session, make_patient: Callable[..., Patient], say_as: Callable[..., Reply]
) -> None:
    patient = make_patient()
    say_as(patient.card_no, "血糖")
    say_as(patient.card_no, "餐后血糖 3.5")
    assert glucose_of(db, patient) == []
    (task,) = tasks_of(db, patient)
    assert (task.kind, task.priority, task.reason) == ("flow_alert", "urgent", "glucose_low")


def test_a_normal_home_glucose_opens_no_task(
    db: Session, make_patient: Callable[..., Patient], say_as: Callable[..., Reply]
) -> None:
    patient = make_patient()
    say_as(patient.card_no, "血糖")
    say_as(patient.card_no, "空腹血糖 5.6")
    assert glucose_of(db, patient) == [5.6]
    assert tasks_of(db, patient) == []


#: A coded glucose question whose answer becomes an observation through its result alone (no
#: record_observation node), followed by another question: a turn the plain path could take.
CODED_GLUCOSE_FLOW = """
id: sugar_check
version: 1
title: {zh: 血糖问答, en: Sugar check}
expiry_hours: 24
nodes:
  - id: sugar
    kind: question
    type: glucose
    code: 14771-0
    text: {zh: 请告诉我们您的空腹血糖。, en: "Your fasting blood sugar, please."}
  - id: mood
    kind: question
    type: scale
    min: 0
    max: 10
    text: {zh: 今天心情打几分？, en: "How is your mood today, 0 to 10?"}
  - id: done
    kind: end
    text: {zh: 谢谢！, en: Thank you!}
"""


@pytest.mark.parametrize(("answer", "reasons"), [("6.0", []), ("2.5", ["hypoglycaemia_level2"])])
def test_a_coded_low_glucose_answer_in_the_middle_of_a_flow_opens_its_task(
    db: Session, make_patient: Callable[..., Patient], services: BotServices, clock: FixedClock, tmp_path: Path,
    answer: str, reasons: list[str],
) -> None:  # fmt: skip
    (tmp_path / "sugar_check.yaml").write_text(CODED_GLUCOSE_FLOW, encoding="utf-8")
    custom = replace(services, library=FlowLibrary([tmp_path]),
                     config=replace(services.config, keywords={**services.config.keywords, "测糖": "sugar_check"}))
    patient = make_patient()

    def say(text: str) -> None:
        message = InboundMessage(channel="console", provider_key=f"sugar:{text}", sender=patient.card_no or "",
                                 kind="text", text=text, received_at=clock.now())
        handle_inbound(db, custom, message)
        db.flush()

    say("测糖")
    say(answer)
    assert glucose_of(db, patient) == [float(answer)]
    assert [task.reason for task in tasks_of(db, patient)] == reasons
