"""Enrolment (开卡) and finding patients: the one service used by imports, the demo seed and the panel.

Raw values (a spreadsheet row, a form) become an :class:`EnrolmentRequest` in
:mod:`care.imports.enrolment_rows`; this module only takes requests already parsed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, selectinload

from care.errors import NotFoundError, Problem, ValidationFailedError
from care.identifiers import (
    IdentifierError,
    normalize_card_no,
    normalize_id_number,
    normalize_openid,
    normalize_phone,
)
from care.models import Card, Channel, ChannelConsent, Patient, PatientStatus
from care.quiet_hours import FORMAT as QUIET_HOURS_FORMAT
from care.quiet_hours import parse_quiet_hours, quiet_hours_text
from security.audit import Actor, log
from security.fields import cipher_of, clock_of, insert_new

# A new patient's time zone when the caller names none: CARELOOP_TIMEZONE's default (callers pass the clinic's).
DEFAULT_PATIENT_TIMEZONE = "Asia/Shanghai"


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


class EnrolmentOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class Enrolment:
    patient: Patient
    outcome: EnrolmentOutcome
    changed_fields: list[str] = field(default_factory=list)


def real_patients() -> ColumnElement[bool]:
    """The condition that leaves test patients (``care.test_patients``) out of exports, counts and campaigns."""
    return Patient.is_test.is_(False)


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
        raise NotFoundError("no patient has this card number or id")
    return patient


_COMPARED = ("name", "gender", "birth_date", "phone", "id_number", "language", "wechat_openid")
# The identifiers that only one patient may hold besides the card number.
_UNIQUE = ("id_number", "wechat_openid")
# Values per IN (...) query in bulk look-ups.
_QUERY_CHUNK = 500


@dataclass
class IdentifierHolders:
    """Which patient holds each ID number and WeChat openid that a batch of enrolments names.

    A bulk caller gathers it once per batch with :func:`identifier_holders` and passes it to every
    :func:`enroll` of that batch: the uniqueness checks then read it instead of querying (and
    flushing) once per patient, and each enrolment records the identifiers it takes, so two rows
    of one batch still cannot claim the same ID number or openid.
    """

    held: dict[str, dict[str, uuid.UUID]] = field(default_factory=lambda: {name: {} for name in _UNIQUE})

    def holder(self, name: str, value: str) -> uuid.UUID | None:
        return self.held[name].get(value)

    def claim(self, patient_id: uuid.UUID, values: Mapping[str, str | None],
              previous: Mapping[str, str | None] | None = None) -> None:
        """Record that ``patient_id`` now holds ``values`` (and no longer its ``previous`` ones)."""
        for name in _UNIQUE:
            old, new = (previous or {}).get(name), values.get(name)
            if old and old != new and self.held[name].get(old) == patient_id:
                del self.held[name][old]
            if new:
                self.held[name][new] = patient_id


def identifier_holders(session: Session, requests: Iterable[EnrolmentRequest]) -> IdentifierHolders:
    """Look up, in one query per identifier, the patients already holding the requests' ID numbers and openids."""
    cipher = cipher_of(session)
    holders = IdentifierHolders()
    wanted: dict[str, set[str]] = {name: set() for name in _UNIQUE}
    for request in requests:
        for name in _UNIQUE:
            value = getattr(request, name)
            if value:
                wanted[name].add(value)
    for name, values in wanted.items():
        if not values:
            continue
        encrypted_field = getattr(Patient, name)
        by_index = {encrypted_field.index_value(cipher, value): value for value in values}
        column = encrypted_field.index_column()
        for patient_id, index in session.execute(select(Patient.id, column).where(column.in_(list(by_index)))):
            holders.held[name][by_index[index]] = patient_id
    return holders


