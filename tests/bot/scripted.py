"""Stand-ins for outside providers that answer from a script, and helpers for the outbox's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.channels.base import OutgoingMessage, SendResult
from bot.config import BotConfig, Clinic, Localised
from bot.outbox.queue import enqueue


@dataclass
class ScriptedProvider:
    """A stand-in for an outside provider: answers each send from a script and records what it got."""

    name: str = "sms"
    kind: str = "text"
    looks_up: bool = True
    script: list[SendResult] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)
    knows: set[str] = field(default_factory=set)

    def send(self, message: OutgoingMessage) -> SendResult:
        result = self.script.pop(0) if self.script else SendResult("sent", provider_id=f"SM{len(self.delivered)}")
        if result.outcome in ("sent", "unknown"):
            self.delivered.append(message.idempotency_key)
            self.knows.add(message.idempotency_key)
        return result

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        self.reconciled.append(message.idempotency_key)
        if message.idempotency_key in self.knows:
            return SendResult("sent", provider_id="SM-found")
        return SendResult("retry", error="not found at the provider")


class NoLookupProvider(ScriptedProvider):
    """A provider that cannot tell what became of a message (WeChat)."""

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        self.reconciled.append(message.idempotency_key)
        return SendResult("unconfirmed", error_code="no_lookup")


def configured(**tunables: object) -> BotConfig:
    """A bot configuration for a synthetic clinic, with ``tunables`` changed."""
    return BotConfig(clinic=Clinic(name=Localised("测试健康中心", "Test Health Centre"), phone="010-12345678"),
                     **tunables)  # type: ignore[arg-type]


def queue_sms(db, patient, key="m1", text="hello"):
    return enqueue(db, idempotency_key=key, channel="sms", kind="text", purpose="test", address=patient.phone,
                   payload={"text": text}, patient=patient)


def at_shanghai(clock, hour):
    clock.set(datetime(2026, 12, 1, hour, 0, tzinfo=UTC) - timedelta(hours=8))
