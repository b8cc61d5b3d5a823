"""The clinical record's derived rows: imported checkup reports, stored risk assessments, per-patient
advice edits, signed stage summaries, and the queue of patients whose tag rules must be re-run."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.fields import FLOAT, TEXT, encrypted
from security.fields import JSON as ENCRYPTED_JSON
from security.storage import UtcDateTime, Uuid


class CheckupReport(Base):
    """One imported report (a checkup, a lab panel), idempotent by its id at its source.

    The report id is encrypted (it identifies a person's test) and found by its blind index; one
    id belongs to one patient per source. Its results are the observations whose ``source_ref``
    is this row's id; re-importing the report replaces them. ``content_mac`` (an HMAC of the
    results) lets an unchanged re-import be skipped without writing.
    """

    __tablename__ = "checkup_reports"
    __table_args__ = (UniqueConstraint("source", "report_ref_bidx"),)

    source: Mapped[str] = mapped_column(String(64))
    report_ref = encrypted(TEXT, index="report_ref", normalize=lambda value: value.strip(), nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    report_date: Mapped[date] = mapped_column(Date)
    format: Mapped[str] = mapped_column(String(16))
    result_count: Mapped[int] = mapped_column(Integer)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    content_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    import_count: Mapped[int] = mapped_column(Integer, default=1)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class CodeMapping(Base):
    """A clinic's own code for an indicator: ``local_code`` of ``source`` means ``target`` (in ``unit``).

    ``source`` is the report source the code belongs to, or ``*`` for every source. ``target`` is a
    short code or LOINC code of the indicator table, or another LOINC code (then the result is kept
    under that code, as one outside the table). ``unit`` is the unit the source reports the code in,
    used when a result gives none. Codes are not PHI: nothing here is encrypted.
    """

    __tablename__ = "code_mappings"
    __table_args__ = (UniqueConstraint("source", "local_key"),)

    source: Mapped[str] = mapped_column(String(64))
    local_code: Mapped[str] = mapped_column(String(32))
    #: ``local_code`` as looked up (folded: width, case and spaces do not count)
    local_key: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str | None] = mapped_column(String(32))
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TagReevaluation(Base):
    """A patient whose tag rules must be evaluated again (new results, new answers).

    One row per patient; a newer request moves ``requested_at`` forward. The rule engine (the
    automation issue) claims rows in ``requested_at`` order and deletes them when done.
    """

    __tablename__ = "tag_reevaluations"

    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE"), unique=True
    )
    reason: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class RiskAssessment(Base):
    """One model's result for a patient on one day, so that risk can be trended.

    The value, category, the inputs used and the full result are PHI and encrypted; the model,
    the rule-pack version and the names of missing inputs are not.
    """

    __tablename__ = "risk_assessments"
    __table_args__ = (UniqueConstraint("patient_id", "model", "assessed_on"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(32))
    assessed_on: Mapped[date] = mapped_column(Date)
    value = encrypted(FLOAT)
    category = encrypted(TEXT, nullable=False)
    rule_pack: Mapped[str] = mapped_column(String(64))
    missing: Mapped[list[str]] = mapped_column(JSON, default=list)
    inputs = encrypted(ENCRYPTED_JSON)
    result = encrypted(ENCRYPTED_JSON, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class AdviceOverride(Base):
    """A clinician's choice about one advice line for one patient: suppress it, or replace its text.

    The line id names the patient's condition (``mental.depression_assessment``), so it is
    encrypted and found by its blind index, which is per patient (the same line has another index
    on every patient: the rows cannot be counted by line); one row per patient and line.
    """

    __tablename__ = "advice_overrides"
    __table_args__ = (UniqueConstraint("patient_id", "line_id_bidx"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    line_id = encrypted(TEXT, index="advice_line", normalize=lambda value: value.strip(), nullable=False,
                        per_owner=True)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the replacement text ``{"zh": ..., "en": ...}``, or None when the line is only suppressed
    text = encrypted(ENCRYPTED_JSON)
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class StageSummaryRecord(Base):
    """One version of a stage summary (健康阶段总结): the computed content, the clinician's conclusion, the signature.

    Versions of one summary share ``summary_id``; an edit after signing makes the next version,
    so what was signed is never changed.
    """

    __tablename__ = "stage_summaries"
    __table_args__ = (
        UniqueConstraint("summary_id", "version"),
        Index("ix_stage_summaries_patient_period", "patient_id", "period_end"),
    )

    summary_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    content = encrypted(ENCRYPTED_JSON, nullable=False)
    conclusion = encrypted(TEXT)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    signed_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id

    @property
    def signed(self) -> bool:
        return self.signed_at is not None
