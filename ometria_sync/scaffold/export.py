"""The head of a CSV export: its header, its delimiter and its first rows, as the bytes they
were written in.

``init`` matches the header to fields and validates the first rows with the job it wrote. The
rows are kept as the file's own bytes (not parsed and written again), so the sample shows the
CSV source exactly what the whole file would: the same encoding, quoting and line ends.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import msgspec

_GZIP = b"\x1f\x8b"
_BOM = "\ufeff"
#: delimiters a shop export uses, most likely first (a tie goes to the comma)
DELIMITERS = (",", ";", "\t", "|")


class ExportError(Exception):
    """The file cannot be read as a CSV export (the message says why and names the file)."""


class ExportHead(msgspec.Struct, frozen=True):
    """``header`` as the CSV source reads it (names stripped); ``rows`` the first rows parsed;
    ``sample`` the bytes of the header and those rows, uncompressed."""

    header: list[str]
    delimiter: str
    rows: list[list[str]]
    sample: bytes
    gzip: bool
    #: the first line that is not UTF-8 (None: all read were)
    not_utf8_line: int | None = None


def read_head(path: Path, rows: int) -> ExportHead:
    """The header and up to ``rows`` rows of the CSV file at ``path`` (plain or gzip)."""
    try:
        with path.open("rb") as probe:
            packed = probe.read(2) == _GZIP
        with _open(path, packed) as fh:
            first = fh.readline()
            delimiter = guess_delimiter(first.decode("utf-8", "replace"))
            fh.seek(0)
            return _read(fh, delimiter, rows, packed)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ExportError(f"{path}: cannot read it: {exc}") from exc
    except csv.Error as exc:
        raise ExportError(f"{path}: not a CSV file the csv module can read: {exc}") from exc
    except ExportError as exc:
        raise ExportError(f"{path}: {exc}") from None


def _open(path: Path, packed: bool) -> IO[bytes]:
    if packed:
        return cast(IO[bytes], gzip.GzipFile(path, "rb"))
    return path.open("rb")


def guess_delimiter(line: str) -> str:
    """The delimiter the header line uses most (a comma when it has none of them)."""
    counts = [(line.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


def _read(fh: IO[bytes], delimiter: str, limit: int, packed: bool) -> ExportHead:
    raw: list[bytes] = []
    bad: list[int] = []

    def lines() -> Iterator[str]:
        for number, line in enumerate(fh, 1):
            raw.append(line)
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
                yield line.decode("utf-8", "replace")

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    header = next(reader, None)
    if header is None:
        raise ExportError("the file is empty: init needs a header row")
    if header and header[0].startswith(_BOM):
        header[0] = header[0][len(_BOM):]
    rows: list[list[str]] = []
    while len(rows) < limit:  # the reader takes lines only as a row needs them
        row = next(reader, None)
        if row is None:
            break
        rows.append(row)
    return ExportHead([name.strip() for name in header], delimiter, rows, b"".join(raw), packed,
                      bad[0] if bad else None)
