"""Sources: producers of raw records with resume positions (files, PostgreSQL, Omneo)."""

from ometria_sync.sources.base import Position, Source, SourceConfig, SourceItem, SourcePart
from ometria_sync.sources.registry import SOURCE_KINDS, SourceSpec

__all__ = [
    "SOURCE_KINDS",
    "Position",
    "Source",
    "SourceConfig",
    "SourceItem",
    "SourcePart",
    "SourceSpec",
]
