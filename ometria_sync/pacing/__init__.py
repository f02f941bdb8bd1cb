"""Pacing requests to a rate limit: the ``RatePacer`` protocol, the in-process ``Pacer`` and
the ``SharedBudget`` many processes share through Redis. Used by both HTTP clients' callers."""