def enroll(
    session: Session, request: EnrolmentRequest, *, actor: Actor, existing: Patient | None = None,
    look_up: bool = True, holders: IdentifierHolders | None = None, timezone: str = DEFAULT_PATIENT_TIMEZONE,
) -> Enrolment:
    """Enrol a patient, or bring an enrolled card's details up to date (idempotent by card number).

    A new patient lives in ``timezone`` (the clinic's, ``CARELOOP_TIMEZONE``, from the caller).
    ``existing`` lets a bulk caller pass the patient it already looked up (or None with
    ``look_up=False`` when it knows the card is new), saving one query per row; ``holders``
    (from :func:`identifier_holders`, shared by a batch) saves the uniqueness queries too.

    Raises:
        ValidationFailedError: the ID number or openid already belongs to another card, or the card is a
            test patient's (the simulator's; no real person may be enrolled under it).
    """
    now = clock_of(session).now()
    patient = find_by_card(session, request.card_no) if look_up and existing is None else existing
    if patient is not None and patient.is_test:
        raise ValidationFailedError([Problem("card_no", "belongs to a test patient of the simulator")])
    _check_unique(session, request, patient, holders)
    if patient is None:
        patient = Patient(**_patient_values(request, now, timezone))
        session.add(patient)
        if request.package:
            patient.cards.append(Card(**_card_values(request.package, now)))
        for values in _consent_values(now):
            patient.consents.append(ChannelConsent(**values))
        _log_enrolled(session, actor, patient.id)
        if holders is not None:
            holders.claim(patient.id, _unique_values(request))
        return Enrolment(patient, EnrolmentOutcome.CREATED)
    changed = [name for name in _COMPARED if getattr(patient, name) != getattr(request, name)]
    if request.package and not any(card.package == request.package for card in patient.cards):
        patient.cards.append(Card(**_card_values(request.package, now)))
        changed.append("package")
    if not changed:
        return Enrolment(patient, EnrolmentOutcome.UNCHANGED)
    if holders is not None:
        holders.claim(patient.id, _unique_values(request), previous=_unique_values(patient))
    for name in changed:
        if name != "package":
            setattr(patient, name, getattr(request, name))
    patient.updated_at = now
    log(session, actor=actor, action="patient.update", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"fields": ",".join(changed)})
    return Enrolment(patient, EnrolmentOutcome.UPDATED, changed)


@dataclass(frozen=True)
class BatchEnrolment:
    """What :func:`enroll_many` made of one request: its outcome, or the problems that refused it."""

    outcome: EnrolmentOutcome | None
    patient_id: uuid.UUID | None = None
    problems: tuple[Problem, ...] = ()


def patients_by_card(session: Session, card_numbers: Iterable[str]) -> dict[str, Patient]:
    """The enrolled patients among normalised ``card_numbers`` (with their cards), in one query per chunk."""
    cipher = cipher_of(session)
    by_index = {Patient.card_no.index_value(cipher, card): card for card in card_numbers}
    indexes = list(by_index)
    found: dict[str, Patient] = {}
    for start in range(0, len(indexes), _QUERY_CHUNK):
        query = (
            select(Patient)
            .where(Patient.card_no.index_column().in_(indexes[start : start + _QUERY_CHUNK]))
            .options(selectinload(Patient.cards))
        )
        for patient in session.scalars(query):
            index = Patient.card_no.stored_index(patient)
            if index is not None:
                found[by_index[index]] = patient
    return found


def enroll_many(session: Session, requests: Sequence[EnrolmentRequest], *, actor: Actor,
                timezone: str = DEFAULT_PATIENT_TIMEZONE) -> list[BatchEnrolment]:
    """Enrol a batch of patients (the import): the rules and records of :func:`enroll`, written in bulk.

    Cards already enrolled are brought up to date by :func:`enroll`; new patients, their card and
    consents are written with one INSERT per table (every PHI field encrypted under the patient's
    own data key, as always) and each gets its ``patient.enroll`` audit entry. A card number twice
    in one batch is refused the second time. Returns one :class:`BatchEnrolment` per request, in order.
    """
    now = clock_of(session).now()
    existing = patients_by_card(session, [request.card_no for request in requests])
    holders = identifier_holders(session, requests)
    results: list[BatchEnrolment] = []
    created: list[tuple[uuid.UUID, EnrolmentRequest]] = []
    new_cards: set[str] = set()
    for request in requests:
        patient = existing.get(request.card_no)
        try:
            if patient is not None:
                result = enroll(session, request, actor=actor, existing=patient, look_up=False, holders=holders)
                results.append(BatchEnrolment(result.outcome, patient.id))
                continue
            if request.card_no in new_cards:
                raise ValidationFailedError([Problem("card_no", "appears more than once in this batch")])
            _check_unique(session, request, None, holders)
        except ValidationFailedError as failure:
            results.append(BatchEnrolment(None, problems=tuple(failure.problems)))
            continue
        patient_id = uuid.uuid4()
        new_cards.add(request.card_no)
        holders.claim(patient_id, _unique_values(request))
        created.append((patient_id, request))
        results.append(BatchEnrolment(EnrolmentOutcome.CREATED, patient_id))
    # Updates first: an identifier one of them gave up may be taken by a new patient below.
    session.flush()
    patients: list[tuple[uuid.UUID, dict[str, Any]]] = []
    cards: list[tuple[uuid.UUID, dict[str, Any]]] = []
    consents: list[tuple[uuid.UUID, dict[str, Any]]] = []
    for patient_id, request in created:
        patients.append((patient_id, {"id": patient_id, **_patient_values(request, now, timezone)}))
        if request.package:
            cards.append((patient_id, {"id": uuid.uuid4(), "patient_id": patient_id,
                                       **_card_values(request.package, now)}))
        consents.extend((patient_id, {"id": uuid.uuid4(), "patient_id": patient_id, **values})
                        for values in _consent_values(now))
    for model, rows in ((Patient, patients), (Card, cards), (ChannelConsent, consents)):
        insert_new(session, model, [record for _, record in rows], [owner for owner, _ in rows])
    for patient_id, _ in created:
        _log_enrolled(session, actor, patient_id)
    return results


