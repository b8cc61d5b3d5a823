"""WeChat's errors and what each means to a sender: retry, give up, or the patient opted out.

Every WeChat call fails one of three ways: WeChat answers with an ``errcode``
(:class:`~wechatpy.exceptions.WeChatClientException`), no access_token can be had
(:class:`WeChatApiError`), or the transport fails (:class:`requests.RequestException`).
:func:`send_result_of` turns each into the dispatcher's :class:`~bot.channels.base.SendResult`.
"""

from __future__ import annotations

import requests
from wechatpy.exceptions import WeChatClientException

from bot.channels.base import SendResult

# WeChat's global error codes that matter to a sender.
TOKEN_REJECTED = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
RETRYABLE = {-1, 45009, 45011}  # system busy, daily/minute API quota reached, API frequency limit
PERMANENT = {
    45015: "outside the 48-hour customer-service window",
    43004: "the user does not follow the account",
    40003: "invalid openid",
    43101: "the user refused template messages",
}
OPTED_OUT = {43004, 43101}


class WeChatApiError(Exception):
    """A WeChat API call failed in a way the caller cannot hide (no token, a refused request)."""

    def __init__(self, message: str, *, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


def errcode(error: WeChatClientException) -> int | None:
    """The ``errcode`` WeChat answered with (None when the answer had none: an HTTP error)."""
    code = getattr(error, "errcode", None)
    return int(code) if code is not None else None


def _before_request_left(error: requests.RequestException) -> bool:
    """Whether a transport failure happened before WeChat could have seen the request."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        names = {type(reason).__name__, type(error.args[0]).__name__ if error.args else ""}
        return bool(names & {"NewConnectionError", "ConnectTimeoutError", "NameResolutionError"})
    return False


def send_result_of(error: Exception) -> SendResult:
    """Map a failed WeChat call to the dispatcher's outcome: WeChat's errcode and words of ours.

    WeChat's ``errmsg`` is never passed on: it carries hints such as the openid the call named
    (``invalid openid hint: [o6_bm...] rid: ...``), and the outcome is stored in plain columns.
    """
    if isinstance(error, WeChatClientException):
        code = errcode(error)
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if code is None:
            if status is not None and int(status) >= 500:
                return SendResult("retry", error_code=f"http_{status}", error="WeChat server error")
            if status is not None and int(status) == 429:
                return SendResult("retry", error_code="http_429", error="rate limited")
            return SendResult("failed", error_code=f"http_{status}", error="WeChat refused the request")
        if code in RETRYABLE:
            return SendResult("retry", error_code=str(code), error="WeChat busy or over its quota")
        if code in TOKEN_REJECTED:
            return SendResult("retry", error_code=str(code), error="WeChat refused the access_token")
        reason = PERMANENT.get(code) or "WeChat refused the message"
        return SendResult("failed", error_code=str(code), error=reason, opted_out=code in OPTED_OUT)
    if isinstance(error, WeChatApiError):
        return SendResult("retry", error_code=str(error.errcode or "token"), error=str(error))
    if isinstance(error, requests.RequestException):
        if _before_request_left(error):
            return SendResult("retry", error_code="connect", error=type(error).__name__)
        return SendResult("unknown", error_code="timeout", error=type(error).__name__)
    raise error

