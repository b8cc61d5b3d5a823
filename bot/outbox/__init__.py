"""What Careloop sends: the queue (:mod:`bot.outbox.queue`) and its sending (:mod:`bot.outbox.dispatcher`)."""
