"""The channels: one folder per channel (``console/``, ``wechat/``, ``sms/``, ``voice/``).

Each folder holds that channel's jobs one module each (its outbound adapter, its API client,
what its provider reports back, its passive reply) and registers its adapter under the channel's
name when imported. ``base.py`` is the interface every adapter offers the dispatcher;
``twilio_rest.py`` is the Twilio account and REST plumbing that SMS and voice share.
"""
