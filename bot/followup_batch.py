"""What a batch of due follow-ups needs, read in a few queries once its rows are claimed.

:func:`bot.followups.due_followups` claims its rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then
:meth:`FollowUpBatch.load` takes the locks of their patients that nobody holds (a patient whose
message is being handled is left for a later tick: waiting could deadlock with that turn, which
writes the follow-up the claim has locked) and reads for those patients, one query each: the
patients with their channel consents, the plans' enrolments, the open conversations and the rows'
invitations, the consent ledger's latest decisions about messages, the follow-up messages of the
past week (the caps), the messages queued for the rows already (their keys, the tries per channel)
and the last WeChat message of each patient (the 48-hour window). Read after the locks, all of it
is as the previous holder committed it.

The rows are then decided one by one from what was read, the batch counting on in memory what
they queue; their changes and new rows (invitations, outbox rows, next occurrences, audit entries)
go out in the unit of work's flush at commit, one statement per table. Nothing is queried per row.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.config import BotConfig
from bot.models import ConversationMessage, ConversationSession, Direction, OutboxMessage, SessionStatus
from care.consents import LatestDecisions, latest_decisions
from care.models import FollowUp, Patient, PlanEnrolment
from care.plans.timing import day_start
from security.dialects import claim_rows

#: How far back the caps look: a local week starts at most seven days before now, in any time zone.
CAPS_LOOK_BACK = timedelta(days=8)
#: The channel whose messages depend on the patient's last message (the 48-hour customer-service window).
WINDOWED_CHANNEL = "wechat"


@dataclass
class FollowUpBatch:
    """The claimed rows' patients and what deciding about them reads, counted on as the batch queues messages."""

    session: Session
    config: BotConfig
    now: datetime
    patients: dict[uuid.UUID, Patient] = field(default_factory=dict)
    #: Patients whose lock another transaction holds (their rows wait for a later tick).
    held_elsewhere: set[uuid.UUID] = field(default_factory=set)
    enrolments: dict[uuid.UUID, PlanEnrolment] = field(default_factory=dict)
    decisions: LatestDecisions = field(default_factory=lambda: LatestDecisions("", {}, frozenset()))
    #: Every idempotency key of the outbox rows of the batch's follow-ups (what ``enqueue`` may repeat).
    keys: set[str] = field(default_factory=set)
    _open: dict[uuid.UUID, ConversationSession] = field(default_factory=dict)
    _conversations: dict[uuid.UUID, ConversationSession] = field(default_factory=dict)
    _sent: dict[uuid.UUID, list[datetime]] = field(default_factory=dict)
    _tries: Counter[tuple[uuid.UUID, str | None]] = field(default_factory=Counter)
    _last_inbound: dict[uuid.UUID, datetime] = field(default_factory=dict)
    _channel_sent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, config: BotConfig, followups: Sequence[FollowUp], now: datetime) -> FollowUpBatch:
        """Lock the free patients of ``followups`` and read what their rows need (see the module docstring)."""
        batch = cls(session, config, now)
        wanted = {followup.patient_id for followup in followups}
        if not wanted:
            return batch
        query = (select(Patient).where(Patient.id.in_(wanted)).options(selectinload(Patient.consents))
                 .order_by(Patient.id))
        batch.patients = {patient.id: patient for patient in session.scalars(claim_rows(session, query, of=Patient))}
        missing = wanted - batch.patients.keys()
        if missing:  # locked by another transaction, or gone
            batch.held_elsewhere = set(session.scalars(select(Patient.id).where(Patient.id.in_(missing))))
        ids = list(batch.patients)
        if not ids:
            return batch
        mine = [followup for followup in followups if followup.patient_id in batch.patients]
        enrolments = {followup.enrolment_id for followup in mine if followup.enrolment_id is not None}
        if enrolments:  # kept here: the session's identity map (what ``gate`` gets them from) holds them weakly
            batch.enrolments = {enrolment.id: enrolment for enrolment in session.scalars(
                select(PlanEnrolment).where(PlanEnrolment.id.in_(enrolments)))}
        batch._read_conversations(ids, [followup.session_id for followup in mine if followup.session_id])
        batch.decisions = latest_decisions(session, ids)
        batch._read_messages(ids, [followup.id for followup in mine])
        windowed = {followup.patient_id for followup in mine if WINDOWED_CHANNEL in (followup.channel_order or ())}
        if windowed:
            batch._last_inbound = dict(session.execute(
                select(ConversationMessage.patient_id, func.max(ConversationMessage.created_at))
                .where(ConversationMessage.patient_id.in_(windowed),
                       ConversationMessage.channel == WINDOWED_CHANNEL,
                       ConversationMessage.direction == Direction.IN.value)
                .group_by(ConversationMessage.patient_id)).all())
        return batch

    def _read_conversations(self, patient_ids: list[uuid.UUID], invitations: Iterable[uuid.UUID]) -> None:
        # As committed now (read again if the session holds them already: what ``as_now`` does one by one).
        query = (select(ConversationSession)
                 .where(or_(ConversationSession.active_patient_id.in_(patient_ids),
                            ConversationSession.id.in_(list(invitations))))
                 .execution_options(populate_existing=True))
        for conversation in self.session.scalars(query):
            self._conversations[conversation.id] = conversation
            if conversation.active_patient_id is not None:
                self._open[conversation.active_patient_id] = conversation

    def _read_messages(self, patient_ids: list[uuid.UUID], followup_ids: list[uuid.UUID]) -> None:
        for patient_id, created_at in self.session.execute(
                select(OutboxMessage.patient_id, OutboxMessage.created_at).where(
                    OutboxMessage.patient_id.in_(patient_ids), OutboxMessage.followup_id.is_not(None),
                    OutboxMessage.created_at >= self.now - CAPS_LOOK_BACK)):
            if patient_id is not None:
                self._sent.setdefault(patient_id, []).append(created_at)
        for followup_id, channel, key in self.session.execute(
                select(OutboxMessage.followup_id, OutboxMessage.channel, OutboxMessage.idempotency_key)
                .where(OutboxMessage.followup_id.in_(followup_ids))):
            if followup_id is not None:
                self._tries[(followup_id, channel)] += 1
            self.keys.add(key)

    # -- what the rows ask ----------------------------------------------------------------------------------
    def patient(self, followup: FollowUp) -> Patient | None:
        """The row's patient, locked (None: the record is gone)."""
        return self.patients.get(followup.patient_id)

    def held(self, followup: FollowUp) -> bool:
        """Whether the row's patient is locked by another transaction (the row is left for a later tick)."""
        return followup.patient_id in self.held_elsewhere

    def open_conversation(self, patient: Patient) -> ConversationSession | None:
        """The patient's open conversation, as read and as the batch has opened and closed them since."""
        conversation = self._open.get(patient.id)
        return conversation if conversation is not None and conversation.active_patient_id == patient.id else None

    def invitation(self, followup: FollowUp) -> ConversationSession | None:
        """The conversation the row's invitation opened, while it still waits for the patient's answer."""
        conversation = self._conversations.get(followup.session_id) if followup.session_id else None
        if conversation is None or conversation.status != SessionStatus.INVITED.value:
            return None
        return conversation

    def opened(self, conversation: ConversationSession) -> None:
        self._open[conversation.patient_id] = conversation
        self._conversations[conversation.id] = conversation

    def tries(self, followup: FollowUp, channel: str | None) -> int:
        """The messages queued for the row on ``channel`` (each try, each reminder)."""
        return self._tries[(followup.id, channel)]

    def sent_since(self, patient: Patient, moment: datetime) -> int:
        """The patient's follow-up messages (of any plan) queued at or after ``moment``."""
        return sum(1 for created_at in self._sent.get(patient.id, ()) if created_at >= moment)

    def last_inbound(self, patient: Patient) -> datetime | None:
        """When the patient last wrote on the windowed channel (WeChat)."""
        return self._last_inbound.get(patient.id)

    def queued(self, message: OutboxMessage) -> None:
        """Count a message the batch queued: the patient's caps, the channel's day, the row's tries."""
        if message.patient_id is not None:
            self._sent.setdefault(message.patient_id, []).append(message.created_at)
        if message.followup_id is not None:
            self._tries[(message.followup_id, message.channel)] += 1
        self.keys.add(message.idempotency_key)
        if message.channel in self._channel_sent:
            self._channel_sent[message.channel] += 1

    # -- the channels' daily caps (clinic day) --------------------------------------------------------------
    def clinic_day_start(self, offset_days: int = 0) -> datetime:
        zone = self.config.zone
        return day_start(self.now.astimezone(zone).date() + timedelta(days=offset_days), zone)

    def channel_full(self, channel: str) -> bool:
        """Whether ``channel`` has sent its follow-up messages for the clinic day (read once a batch)."""
        cap = self.config.channel_daily_caps.get(channel)
        if cap is None:
            return False
        if channel not in self._channel_sent:
            self._channel_sent[channel] = int(self.session.scalar(
                select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.channel == channel, OutboxMessage.followup_id.is_not(None),
                    OutboxMessage.created_at >= self.clinic_day_start())) or 0)
        return self._channel_sent[channel] >= cap
