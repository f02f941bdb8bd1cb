"""SQLite write transactions on an autocommit connection: ``BEGIN IMMEDIATE`` (the write lock
taken at once, so two writers never both read and then both write), ``COMMIT``, or ``ROLLBACK``
on any error."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from ometria_sync.errors import StateError


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction, committed, or rolled back on any error (which is
    raised as it was)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def index_write(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction of the change index (hashes and line groups), so its tables are
    never seen half written; a SQLite error is a :class:`StateError`."""
    try:
        with immediate(db):
            yield
    except sqlite3.Error as exc:
        raise StateError(f"change index: cannot write: {exc}") from None
