"""Pacing requests to a rate limit, so that no second a strict server counts holds more.

``protocol.RatePacer`` is what the dispatchers see (``protocol.PermittedPacer`` adds the run
lock's ``SendPermit``). Two implementations: ``pacer.Pacer`` (one process owns the account's
budget; when a request may leave: its slot, grid, window and pauses), with ``adaptation``
(how the pace reacts: margin, rate, jitter); and ``shared_budget.SharedBudget`` (processes
anywhere share it through Redis: ``redis_budget`` holds the account's keys and the scripts,
``budget_stats`` what one process saw).
"""
