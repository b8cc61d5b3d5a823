"""Tests of bot/channels/sms/, one file per module."""
