"""Every job the worker runs, gathered from the packages that own them."""

from __future__ import annotations

from bot.jobs import bot_jobs
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.runtime import Runtime
from careloop.worker import FOUNDATION_JOBS, Job, Worker


def all_jobs(bot: BotRuntime | None = None) -> tuple[Job, ...]:
    if bot is None:
        return FOUNDATION_JOBS
    extra = tuple(Job(job.name, job.every_seconds, run_batch=job.run_batch, run_tick=job.run_tick)
                  for job in bot_jobs(bot.services, bot.dispatcher))
    return (*extra, *FOUNDATION_JOBS)


def worker_for(runtime: Runtime) -> Worker:
    """The worker process's runner: every job, beating under its dispatcher's id (the id its claims carry)."""
    bot = bot_for(runtime)
    return Worker(runtime, all_jobs(bot), worker_id=bot.dispatcher.worker_id,
                  heartbeat_seconds=bot.services.config.worker_heartbeat_seconds)
