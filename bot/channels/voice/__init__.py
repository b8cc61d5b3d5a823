"""The voice channel over Twilio: placing follow-up calls and controlling their recording.

- :mod:`~bot.channels.voice.adapter`: the outbound adapter (``calls.create``, reconciling an
  unknown call, starting and stopping a call's recording), registered as the ``voice`` channel.

What the patient hears on the call is :mod:`bot.calls` (served by ``webhooks/twilio.py``); keeping
the audio is :mod:`bot.recordings`. Importing this package registers the adapter.
"""

from bot.channels.voice.adapter import RecordingControlError, VoiceAdapter, make_voice

__all__ = ["RecordingControlError", "VoiceAdapter", "make_voice"]
