"""Checking the ids one stream owns, a chunk at a time: look them up (one request each, or the
list pages matched into the ledger page by page), judge them, record the outcomes. Nothing is
held in memory beyond a chunk or a page.

With ``--last-run`` a contacts listing asks only for profiles updated since that run began
(``updateSince``); a contact it does not show may simply not have been sent (change detection
found it unchanged), so it is looked up by email (or, without an email, in the full listing)
before it can be called missing: a record is missing only when Ometria does not hold it.
"""

from __future__ import annotations

from typing import Any

from ometria_sync.verify.check import Plan, judge, look_up
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.reader import Reader

Errors = dict[tuple[str, str], dict[str, Any]]


async def check_stream(reader: Reader, ledger: Ledger, how: Plan, errors: Errors, *,
                       workers: int, update_since: str | None = None,
                       again: bool = False) -> None:
    """Judge the stream's selected ids (``again``: only those not verified yet)."""
    stream, record_type = how.stream, how.record_type
    if how.method == "single":
        for chunk in ledger.chunks(stream, not_verified=again):
            targets = [t for t, _ in chunk]
            found = await look_up(reader, record_type, targets, workers=workers)
            ledger.settle(targets, [judge(stream, record_type, t, found.get(t.key), errors)
                                    for t in targets])
        return
    if how.method == "list":
        if again:
            ledger.forget_lookups(stream)
        await _list(reader, ledger, stream, record_type, update_since)
        if record_type == "contact" and update_since is not None:
            await _not_listed(reader, ledger, stream, workers=workers, again=again)
    for chunk in ledger.chunks(stream, not_verified=again):
        targets = [t for t, _ in chunk]
        ledger.settle(targets, [judge(stream, record_type, t, stored, errors)
                                for t, stored in chunk])


async def _list(reader: Reader, ledger: Ledger, stream: str, record_type: str,
                update_since: str | None) -> None:
    if record_type == "contact":
        params = {"updateSince": update_since} if update_since else None
        async for page in reader.pages("/profiles", params):
            ledger.match_profiles(stream, page)
        return
    async for page in reader.pages(f"/{record_type}s"):
        ledger.match_ids(stream, page)


async def _not_listed(reader: Reader, ledger: Ledger, stream: str, *, workers: int,
                      again: bool) -> None:
    """Contacts the ``updateSince`` listing did not show: by email, else the full listing."""
    for chunk in ledger.chunks(stream, unmatched=True, not_verified=again, with_email=True):
        targets = [t for t, _ in chunk]
        ledger.found(await look_up(reader, "contact", targets, workers=workers))
    if next(ledger.chunks(stream, unmatched=True, not_verified=again, with_email=False,
                          size=1), None):
        await _list(reader, ledger, stream, "contact", None)