def _patient_values(request: EnrolmentRequest, now: datetime, timezone: str) -> dict[str, Any]:
    return {
        "card_no": request.card_no, "name": request.name, "gender": request.gender, "birth_date": request.birth_date,
        "phone": request.phone, "id_number": request.id_number, "wechat_openid": request.wechat_openid,
        "language": request.language, "timezone": timezone, "status": PatientStatus.ACTIVE.value,
        "created_at": now, "updated_at": now,
    }


def _card_values(package: str, now: datetime) -> dict[str, Any]:
    return {"package": package, "issued_on": now.date(), "status": "active", "created_at": now, "updated_at": now}


def _consent_values(now: datetime) -> list[dict[str, Any]]:
    # Enrolment at the front desk includes consent to be contacted; recording needs its own consent.
    return [
        {"channel": channel.value, "consented": True, "consented_at": now, "recording_consent": False,
         "opted_out": False, "created_at": now, "updated_at": now}
        for channel in (Channel.SMS, Channel.VOICE, Channel.WECHAT)
    ]


def _log_enrolled(session: Session, actor: Actor, patient_id: uuid.UUID) -> None:
    log(session, actor=actor, action="patient.enroll", resource_type="patient", resource_id=patient_id,
        patient_id=patient_id)


def _unique_values(source: EnrolmentRequest | Patient) -> dict[str, str | None]:
    return {name: getattr(source, name) for name in _UNIQUE}


def _check_unique(
    session: Session, request: EnrolmentRequest, patient: Patient | None, holders: IdentifierHolders | None
) -> None:
    def holder(name: str, value: str) -> uuid.UUID | None:
        if holders is not None:
            return holders.holder(name, value)
        find = find_by_id_number if name == "id_number" else find_by_openid
        other = find(session, value)
        return None if other is None else other.id

    problems: list[Problem] = []
    if request.id_number:
        other_id = holder("id_number", request.id_number)
        if other_id is not None and (patient is None or other_id != patient.id):
            problems.append(Problem("id_number", "is already enrolled under another card"))
    if request.wechat_openid:
        other_id = holder("wechat_openid", request.wechat_openid)
        if other_id is not None and (patient is None or other_id != patient.id):
            problems.append(Problem("wechat_openid", "is already bound to another card"))
    if problems:
        raise ValidationFailedError(problems)


def set_quiet_hours(session: Session, patient: Patient, hours: str | None, *, actor: Actor) -> bool:
    """Give the patient quiet hours of their own (``HH:MM-HH:MM`` in their time zone), or with None the
    clinic's again; audited. Returns whether anything changed.

    Their follow-ups due in the new quiet hours wait for its end from the worker's next look at them.

    Raises:
        ValidationFailedError: ``hours`` is not such a range (nothing is changed).
    """
    stored = None
    if hours is not None:
        parsed = parse_quiet_hours(hours)
        if parsed is None:
            raise ValidationFailedError([Problem("quiet_hours",
                                                 f"must be a range of local times {QUIET_HOURS_FORMAT}")])
        stored = quiet_hours_text(parsed)
    if patient.quiet_hours == stored:
        return False
    patient.quiet_hours = stored
    patient.updated_at = clock_of(session).now()
    log(session, actor=actor, action="patient.quiet_hours", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"quiet_hours": stored or "clinic"})
    return True
