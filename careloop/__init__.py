"""Careloop: the composition root (application factory, settings, CLI, worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from careloop.settings import Settings


def create_app(settings: Settings | None = None, **options: Any) -> Flask:
    """Build the web application (see :func:`careloop.app.create_app`)."""
    from careloop.app import create_app as factory

    return factory(settings, **options)
