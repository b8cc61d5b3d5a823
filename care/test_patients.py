"""Test patients: made-up patients the simulator speaks as, one per staff member.

A staff member trying a flow in the simulator never speaks for a real patient: they speak as their
own test patient, made at their first message. A test patient (``Patient.is_test``) has no phone,
no WeChat account and no consent to be contacted, so it is reached on the console channel only
(``bot.consent.channel_usable``, ``bot.outbox.queue.enqueue`` and ``care.followups.schedule_followup``
hold to that even if someone gives it a phone); exports and the clinic's counts leave it out
(:func:`care.patients.real_patients`), and an import cannot take over its card number.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.errors import CareError
from care.models import Patient, PatientStatus, User
from care.patients import DEFAULT_PATIENT_TIMEZONE, find_by_card
from security.audit import Actor, log
from security.fields import clock_of

CARD_PREFIX = "SIM-"
MAX_NAME = 64
NAMES = {"zh": "测试患者（{staff}）", "en": "Test patient ({staff})"}
# Made up, and plausible enough for every library flow (an adult, so the risk models have an age).
BIRTH_DATE = date(1960, 1, 1)
GENDER = "F"


class NotATestPatientError(CareError):
    """The patient named is a real patient; the simulator speaks only as test patients."""

    def __init__(self, patient_id: uuid.UUID) -> None:
        super().__init__(f"patient {patient_id} is not a test patient")
        self.patient_id = patient_id


def require_test_patient(patient: Patient) -> None:
    """Refuse a real patient.

    :raises NotATestPatientError: ``patient`` is not a test patient.
    """
    if not patient.is_test:
        raise NotATestPatientError(patient.id)


def find_own_test_patient(session: Session, user: User) -> Patient | None:
    """Return ``user``'s test patient if it was made already."""
    return session.scalars(select(Patient).where(Patient.test_owner_id == user.id, Patient.is_test.is_(True),
                                                 Patient.status == PatientStatus.ACTIVE.value)
                           .order_by(Patient.created_at).limit(1)).first()


def own_test_patient(session: Session, user: User, *, actor: Actor, language: str = "zh",
                     timezone: str = DEFAULT_PATIENT_TIMEZONE) -> Patient:
    """Return ``user``'s test patient, making it (in ``language``) the first time; the making is audited."""
    existing = find_own_test_patient(session, user)
    if existing is not None:
        return existing
    language = language if language in NAMES else "zh"
    now = clock_of(session).now()
    patient = Patient(
        card_no=_free_card_number(session, user), name=NAMES[language].format(staff=user.display_name)[:MAX_NAME],
        gender=GENDER, birth_date=BIRTH_DATE, phone=None, id_number=None, wechat_openid=None, language=language,
        timezone=timezone, status=PatientStatus.ACTIVE.value, is_test=True, test_owner_id=user.id,
        created_at=now, updated_at=now,
    )
    session.add(patient)
    log(session, actor=actor, action="patient.test_create", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"owner": str(user.id)})
    return patient


def _free_card_number(session: Session, user: User) -> str:
    """``SIM-`` and the start of the user's id; longer if a real card already has that number."""
    digits = user.id.hex.upper()
    for length in (8, 12, 32):
        card = CARD_PREFIX + digits[:length]
        if find_by_card(session, card) is None:
            return card
    raise RuntimeError("no free card number for a test patient")  # 32 hex digits are the user's own id
