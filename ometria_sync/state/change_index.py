"""Change detection: per stream and record id, a hash of the record as Ometria last acknowledged it.

A nightly re-export of two million contacts of which 1% changed should send 20,000 records, not
two million. Each record's canonical encoding (sorted keys) is hashed; a record whose hash equals
the stored one for its id is skipped as *unchanged*.

Guarantees:

* a hash is written only after Ometria acknowledged the record (a crash between send and
  acknowledgement leaves the old hash, so the record is sent again);
* a send whose outcome is not a clean acknowledgement (``rejected > 0``: Ometria does not say
  which records it refused; a batch that failed after its retries, or was cut off at the grace
  period) deletes the stored hashes of its ids: Ometria may hold the new version or the old
  one, so the next export sends them whatever their content;
* one write stores one hash per id, the last acknowledged version's;
* storage is compact (``sqlite_sql.py``'s ``ChangeIndex``, ``pg_schema.py``): the id is kept
  as a 64-bit hash too (:func:`hash64`), in a WITHOUT ROWID table (two integers per row). Two
  ids sharing an id hash at worst cost an extra send, never a skipped change, unless their
  content hashes also collide (odds around 2^-64 per pair).
"""

from __future__ import annotations

import hashlib
from typing import Any


def hash64(data: bytes) -> int:
    """A signed 64-bit hash (SQLite's INTEGER range)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def identity(record: dict[str, Any]) -> bytes:
    """What identifies a record within a stream: its id, and its collection for contacts."""
    collection = record.get("@collection")
    rid = str(record.get("id"))
    return f"{collection}\x00{rid}".encode() if collection else rid.encode()
