"""Every kind of source the job file can name, as one tagged union on ``kind``."""

from __future__ import annotations

from ometria_sync.sources.jsonl import JsonlSourceConfig

#: ``source = { kind = "..." , ... }`` decodes to one of these.
SourceSpec = JsonlSourceConfig

SOURCE_KINDS: tuple[str, ...] = ("jsonl",)
