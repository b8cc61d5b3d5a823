"""The attacks on the public webhooks use the webhooks' fixtures: the app with WeChat, SMS and voice live,
the peer that signs and encrypts as WeChat does, the fake providers."""

from tests.webhooks.conftest import *  # noqa: F403 - the same fixtures, one definition
