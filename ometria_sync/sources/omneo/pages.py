"""Walking an Omneo list endpoint in ``(updated_at, id)`` order, from a checkpoint.

The position after a record is ``[updated_at, id]`` (``updated_at`` in UTC, ISO 8601): the
checkpoint is the last acknowledged record's key, and a rerun reads only what sorts after it.

Omneo pages by page number (Laravel's paginator), which drifts when rows change during the
walk: a row updated while we read moves to the end and shifts the rest left, so the next page
would miss one. The walk therefore *seeks*: after each page it asks again from page 1 with the
updated-at filter set to the last ``updated_at`` seen, and only pages on (``page[number]+1``)
while a page holds nothing newer (many rows updated in the same second). The filter is
inclusive, so the start of each answer repeats what was already read: those rows, and any row
whose key is not after the checkpoint, are dropped here (de-duplication of the overlap). With
``lookback_seconds`` a resumed walk starts that far before the checkpoint and passes the rows
in that window on again, at the checkpoint's position (rows committed late; the engine's change
detection drops those Ometria already has).

What the walk relies on, and checks:

* the sort (``sort = "updated_at,id"`` by default) is ascending and unique within a page; an
  answer out of order fails the stream (a silent skip past the checkpoint would lose rows);
* the filter is a lower bound. A server that ignores it is noticed (a row older than the bound
  comes back) and the walk goes on by page number without it, still correct, reading more;
  ``updated_filter = ""`` does that from the start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import structlog

from ometria_sync.errors import SourceError
from ometria_sync.sources.base import Position
from ometria_sync.sources.omneo import normalise as n
from ometria_sync.sources.omneo.client import OmneoClient

log = structlog.get_logger("ometria_sync.omneo")

Key = tuple[dt.datetime, Any]
#: position of records read before any record with a key (e.g. a first record without one)
START: list[Any] = ["", None]


class WalkSettings(msgspec.Struct, frozen=True):
    """How to ask for pages (see the source settings of the same names)."""

    page_size: int = 100
    sort: str = "updated_at,id"
    updated_filter: str = "filter[updated_at]"
    page_size_param: str = "page[size]"
    page_number_param: str = "page[number]"
    lookback_seconds: float = 0.0
    zone: dt.tzinfo = dt.UTC
    extra: dict[str, str] = {}


class Entry(msgspec.Struct, gc=False):
    """One row of an answer: its key (None when ``error`` says it has no usable one) and the
    position after it."""

    raw: Any
    key: Key | None
    position: list[Any]
    error: str | None = None


def position_of(key: Key) -> list[Any]:
    return [n.iso(key[0].astimezone(dt.UTC)), key[1]]


def key_of_position(position: Position | None) -> Key | None:
    """The key a checkpoint stands for; None for the beginning."""
    if position is None or (isinstance(position, list | tuple) and list(position) == START):
        return None
    try:
        when, ident = msgspec.convert(position, tuple[str, str | int])
        return dt.datetime.fromisoformat(when), ident
    except (msgspec.ValidationError, ValueError):
        raise SourceError(f"the checkpoint {position!r} is not an Omneo position "
                          "([updated_at, id]); reset the stream") from None


def read_envelope(answer: Any, page_size: int, what: str) -> tuple[list[Any], bool]:
    """The rows of a list answer and whether it was the last page: ``data`` empty,
    ``links.next`` null, ``meta.current_page >= meta.last_page``, or, without either, a short
    page."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise SourceError(f"Omneo {what}: the answer has no data list")
    if not data:
        return data, True
    links, meta = answer.get("links"), answer.get("meta")
    if isinstance(links, dict) and "next" in links and n.is_absent(links["next"]):
        return data, True
    try:
        current = n.integer(meta.get("current_page")) if isinstance(meta, dict) else None
        last = n.integer(meta.get("last_page")) if isinstance(meta, dict) else None
    except n.Unusable:
        current = last = None
    if current is not None and last is not None:
        return data, current >= last
    if isinstance(links, dict) and "next" in links:
        return data, False
    return data, len(data) < page_size


KeyReader = Callable[[Any], Key]


