"""Which stream and source part the batcher, the delivery and the part's runner work for.

One part of one stream (a file, a query) is read, batched and delivered by several objects; what
they share is named once here: the stream, the source part's label (both name each dead-letter
entry), the stream's live counters and the dead letter they write to.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.schemas.problems import Problem
from ometria_sync.sources.base import Position
from ometria_sync.state.deadletter import DeadLetterWriter


class PartScope(msgspec.Struct, frozen=True):
    """The stream and source part one batcher and one delivery serve."""

    stream: str
    #: the source part's label, as a dead-letter entry names it
    source: str
    stats: StreamStats
    dead_letter: DeadLetterWriter

    def dead_letter_record(
        self,
        reasons: list[Problem],
        *,
        stage: str,
        line: int | None,
        position: Position,
        record: Any,
        raw: bytes | str | None = None,
    ) -> None:
        """Count one refused record and write it to the dead letter, naming this part."""
        self.stats.dead_lettered += 1
        self.dead_letter.write(stream=self.stream, source=self.source, reasons=reasons,
                               stage=stage, line=line, position=position, record=record, raw=raw)
