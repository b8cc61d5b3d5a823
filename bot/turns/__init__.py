"""One turn of a conversation: the delivery's claim, the engine's events applied as rows, one write."""
