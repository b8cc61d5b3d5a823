"""The HTTP API for outside systems that push data (a checkup centre's reports), authenticated by API keys."""
