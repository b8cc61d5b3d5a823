"""The console channel: the demo and the admin simulator, no provider.

- :mod:`~bot.channels.console.adapter`: the outbound adapter (delivers by doing nothing: the
  conversation log already holds what was said), registered as the ``console`` channel;
- :mod:`~bot.channels.console.inbound`: speaking for a patient (the simulator and ``careloop console``).

Importing this package registers the adapter; ``inbound`` (which needs the router) is imported by
the callers that speak, not here.
"""

from bot.channels.console.adapter import ConsoleAdapter, make_console

__all__ = ["ConsoleAdapter", "make_console"]
