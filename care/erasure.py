"""Erasure of one patient (right to erasure, 删除权) by destroying their data key, and legal holds.

Every encrypted field, recording and file of a patient is sealed under their own data key; destroying
it (crypto-shredding) makes all of it unreadable at once, in the database, in the blob store and in
every backup, since a backup holds only the wrapped key and each restore re-applies the erasure ledger
(:mod:`security.erasure_ledger`). What is left of the patient are tombstones: rows whose ciphertexts no
key opens, the patient row marked ``erased`` with its search indexes cleared (no card number, phone, ID
number or openid can find it). The audit trail keeps who erased whom, when and why.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.orm import Session

from care.errors import ConflictError, Problem, ValidationFailedError
from care.models import Erasure, LegalHold, Patient, PatientStatus
from security.audit import Actor, log
from security.erasure_ledger import LedgerEntry
from security.fields import cipher_of, clock_of

MAX_REASON = 500
LEDGER_REASON = "re-applied from the erasure ledger after a restore"


def _reason(reason: str) -> str:
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise ValidationFailedError([Problem("--reason", "say why (it is kept in the audit trail)")])
    if len(cleaned) > MAX_REASON:
        raise ValidationFailedError([Problem("--reason", f"at most {MAX_REASON} characters")])
    return cleaned


def hold_of(session: Session, patient_id: uuid.UUID) -> LegalHold | None:
    return session.scalars(select(LegalHold).where(LegalHold.patient_id == patient_id)).one_or_none()


def place_hold(session: Session, patient: Patient, *, reason: str, actor: Actor) -> LegalHold:
    """Put the patient's record under a legal hold (it cannot be erased until released)."""
    cleaned = _reason(reason)
    hold = hold_of(session, patient.id)
    if hold is not None:
        raise ConflictError(f"patient {patient.id} is already under a legal hold (since "
                            f"{hold.placed_at.isoformat(timespec='minutes')})")
    hold = LegalHold(patient_id=patient.id, reason=cleaned, placed_at=clock_of(session).now(), placed_by=actor.id)
    session.add(hold)
    log(session, actor=actor, action="patient.hold", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"reason": cleaned})
    return hold


def release_hold(session: Session, patient: Patient, *, reason: str, actor: Actor) -> None:
    """Release the patient's legal hold."""
    cleaned = _reason(reason)
    hold = hold_of(session, patient.id)
    if hold is None:
        raise ConflictError(f"patient {patient.id} is not under a legal hold")
    session.delete(hold)
    log(session, actor=actor, action="patient.hold.release", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"reason": cleaned})


def erase_patient(session: Session, patient_id: uuid.UUID, *, reason: str, actor: Actor) -> Erasure:
    """Destroy the patient's data key, leave tombstones, and record the erasure (the caller appends it to
    the erasure ledger once the transaction has committed).

    Raises:
        ConflictError: the patient is under a legal hold, or already erased.
        ValidationFailedError: no reason given.
    """
    cleaned = _reason(reason)
    hold = hold_of(session, patient_id)
    if hold is not None:
        raise ConflictError(f"patient {patient_id} is under a legal hold (placed "
                            f"{hold.placed_at.isoformat(timespec='minutes')}: {hold.reason}); it cannot be erased "
                            "until the hold is released (careloop patients hold PATIENT_REF --release --reason R)")
    if session.scalars(select(Erasure.id).where(Erasure.patient_id == patient_id)).first() is not None:
        raise ConflictError(f"patient {patient_id} was already erased")
    tombstone(session, patient_id)
    erasure = Erasure(patient_id=patient_id, reason=cleaned, erased_at=clock_of(session).now(), erased_by=actor.id)
    session.add(erasure)
    log(session, actor=actor, action="patient.erase", resource_type="patient", resource_id=patient_id,
        patient_id=patient_id, details={"reason": cleaned})
    return erasure


def tombstone(session: Session, patient_id: uuid.UUID) -> bool:
    """Destroy the patient's data key and mark the row erased; True if anything was left to erase."""
    destroyed = cipher_of(session).destroy(session, patient_id)
    patients = cast(Table, Patient.__table__)
    # The card number's index must stay unique and set: random bytes that match no card number.
    result = session.execute(
        update(patients).where(patients.c.id == patient_id, patients.c.status != PatientStatus.ERASED.value)
        .values(status=PatientStatus.ERASED.value, card_no_bidx=secrets.token_bytes(32), phone_bidx=None,
                id_number_bidx=None, wechat_openid_bidx=None, updated_at=clock_of(session).now())
        .execution_options(synchronize_session=False)
    )
    changed = cast(CursorResult[Any], result).rowcount
    session.flush()
    return destroyed or bool(changed)


def reapply_erasures(session: Session, entries: Iterable[LedgerEntry], *, actor: Actor) -> int:
    """Erase again every patient of the erasure ledger's ``entries`` (after a restore); return how many were not
    erased yet."""
    reapplied = 0
    for entry in entries:
        if not tombstone(session, entry.patient_id):
            continue
        reapplied += 1
        if session.scalars(select(Erasure.id).where(Erasure.patient_id == entry.patient_id)).first() is None:
            session.add(Erasure(patient_id=entry.patient_id, reason=LEDGER_REASON, erased_at=entry.erased_at,
                                erased_by=actor.id))
        log(session, actor=actor, action="patient.erase.reapplied", resource_type="patient",
            resource_id=entry.patient_id, patient_id=entry.patient_id,
            details={"erased_at": entry.erased_at.isoformat()})
    return reapplied
