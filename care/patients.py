"""Enrolment (开卡) and finding patients: the one service used by imports, the demo seed and the panel."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.errors import NotFoundError, Problem, ValidationFailedError
from care.identifiers import (
    IdentifierError,
    id_birth_date,
    id_gender,
    normalize_card_no,
    normalize_id_number,
    normalize_openid,
    normalize_phone,
)
from care.models import Card, Channel, ChannelConsent, Patient, PatientStatus
from security.audit import Actor, log
from security.fields import clock_of

GENDERS = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
LANGUAGES = {"zh": "zh", "zh-cn": "zh", "中文": "zh", "en": "en", "english": "en", "英文": "en"}
MAX_NAME = 64
MAX_PACKAGE = 128


@dataclass(frozen=True)
class EnrolmentRequest:
    """One patient to enrol, already parsed into Python values and normalised."""

    card_no: str
    name: str
    gender: str
    birth_date: date
    phone: str
    id_number: str | None = None
    package: str | None = None
    language: str = "zh"
    wechat_openid: str | None = None


def _text(values: Mapping[str, object], key: str) -> str:
    raw = values.get(key)
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    return str(raw).strip()


def parse_enrolment(values: Mapping[str, object]) -> EnrolmentRequest:
    """Validate raw values (from a spreadsheet row or a form) into a request; every problem is reported.

    Raises:
        ValidationFailedError: with one :class:`Problem` per bad field.
    """
    problems: list[Problem] = []

    def required(key: str) -> str:
        text = _text(values, key)
        if not text:
            problems.append(Problem(key, "is required"))
        return text

    card_no = required("card_no")
    if card_no:
        try:
            card_no = normalize_card_no(card_no)
        except IdentifierError as error:
            problems.append(Problem("card_no", str(error)))
    name = required("name")
    if len(name) > MAX_NAME:
        problems.append(Problem("name", f"is longer than {MAX_NAME} characters"))
    gender_text = required("gender")
    gender = GENDERS.get(gender_text.lower(), "")
    if gender_text and not gender:
        problems.append(Problem("gender", f"{gender_text!r} is not M/F or 男/女"))
    birth_text = required("birth_date")
    birth: date | None = None
    if birth_text:
        try:
            birth = date.fromisoformat(birth_text)
        except ValueError:
            problems.append(Problem("birth_date", f"{birth_text!r} is not a date in YYYY-MM-DD form"))
        else:
            if birth > date.today() or birth.year < 1900:
                problems.append(Problem("birth_date", f"{birth_text} is not a plausible birth date"))
    phone = required("phone")
    if phone:
        try:
            phone = normalize_phone(phone)
        except IdentifierError as error:
            problems.append(Problem("phone", str(error)))
    id_number: str | None = _text(values, "id_number") or None
    if id_number:
        try:
            id_number = normalize_id_number(id_number)
        except IdentifierError as error:
            problems.append(Problem("id_number", str(error)))
        else:
            if birth is not None and id_birth_date(id_number) != birth:
                problems.append(Problem("id_number", "birth date in the ID number differs from birth_date"))
            if gender and id_gender(id_number) != gender:
                problems.append(Problem("id_number", "gender in the ID number differs from gender"))
    package = _text(values, "package") or None
    if package and len(package) > MAX_PACKAGE:
        problems.append(Problem("package", f"is longer than {MAX_PACKAGE} characters"))
    language_text = _text(values, "language") or "zh"
    language = LANGUAGES.get(language_text.lower(), "")
    if not language:
        problems.append(Problem("language", f"{language_text!r} is not zh or en"))
    openid: str | None = _text(values, "wechat_openid") or None
    if openid:
        try:
            openid = normalize_openid(openid)
        except IdentifierError as error:
            problems.append(Problem("wechat_openid", str(error)))
    if problems or birth is None:
        raise ValidationFailedError(problems)
    return EnrolmentRequest(
        card_no=card_no, name=name, gender=gender, birth_date=birth, phone=phone, id_number=id_number,
        package=package, language=language, wechat_openid=openid,
    )


class EnrolmentOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class Enrolment:
    patient: Patient
    outcome: EnrolmentOutcome
    changed_fields: list[str] = field(default_factory=list)


def find_by_card(session: Session, card_no: str) -> Patient | None:
    try:
        normalized = normalize_card_no(card_no)
    except IdentifierError:
        return None
    return session.scalars(select(Patient).where(Patient.card_no.matches(session, normalized))).one_or_none()


def find_by_id_number(session: Session, id_number: str) -> Patient | None:
    try:
        normalized = normalize_id_number(id_number)
    except IdentifierError:
        return None
    return session.scalars(select(Patient).where(Patient.id_number.matches(session, normalized))).one_or_none()


def find_by_phone(session: Session, phone: str) -> list[Patient]:
    """Patients with this phone number (a family may share one), newest first."""
    try:
        normalized = normalize_phone(phone)
    except IdentifierError:
        return []
    query = select(Patient).where(Patient.phone.matches(session, normalized)).order_by(Patient.created_at.desc())
    return list(session.scalars(query))


def find_by_openid(session: Session, openid: str) -> Patient | None:
    try:
        normalized = normalize_openid(openid)
    except IdentifierError:
        return None
    return session.scalars(select(Patient).where(Patient.wechat_openid.matches(session, normalized))).one_or_none()


def get_patient(session: Session, reference: str) -> Patient:
    """Find a patient by card number or internal id (PATIENT_REF in the CLI)."""
    try:
        patient = session.get(Patient, uuid.UUID(reference))
    except ValueError:
        patient = None
    if patient is None:
        patient = find_by_card(session, reference)
    if patient is None or patient.status == PatientStatus.ERASED:
        raise NotFoundError(f"no patient with card number or id {reference!r}")
    return patient


_COMPARED = ("name", "gender", "birth_date", "phone", "id_number", "language", "wechat_openid")


def enroll(
    session: Session, request: EnrolmentRequest, *, actor: Actor, existing: Patient | None = None,
    look_up: bool = True,
) -> Enrolment:
    """Enrol a patient, or bring an enrolled card's details up to date (idempotent by card number).

    ``existing`` lets a bulk caller pass the patient it already looked up (or None with
    ``look_up=False`` when it knows the card is new), saving one query per row.

    Raises:
        ValidationFailedError: the ID number or openid already belongs to another card.
    """
    now = clock_of(session).now()
    patient = find_by_card(session, request.card_no) if look_up and existing is None else existing
    _check_unique(session, request, patient)
    if patient is None:
        patient = Patient(
            card_no=request.card_no, name=request.name, gender=request.gender, birth_date=request.birth_date,
            phone=request.phone, id_number=request.id_number, wechat_openid=request.wechat_openid,
            language=request.language, timezone="Asia/Shanghai", status=PatientStatus.ACTIVE.value,
            created_at=now, updated_at=now,
        )
        session.add(patient)
        if request.package:
            patient.cards.append(
                Card(package=request.package, issued_on=now.date(), status="active", created_at=now, updated_at=now)
            )
        for channel in (Channel.SMS, Channel.VOICE, Channel.WECHAT):
            # Enrolment at the front desk includes consent to be contacted; recording needs its own consent.
            patient.consents.append(
                ChannelConsent(channel=channel.value, consented=True, consented_at=now, recording_consent=False,
                               opted_out=False, created_at=now, updated_at=now)
            )
        log(session, actor=actor, action="patient.enroll", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id)
        return Enrolment(patient, EnrolmentOutcome.CREATED)
    changed = [name for name in _COMPARED if getattr(patient, name) != getattr(request, name)]
    if request.package and not any(card.package == request.package for card in patient.cards):
        patient.cards.append(
            Card(package=request.package, issued_on=now.date(), status="active", created_at=now, updated_at=now)
        )
        changed.append("package")
    if not changed:
        return Enrolment(patient, EnrolmentOutcome.UNCHANGED)
    for name in changed:
        if name != "package":
            setattr(patient, name, getattr(request, name))
    patient.updated_at = now
    log(session, actor=actor, action="patient.update", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"fields": ",".join(changed)})
    return Enrolment(patient, EnrolmentOutcome.UPDATED, changed)


def _check_unique(session: Session, request: EnrolmentRequest, patient: Patient | None) -> None:
    problems: list[Problem] = []
    if request.id_number:
        other = find_by_id_number(session, request.id_number)
        if other is not None and (patient is None or other.id != patient.id):
            problems.append(Problem("id_number", "is already enrolled under another card"))
    if request.wechat_openid:
        other = find_by_openid(session, request.wechat_openid)
        if other is not None and (patient is None or other.id != patient.id):
            problems.append(Problem("wechat_openid", "is already bound to another card"))
    if problems:
        raise ValidationFailedError(problems)
