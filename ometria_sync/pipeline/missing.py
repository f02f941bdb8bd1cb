"""``on_missing = "deactivate"``: what a complete read no longer holds leaves Ometria too.

A stream's read marks every id it sees in the state's ``presence`` rows (one *generation* per
complete read: ``state/presence.py``). After a complete read, the ids this job delivered (the
change index holds an acknowledged hash for them) and did not see are *missing*; the
deactivation phase sends one record per missing id through the stream's own pipeline, as one
more part (:class:`MissingPart`): the same batcher, pacer, dispatchers, change index, ledger
and checkpoints as any record, so the rate limit holds and a crash resumes where the
acknowledgements stopped.

What a deactivation is (``docs/deletions.md``), always with ``@merge`` so nothing else changes:

* product: ``is_active: false``;
* order: ``is_valid: false`` and ``on_missing_order_status``. Ometria's ``@merge`` copies every
  field not sent from the stored order before it replaces it, so the order Ometria keeps is its
  whole last version with those two fields changed: the full-refund resubmission of the Order
  API, without a read per order (``GET /orders/{id}`` costs a request of the 4 per second, a
  push of 100 deactivations costs one) and without keeping payloads in the state;
* contact: ``marketing_optin: EXPLICITLY_OPTEDOUT`` (``opt_out``), or
  ``@remove_from_lists`` the configured lists.

Guarantees:

* nothing is deactivated after a read that ended early (an error, a stop), after an empty read
  while ids were delivered, or when more than ``max_missing_fraction`` of the delivered ids are
  missing: :class:`~ometria_sync.errors.MassDeletionRefused` (exit 1) with the numbers, unless
  the run was given ``--allow-mass-delete``;
* ids the job never delivered are never missing, so never touched;
* the deactivation's hash replaces the active version's in the change index, so an id that
  comes back is sent again; a product or order that comes back after its deactivation is sent
  with ``is_active: true`` / ``is_valid: true`` when its record does not say otherwise (a
  contact's consent is not ours to give back: its record's ``marketing_optin`` decides; removed
  from lists, it is added back to them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog

from ometria_sync.config import StreamSettings
from ometria_sync.errors import MassDeletionRefused
from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.sources import Position, SourceItem
from ometria_sync.state import Census, PresenceIndex, StateStore, presence_index

log = structlog.get_logger("ometria_sync.missing")

#: missing ids read from the state at a time
_PAGE = 500
_encode = msgspec.json.Encoder(order="sorted").encode


def presence_key(record: dict[str, Any]) -> str:
    """What the presence rows keep of a record's id: ``[collection or null, id]`` as JSON."""
    return msgspec.json.encode([record.get("@collection") or None, str(record["id"])]).decode()


def split_key(key: str) -> tuple[str | None, str]:
    """(collection, id) of a presence key."""
    collection, rid = msgspec.json.decode(key)
    return collection, rid


def deactivation(stream: StreamSettings, key: str) -> dict[str, Any]:
    """The record that deactivates the id ``key`` of ``stream`` (merged into Ometria's)."""
    collection, rid = split_key(key)
    record: dict[str, Any] = {"@type": stream.record_type, "id": rid, "@merge": True}
    if collection is not None:
        record["@collection"] = collection
    if stream.record_type == "product":
        record["is_active"] = False
    elif stream.record_type == "order":
        record["is_valid"] = False
        record["status"] = stream.on_missing_order_status
    elif stream.on_missing_contact == "opt_out":
        record["marketing_optin"] = "EXPLICITLY_OPTEDOUT"
    else:
        record["@remove_from_lists"] = list(stream.on_missing_lists)
    return record


def reactivation(stream: StreamSettings) -> dict[str, Any]:
    """What a record of an id deactivated before carries when it comes back, unless it says
    otherwise itself."""
    if stream.record_type == "product":
        return {"is_active": True}
    if stream.record_type == "order":
        return {"is_valid": True}
    if stream.on_missing_contact == "remove_from_lists":
        return {"@add_to_lists": list(stream.on_missing_lists)}
    return {}


async def deactivated(state: StateStore, stream: StreamSettings
                      ) -> AsyncIterator[list[dict[str, Any]]]:
    """The deactivation records of the ids ``stream`` deactivated (and that did not come back
    since), a page at a time: what ``verify`` expects Ometria to hold for them."""
    presence = presence_index(state)
    stream_id = await state.stream_id(stream.name)
    after = None
    while page := await presence.gone_keys(stream_id, after, _PAGE):
        yield [deactivation(stream, key) for _, key in page]
        after = page[-1][0]


class SeenMarks:
    """The ids one read saw, written to the state a slice at a time (the batcher calls
    :meth:`note` per record, :meth:`flush` per slice, before the slice's batches are cut, so a
    checkpoint never passes an id whose mark is not queued before it)."""

    def __init__(self, phase: MissingPhase) -> None:
        self._phase = phase
        self._noted: list[tuple[int, str]] = []

    def note(self, id_hash: int, record: dict[str, Any]) -> None:
        self._noted.append((id_hash, presence_key(record)))

    async def flush(self, ready: list[BatchRecord]) -> None:
        """Mark the noted ids seen; first, give ``ready`` records of ids deactivated before
        their reactivation fields."""
        phase = self._phase
        if phase.some_gone and ready:
            gone = await phase.presence.gone(phase.stream_id, [r.id_hash for r in ready])
            for r in ready:
                if r.id_hash in gone:
                    r.encoded = _with_defaults(r.encoded, phase.reactivation)
                    phase.reactivated += 1
        if self._noted:
            phase.presence.mark_seen(phase.stream_id, phase.gen, self._noted)
            self._noted = []


