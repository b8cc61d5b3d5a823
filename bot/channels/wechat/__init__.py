"""The WeChat official account, one module per job.

- :mod:`~bot.channels.wechat.adapter`: the outbound adapter (customer-service and template messages),
  registered as the ``wechat`` channel;
- :mod:`~bot.channels.wechat.client`: the API client, each call made with the shared token;
- :mod:`~bot.channels.wechat.token`: the access_token every process shares through the database;
- :mod:`~bot.channels.wechat.errors`: WeChat's error codes and what each means to a sender;
- :mod:`~bot.channels.wechat.binding_qr`: binding QR codes and the worker's job that keeps them live;
- :mod:`~bot.channels.wechat.replies`: the passive reply a webhook answer carries (the 5-second rule).

The inbound side (signature, XML, dedupe) is ``webhooks/wechat.py``. Importing this package
registers the adapter; the names other packages use are exported here.
"""

from bot.channels.wechat.adapter import WeChatAdapter, make_wechat
from bot.channels.wechat.binding_qr import (
    BindingQr,
    BindingQrJob,
    IssuedQr,
    keep_binding_qr,
    patients_needing_binding_qr,
    request_binding_qr,
)
from bot.channels.wechat.client import WeChatApi
from bot.channels.wechat.errors import WeChatApiError, send_result_of
from bot.channels.wechat.token import AccessToken, SharedAccessToken

__all__ = [
    "AccessToken",
    "BindingQr",
    "BindingQrJob",
    "IssuedQr",
    "SharedAccessToken",
    "WeChatAdapter",
    "WeChatApi",
    "WeChatApiError",
    "keep_binding_qr",
    "make_wechat",
    "patients_needing_binding_qr",
    "request_binding_qr",
    "send_result_of",
]
