"""Tests of bot/channels/wechat/, one file per module."""
