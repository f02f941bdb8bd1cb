"""The one hook every source implements: read from a position, yield records with positions.

A source never loads its input whole. It yields *chunks* (lists of :class:`SourceItem`) so that
the engine's bounded queue holds a bounded amount of data whatever the input size. Each item
carries the position *after* it: resuming from that position reads the next record.

The engine owns counting, validation, checkpoints and shutdown; a source only reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Protocol, TypeAlias, TypeVar

import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.schemas import Problem

#: A resume point, as the checkpoint store keeps it: a JSON value (a file's ``[offset, line]``,
#: a query's ``{"after": [...]}``, an API's ``[updated_at, id]``). Opaque to the engine; a
#: source reads back its own with :func:`checkpoint_as`.
Position: TypeAlias = (
    str | int | float | bool | Sequence["Position"] | Mapping[str, "Position"] | None)

T = TypeVar("T")


class LinePosition(NamedTuple):
    """A file's position: the (uncompressed) byte offset of the next line and the number of
    lines before it. Files yield plain ``(offset, line)`` tuples (the hot path); this is the
    shape a checkpoint is read back as."""

    offset: Annotated[int, msgspec.Meta(ge=0)]
    line: Annotated[int, msgspec.Meta(ge=0)]


def checkpoint_as(shape: type[T], start: Position, label: str, expected: str) -> T:
    """``start`` read back as ``shape``. A checkpoint of another shape (written by another
    version, or edited by hand) is a SourceError naming the part and what it expected, never
    a crash deeper in the source."""
    try:
        return msgspec.convert(start, shape, strict=False)
    except msgspec.ValidationError as exc:
        raise SourceError(f"{label}: the checkpoint {start!r} is not {expected} ({exc}); run "
                          "`ometria-sync reset` for this stream") from None


class SourceItem(msgspec.Struct, gc=False):
    """One record as read, before any validation.

    ``record`` is the decoded value (an object, if the input is well formed) or None when the
    source could not decode it, in which case ``error`` says why. ``raw`` is the original text
    (bytes as read, decoded only when a record is dead-lettered). ``line`` is the 1-based line
    (or row) number where that applies.
    """

    record: Any
    position: Position
    line: int | None = None
    raw: bytes | str | None = None
    error: str | None = None
    #: the record's id, when the source refused the row but could read its id column
    id: str | None = None
    #: what the source left out of a valid record (a column with ``on_error = "omit"``):
    #: counted as warnings in the run summary
    warnings: list[Problem] | None = None


class SourcePart(Protocol):
    """One independently checkpointed input: a file, a table query, an API collection."""

    @property
    def key(self) -> str:
        """Checkpoint sub-key within the stream: '' for single sources, the file for globs."""

    @property
    def label(self) -> str:
        """What a person calls this input (a file path, a query): used in logs and dead letters."""

    async def fingerprint(self) -> str | None:
        """Identity of the content at ``key``: a different fingerprint restarts from the top.
        None for sources whose position is meaningful across content changes (cursors)."""

    async def size(self) -> int | None:
        """Bytes to read, for the progress estimate; None when the part cannot know (a query,
        an API collection, a gzip file)."""

    def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        """Yield chunks of items from ``start`` (None: the beginning)."""


class Source(Protocol):
    """What a stream reads: one or more parts, read in order."""

    async def parts(self) -> list[SourcePart]:
        """The parts to read, in order. May raise :class:`~ometria_sync.errors.SourceError`."""

    async def aclose(self) -> None:
        """Release connections and handles."""


class Deletions(msgspec.Struct, frozen=True):
    """How a source that is not read whole tells what it no longer holds (``on_missing``):
    ``deleted``, a source of the ids deleted since its own checkpoint; ``keys``, a source of
    every current id, read whole every ``sweep_seconds``. Their records need only an ``id``
    (and a contact's ``@collection``)."""

    deleted: SourceConfig | None = None
    keys: SourceConfig | None = None
    sweep_seconds: float = 7 * 86400.0


class SourceConfig(msgspec.Struct, frozen=True, tag_field="kind", forbid_unknown_fields=True):
    """Base of every ``source = { kind = ... }`` table in the job file."""

    def deletions(self) -> Deletions | None:
        """How the source tells deleted records (None: it is read whole on every run, so what
        a complete read lacks was removed)."""
        return None

    def resolve(self, base_dir: Path) -> SourceConfig:
        """Return a copy with relative paths made absolute against the job file's folder."""
        return self

    def with_run_settings(self, *, max_line_bytes: int) -> SourceConfig:
        """A copy that takes the job's ``[run]`` settings where it sets none of its own (the
        line cap of file sources)."""
        return self

    def check(self, key: str) -> None:
        """Raise :class:`~ometria_sync.errors.ConfigError` naming ``key`` if this source cannot
        work (a missing file, a bad setting). Called when the job file is read."""

    def check_record_type(self, key: str, record_type: str) -> None:
        """Raise :class:`~ometria_sync.errors.ConfigError` naming ``key`` if this source
        cannot yield records of the stream's ``record_type`` (a preset's entity)."""

    def check_credentials(self, key: str) -> None:
        """Raise :class:`~ometria_sync.errors.ConfigError` naming ``key`` if the secret this
        source reads with (a DSN, a token) is not there. Called only by what reads the source
        (``run``, ``validate``, ``plan``, ``verify``), never by what reads only the state
        (``status``, ``reset``, ``dead-letter``): an operator needs no shop secret for those."""

    async def preflight(self, key: str) -> None:
        """Checks that need I/O beyond the local disk (a database query's columns). Raise
        :class:`~ometria_sync.errors.ConfigError` naming ``key``. Called for every stream of
        a run before anything is sent."""

    def open(self) -> Source:
        """Create the source. Reading starts only when the engine asks for parts."""
        raise NotImplementedError


@dataclasses.dataclass
class SinglePartSource:
    """A source made of exactly one part (a file, an object, a query)."""

    part: SourcePart

    async def parts(self) -> list[SourcePart]:
        return [self.part]

    async def aclose(self) -> None:
        return None


@dataclasses.dataclass
class LazyPartSource:
    """A source made of one part found when the stream starts (an object's current version)."""

    find: Callable[[], Awaitable[SourcePart]]

    async def parts(self) -> list[SourcePart]:
        return [await self.find()]

    async def aclose(self) -> None:
        return None
