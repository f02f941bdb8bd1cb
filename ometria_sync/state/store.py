"""The state store: one interface, two implementations chosen by the URL's scheme.

``sqlite:///PATH`` keeps the state in a file beside the job (:class:`SqliteState`, its writes on
a thread of their own); ``postgresql://`` or ``postgres://`` keeps it in a database schema
(:class:`PostgresState`, asyncpg on the event loop), so a container needs no disk. The pipeline
sees only :class:`StateStore`.

Guarantees, both stores:

* writes (``save``, ``remember``, ``forget_ids``, ``add_dead_letters``) are queued and run one at
  a time in the order they were made: a checkpoint is written after the dead letters and hashes
  submitted before it, and never moves backwards (see ``checkpoint_rules.py``);
* a failed write is never lost: the first failure is raised, once, by the next write, ``call``,
  :meth:`StateStore.flush`, :meth:`StateStore.keep_up` or :meth:`StateStore.aclose`; and it
  stops the queue for the rest of the run (:class:`FirstFailure`, below): nothing queued after
  it is written, so a checkpoint is durable only if every write submitted before it is;
* ``lookup`` sees committed hashes only; the future returned by ``remember`` says when its
  hashes are committed;
* no secret of the URL (password, ``?password=``) appears in a message: ``net/urls.py``.

The first failed write of a queue, and what it does to every write behind it
(:class:`FirstFailure`): both stores queue their writes in order (``sqlite_store.py``,
``pg_queue.py``). A write that failed (after its reconnects, for PostgreSQL) stops the queue
for the rest of the run: every write queued after it is refused without running, and every
later ``submit`` or ``call`` raises :class:`StateWritesStopped`. So a checkpoint is durable
only if every write submitted before it (dead letters, change hashes, an earlier checkpoint)
is: it can never pass a refused record whose dead-letter row was lost, nor leave a stale
change hash behind (review items 1 and 3). The failure itself is raised once, by whichever
state call comes next, so a run still ends, flushes and writes its report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ometria_sync.errors import StateError
from ometria_sync.net.urls import is_schema_name
from ometria_sync.pacing.protocol import SendPermit
from ometria_sync.state.account import AccountIdentity
from ometria_sync.state.checkpoint_rules import Checkpoint, StreamRun

#: writes that may wait before ``keep_up`` makes the caller wait
MAX_QUEUED_WRITES = 1000


class Pending(Protocol):
    """A queued write: done once committed (or failed)."""

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def exception(self) -> BaseException | None: ...


class StateStore(Protocol):
    """What a run, ``status``, ``reset`` and ``dead-letter`` need from the state."""

    #: where the state is, for messages (a URL's password replaced by ``***``)
    label: str

    # checkpoints and run history
    async def load(self, stream: str, part: str) -> Checkpoint | None: ...
    def save(self, stream: str, part: str, position: Any, fingerprint: str | None,
             delivered: int) -> None: ...
    async def restart(self, stream: str, part: str) -> None: ...
    async def start_run(self, stream: str) -> None: ...
    async def finish_run(self, stream: str, outcome: str, delivered: int) -> None: ...
    async def checkpoints(self, stream: str | None = None) -> list[Checkpoint]: ...
    async def last_run(self, stream: str) -> StreamRun | None: ...
    async def reset(self, stream: str | None = None) -> int: ...

    # change hashes
    async def stream_id(self, name: str) -> int: ...
    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]: ...
    def remember(self, stream_id: int, pairs: list[tuple[int, int]]) -> Pending: ...
    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None: ...
    async def tracked_ids(self, stream: str) -> int: ...

    # the account, dead letters, the run lock
    async def claim_account(self, current: AccountIdentity) -> bool: ...
    def add_dead_letters(self, rows: list[DeadLetterRow]) -> None: ...
    def dead_letters(self, stream: str | None = None,
                     run_id: str | None = None) -> AsyncIterator[bytes]: ...
    def run_lock(self) -> AbstractAsyncContextManager[SendPermit]: ...
    async def run_in_progress(self) -> bool: ...

    # the queue
    async def keep_up(self, most: int = MAX_QUEUED_WRITES) -> None: ...
    async def flush(self) -> None: ...
    async def aclose(self) -> None: ...


DeadLetterRow = tuple[str, str, str, str]
"""(run id, stream, time, the entry as its JSON line without the newline)"""


def check_schema(schema: str) -> str:
    """``schema`` if it is a plain lower-case SQL name, matched whole (a trailing newline
    reaches the same tables and must not pass); StateError otherwise."""
    if not is_schema_name(schema):
        raise StateError(f"state.schema: {schema!r} is not a plain lower-case SQL name")
    return schema


class StateWritesStopped(StateError):
    """An earlier state write failed, so this one was not written: the run stops (exit 1) and
    the next run resumes from the last checkpoint that committed (nothing acknowledged is
    lost; what came after it is sent again)."""


class FirstFailure:
    """The first failure of one queue: set from whichever thread runs the writes."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._failure: BaseException | None = None
        self._unseen: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def note(self, exc: BaseException) -> None:
        """A write failed; only the first failure counts (later ones are its consequences)."""
        if self._failure is None:
            self._failure = self._unseen = exc

    def refusal(self) -> StateWritesStopped:
        """What a write queued after the failure fails with instead of running."""
        return StateWritesStopped(
            f"checkpoint store {self._label}: not written, because an earlier state write "
            f"failed ({self._failure}); the next run resumes from the last checkpoint that "
            "was committed")

    def raise_unseen(self) -> None:
        """Raise the failure if nobody saw it yet (once)."""
        unseen, self._unseen = self._unseen, None
        if unseen is not None:
            raise unseen

    def check(self) -> None:
        """Before a new write or call: the failure once, then a refusal every time."""
        self.raise_unseen()
        if self._failure is not None:
            raise self.refusal()

    def seen(self, exc: BaseException) -> None:
        """``exc`` reached a caller (a ``call`` that failed): not raised again."""
        if self._unseen is exc:
            self._unseen = None
