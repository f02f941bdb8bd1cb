"""The dead letter: one JSON line per record that was not delivered, with the reasons.

Each line names the record so a person can find and fix it: stream, source (file or query),
line number, resume position, the record's id when it has one, the reasons as ``{path, message}``
and the raw input. The file is append-only and created readable by its owner only (it holds
personal data); :meth:`sync` makes it durable, and the engine calls it before any checkpoint that
covers a dead-lettered record, so a record is never both forgotten and checkpointed past.

In the state database instead (``state.dead_letter = "database"``, :class:`DatabaseDeadLetter`):
no file at all.

Each refused record is a row with the same JSON entry a dead-letter file line holds, plus the
run's id. Rows are handed to the state store's ordered write queue by :meth:`sync` (which the
engine calls before every checkpoint), so they are committed before any checkpoint that covers
them; a thousand rows waiting go in at once, so refusals never pile up in memory.
``ometria-sync dead-letter JOB.toml`` writes them out as JSON Lines.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.schemas import Problem
from ometria_sync.state.store import DeadLetterRow, StateStore, utc_now


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """One refused record, as written to the dead-letter file."""

    time: str
    stream: str
    source: str
    reasons: list[Problem]
    stage: str = "validate"  # validate | source | ometria
    line: int | None = None
    position: Any = None
    id: str | None = None
    record: Any = None
    raw: str | None = None
    #: the raw input's full length in bytes, when ``raw`` holds only its first RAW_PREFIX_BYTES
    raw_bytes: int | None = None
    #: the run that refused it (``dead-letter --run ID``)
    run_id: str | None = None
    #: when the same content was first refused by an earlier run (the ledger knows it); absent
    #: for a refusal this run found new (``dead-letter --new``)
    known_since: str | None = None


#: the most of a raw input a dead-letter line holds (a valid record is at most 60 KB)
RAW_PREFIX_BYTES = 64 * 1024


def _bounded(raw: bytes | str | None) -> tuple[str | None, int | None]:
    """``raw`` as text, cut to its first RAW_PREFIX_BYTES (and then its full length)."""
    if raw is None:
        return None, None
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if len(data) <= RAW_PREFIX_BYTES:
        return data.decode("utf-8", "replace"), None
    return data[:RAW_PREFIX_BYTES].decode("utf-8", "replace"), len(data)


class DeadLetterWriter:
    """Appends :class:`DeadLetter` lines to a file, each naming ``run_id``; opened lazily on
    the first refusal. ``fresh``: the file holds this run's lines only (what was there is
    removed now: ``validate``'s own file)."""

    def __init__(self, path: str | Path, run_id: str | None = None, *,
                 fresh: bool = False) -> None:
        self.path = Path(path)
        self.run_id = run_id
        if fresh:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                raise StateError(f"dead letter {self.path}: cannot remove: {exc.strerror}"
                                 ) from None
        self._fh: BinaryIO | None = None
        self._dirty = False
        self.count = 0
        # a value JSON has no form for (a database range) is written as its repr, so that
        # refusing a record never fails the run
        self._encode = msgspec.json.Encoder(enc_hook=repr).encode

    def describe(self) -> str:
        """Where the refused records go, for messages."""
        return str(self.path)

    def _open(self) -> BinaryIO:
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._fh = os.fdopen(fd, "ab")
            except OSError as exc:
                raise StateError(f"dead letter {self.path}: cannot open: {exc.strerror}") from None
        return self._fh

    def write(
        self,
        *,
        stream: str,
        source: str,
        reasons: list[Problem],
        stage: str = "validate",
        line: int | None = None,
        position: Any = None,
        record: Any = None,
        raw: bytes | str | None = None,
        record_id: str | None = None,
        known_since: str | None = None,
    ) -> None:
        """Append one entry. ``record`` is kept when it decoded; ``raw`` (its first
        RAW_PREFIX_BYTES) when it did not, with ``record_id`` when the source could still
        read the id."""
        if isinstance(record, dict):
            record_id = record.get("id")
        text, raw_bytes = _bounded(raw) if record is None else (None, None)
        entry = DeadLetter(
            time=utc_now(),
            stream=stream,
            source=source,
            reasons=reasons,
            stage=stage,
            line=line,
            position=position,
            id=record_id if isinstance(record_id, str) else None,
            record=record,
            raw=text,
            raw_bytes=raw_bytes,
            run_id=self.run_id,
            known_since=known_since,
        )
        try:
            encoded = self._encode(entry)
        except (TypeError, ValueError, OverflowError):  # what even the hook cannot write
            entry.record, entry.raw = None, repr(record)
            encoded = self._encode(entry)
        self._emit(entry, encoded)
        self.count += 1
        self._dirty = True

    def _emit(self, entry: DeadLetter, encoded: bytes) -> None:
        fh = self._open()
        try:
            fh.write(encoded + b"\n")
        except OSError as exc:
            raise StateError(
                f"dead letter {self.path}: cannot write ({exc.strerror}); the run stops so "
                "that no refused record is lost"
            ) from None

    def sync(self) -> None:
        """Flush and fsync what was written: call before a checkpoint that covers it."""
        if self._fh is None or not self._dirty:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise StateError(f"dead letter {self.path}: cannot flush ({exc.strerror})") from None
        self._dirty = False

    def close(self) -> None:
        """Make everything durable and close. Raises StateError when that fails (once: a
        second close after a failure is quiet, the loss was reported)."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            if self._dirty:
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StateError(f"dead letter {self.path}: cannot flush ({exc.strerror})") from None
        finally:
            self._dirty = False
            with contextlib.suppress(OSError):
                fh.close()


#: refused records held before they are handed to the store without waiting for a checkpoint
_ROWS_PER_WRITE = 1000


class DatabaseDeadLetter(DeadLetterWriter):
    """A :class:`DeadLetterWriter` whose lines become rows of the state's ``dead_letters``."""

    def __init__(self, store: StateStore, run_id: str) -> None:
        super().__init__("dead-letters-in-database", run_id)
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
