"""The SMS channel over Twilio, one module per job.

- :mod:`~bot.channels.sms.adapter`: the outbound adapter (``messages.create``, and reconciling an
  attempt whose outcome was unknown), registered as the ``sms`` channel;
- :mod:`~bot.channels.sms.status`: what Twilio reports back (delivery status, STOP).

The Twilio account and REST plumbing it shares with the voice channel are in
:mod:`bot.channels.twilio_rest`; the inbound side (signature, form, TwiML) is ``webhooks/twilio.py``.
Importing this package registers the adapter.
"""

from bot.channels.sms.adapter import SmsAdapter, make_sms
from bot.channels.sms.status import fail_invitation, message_status

__all__ = ["SmsAdapter", "fail_invitation", "make_sms", "message_status"]
