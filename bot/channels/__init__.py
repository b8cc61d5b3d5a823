"""Channel adapters: console, WeChat, SMS and voice."""
