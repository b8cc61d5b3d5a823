"""Fixtures for the attacker's tests: the panel's staff fixtures and a database of their own with committed data."""

from __future__ import annotations

from tests.admin.conftest import make_staff, sign_in, signed_in
from tests.bot.conftest import live_runtime

__all__ = ["live_runtime", "make_staff", "sign_in", "signed_in"]
