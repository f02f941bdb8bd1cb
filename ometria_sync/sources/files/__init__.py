"""File sources: a location (a local file or an object in a store) read in a format (JSON
Lines or CSV), one file or a glob of them."""

from ometria_sync.sources.files.csv import CsvSourceConfig
from ometria_sync.sources.files.glob import GlobSourceConfig
from ometria_sync.sources.files.jsonl import JsonlSourceConfig

__all__ = ["CsvSourceConfig", "GlobSourceConfig", "JsonlSourceConfig"]
