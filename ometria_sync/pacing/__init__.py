"""Pacing requests to a rate limit, so that no second a strict server counts holds more.

``protocol.RatePacer`` is what the dispatchers see. Two implementations: ``pacer.Pacer`` (one
process owns the account's budget), composed of ``grid``, ``window``, ``pauses``, ``margin``,
``rate`` and ``jitter``, one mechanism each; and ``shared_budget.SharedBudget`` (processes
anywhere share it through Redis: ``budget_scripts``, ``budget_reports``, ``distance``,
``redis_account``, ``budget_stats``).
"""
