"""The queue of patients whose tag rules must be evaluated again (new results, new answers).

Tag rules are edge-triggered over patient facts (DESIGN.md, "What comes next: Automation"): when a
fact changes (a report imported, a reading recorded, a conversation's answers, a profile field, a
tag set by a flow or staff), the patient is marked here, in the same transaction as the change; the
rule engine (:func:`care.tag_rules.drain_reevaluations`, the worker's ``tag_reevaluation`` job)
claims marked patients in ``requested_at`` order, evaluates their rules and clears the mark, unless
the patient was marked again meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from care.models import TagReevaluation
from security.dialects import upsert
from security.fields import clock_of
from security.session import before_commit

#: Patients per statement (well under every engine's parameter limit).
CHUNK = 500
MAX_REASON = 32


def request_tag_reevaluation(session: Session, patient_ids: Iterable[uuid.UUID], *, reason: str) -> int:
    """Mark the patients for re-evaluation (a newer mark moves ``requested_at`` forward); return how many."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return 0
    now = clock_of(session).now()
    statement = upsert(session, TagReevaluation, index_elements=[TagReevaluation.patient_id],
                       update=["reason", "requested_at"])
    rows = [
        {"id": uuid.uuid4(), "patient_id": patient_id, "reason": reason[:MAX_REASON], "requested_at": now}
        for patient_id in ids
    ]
    for start in range(0, len(rows), CHUNK):
        # One statement, many parameter sets: compiled once, sent as executemany.
        session.execute(statement, rows[start : start + CHUNK])
    return len(ids)


def request_at_commit(session: Session, patient_id: uuid.UUID, *, reason: str) -> None:
    """Mark the patient when ``session``'s transaction commits (once however many of their facts it changed).

    For the services that change one fact at a time (a reading, a profile field, a tag, a turn's
    answers): the mark is one statement at commit, after the unit of work's own writes.
    """
    def mark() -> None:
        request_tag_reevaluation(session, [patient_id], reason=reason)

    before_commit(session, ("tag_reevaluation", patient_id), mark)


def pending_tag_reevaluations(session: Session, *, limit: int = CHUNK) -> list[TagReevaluation]:
    """Return the marks, the oldest first."""
    query = select(TagReevaluation).order_by(TagReevaluation.requested_at, TagReevaluation.id).limit(limit)
    return list(session.scalars(query))


def clear_tag_reevaluation(session: Session, patient_id: uuid.UUID, *, requested_before: datetime) -> bool:
    """Remove the patient's mark if it is not newer than ``requested_before`` (the one the engine evaluated)."""
    result = session.execute(
        delete(TagReevaluation).where(
            TagReevaluation.patient_id == patient_id, TagReevaluation.requested_at <= requested_before
        )
    )
    return bool(getattr(result, "rowcount", 0))