def _with_defaults(encoded: bytes, defaults: dict[str, Any]) -> bytes:
    record = msgspec.json.decode(encoded)
    for field, value in defaults.items():
        record.setdefault(field, value)
    return _encode(record)


class MissingPhase:
    """One stream's generation: which read it belongs to, and what its end deactivates."""

    def __init__(self, stream: StreamSettings, presence: PresenceIndex, stream_id: int,
                 gen: int, done: bool, *, allow_mass_delete: bool) -> None:
        self.stream = stream
        self.presence = presence
        self.stream_id = stream_id
        self._stored, self._open = gen, not done
        #: the generation this run's marks belong to: an open one is resumed, else the next
        self.gen = gen if not done else gen + 1
        self._fresh = False
        self._allow = allow_mass_delete
        self.reactivation = reactivation(stream)
        self.some_gone = False
        #: a dry run or ``plan``: nothing is written (``open``)
        self.scratch = False
        self.reactivated = 0
        #: ids a ``deleted_query`` returned that the job had delivered (``deletions.py``)
        self.deleted = 0
        self.census: Census | None = None
        self.marks = SeenMarks(self)

    @classmethod
    async def open(cls, state: StateStore, stream: StreamSettings, *,
                   allow_mass_delete: bool, scratch: bool = False) -> MissingPhase:
        """The stream's phase; with ``scratch`` (a dry run, ``plan``) it writes nothing: what
        it would deactivate is sent to the run's pusher (the dry run's files, plan's count)."""
        presence = presence_index(state, scratch=scratch)
        stream_id = await state.stream_id(stream.name)
        gen, done = await presence.generation(stream_id)
        phase = cls(stream, presence, stream_id, gen, done, allow_mass_delete=allow_mass_delete)
        phase.scratch = scratch
        phase.some_gone = await presence.any_gone(stream_id)
        return phase

    def from_top(self) -> None:
        """A part is read from its beginning: this is a new complete read (a generation left
        open by an earlier run, e.g. one refused by a guard, is superseded by it)."""
        if not self._fresh:
            self._fresh = True
            self.gen = self._stored + 1

    async def plan(self) -> MissingPart | None:
        """After a complete read: the part that deactivates the missing ids (None: nothing to
        deactivate, or nothing new was read). MassDeletionRefused when a guard holds."""
        if not self._fresh and not self._open:
            return None  # every part resumed at its end: the read the last phase judged
        census = self.census = await self.presence.census(self.stream_id, self.gen)
        log.info("missing_ids", stream=self.stream.name, generation=self.gen,
                 delivered=census.delivered, seen=census.seen, missing=census.missing)
        refusal = self._refusal(census)
        if refusal is not None:
            if not self._allow:
                raise MassDeletionRefused(refusal)
            log.warning("mass_delete_allowed", stream=self.stream.name, reason=refusal)
        if census.missing == 0:
            self.done(deactivated=False)
            return None
        return MissingPart(self)

    def _refusal(self, census: Census) -> str | None:
        name, limit = self.stream.name, self.stream.max_missing_fraction
        if census.missing and census.seen == 0:
            return (f"stream {name}: the source is empty but {census.delivered} ids were "
                    "delivered before; nothing was deactivated. Check the export; if it is "
                    "really empty, run again with --allow-mass-delete")
        if census.missing > limit * census.delivered:
            share = census.missing / census.delivered
            return (f"stream {name}: {census.missing} of the {census.delivered} ids delivered "
                    f"before are missing from the source ({share:.1%}, more than "
                    f"max_missing_fraction = {limit}); nothing was deactivated. Check the "
                    "export; if they were really removed, run again with --allow-mass-delete "
                    "(or raise max_missing_fraction)")
        return None

    def done(self, *, deactivated: bool) -> None:
        """The phase is over: the next complete read opens a new generation."""
        self.presence.close(self.stream_id, self.gen, deactivated=deactivated)


class MissingPart:
    """The deactivations of one generation, as a source part: one record per missing id, in
    id-hash order (the position), checkpointed like any part, so a crash resumes after the
    last acknowledged one."""

    def __init__(self, phase: MissingPhase) -> None:
        self._phase = phase

    @property
    def key(self) -> str:
        return "on_missing"

    @property
    def label(self) -> str:
        return f"ids missing from {self._phase.stream.name}"

    async def fingerprint(self) -> str | None:
        return f"generation {self._phase.gen}"

    async def size(self) -> int | None:
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        phase = self._phase
        after = start if isinstance(start, int) else None
        while True:
            page = await phase.presence.missing(phase.stream_id, phase.gen, after, _PAGE)
            if not page:
                return
            yield [SourceItem(deactivation(phase.stream, key), id_hash) for id_hash, key in page]
            after = page[-1][0]
