"""Tests of the channels' modules, one file per module, against the local fake WeChat and Twilio servers."""
