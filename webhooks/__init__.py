"""HTTP entry points of WeChat and Twilio: verify, parse to a neutral message, hand to the bot, reply.

Every handler has the same rhythm (courier's): check the provider's signature, parse safely into a
:class:`bot.messages.InboundMessage`, call one bot service, answer in the provider's format.
"""

from __future__ import annotations

import importlib

from flask import Blueprint, Flask

# Each module defines ``blueprint``; add a module here when a provider's entry points are added.
BLUEPRINT_MODULES: tuple[str, ...] = ("webhooks.wechat", "webhooks.twilio")


def init_app(app: Flask) -> None:
    """Register every provider's blueprint under ``/webhooks``."""
    for module_name in BLUEPRINT_MODULES:
        blueprint: Blueprint = importlib.import_module(module_name).blueprint
        app.register_blueprint(blueprint)
