"""What conversations leave in the record: results, tags, staff tasks, follow-ups, recordings."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from care.models.base import Base
from care.models.patient import Patient
from security.fields import JSON as ENCRYPTED_JSON
from security.fields import TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class FlowResult(Base):
    """One saved answer or computed value of a conversation, under its result name, with its category.

    The value, its label and its category are what the patient answered (``phq9_q9`` answered
    ``nearly_every_day``), so all three are encrypted; the result name, code and unit come from
    the flow's definition and are the same for every patient who answers it.
    """

    __tablename__ = "flow_results"
    __table_args__ = (Index("ix_flow_results_patient_name", "patient_id", "name"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    flow_id: Mapped[str] = mapped_column(String(64))
    flow_version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value = encrypted(ENCRYPTED_JSON)
    label = encrypted(TEXT)
    category = encrypted(TEXT)
    code: Mapped[str | None] = mapped_column(String(32))
    unit: Mapped[str | None] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id


class PatientTag(Base):
    """A tag on a patient (e.g. ``hypertension``), what added it and when, and whether staff pinned it.

    The source (``flow:phq9``, ``rule:<rule id>:<version>``, ``staff:<account id>``; see
    :class:`care.tags.TagOrigin`) and the tag are encrypted: the tag names a condition, and its source
    a screening or a rule it came out of. The tag's blind index is per patient (``security.fields``),
    so the rows of a copy of the database cannot be grouped or counted by tag; ``care.tags`` finds a
    patient's tag through the patient, and the patients with a tag by checking every row against the
    tag's trapdoor. A ``pinned`` tag (every tag staff set, and any tag staff pin) is never removed
    by a rule.
    """

    __tablename__ = "patient_tags"
    __table_args__ = (UniqueConstraint("patient_id", "tag_bidx"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    tag = encrypted(TEXT, index="tag", normalize=lambda value: value.strip().lower(), nullable=False, per_owner=True)
    source = encrypted(TEXT, nullable=False)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id


class TaskPriority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"


class TaskStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DONE = "done"


class StaffTask(Base):
    """An item on the staff work queue: call the patient, review a red flag, help with a conversation."""

    __tablename__ = "staff_tasks"
    __table_args__ = (Index("ix_staff_tasks_status_priority", "status", "priority", "created_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN.value)
    reason = encrypted(TEXT, nullable=False)
    details = encrypted(ENCRYPTED_JSON)
    source_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the task should be done by (from its priority, or as a staff member rescheduled it).
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    # How it ended (a code of care.tasks.TASK_OUTCOMES), who closed it and what they noted.
    outcome: Mapped[str | None] = mapped_column(String(32))
    notes = encrypted(TEXT)
    closed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id


class FollowUpStatus(StrEnum):
    SCHEDULED = "scheduled"      # waiting for its due time
    INVITED = "invited"          # a neutral invitation went out; waiting for the patient
    IN_PROGRESS = "in_progress"  # the patient is answering
    COMPLETED = "completed"
    UNANSWERED = "unanswered"    # every channel tried, no answer (no response): escalated to staff
    CANCELLED = "cancelled"
    # A plan's occurrences (``care.plans``) also pass through these:
    DUE = "due"                  # its time came; waiting for a cap, quiet hours or an open conversation
    FAILED = "failed"            # no channel could be used, or the flow could not start
    SKIPPED = "skipped"          # not sent: missed (overdue past the grace), stale, or the patient was busy


#: A follow-up in one of these will do nothing more.
FOLLOWUP_FINAL = frozenset({FollowUpStatus.COMPLETED.value, FollowUpStatus.UNANSWERED.value,
                            FollowUpStatus.CANCELLED.value, FollowUpStatus.FAILED.value,
                            FollowUpStatus.SKIPPED.value})


class FollowUp(Base):
    """A follow-up due at a time, run by a flow over the first usable channel of its order.

    A plan's occurrence (``plan_key`` set) also names the plan version that timed it, its step and
    occurrence (the n-th of a recurring step), the enrolment, and the enrolment's ``fire_version``
    it was timed under (older than the enrolment's: a no-op when due); its ``start_mode`` says what
    to do when the patient is in a conversation, ``on_silence`` what an unanswered invitation leads to.
    ``due_at`` is when the plan timed it; ``next_action_at`` when the worker looks at it next.
    """

    __tablename__ = "followups"
    __table_args__ = (Index("ix_followups_due", "status", "due_at"),
                      Index("ix_followups_enrolment", "enrolment_id", "status"))

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    flow_id: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    channel_order: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel_index: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=FollowUpStatus.SCHEDULED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts_per_channel: Mapped[int] = mapped_column(Integer, default=2)
    answer_window_hours: Mapped[int] = mapped_column(Integer, default=48)
    current_channel: Mapped[str | None] = mapped_column(String(16))
    invited_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_action_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # "flow:<flow id>" (flow ids run to 64 characters), "manual", "plan:..." (migration 0007_natfollow).
    source: Mapped[str] = mapped_column(String(80), default="manual")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    plan_key: Mapped[str | None] = mapped_column(String(64))
    plan_version: Mapped[int | None] = mapped_column(Integer)
    step_index: Mapped[int | None] = mapped_column(Integer)
    occurrence: Mapped[int | None] = mapped_column(Integer)
    enrolment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    fire_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    start_mode: Mapped[str | None] = mapped_column(String(16))
    on_silence: Mapped[list[str] | None] = mapped_column(JSON)
    # How it ended: a code the plans set (missed, step_removed, ...) or the staff member's
    # (care.followups.FOLLOWUP_OUTCOMES), who recorded that (a health manager completing the visit
    # by phone, say) and their notes: the follow-up record's staff part.
    outcome: Mapped[str | None] = mapped_column(String(32))
    staff_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    staff_notes = encrypted(TEXT)
    # An education message of the content library (a plan's ``message`` step, an intervention's
    # schedule): sent as it is, answered by nobody; ``flow_id`` then reads ``content:<id>``
    # (migration 0008_interventions). Like ``flow_id``, it names the clinic's material, not the patient's.
    content_key: Mapped[str | None] = mapped_column(String(64))

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class Recording(Base):
    """A call recording, stored encrypted under the patient's key in the blob store."""

    __tablename__ = "recordings"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    followup_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    purpose: Mapped[str] = mapped_column(String(32), default="call")
    blob_key: Mapped[str | None] = mapped_column(String(128))
    content_type: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    # recording, stopped (whole-call, at Twilio), pending, stored, deleted (at Twilio), missing
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    source_url = encrypted(TEXT)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_at_provider: Mapped[datetime | None] = mapped_column(UtcDateTime)

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id
