"""The first failed write of a state queue, and what it does to every write behind it.

Both stores queue their writes in order (``state_thread.py``, ``pg_queue.py``). A write that
failed (after its reconnects, for PostgreSQL) stops the queue for the rest of the run: every
write queued after it is refused without running, and every later ``submit`` or ``call``
raises :class:`StateWritesStopped`. So a checkpoint is durable only if every write submitted
before it (dead letters, change hashes, an earlier checkpoint) is: it can never pass a refused
record whose dead-letter row was lost, nor leave a stale change hash behind (review items 1
and 3). The failure itself is raised once, by whichever state call comes next, so a run still
ends, flushes and writes its report.
"""

from __future__ import annotations

from ometria_sync.errors import StateError


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
