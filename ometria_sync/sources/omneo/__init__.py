"""Omneo (a loyalty and CX platform) as a source: profiles with their aggregations become
contacts, transactions become orders. See docs/omneo.md."""

from ometria_sync.sources.omneo.config import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.settings import OmneoSourceConfig

__all__ = ["OmneoProfilesConfig", "OmneoSourceConfig", "OmneoTransactionsConfig"]
