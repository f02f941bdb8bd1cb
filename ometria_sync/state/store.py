"""The state store: one interface, two implementations chosen by the URL's scheme; what a
checkpoint is and the rule both apply to saving one; and which Ometria account a store belongs
to.

``sqlite:///PATH`` keeps the state in a file beside the job (:class:`SqliteState`, its writes on
a thread of their own); ``postgresql://`` or ``postgres://`` keeps it in a database schema
(:class:`PostgresState`, asyncpg on the event loop), so a container needs no disk. The pipeline
sees only :class:`StateStore`.

Guarantees, both stores:

* writes (``save``, ``remember``, ``forget_ids``, ``add_dead_letters``, ``put_ledger``,
  ``drop_ledger``) are queued and run one at
  a time in the order they were made: a checkpoint is written after the dead letters and hashes
  submitted before it, and never moves backwards (see ``checked_total``);
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

import datetime as dt
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from ometria_sync.errors import StateError
from ometria_sync.net import is_schema_name, normalise_url
from ometria_sync.pacing import SendPermit

#: writes that may wait before ``keep_up`` makes the caller wait ...
MAX_QUEUED_WRITES = 1000
#: ... or change hashes in them: a change index slower than the network (random ids dirty
#: about one page each once it is large) fills the run's buffers instead of its memory
MAX_QUEUED_HASHES = 15_000


class Pending(Protocol):
    """A queued write: done once committed (or failed)."""

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def exception(self) -> BaseException | None: ...


F = TypeVar("F", bound=Pending)


class Backlog(Generic[F]):
    """A queue's writes submitted and not known to be done, oldest first, each with how many
    change hashes it carries: what ``keep_up`` bounds (the writes run in order)."""

    def __init__(self) -> None:
        self._writes: deque[tuple[F, int]] = deque()
        self.hashes = 0

    def add(self, future: F, hashes: int = 0) -> None:
        self._writes.append((future, hashes))
        self.hashes += hashes
        self.forget_done()

    def forget_done(self) -> None:
        writes = self._writes
        while writes and writes[0][0].done():
            self.hashes -= writes.popleft()[1]

    def __len__(self) -> int:
        return len(self._writes)

    def __getitem__(self, index: int) -> F:
        return self._writes[index][0]

    def over(self, most: int, hashes: int) -> F | None:
        """The write to wait for so that at most ``most`` writes and ``hashes`` hashes are left
        queued behind it (None: within both bounds already)."""
        self.forget_done()
        last = len(self._writes) - most - 1  # writes: the one ``most`` places from the end
        left = self.hashes
        for i, (_, weight) in enumerate(self._writes):
            if left <= hashes:
                break
            left -= weight
            last = max(last, i)
        return self._writes[last][0] if last >= 0 else None


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
    #: the run report's JSON (queued, ordered, like every write); the newest ``last``, oldest
    #: first (``run_history.py``)
    def add_run_report(self, run_id: str, started_at: str, report: bytes) -> None: ...
    async def run_reports(self, last: int) -> list[bytes]: ...

    # change hashes
    async def stream_id(self, name: str) -> int: ...
    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]: ...
    #: ``groups``: per pair, the line group its row points to (0: none; ``line_groups_sql``)
    def remember(self, stream_id: int, pairs: list[tuple[int, int]],
                 groups: list[int] | None = None) -> Pending: ...
    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None: ...
    async def tracked_ids(self, stream: str) -> int: ...
    # groups of source lines Ometria holds as they are (``line_groups_sql.py``): the valid
    # ones among ``group_hashes`` (hash -> their records' id hashes); groups to keep, groups
    # seen by the run ``marker`` (``pointed``: (hash, ids) of groups whose rows the
    # ``remember`` just before pointed to them); the groups ``marker`` did not see, deleted
    async def held_groups(self, stream_id: int,
                          group_hashes: list[int]) -> dict[int, Sequence[int]]: ...
    def keep_groups(self, stream_id: int, marker: int, groups: list[GroupRow],
                    seen: list[int], pointed: Sequence[Pointed] = ()) -> None: ...
    def prune_groups(self, stream_id: int, marker: int) -> None: ...

    # the account, dead letters, the run lock
    async def claim_account(self, current: AccountIdentity) -> bool: ...
    def add_dead_letters(self, rows: list[DeadLetterRow]) -> None: ...
    def dead_letters(self, stream: str | None = None,
                     run_id: str | None = None) -> AsyncIterator[bytes]: ...
    def run_lock(self) -> AbstractAsyncContextManager[SendPermit]: ...
    async def run_in_progress(self) -> bool: ...

    # the ledger of records not (yet) in Ometria (``ledger_sql.py``, ``pg_ledger.py``)
    # (a run reads its stream's rows by key, a slice at a time, never all of them: a write
    # is visible to ``ledger_lookup`` once its ``Pending`` is done)
    def put_ledger(self, rows: list[LedgerEntry]) -> Pending: ...
    def drop_ledger(self, stream: str, keys: list[str]) -> Pending: ...
    async def ledger(self, stream: str | None = None, key: str | None = None, *,
                     unsent: bool = False) -> list[LedgerEntry]: ...
    async def ledger_lookup(self, stream: str, keys: list[str]) -> list[LedgerEntry]: ...
    async def ledger_keys(self, stream: str, after: str = "",
                          limit: int = 1000) -> list[str]: ...

    # the last clean ``verify --all``: Ometria's listed errors then (fingerprints)
    async def record_clean_verify(self, at: str, errors: list[str]) -> None: ...
    async def last_clean_verify(self) -> CleanVerify | None: ...

    # the queue
    #: wait while more than ``most`` writes, or ``hashes`` change hashes, are queued; then
    #: raise a failed write nobody saw yet
    async def keep_up(self, most: int = MAX_QUEUED_WRITES,
                      hashes: int = MAX_QUEUED_HASHES) -> None: ...
    #: the same wait, raising nothing (a failure is for the next ``keep_up``, write or call)
    async def catch_up(self, most: int = MAX_QUEUED_WRITES,
                       hashes: int = MAX_QUEUED_HASHES) -> None: ...
    async def flush(self) -> None: ...
    async def aclose(self) -> None: ...


#: one group of source lines to keep: its hash, its records' id hashes and content hashes
GroupRow = tuple[int, list[int], list[int]]
#: a group whose records' rows already point to it: its hash and its records' id hashes
Pointed = tuple[int, list[int]]


def group_weight(groups: Sequence[GroupRow], seen: Sequence[int],
                 pointed: Sequence[Pointed]) -> int:
    """What a write of line groups weighs against ``MAX_QUEUED_HASHES``: the ids it carries
    (as many as the change hashes they stand for), and each group seen, so that an unchanged
    night's writes of groups are bounded like a sending night's hashes."""
    return sum(len(ids) for _, ids, _ in groups) + sum(len(ids) for _, ids in pointed) + len(seen)


DeadLetterRow = tuple[str, str, str, str]
"""(run id, stream, time, the entry as its JSON line without the newline)"""


class CleanVerify(msgspec.Struct, frozen=True):
    """The last ``verify --all`` of the whole job that found every record verified: when,
    and the fingerprints of the errors ``/push/_errors`` listed then (history by that time:
    ``errors`` exits 3 only for errors listed since)."""

    at: str
    errors: list[str]


class LedgerEntry(msgspec.Struct, frozen=True):
    """One record of a stream that is not in Ometria, as the ledger keeps it (one row per job,
    stream and key). ``key`` is the record's id (``collection/id`` for a contact of a
    collection), or ``position <json>`` for a record without a valid id. ``content_hash`` is
    of the content refused: the same content refused again is *known*, not new; ``first_run``
    and ``first_seen`` are when this content was first refused, ``attempts`` how many runs
    refused it since. The ledger writes whole rows: the pipeline decides what they hold."""

    stream: str
    key: str
    reason: str
    content_hash: int
    first_run: str
    first_seen: str
    last_run: str
    last_seen: str
    attempts: int = 1
    #: "refused": validation or Ometria refused it
    kind: str = "refused"
    #: the record as last sent, for a record that can only be resent from here (None: none)
    payload: str | None = None


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


# -------------------------------------------------------------------------------------------------
# What a checkpoint is, and the rule every store (SQLite or PostgreSQL) applies to saving one.
#
# Guarantees, kept by :func:`checked_total` for both stores:
#
# * a checkpoint is the position of the last record before which *everything* was acknowledged by
#   Ometria or dead-lettered (the engine's watermark); it is written after acknowledgement, never
#   before;
# * for the same content (same fingerprint) a checkpoint never moves backwards and is never
#   replaced by an empty one: an attempt to do so is a bug and raises :class:`StateError`.
# -------------------------------------------------------------------------------------------------

class Checkpoint(msgspec.Struct, frozen=True):
    """Where one part of one stream stands."""

    stream: str
    part: str
    position: Any
    fingerprint: str | None
    delivered: int
    updated_at: str


class StreamRun(msgspec.Struct, frozen=True):
    """The last run of a stream: when, how it ended, how many records it delivered."""

    stream: str
    started_at: str
    finished_at: str | None
    outcome: str
    delivered: int


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _is_behind(new: Any, old: Any) -> bool:
    """True when ``new`` is an earlier position than ``old`` (comparable kinds only)."""
    try:
        return bool(new < old)
    except TypeError:
        return False


def comparable(position: Any) -> Any:
    """A position in a form that compares by order: JSON lists (as a stored checkpoint comes
    back) become tuples at every depth, so a stored ``[5, [2, 9]]`` compares with the source's
    ``(5, (2, 9))``. ``checked_total`` and ``verify --last-run`` both compare with it."""
    return tuple(comparable(p) for p in position) if isinstance(position, list) else position


def checked_total(
    stream: str, old: Checkpoint | None, position: Any, fingerprint: str | None, delivered: int
) -> int:
    """The delivered count to store for a new checkpoint over ``old``; StateError when the
    checkpoint is empty or would move backwards for the same content (a bug either way)."""
    if position is None or position == [] or position == "":
        raise StateError(f"refusing to save an empty checkpoint for stream {stream!r}")
    same_content = old is not None and old.fingerprint == fingerprint
    if same_content and old is not None and _is_behind(
        comparable(position), comparable(old.position)
    ):
        raise StateError(
            f"checkpoint of stream {stream!r} would move backwards "
            f"({old.position} -> {position}); not saved"
        )
    return (old.delivered if same_content and old else 0) + delivered


# -------------------------------------------------------------------------------------------------
# Which Ometria account a checkpoint store belongs to: its base URL and a hash of its key.
#
# Checkpoints and change hashes say what *one account* already holds. Resumed against another
# account (staging's state, live's key), a run would start at the end and skip every record as
# unchanged, and exit 0 with nothing sent. So the store keeps the account's identity and a sending
# run against another account is refused (see :class:`AccountMismatch`). The key itself is never
# stored: only a SHA-256 of it (with a fixed prefix, so that the same key shows the same short
# hash in every store and message).
# -------------------------------------------------------------------------------------------------

_DOMAIN = b"ometria-sync account key\x00"


class AccountMismatch(StateError):
    """The checkpoint store belongs to another Ometria account: nothing was sent."""


class AccountIdentity(msgspec.Struct, frozen=True):
    """An Ometria account as the store remembers it: the normalised base URL and
    ``sha256(prefix + key)`` in hex. Never the key."""

    base_url: str
    key_sha256: str

    @classmethod
    def of(cls, base_url: str, api_key: str) -> AccountIdentity:
        digest = hashlib.sha256(_DOMAIN + api_key.encode("utf-8")).hexdigest()
        return cls(normalise_url(base_url), digest)

    def describe(self) -> str:
        """``https://api.ometria.com/v2 key …3fa29c`` (a short prefix of the hash)."""
        return f"{self.base_url} key …{self.key_sha256[:8]}"


def mismatch(stored: AccountIdentity, current: AccountIdentity) -> AccountMismatch:
    return AccountMismatch(
        f"this state belongs to account {stored.describe()}, not {current.describe()}; to "
        "sync another account use another state.checkpoint_url, or `ometria-sync reset "
        "JOB.toml` to start over (everything is sent again)")
