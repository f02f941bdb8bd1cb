"""``warnings.jsonl``: the records a warning was given for, beside the dead letter.

A warning does not stop a record (it is sent), so the dead letter never names it. This file
does: one JSON line per warning, with the run's id, the stream, the source part, the record's
line or position (a cursor, a page), its id, the field path and the full reason, so a person
can find and fix the records behind ``4171  gender: is usually one of m, f, o``.

Capped: at most ``cap`` lines per stream per run (``state.warnings_per_stream``), then one
line saying how many were left out is written when the run ends; the run report keeps the
counts of every reason and the first few records of each. Append-only across runs, created
readable by its owner only (it holds ids). Losing it never stops a run: a write that fails is
logged once and the file is given up for that run (the warnings are still counted).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import structlog

from ometria_sync.state.store import utc_now

log = structlog.get_logger("ometria_sync.warnings")

#: the default of ``state.warnings_per_stream``
WARNINGS_PER_STREAM = 1000


class WarningLine(msgspec.Struct, omit_defaults=True):
    """One warning for one record, as written to ``warnings.jsonl``."""

    run_id: str
    time: str
    stream: str
    source: str
    path: str
    reason: str
    line: int | None = None
    position: Any = None
    id: str | None = None
    #: on the closing line of a stream that reached the cap: warnings not listed
    not_listed: int | None = None


class WarningLog:
    """Appends :class:`WarningLine` s to ``path`` (opened on the first warning), at most
    ``cap`` per stream for this run; ``cap`` 0 writes nothing."""

    def __init__(self, path: str | Path, run_id: str, cap: int = WARNINGS_PER_STREAM) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.cap = cap
        self._fh: BinaryIO | None = None
        self._broken = False
        self._written: dict[str, int] = {}
        self._left_out: dict[str, int] = {}
        self._encode = msgspec.json.Encoder(enc_hook=repr).encode

    def write(self, *, stream: str, source: str, path: str, reason: str,
              line: int | None = None, position: Any = None, id: str | None = None) -> None:
        """One warning for one record (left out once the stream reached the cap)."""
        written = self._written.get(stream, 0)
        if written >= self.cap or self._broken:
            self._left_out[stream] = self._left_out.get(stream, 0) + 1
            return
        self._written[stream] = written + 1
        self._emit(WarningLine(run_id=self.run_id, time=utc_now(), stream=stream,
                               source=source, path=path, reason=reason, line=line,
                               position=position, id=id))

    def _emit(self, entry: WarningLine) -> None:
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._fh = os.fdopen(fd, "ab")
            self._fh.write(self._encode(entry) + b"\n")
        except OSError as exc:
            self._broken = True
            log.warning("warnings_file_unwritable", path=str(self.path),
                        error=exc.strerror or str(exc))

    def close(self) -> None:
        """Write a closing line per stream that reached the cap, then close."""
        if self.cap > 0 and not self._broken:
            for stream, left_out in self._left_out.items():
                self._emit(WarningLine(
                    run_id=self.run_id, time=utc_now(), stream=stream, source="", path="",
                    reason=f"{left_out} more warnings not listed (state.warnings_per_stream "
                           f"= {self.cap}); the run report counts them all",
                    not_listed=left_out))
        self._left_out.clear()
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
