"""Fixtures for the attacker's tests: the panel's staff fixtures, a database of their own with committed data,
and the providers' webhooks with the fake providers behind them."""

from __future__ import annotations

from tests.admin.conftest import make_staff, sign_in, signed_in
from tests.bot.conftest import live_runtime
from tests.webhooks.conftest import *  # noqa: F403 - the same fixtures, one definition

__all__ = ["live_runtime", "make_staff", "sign_in", "signed_in"]
