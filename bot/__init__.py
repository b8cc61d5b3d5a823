"""Conversations: identity binding, routing, channels, the outbox and scheduled jobs."""
