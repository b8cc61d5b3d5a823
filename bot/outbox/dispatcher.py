"""The dispatcher: claims due outbox rows, sends them through their channel, records the outcome.

Each row goes through three short transactions: the claim (with this worker's heartbeat), the
"attempt started" mark just before the provider call (where consent and opt-outs are checked
again: a refused row is cancelled, not sent), and the outcome; no transaction is open while a
provider is called. A row whose earlier attempt's outcome is unknown (its worker died
after the mark, or the answer never came) is first reconciled with the provider (``reconcile``)
and sent again only if it never arrived; where the provider cannot be asked (WeChat) the
purpose's delivery guarantee decides (:mod:`bot.outbox.queue`). Which rows a tick may take, and when,
is :func:`bot.outbox.queue.claim`'s business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from bot import consent
from bot.channels.base import ChannelAdapter, OutgoingMessage, SendResult
from bot.config import BotConfig
from bot.followups import invitation_failed
from bot.models import OutboxStatus
from bot.outbox.queue import beat, claim, mark_attempt_started, new_worker_id, record_result, settle_unconfirmed
from care.models import Patient
from security.audit import Actor

logger = logging.getLogger("careloop.dispatcher")

UnitOfWork = Callable[[], AbstractContextManager[Session]]
BATCH_SECONDS = 2.0  # a tick claims, per channel, what its sending rate lets out in this time


class RateLimiter:
    """A token bucket per channel (per process): at most ``rate`` sends a second, small bursts allowed."""

    def __init__(self, rates: dict[str, float], *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rates = rates
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._stamp: dict[str, float] = {}

    def acquire(self, channel: str) -> None:
        rate = self.rates.get(channel)
        if not rate or rate <= 0:
            return
        burst = max(1.0, rate)
        while True:
            with self._lock:
                now = time.monotonic()
                tokens = min(burst, self._tokens.get(channel, burst) + (now - self._stamp.get(channel, now)) * rate)
                self._stamp[channel] = now
                if tokens >= 1.0:
                    self._tokens[channel] = tokens - 1.0
                    return
                self._tokens[channel] = tokens
                wait = (1.0 - tokens) / rate
            self._sleep(wait)


class Dispatcher:
    """Sends what is due, for the channels it has adapters for."""

    def __init__(self, unit_of_work: UnitOfWork, adapters: dict[str, ChannelAdapter], config: BotConfig, *,
                 worker_id: str | None = None, limiter: RateLimiter | None = None) -> None:
        self.unit_of_work = unit_of_work
        self.adapters = adapters
        self.config = config
        self.worker_id = worker_id or new_worker_id()
        self.limiter = limiter or RateLimiter(config.rate_limits)

    def tick(self, limit: int = 50) -> int:
        """Claim and handle up to ``limit`` due messages per channel; return how many were handled.

        A channel's batch holds no more than its sending rate lets out in :data:`BATCH_SECONDS`:
        a worker never sits on rows it cannot send soon (which others could send, and which it
        would leave behind if it died).
        """
        lookup = [name for name, adapter in self.adapters.items() if adapter.looks_up]
        batch: list[OutgoingMessage] = []
        with self.unit_of_work() as session:
            beat(session, self.worker_id)
            for channel in self.adapters:
                batch += claim(session, worker_id=self.worker_id, limit=self.batch_size(channel, limit),
                               config=self.config, channels=[channel], lookup_channels=lookup)
        for message in batch:
            self._handle(message)
        return len(batch)

    def batch_size(self, channel: str, limit: int) -> int:
        rate = self.limiter.rates.get(channel)
        if not rate or rate <= 0:
            return limit
        return max(1, min(limit, int(rate * BATCH_SECONDS)))

    def _handle(self, message: OutgoingMessage) -> None:
        adapter = self.adapters[message.channel]
        if message.sending_started_at is not None:
            # A previous attempt may have reached the provider before its worker died.
            found = self._safely(adapter.reconcile, message)
            if found.outcome == "unconfirmed":
                self.limiter.acquire(message.channel)
                with self.unit_of_work() as session:
                    resend = settle_unconfirmed(session, message.id, self.worker_id, self.config)
                if resend:
                    logger.info("outbox row %s on %s: outcome unknown; resent once (%s)", message.id,
                                message.channel, message.purpose)
                    self._record(message, self._safely(adapter.send, message))
                return
            if found.outcome in ("sent", "failed", "unknown"):
                self._record(message, found)
                return
            # "retry": it never reached the provider; send it now.
        # The sending rate's wait comes before the mark, so that the mark is the provider call's moment.
        self.limiter.acquire(message.channel)
        with self.unit_of_work() as session:
            if not mark_attempt_started(session, message.id, self.worker_id, self.config):
                return  # the row went to another worker (this one was taken for dead)
        self._record(message, self._safely(adapter.send, message))

    @staticmethod
    def _safely(call: Callable[[OutgoingMessage], SendResult], message: OutgoingMessage) -> SendResult:
        try:
            return call(message)
        except Exception as failure:  # an adapter bug must not lose the row; it stays reconcilable
            logger.exception("channel %s raised on outbox row %s", message.channel, message.id)
            return SendResult("unknown", error=f"{type(failure).__name__}")

    def _record(self, message: OutgoingMessage, result: SendResult) -> None:
        with self.unit_of_work() as session:
            row = record_result(session, message.id, result, self.config, worker_id=self.worker_id)
            if row is None:
                logger.info("outbox row %s went to another worker before its outcome (%s) was written",
                            message.id, result.outcome)
                return
            if row.status == OutboxStatus.FAILED.value and row.followup_id is not None:
                # A definite failure only: an unconfirmed send never moves a follow-up to its next channel.
                retryable = not result.opted_out and result.outcome != "failed"
                invitation_failed(session, row.followup_id, retryable=retryable, invitation=row.session_id)
            if result.opted_out and message.patient_id is not None:
                patient = session.get(Patient, message.patient_id)
                if patient is not None:
                    consent.opt_out(session, patient, message.channel, actor=Actor("system", "dispatcher"),
                                    reason=f"provider:{result.error_code or 'opted_out'}")
        if result.outcome != "sent":
            logger.info("outbox row %s on %s: %s (%s)", message.id, message.channel, result.outcome,
                        result.error_code or "-")
