"""Flask request plumbing shared by the HTTP edges (``webhooks``, ``admin``, ``careloop``'s API).

``web.context`` is the unit of work of one request (its session, the app's named services, an
audited refusal); ``web.rate_limits`` puts a limiter on one blueprint only. It imports Flask and
``security``, nothing else of ours; ``bot``, ``care``, ``flows`` and ``security`` never import it.
"""
