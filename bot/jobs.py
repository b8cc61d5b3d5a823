"""The bot's scheduled work, for the worker to run: follow-ups, timers, the outbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.channels.wechat import BindingQrJob, WeChatAdapter
from bot.conversations import BotServices
from bot.dispatcher import Dispatcher
from bot.followups import due_followups
from bot.recordings import recording_job
from bot.timers import due_timers
from bot.turns.delivery import prune_receipts


@dataclass(frozen=True)
class BotJob:
    """Either a batch over one session (the worker commits) or a self-committing tick."""

    name: str
    every_seconds: float
    run_batch: Callable[[Session], int] | None = None
    run_tick: Callable[[], int] | None = None


def bot_jobs(services: BotServices, dispatcher: Dispatcher) -> tuple[BotJob, ...]:
    jobs = [
        BotJob("due_followups", 30, run_batch=lambda session: due_followups(session, services)),
        BotJob("conversation_timers", 30, run_batch=lambda session: due_timers(session, services)),
        BotJob("dispatch_outbox", 2, run_tick=dispatcher.tick),
        BotJob("prune_receipts", 3600, run_batch=prune_receipts),
        BotJob("store_recordings", 10, run_tick=recording_job(services, dispatcher.unit_of_work)),
    ]
    wechat = services.adapters.get("wechat")
    if isinstance(wechat, WeChatAdapter):
        jobs.append(BotJob("binding_qr_codes", 300, run_tick=BindingQrJob(wechat, dispatcher.unit_of_work).tick))
    return tuple(jobs)
