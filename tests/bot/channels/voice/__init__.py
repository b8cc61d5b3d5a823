"""Tests of bot/channels/voice/."""
