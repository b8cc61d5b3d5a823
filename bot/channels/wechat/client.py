"""The calls Careloop makes to WeChat's API, each with the shared access_token.

The HTTP calls go through wechatpy's :class:`~wechatpy.WeChatClient`, its API base pointed at
``WECHAT_API_BASE`` (the real one, or a local fake in tests). Its own token handling is replaced
by :class:`~bot.channels.wechat.token.SharedAccessToken`, fed from ``/cgi-bin/stable_token``; a
call whose token WeChat rejects is repeated once with a fresh one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.channels.base import ChannelEnvironment
from bot.channels.wechat.errors import TOKEN_REJECTED, WeChatApiError, errcode
from bot.channels.wechat.token import AccessToken, SharedAccessToken

logger = logging.getLogger("careloop.wechat")


class _Client(WeChatClient):  # type: ignore[misc]  # wechatpy ships no types
    """wechatpy's client on a configurable API base, using the token its caller hands it."""

    def __init__(self, appid: str, secret: str, api_base: str, timeout: tuple[float, float]) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = f"{api_base.rstrip('/')}/cgi-bin/"
        self._local = threading.local()

    @property
    def access_token(self) -> str:
        token: str = self._local.token
        return token

    @contextmanager
    def using(self, token: AccessToken) -> Iterator[None]:
        self._local.token = token.value
        try:
            yield
        finally:
            self._local.token = None

    def fetch_access_token(self) -> Any:
        raise WeChatApiError("tokens come from the shared store, never from wechatpy's own fetch")


class WeChatApi:
    """The calls Careloop makes to WeChat, each with the shared token and one refresh on rejection."""

    def __init__(self, environment: ChannelEnvironment) -> None:
        settings = environment.settings
        self.appid = str(settings["wechat_appid"])
        self.secret = str(settings["wechat_secret"])
        self.api_base = str(settings.get("wechat_api_base") or "https://api.weixin.qq.com").rstrip("/")
        self.timeout = (min(3.05, environment.http_timeout), environment.http_timeout)
        self.client = _Client(self.appid, self.secret, self.api_base, self.timeout)
        self.tokens = SharedAccessToken(environment.open_session, environment.clock, self._stable_token,
                                        name=f"wechat_access_token:{self.appid}")

    def _stable_token(self, force: bool) -> tuple[str, int]:
        """Fetch a token from ``/cgi-bin/stable_token`` (wechatpy 1.8 knows only the old endpoint)."""
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": force}
        try:
            response = self.client._http.post(f"{self.api_base}/cgi-bin/stable_token", json=body,
                                              timeout=self.timeout)
            response.raise_for_status()
            result = response.json()
        except (requests.RequestException, ValueError) as error:
            raise WeChatApiError(f"stable_token unreachable ({type(error).__name__})") from error
        if result.get("errcode"):
            raise WeChatApiError(f"stable_token refused: {result.get('errcode')}", errcode=int(result["errcode"]))
        return str(result["access_token"]), int(result.get("expires_in") or 7200)

    def call(self, invoke: Callable[[_Client], dict[str, Any]]) -> dict[str, Any]:
        """Run one API call; a rejected token is refreshed (once, generation-checked) and the call repeated."""
        token = self.tokens.current()
        try:
            with self.client.using(token):
                return invoke(self.client)
        except WeChatClientException as error:
            if errcode(error) not in TOKEN_REJECTED:
                raise
            logger.info("wechat refused access_token generation %d (%s); refreshing once", token.generation,
                        errcode(error))
        token = self.tokens.after_rejection(token)
        with self.client.using(token):
            return invoke(self.client)

