"""A CSV file's lines as the csv module reads them, each capped, and its header.

The csv module takes text lines; :func:`text_lines` feeds it from
:class:`~ometria_sync.sources.lines.BoundedLines`, counting bytes and lines as it goes (the
positions), escaping invalid UTF-8 (recorded, so the row is refused with the byte) and raising
:class:`LongLine` for a line over the cap (so the row is refused, never held whole).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from ometria_sync.errors import SourceError
from ometria_sync.sources.csv_options import CsvOptions
from ometria_sync.sources.files import open_binary
from ometria_sync.sources.lines import BoundedLines, Line, over_limit

_BOM = "\ufeff"


class LongLine(Exception):
    """A physical line over the limit: the row it is part of is refused, reading goes on
    after it (with a fresh CSV reader: a quote left open in it must not swallow later rows)."""

    def __init__(self, line: Line, limit: int) -> None:
        super().__init__(over_limit(line.length, limit))
        self.prefix = line.body


def text_lines(lines: BoundedLines, state: list[int], bad: dict[int, int],
               limit: int) -> Iterator[str]:
    """The file's lines as text for the csv module, counting bytes and lines in ``state``
    ([offset, line]); invalid UTF-8 is recorded in ``bad`` (line -> byte) and escaped; a line
    over ``limit`` bytes raises :class:`LongLine` (with the state already past it)."""
    for line in lines:
        state[1] += 1
        if isinstance(line, bytes):
            state[0] += len(line) + 1
            raw = line + b"\n"
        else:
            state[0] += line.size
            if line.over:
                raise LongLine(line, limit)
            raw = line.body  # the last line, without a newline
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad[state[1]] = exc.start + 1
            yield raw.decode("utf-8", "surrogateescape")


def read_header(path: Path, options: CsvOptions,
                opener: Callable[[], IO[bytes]] | None = None,
                label: str | None = None) -> tuple[list[str], int, int]:
    """The header's column names and the [offset, line] after it; ([], 0, 0) for an empty
    file. Raises SourceError when the header cannot be read. ``opener`` (the file's bytes
    from the start) and ``label`` stand in for ``path`` for objects in a store."""
    name = label or str(path)
    try:
        with (opener or functools.partial(open_binary, path))() as fh:
            state = [0, 0]
            bad: dict[int, int] = {}
            lines = BoundedLines(fh, options.line_limit)
            reader = csv.reader(text_lines(lines, state, bad, options.line_limit),
                                delimiter=options.delimiter, quotechar=options.quotechar,
                                strict=True)
            header = next(reader, None)
    except (OSError, EOFError, csv.Error, LongLine) as exc:
        raise SourceError(f"{name}: cannot read the CSV header: {exc}") from exc
    if header is None:
        return [], 0, 0
    if bad:
        raise SourceError(f"{name}: the header is not valid UTF-8 (byte {min(bad.values())})")
    if header and header[0].startswith(_BOM):
        header[0] = header[0][len(_BOM):]
    names = [name.strip() for name in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceError(f"{name}: duplicate columns in the header: {', '.join(duplicates)}")
    return names, state[0], state[1]
