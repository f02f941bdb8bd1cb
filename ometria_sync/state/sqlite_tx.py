"""One write transaction of the change index (hashes and line groups) on a SQLite connection."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from ometria_sync.errors import StateError


@contextlib.contextmanager
def index_write(db: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction, rolled back on any error, so the change index's
    tables are never seen half written; a SQLite error is a :class:`StateError`."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StateError(f"change index: cannot write: {exc}") from None
