"""The dead letter in the state database (``state.dead_letter = "database"``): no file at all.

Each refused record is a row with the same JSON entry a dead-letter file line holds, plus the
run's id. Rows are handed to the state store's ordered write queue by :meth:`sync` (which the
engine calls before every checkpoint), so they are committed before any checkpoint that covers
them; a thousand rows waiting go in at once, so refusals never pile up in memory.
``ometria-sync dead-letter JOB.toml`` writes them out as JSON Lines.
"""

from __future__ import annotations

from ometria_sync.state.deadletter import DeadLetter, DeadLetterWriter
from ometria_sync.state.store import DeadLetterRow, StateStore

#: refused records held before they are handed to the store without waiting for a checkpoint
_ROWS_PER_WRITE = 1000


class DatabaseDeadLetter(DeadLetterWriter):
    """A :class:`DeadLetterWriter` whose lines become rows of the state's ``dead_letters``."""

    def __init__(self, store: StateStore, run_id: str) -> None:
        super().__init__("dead-letters-in-database")
        self._store = store
        self._run_id = run_id
        self._rows: list[DeadLetterRow] = []

    def describe(self) -> str:
        return (f"the state database {self._store.label} (`ometria-sync dead-letter JOB.toml` "
                "writes them out)")

    def _emit(self, entry: DeadLetter, encoded: bytes) -> None:
        self._rows.append((self._run_id, entry.stream, entry.time, encoded.decode()))
        if len(self._rows) >= _ROWS_PER_WRITE:
            self.sync()

    def sync(self) -> None:
        """Queue the rows written so far; they commit before anything queued after them."""
        rows, self._rows = self._rows, []
        self._dirty = False
        if rows:
            self._store.add_dead_letters(rows)

    def close(self) -> None:
        self.sync()