class Walk:
    """One pass over ``path``, from ``start`` (a position or None), in key order."""

    def __init__(self, client: OmneoClient, path: str, settings: WalkSettings,
                 key_of: KeyReader, start: Position | None) -> None:
        self._client = client
        self._path = path
        self._s = settings
        self._key_of = key_of
        self._start = key_of_position(start)
        self._position: list[Any] = START if self._start is None else position_of(self._start)
        self._last: Key | None = None if settings.lookback_seconds else self._start
        self._floor = (self._start[0] - dt.timedelta(seconds=settings.lookback_seconds)
                       if self._start else None)
        self._seek = bool(settings.updated_filter)
        self._bound = self._floor
        self._page = 1
        self._reported: set[bytes] = set()
        self._previous_keys: list[Key] = []
        self._repeats = 0
        self.requests = 0

    async def pages(self) -> AsyncIterator[list[Entry]]:
        """Each answer's new rows (possibly none), until the last page."""
        while True:
            answer = await self._client.get(self._path, self._params())
            self.requests += 1
            rows, last = read_envelope(answer, self._s.page_size, f"GET {self._path}")
            entries, keys = self._take(rows)
            yield entries
            if last:
                return
            self._check_progress(keys)
            self._advance(keys[-1] if keys else None)

    def _params(self) -> dict[str, str]:
        params = {self._s.page_size_param: str(self._s.page_size),
                  self._s.page_number_param: str(self._page), **self._s.extra}
        if self._s.sort:
            params["sort"] = self._s.sort
        if self._seek and self._bound is not None:
            wall = self._bound.astimezone(self._s.zone).replace(tzinfo=None, microsecond=0)
            params[self._s.updated_filter] = wall.isoformat(sep=" ")
        return params

    def _advance(self, page_last: Key | None) -> None:
        if self._seek and page_last is not None and (
                self._bound is None or page_last[0] > self._bound):
            self._bound, self._page = page_last[0], 1
        else:
            self._page += 1

    def _take(self, rows: list[Any]) -> tuple[list[Entry], list[Key]]:
        """The new rows of one answer, and the keys of all its rows."""
        entries: list[Entry] = []
        keys: list[Key] = []
        for raw in rows:
            try:
                key = self._key_of(raw)
            except ValueError as exc:
                self._unkeyed(raw, str(exc), entries)
                continue
            self._check_order(keys[-1] if keys else None, key)
            keys.append(key)
            if self._is_new(key):
                self._last = key
                if self._start is None or _after(key, self._start):
                    self._position = position_of(key)
                entries.append(Entry(raw, key, self._position))
        return entries, keys

    def _check_progress(self, keys: list[Key]) -> None:
        """The same rows for three page numbers in a row: Omneo ignores the page parameter,
        and the walk would never end."""
        self._repeats = self._repeats + 1 if keys and keys == self._previous_keys else 0
        self._previous_keys = keys
        if self._repeats >= 2:
            raise SourceError(
                f"Omneo GET {self._path} answered the same rows for three pages in a row; "
                f"check the source's page_number_param ({self._s.page_number_param!r})")

    def _check_order(self, previous: Key | None, key: Key) -> None:
        if previous is not None and not _after(key, previous):
            raise SourceError(
                f"Omneo GET {self._path} answered out of order ({_show(key)} after "
                f"{_show(previous)}): the checkpoint needs an ascending sort on updated_at "
                f"with ties broken by id; check the source's sort ({self._s.sort!r})")
        bound = self._bound.replace(microsecond=0) if self._bound is not None else None
        if self._seek and bound is not None and key[0] < bound:
            self._seek = False
            log.warning("omneo_filter_ignored", path=self._path, filter=self._s.updated_filter,
                        hint="reading on by page number; set updated_filter if Omneo names "
                             "the updated-at filter differently")

    def _is_new(self, key: Key) -> bool:
        if self._last is not None and not _after(key, self._last):
            return False
        if self._start is None or _after(key, self._start):
            return True
        return self._floor is not None and self._s.lookback_seconds > 0 and key[0] >= self._floor

    def _unkeyed(self, raw: Any, error: str, entries: list[Entry]) -> None:
        """A row without a usable key: reported once per walk, at the current position."""
        try:
            identity = msgspec.json.encode(raw)
        except (TypeError, ValueError, OverflowError):
            identity = repr(raw).encode()
        if identity not in self._reported:
            self._reported.add(identity)
            entries.append(Entry(raw, None, self._position, error))


def _after(key: Key, other: Key) -> bool:
    try:
        return key > other
    except TypeError:  # ids of different types: compare them as text
        return (key[0], str(key[1])) > (other[0], str(other[1]))


def _show(key: Key) -> str:
    return f"updated_at {n.iso(key[0])}, id {key[1]!r}"
