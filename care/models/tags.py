"""The clinic's tag vocabulary and the rules that set tags (自动设置标签), with their bulk runs.

None of these rows is PHI: a tag's name, colour and description, a rule's expression, and a run's
counts say nothing about any one patient. Which patient has which tag is in ``patient_tags``
(encrypted, with an index per patient: :class:`care.models.engagement.PatientTag`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime, Uuid


class TagDefinition(Base):
    """A tag the clinic describes: its colour and what it means, in zh and en.

    A tag needs no definition to be used (a flow or a staff member may set any tag); one without
    is shown without a colour. ``name`` is the tag as stored on patients (trimmed, lower case).
    """

    __tablename__ = "tag_definitions"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    colour: Mapped[str | None] = mapped_column(String(7))
    description_zh: Mapped[str | None] = mapped_column(Text)
    description_en: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TagRule(Base):
    """A rule: while ``expression`` holds over a patient's facts, the patient has ``tag``.

    Editing a rule makes a new ``version`` (each kept in :class:`TagRuleVersion`); the tags a rule
    sets name the rule and the version that set them. ``name_key`` is the name case-folded.
    """

    __tablename__ = "tag_rules"

    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    expression: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TagRuleVersion(Base):
    """One version of a rule as it was made: what a tag set by ``rule_id`` v``version`` was set by."""

    __tablename__ = "tag_rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version"),)

    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tag_rules.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(64))
    expression: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: who made it, as the audit trail names an actor (``user:<id>``, ``system:cli:...``)
    created_by: Mapped[str] = mapped_column(String(128))


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SUPERSEDED = "superseded"  # the rule was edited again before this run ended: the newer run takes over


class TagRuleRun(Base):
    """A bulk evaluation of one rule version over every patient, in patient id order, chunk by chunk.

    ``last_patient_id`` is the last patient whose evaluation was committed: a worker killed mid-chunk
    loses that chunk's uncommitted work only, and the next tick goes on after ``last_patient_id``.
    ``done`` of ``total`` is the progress (``total``: the patients when the run started).
    """

    __tablename__ = "tag_rule_runs"

    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("tag_rules.id", ondelete="CASCADE"), index=True)
    rule_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    tagged: Mapped[int] = mapped_column(Integer, default=0)
    untagged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
