"""Wiring the bot: its configuration, flows, channel adapters and dispatcher, from settings."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from bot.channels.base import CHANNEL_FACTORIES, ChannelAdapter, ChannelEnvironment
from bot.config import BotConfig
from bot.conversations import BotServices
from bot.outbox.dispatcher import Dispatcher
from care.blobs import LocalBlobStore
from careloop.flow_library import load_flow_library
from careloop.runtime import Runtime

# Each module registers its adapter factory under the channel's name when imported.
CHANNEL_MODULES = {
    "console": "bot.channels.console",
    "wechat": "bot.channels.wechat",
    "sms": "bot.channels.sms",
    "voice": "bot.channels.voice",
}


@dataclass
class BotRuntime:
    services: BotServices
    dispatcher: Dispatcher


def bot_config(runtime: Runtime) -> BotConfig:
    settings = runtime.settings
    extra = dict(settings.extra)
    quiet_start, quiet_end = settings.quiet_hours
    return BotConfig(
        clinic=settings.clinic,
        public_url=settings.public_url,
        timezone=settings.timezone,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        wechat_templates=dict(settings.wechat_templates),
        **{key: value for key, value in extra.items() if key in _TUNABLE},
    )


_TUNABLE = {"outbox_lease_seconds", "retry_base_seconds", "retry_max_seconds", "rate_limits",
            "minimum_disclosure", "passive_reply_seconds", "plan_daily_cap", "plan_weekly_cap",
            "channel_daily_caps", "plan_grace_hours"}


def build_adapters(runtime: Runtime, config: BotConfig) -> dict[str, ChannelAdapter]:
    """An adapter for every live channel (its settings complete)."""
    settings = runtime.settings
    environment = ChannelEnvironment(
        config=config, clock=runtime.clock, open_session=runtime.db.sessions,
        settings={name: getattr(settings, name) for name in settings.ENVIRONMENT_NAMES},
    )
    adapters: dict[str, ChannelAdapter] = {}
    for channel in settings.live_channels():
        importlib.import_module(CHANNEL_MODULES[channel])
        adapters[channel] = CHANNEL_FACTORIES[channel](environment)
    return adapters


def build_bot(runtime: Runtime, *, flow_directories: tuple[Path, ...] = ()) -> BotRuntime:
    config = bot_config(runtime)
    adapters = build_adapters(runtime, config)
    library = load_flow_library(runtime.settings, flow_directories)
    services = BotServices(config=config, library=library, clock=runtime.clock,
                           adapters=dict(adapters), blob_store=LocalBlobStore(runtime.settings.blob_dir))
    dispatcher = Dispatcher(runtime.db.unit_of_work, adapters, config)
    return BotRuntime(services=services, dispatcher=dispatcher)


def bot_for(runtime: Runtime) -> BotRuntime:
    """The runtime's bot, built once (flows are loaded and checked then)."""
    if runtime.bot is None:
        runtime.bot = build_bot(runtime)
    bot: BotRuntime = runtime.bot
    return bot
