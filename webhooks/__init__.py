"""HTTP entry points of WeChat and Twilio."""
