"""The account's access_token, shared by every web and worker process through ``provider_credentials``.

wechatpy keeps the token in one process's memory and refreshes it on every 40001 it sees, which
with several web and worker processes is a stampede on a daily-capped endpoint. Here the token
lives in ``provider_credentials`` (encrypted), is fetched by one refresher at a time (a lease in
``refreshing_until``), before it expires, and a rejected token is refreshed only if nobody
refreshed it since it was read (its ``generation``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.wechat.errors import WeChatApiError
from bot.models import ProviderCredential
from security.clock import Clock

logger = logging.getLogger("careloop.wechat")


@dataclass(frozen=True)
class AccessToken:
    value: str
    generation: int
    expires_at: datetime


TokenFetcher = Callable[[bool], tuple[str, int]]


class SharedAccessToken:
    """The account's access_token, shared by every process through ``provider_credentials``.

    ``current()`` gives a token that is valid for at least ``margin`` more; when none is, one
    caller takes the lease (``refreshing_until``) and fetches a new one while the others wait for
    it (or keep using the old one while it is still valid). ``after_rejection(token)`` is called
    when WeChat answered 40001/42001 to ``token``: it refreshes (forcibly) only if the stored
    generation is still that token's, else it returns the newer token somebody else fetched.
    """

    def __init__(self, open_session: Callable[[], Session], clock: Clock, fetch: TokenFetcher, *, name: str,
                 margin: timedelta = timedelta(minutes=5), lease: timedelta = timedelta(seconds=30),
                 max_wait_seconds: float = 35.0, poll_seconds: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.open_session = open_session
        self.clock = clock
        self.fetch = fetch
        self.name = name
        self.margin = margin
        self.lease = lease
        self.max_wait_seconds = max_wait_seconds
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self._cached: AccessToken | None = None
        self._lock = threading.Lock()

    def current(self) -> AccessToken:
        """A token valid for a while yet, refreshing it first if needed (one refresher at a time)."""
        cached = self._cached
        if cached is not None and cached.expires_at - self.margin > self.clock.now():
            return cached
        with self._lock:  # threads of one process queue here; processes meet at the lease
            return self._obtain(stale_generation=None)

    def after_rejection(self, rejected: AccessToken) -> AccessToken:
        """A fresh token after WeChat refused ``rejected``; at most one refresh per generation."""
        with self._lock:
            return self._obtain(stale_generation=rejected.generation)

    def _obtain(self, *, stale_generation: int | None) -> AccessToken:
        deadline = time.monotonic() + self.max_wait_seconds
        while True:
            stored, took_lease = self._read_or_lease(stale_generation)
            if took_lease:
                return self._refresh(force=stale_generation is not None, generation=stored.generation if stored else 0)
            if stored is not None and stored.value and stored.expires_at > self.clock.now() and (
                    stale_generation is None or stored.generation != stale_generation):
                # Still valid (perhaps inside the margin while somebody else refreshes it): use it.
                self._cached = stored
                return stored
            if time.monotonic() > deadline:
                raise WeChatApiError("no access_token: another process holds the refresh lease")
            self.sleep(self.poll_seconds)

    def _usable(self, stored: AccessToken, stale_generation: int | None) -> bool:
        """Good enough not to refresh: newer than a rejected one, or far enough from expiry."""
        now = self.clock.now()
        if stale_generation is not None:
            return stored.generation != stale_generation and stored.expires_at > now
        return stored.expires_at - self.margin > now

    def _read_or_lease(self, stale_generation: int | None) -> tuple[AccessToken | None, bool]:
        """Read the stored token; if it will not do, try to take the refresh lease (committed at once)."""
        session = self.open_session()
        try:
            now = self.clock.now()
            row = session.scalars(select(ProviderCredential).where(ProviderCredential.name == self.name)).one_or_none()
            if row is None:
                session.add(ProviderCredential(name=self.name, value=None, expires_at=None, generation=0,
                                               refreshing_until=now + self.lease, updated_at=now))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return None, False  # another process created it (and holds the lease) just now
                return None, True
            stored = AccessToken(row.value or "", row.generation, row.expires_at or now)
            if stored.value and self._usable(stored, stale_generation):
                session.rollback()
                return stored, False
            taken = session.execute(
                update(ProviderCredential)
                .where(ProviderCredential.name == self.name, ProviderCredential.generation == row.generation,
                       or_(ProviderCredential.refreshing_until.is_(None), ProviderCredential.refreshing_until < now))
                .values(refreshing_until=now + self.lease)
            )
            session.commit()
            return stored, bool(taken.rowcount)  # type: ignore[attr-defined]
        finally:
            session.close()

    def _refresh(self, *, force: bool, generation: int) -> AccessToken:
        try:
            value, expires_in = self.fetch(force)
        except BaseException:
            self._release(generation)
            raise
        session = self.open_session()
        try:
            now = self.clock.now()
            row = session.scalars(select(ProviderCredential).where(ProviderCredential.name == self.name)).one()
            row.value = value
            row.expires_at = now + timedelta(seconds=expires_in)
            row.generation = generation + 1
            row.refreshing_until = None
            row.updated_at = now
            token = AccessToken(value, row.generation, row.expires_at)
            session.commit()
        finally:
            session.close()
        logger.info("wechat access_token refreshed (generation %d)", token.generation)
        self._cached = token
        return token

    def _release(self, generation: int) -> None:
        session = self.open_session()
        try:
            session.execute(update(ProviderCredential)
                            .where(ProviderCredential.name == self.name, ProviderCredential.generation == generation)
                            .values(refreshing_until=None))
            session.commit()
        finally:
            session.close()

