"""The records verify checks, spilled to a private temporary SQLite file so that memory stays
flat whatever the sources' size: the latest version of each id across the job, what Ometria
showed for it, and its outcome.

The latest version is the one the job as a whole delivered last: streams are added in job
order and records in source order, and a later version of an id (same record type and
identity, from any stream of that type) replaces the earlier one, so the stream that holds the
latest version is the one that owns the id. An id stays selected when any selected stream held
it: it is then checked against its latest version. Records are read back a chunk at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, cast

import msgspec

from ometria_sync.verify.check import Finding, Status
from ometria_sync.verify.compare import Difference, profile_customer_ids, profile_emails
from ometria_sync.verify.select import Target

#: records read back, looked up and compared at a time
CHUNK = 500

_SCHEMA = """
CREATE TABLE latest (
    key TEXT PRIMARY KEY, rank INTEGER NOT NULL, stream TEXT NOT NULL, id TEXT NOT NULL,
    record BLOB NOT NULL, source TEXT NOT NULL, position BLOB, email TEXT, customer_id TEXT,
    selected INTEGER NOT NULL, stored BLOB, matched INTEGER NOT NULL DEFAULT 0,
    status TEXT, detail BLOB);
CREATE INDEX latest_stream ON latest (stream, selected, rank);
CREATE INDEX latest_id ON latest (id);
CREATE INDEX latest_email ON latest (email);
CREATE INDEX latest_customer ON latest (customer_id);
"""
_COLUMNS = "key, id, record, source, position, stored"
_NOT_VERIFIED = "('different', 'missing', 'in_errors')"


class Detail(msgspec.Struct):
    differences: list[Difference]
    error: dict[str, Any] | None


class Ledger:
    """One verify command's records on disk (deleted when closed)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # a private temporary file, removed on close
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, rank: int, stream: str, targets: list[Target], *, selected: bool) -> None:
        """Targets read from ``stream`` in order from ``rank`` on; each replaces any earlier
        version of its id."""
        encode = msgspec.json.encode
        self._db.executemany(
            "INSERT INTO latest (key, rank, stream, id, record, source, position, email,"
            " customer_id, selected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET rank = excluded.rank, stream = excluded.stream,"
            " id = excluded.id, record = excluded.record, source = excluded.source,"
            " position = excluded.position, email = excluded.email,"
            " customer_id = excluded.customer_id,"
            " selected = max(latest.selected, excluded.selected)",
            [(t.key, rank + i, stream, t.id, encode(t.record), t.source, encode(t.position),
              _email(t.record), _customer_id(t.record), int(selected))
             for i, t in enumerate(targets)])

    def select(self, keys: Iterable[str]) -> None:
        self._db.executemany("UPDATE latest SET selected = 1 WHERE key = ?",
                             [(k,) for k in keys])

    def owners(self) -> list[str]:
        """The streams that hold the latest version of a selected id, in rank order."""
        rows = self._db.execute("SELECT stream FROM latest WHERE selected = 1 GROUP BY stream"
                                " ORDER BY min(rank)")
        return [r[0] for r in rows]

    def count(self, stream: str, *, not_verified: bool = False,
              without_email: bool = False) -> int:
        """The stream's selected ids (that are not verified; without an email)."""
        extra = " AND email IS NULL" if without_email else ""
        if not_verified:
            extra += f" AND status IN {_NOT_VERIFIED}"
        row = self._db.execute(
            f"SELECT count(*) FROM latest WHERE stream = ? AND selected = 1{extra}", (stream,))
        return int(row.fetchone()[0])

    def held(self, streams: Iterable[str]) -> int:
        """Distinct ids held by ``streams`` (what Ometria holds, roughly, for list pages)."""
        names = list(streams)
        row = self._db.execute(f"SELECT count(*) FROM latest WHERE stream IN ({_marks(names)})",
                               names)
        return int(row.fetchone()[0])

    def chunks(self, stream: str, *, unmatched: bool = False, not_verified: bool = False,
               with_email: bool | None = None, size: int | None = None
               ) -> Iterator[list[tuple[Target, dict[str, Any] | None]]]:
        """The stream's selected ids with what was found for them, ``size`` (``CHUNK``) at a
        time, in source order."""
        where = "stream = ? AND selected = 1 AND rank > ?"
        if unmatched:
            where += " AND NOT matched"
        if not_verified:
            where += f" AND status IN {_NOT_VERIFIED}"
        if with_email is not None:
            where += " AND email IS NOT NULL" if with_email else " AND email IS NULL"
        after = -1
        while True:
            rows = self._db.execute(
                f"SELECT rank, {_COLUMNS} FROM latest WHERE {where} ORDER BY rank LIMIT ?",
                (stream, after, size or CHUNK)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [_row(r[1:]) for r in rows]

    def found(self, stored: dict[str, dict[str, Any] | None]) -> None:
        """What single look-ups found (None: nothing)."""
        encode = msgspec.json.encode
        self._db.executemany(
            "UPDATE latest SET stored = ?, matched = ? WHERE key = ?",
            [(None if v is None else encode(v), int(v is not None), k)
             for k, v in stored.items()])

    def match_ids(self, stream: str, page: list[Any]) -> None:
        """Orders from a list page, matched by id (the first one listed wins)."""
        encode = msgspec.json.encode
        self._db.executemany(
            "UPDATE latest SET stored = ?, matched = 1"
            " WHERE stream = ? AND id = ? AND selected = 1 AND NOT matched",
            [(encode(item), stream, str(item["id"])) for item in page
             if isinstance(item, dict) and item.get("id") is not None])

    def match_profiles(self, stream: str, page: list[Any]) -> None:
        """Profiles from a list page, matched to contacts by customer id (first profile wins,
        over an email match), else by email (first profile wins)."""
        by_customer: list[tuple[bytes, str, str]] = []
        by_email: list[tuple[bytes, str, str]] = []
        for profile in page:
            if not isinstance(profile, dict):
                continue
            raw = msgspec.json.encode(profile)
            by_customer += [(raw, stream, cid) for cid in profile_customer_ids(profile)]
            by_email += [(raw, stream, email) for email in profile_emails(profile)]
        self._db.executemany(
            "UPDATE latest SET stored = ?, matched = 2 WHERE stream = ? AND selected = 1"
            " AND matched < 2 AND customer_id = ?", by_customer)
        self._db.executemany(
            "UPDATE latest SET stored = ?, matched = 1 WHERE stream = ? AND selected = 1"
            " AND matched = 0 AND email = ?", by_email)

    def settle(self, targets: list[Target], outcomes: list[Finding]) -> None:
        """Record the outcome of each checked target."""
        encode = msgspec.json.encode
        self._db.executemany(
            "UPDATE latest SET status = ?, detail = ? WHERE key = ?",
            [(o.status, encode(Detail(o.differences, o.error))
              if o.status != "verified" else None, t.key) for t, o in zip(targets, outcomes,
                                                                          strict=True)])

    def not_verifiable(self, stream: str) -> None:
        """The stream's ids have no read endpoint (custom events): nothing is requested."""
        self._db.execute("UPDATE latest SET status = 'not_verifiable' WHERE stream = ?"
                         " AND selected = 1", (stream,))

    def forget_lookups(self, stream: str) -> None:
        """Before the not verified ids of ``stream`` are looked up again."""
        self._db.execute(f"UPDATE latest SET stored = NULL, matched = 0 WHERE stream = ?"
                         f" AND selected = 1 AND status IN {_NOT_VERIFIED}", (stream,))

    def statuses(self) -> dict[str, dict[str, int]]:
        """Stream -> status -> how many ids."""
        counts: dict[str, dict[str, int]] = {}
        for stream, status, n in self._db.execute(
                "SELECT stream, status, count(*) FROM latest WHERE selected = 1 AND status"
                " IS NOT NULL GROUP BY stream, status"):
            counts.setdefault(stream, {})[status] = n
        return counts

    def not_verified(self) -> Iterator[list[tuple[str, Target, str, Detail | None]]]:
        """Every id checked and not verified (stream, target, status, detail), ``CHUNK`` at a
        time, in job and source order: one query, read a chunk at a time."""
        rows = self._db.execute(
            f"SELECT stream, status, detail, {_COLUMNS} FROM latest WHERE selected = 1"
            f" AND status IN {_NOT_VERIFIED} ORDER BY rank")
        while chunk := rows.fetchmany(CHUNK):
            yield [(r[0], _row(r[3:])[0], r[1],
                    msgspec.json.decode(r[2], type=Detail) if r[2] else None) for r in chunk]

    def verified_keys(self) -> Iterator[list[tuple[str, str]]]:
        """(stream, key) of every verified id, ``CHUNK`` at a time, in no particular order:
        nothing decoded, nothing sorted (the walk a ledger row needs, over every record)."""
        rows = self._db.execute(
            "SELECT stream, key FROM latest WHERE selected = 1 AND status = 'verified'")
        while chunk := rows.fetchmany(CHUNK):
            yield [(r[0], r[1]) for r in chunk]

    def outcomes_of(self, keys: list[str]) -> list[tuple[str, Target, str, Detail | None]]:
        """The outcomes of these keys, as :meth:`not_verified` gives them."""
        found = []
        for start in range(0, len(keys), CHUNK):
            some = keys[start:start + CHUNK]
            found += self._db.execute(
                f"SELECT stream, status, detail, {_COLUMNS} FROM latest WHERE key IN"
                f" ({_marks(some)}) ORDER BY rank", some).fetchall()
        return [(r[0], _row(r[3:])[0], r[1],
                 msgspec.json.decode(r[2], type=Detail) if r[2] else None) for r in found]

    def problems(self, record_types: dict[str, str], limit: int) -> list[Finding]:
        """The ids that are not verified (``limit`` at most), in job and source order."""
        rows = self._db.execute(
            "SELECT stream, id, status, source, position, detail FROM latest"
            f" WHERE selected = 1 AND status IN {_NOT_VERIFIED}"
            " ORDER BY rank LIMIT ?", (limit,))
        found = []
        for stream, rid, status, source, position, detail in rows:
            extra = msgspec.json.decode(detail, type=Detail) if detail else Detail([], None)
            found.append(Finding(stream, record_types.get(stream, ""), rid, _status(status),
                                 source, msgspec.json.decode(position), extra.differences,
                                 extra.error))
        return found


def _status(text: str) -> Status:
    return cast(Status, text)  # written by ``settle`` from a Finding's status


def _row(row: tuple[Any, ...]) -> tuple[Target, dict[str, Any] | None]:
    key, rid, record, source, position, stored = row
    decode = msgspec.json.decode
    target = Target(key=key, id=rid, record=decode(record), source=source,
                    position=decode(position))
    return target, None if stored is None else decode(stored)


def _marks(values: list[str]) -> str:
    return ", ".join("?" for _ in values)


def _email(record: dict[str, Any]) -> str | None:
    email = record.get("email")
    return email.strip().casefold() if isinstance(email, str) else None


def _customer_id(record: dict[str, Any]) -> str | None:
    cid = record.get("customer_id")
    return cid if isinstance(cid, str) else None
