"""The ``omneo_profiles`` and ``omneo_transactions`` source tables of the job file.

    source = { kind = "omneo_profiles", tenant = "acme", token_env = "OMNEO_TOKEN" }

Omneo has its own token (from the environment or a file, never from the job file, never
logged), its own pacer and its own concurrency, separate from Ometria's. Where Omneo's API is
unconfirmed (query parameter names, sort fields, whether ``price_sell`` is per unit) the choice
is a setting with the documented default.

The keys and their checks are in :mod:`.settings`; here each table gets what opens it (the
readers) and its preflight, so the readers depend on the settings and never the other way.
"""

from __future__ import annotations

from ometria_sync.sources.base import Source
from ometria_sync.sources.omneo.converters import profiles_source, transactions_source
from ometria_sync.sources.omneo.reader import preflight
from ometria_sync.sources.omneo.settings import OmneoProfilesSettings, OmneoTransactionsSettings


class OmneoProfilesConfig(OmneoProfilesSettings, frozen=True, kw_only=True,
                          tag="omneo_profiles"):
    """Profiles changed since the checkpoint, each with its aggregations, as contacts."""

    async def preflight(self, key: str) -> None:
        await preflight(self, key)

    def open(self) -> Source:
        return profiles_source(self)


class OmneoTransactionsConfig(OmneoTransactionsSettings, frozen=True, kw_only=True,
                              tag="omneo_transactions"):
    """Transactions changed since the checkpoint, as orders."""

    async def preflight(self, key: str) -> None:
        await preflight(self, key)

    def open(self) -> Source:
        return transactions_source(self)
