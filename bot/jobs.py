"""The bot's scheduled work, for the worker to run: follow-ups, timers, the outbox; and the shape of a job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.channels.wechat import BindingQrJob, WeChatAdapter
from bot.conversations import BotServices
from bot.followups import due_followups
from bot.outbox.dispatcher import Dispatcher
from bot.recordings import recording_job
from bot.tag_rules import rule_engine
from bot.timers import due_timers
from bot.turns.delivery import prune_receipts
from care.interventions.service import end_due
from care.tag_rules import drain_reevaluations, run_chunk, start_daily_runs
from flows.registry import FlowLibrary


@dataclass(frozen=True)
class Job:
    """A recurring piece of due work: a batch in one session (committed by the worker), or a
    self-committing ``run_tick`` (the dispatcher, which must send between its transactions).

    The worker (``careloop.worker``) runs a job's batches until one reports nothing handled or
    ``budget_seconds`` is spent.
    """

    name: str
    every_seconds: float
    run_batch: Callable[[Session], int] | None = None
    run_tick: Callable[[], int] | None = None
    budget_seconds: float = 30.0


def tag_rule_jobs(library: FlowLibrary) -> tuple[Job, ...]:
    """The tag rules' work: the patients marked for re-evaluation, the bulk runs, the daily runs."""
    engine = rule_engine(library)
    return (
        Job("tag_reevaluation", 10, run_batch=lambda session: drain_reevaluations(session, engine)),
        Job("tag_rule_runs", 10, run_batch=lambda session: run_chunk(session, engine)),
        Job("tag_rule_daily_runs", 3600, run_batch=lambda session: start_daily_runs(session, engine)),
    )


def bot_jobs(services: BotServices, dispatcher: Dispatcher) -> tuple[Job, ...]:
    jobs = [
        # Before the follow-ups: an intervention whose duration ran out ends (its plan rows cancelled)
        # before a check-in past its end could be sent.
        Job("end_interventions", 60, run_batch=end_due),
        Job("due_followups", 30, run_batch=lambda session: due_followups(session, services)),
        Job("conversation_timers", 30, run_batch=lambda session: due_timers(session, services)),
        Job("dispatch_outbox", 2, run_tick=dispatcher.tick),
        Job("prune_receipts", 3600, run_batch=prune_receipts),
        Job("store_recordings", 10, run_tick=recording_job(services, dispatcher.unit_of_work)),
        *tag_rule_jobs(services.library),
    ]
    wechat = services.adapters.get("wechat")
    if isinstance(wechat, WeChatAdapter):
        jobs.append(Job("binding_qr_codes", 300, run_tick=BindingQrJob(wechat, dispatcher.unit_of_work).tick))
    return tuple(jobs)
