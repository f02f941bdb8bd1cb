"""Pacing requests to a rate limit, so that no second a strict server counts holds more.

``RatePacer`` is what the dispatchers see (``PermittedPacer`` adds the run lock's
``SendPermit``). Two implementations: ``Pacer`` (``pacer.py``: one process owns the account's
budget; when a request may leave: its slot, grid, window and pauses), with ``adaptation.py``
(how the pace reacts: margin, rate, jitter); and ``SharedBudget`` (``shared_budget.py``:
processes anywhere share it through Redis; ``redis_budget.py`` holds the account's keys and the
scripts, ``budget_stats.py`` what one process saw).
"""

from ometria_sync.pacing.budget_stats import BudgetStats
from ometria_sync.pacing.pacer import Pacer, PermittedPacer, RatePacer, SendPermit
from ometria_sync.pacing.redis_budget import live_processes
from ometria_sync.pacing.shared_budget import SharedBudget

__all__ = [
    "BudgetStats",
    "Pacer",
    "PermittedPacer",
    "RatePacer",
    "SendPermit",
    "SharedBudget",
    "live_processes",
]
