"""What every channel adapter offers the dispatcher, and the registry of adapters.

A channel module registers a factory under its name (``wechat``, ``sms``, ``voice``, ``console``).
The dispatcher hands an adapter an :class:`OutgoingMessage` (a decrypted snapshot of an outbox
row, taken in a committed transaction) and gets a :class:`SendResult` back; adapters never touch
the outbox table themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from bot.config import BotConfig
from security.clock import Clock

Outcome = Literal["sent", "retry", "failed", "unknown", "unconfirmed"]


@dataclass(frozen=True)
class OutgoingMessage:
    id: uuid.UUID
    idempotency_key: str
    channel: str
    kind: str
    purpose: str
    address: str
    payload: dict[str, Any]
    attempts: int
    sending_started_at: datetime | None
    patient_id: uuid.UUID | None
    lang: str = "zh"
    resends: int = 0


@dataclass(frozen=True)
class SendResult:
    """What happened to one send.

    ``sent``: the provider accepted it (``provider_id`` set when it gives one). ``retry``: a
    transient failure, nothing went out. ``failed``: permanent (``opted_out`` when the recipient
    blocked us at the provider). ``unknown``: we cannot tell (timeout after the request left);
    the dispatcher reconciles later instead of sending again. ``unconfirmed`` (from ``reconcile``
    only): the provider has no way to look the message up, so its fate will never be known; the
    dispatcher then applies the purpose's delivery guarantee (``bot.outbox.queue.Delivery``).

    ``error_code`` is the provider's code (or one of ours), ``error`` a sentence of ours: both are
    stored in plain columns of the outbox, so neither ever holds the provider's own text, which
    can name the recipient (a phone number, an openid).
    """

    outcome: Outcome
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    retry_after: float | None = None
    opted_out: bool = False


class ChannelAdapter(Protocol):
    name: str
    kind: str  # "text" or "voice"
    # Whether ``reconcile`` can ask the provider what became of a send (Twilio can; WeChat cannot).
    looks_up: bool

    def send(self, message: OutgoingMessage) -> SendResult: ...

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        """Find out whether a send whose outcome was unknown reached the provider.

        ``sent`` (found), ``retry`` (it never arrived: send it now), ``unknown`` (the look-up
        failed: ask again later) or ``unconfirmed`` (the provider cannot be asked).
        """
        ...


@dataclass
class ChannelEnvironment:
    """What adapters may use: settings values, a way to open short transactions, the clock."""

    config: BotConfig
    clock: Clock
    open_session: Callable[[], Session]
    settings: dict[str, Any] = field(default_factory=dict)
    http_timeout: float = 10.0


ChannelFactory = Callable[[ChannelEnvironment], ChannelAdapter]
CHANNEL_FACTORIES: dict[str, ChannelFactory] = {}


def register_channel(name: str) -> Callable[[ChannelFactory], ChannelFactory]:
    def decorator(factory: ChannelFactory) -> ChannelFactory:
        CHANNEL_FACTORIES[name] = factory
        return factory

    return decorator
