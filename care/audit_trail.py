"""The audit trail as auditors read it: entries narrowed by user, patient, action and days, a page at a time.

The entries hold no clinical data (:mod:`security.audit` keeps ids, actions and counts only), and the
page shows a patient by internal id, never by name. The filters and the page are applied in SQL;
reading the trail is itself audited (``audit.read``, with the filters, a patient by id). The chain's
state: the head last sealed (the worker appends it to the anchor file), and the last verification
made from the panel (``audit.verify`` entries), which needs the audit key in the process
(:func:`verify_now`; else :class:`security.audit.AuditKeyError`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from care.errors import NotFoundError, Problem, ValidationFailedError
from care.models import AuditChainHead, AuditEntry, User
from care.patients import get_patient
from security import audit
from security.audit import Actor, VerifyReport, log
from security.session import audit_keys_of

PER_PAGE = 50
MAX_ACTION = 64
#: The details of an entry about a patient that the page shows: how and where, never what of their health
#: (a task's kind, such as ``reading_red_flag``, would tell it; such keys are left out).
PATIENT_DETAIL_KEYS = frozenset({"view", "source", "format", "results", "questionnaires", "rows", "channel",
                                 "break_glass_possible", "expires_at", "page", "total"})


@dataclass(frozen=True)
class TrailFilter:
    """What the auditor narrowed the trail to: a staff e-mail, a patient's card number or id, an action, days."""

    user_email: str | None = None
    patient_ref: str | None = None
    action: str | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class TrailRow:
    """One entry as shown: no value of a patient's record, only who, what, which resource and when."""

    seq: int | None
    occurred_at: datetime
    actor: str
    action: str
    resource: str
    patient_id: uuid.UUID | None
    source: str | None
    details: str


@dataclass(frozen=True)
class TrailPage:
    rows: list[TrailRow]
    total: int
    page: int
    pages: int


def _conditions(session: Session, filters: TrailFilter) -> tuple[list[ColumnElement[bool]], dict[str, str]]:
    """The WHERE conditions of the filters, and the filters as audited (a patient by id).

    :raises ValidationFailedError: naming ``user_email``, ``patient_ref``, ``action`` or ``date_to``.
    """
    conditions: list[ColumnElement[bool]] = []
    noted: dict[str, str] = {}
    problems: list[Problem] = []
    if filters.user_email:
        user = session.scalars(select(User).where(func.lower(User.email) == filters.user_email.strip().lower())
                               ).one_or_none()
        if user is None:
            problems.append(Problem("user_email", "no staff account has this e-mail"))
        else:
            conditions.append(AuditEntry.actor_kind == "user")
            conditions.append(AuditEntry.actor_id == str(user.id))
            noted["user"] = str(user.id)
    if filters.patient_ref:
        try:
            patient = get_patient(session, filters.patient_ref.strip())
        except NotFoundError:
            problems.append(Problem("patient_ref", "no patient has this card number or id"))
        else:
            conditions.append(AuditEntry.patient_id == patient.id)
            noted["patient"] = str(patient.id)
    if filters.action:
        action = filters.action.strip()
        if len(action) > MAX_ACTION or not action.isprintable():
            problems.append(Problem("action", f"an action is one line of at most {MAX_ACTION} characters"))
        elif action.endswith("."):
            # "tag." reads every action of tags: a prefix match, with LIKE's wildcards taken literally.
            escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(AuditEntry.action.like(f"{escaped}%", escape="\\"))
            noted["action"] = action
        else:
            conditions.append(AuditEntry.action == action)
            noted["action"] = action
    if filters.date_from and filters.date_to and filters.date_to < filters.date_from:
        problems.append(Problem("date_to", "the range ends before it starts"))
    if filters.date_from:
        conditions.append(AuditEntry.occurred_at >= datetime.combine(filters.date_from, time(), UTC))
        noted["from"] = filters.date_from.isoformat()
    if filters.date_to:
        conditions.append(AuditEntry.occurred_at < datetime.combine(filters.date_to + timedelta(days=1), time(), UTC))
        noted["to"] = filters.date_to.isoformat()
    if problems:
        raise ValidationFailedError(problems)
    return conditions, noted


def trail_page(session: Session, filters: TrailFilter, *, page: int, actor: Actor) -> TrailPage:
    """Return page ``page`` (from 1) of the entries matching ``filters``, newest first; audited (``audit.read``).

    :raises ValidationFailedError: a filter names no one, or is malformed (see :func:`_conditions`).
    """
    conditions, noted = _conditions(session, filters)
    total = int(session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0)
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    entries = list(session.scalars(select(AuditEntry).where(*conditions)
                                   .order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
                                   .limit(PER_PAGE).offset((page - 1) * PER_PAGE)))
    user_ids = {_uuid(entry.actor_id) for entry in entries if entry.actor_kind == "user"} - {None}
    emails = ({str(user.id): user.email for user in session.scalars(select(User).where(User.id.in_(user_ids)))}
              if user_ids else {})
    rows = [TrailRow(entry.seq, entry.occurred_at, _actor_label(entry, emails), entry.action,
                     f"{entry.resource_type}:{entry.resource_id}" if entry.resource_id else entry.resource_type,
                     entry.patient_id, entry.source,
                     _details(entry.details, about_patient=entry.patient_id is not None))
            for entry in entries]
    log(session, actor=actor, action="audit.read", resource_type="audit_trail",
        details={**{f"filter_{key}": value for key, value in noted.items()}, "page": page, "total": total})
    return TrailPage(rows, total, page, pages)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _actor_label(entry: AuditEntry, emails: dict[str, str]) -> str:
    if entry.actor_kind == "user":
        return emails.get(entry.actor_id, f"user:{entry.actor_id}")
    return f"{entry.actor_kind}:{entry.actor_id}"


def _details(text: str, *, about_patient: bool) -> str:
    try:
        data: Any = json.loads(text or "{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if about_patient:
        data = {key: value for key, value in data.items() if key in PATIENT_DETAIL_KEYS}
    return json.dumps(data, ensure_ascii=False, sort_keys=True) if data else ""


# -- the chain -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainStatus:
    """The head last sealed, and the last verification made from the panel (None: none yet)."""

    sealed_seq: int | None
    sealed_at: datetime | None
    verified_at: datetime | None
    verified_ok: bool | None
    verified_detail: str | None
    unsealed: int


def chain_status(session: Session) -> ChainStatus:
    """Return how far the chain is sealed and what its last verification found."""
    head = session.scalars(select(AuditChainHead).limit(1)).first()
    unsealed = int(session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))) or 0)
    last = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.verify")
                           .order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc()).limit(1)).first()
    found: dict[str, Any] = json.loads(last.details or "{}") if last is not None else {}
    return ChainStatus(head.seq if head else None, head.sealed_at if head else None,
                       last.occurred_at if last else None, found.get("ok") if last else None,
                       found.get("problem") if last else None, unsealed)


def verify_now(session: Session, *, actor: Actor) -> VerifyReport:
    """Verify the whole chain now and audit the result (``audit.verify``: ok, counts, the first problem).

    :raises security.audit.AuditKeyError: this process holds no audit key.
    """
    report = audit.verify(session, audit_keys_of(session))
    log(session, actor=actor, action="audit.verify", resource_type="audit_trail",
        details={"ok": report.ok, "sealed": report.sealed, "unsealed": report.unsealed,
                 "first_seq": report.first_seq, "problem": (report.problem or "")[:200] or None})
    return report
