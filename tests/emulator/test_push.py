"""``POST /v2/push`` of the emulator: auth, payload shape, the 202 answer, oversize records,
the sliding-second rate limit, the import queue limit and the injected faults."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import msgspec
import pytest

from ometria_sync.emulator.app import create_app
from ometria_sync.emulator.behaviour import STORE, EmulatorOptions
from ometria_sync.schemas import MAX_RECORD_BYTES
from tests.emulator.support import KEY, EmuFactory, contact, order

FORBIDDEN = {"status": "ERROR", "message": "Forbidden"}
TOO_MANY = {"status": "ERROR", "message": "Too Many Requests"}


def _contacts(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [contact(f"c{i}", email=f"user{i}@example.com") for i in range(start, start + n)]


def _sized_contact(cid: str, size: int) -> dict[str, Any]:
    """A contact whose JSON encoding (as the emulator measures it) is exactly ``size`` bytes."""
    record = contact(cid, properties={"pad": ""})
    base = len(msgspec.json.encode(record))
    record["properties"]["pad"] = "x" * (size - base)
    assert len(msgspec.json.encode(record)) == size
    return record


# --- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong-key", KEY.upper()])
async def test_wrong_or_missing_key_is_403_and_nothing_is_queued(
        emulator: EmuFactory, key: str | None) -> None:
    emu = await emulator()
    response = await emu.push([contact("c1")], key=key)
    assert response.status == 403
    assert await response.json() == FORBIDDEN
    assert "X-QueueSize-Remaining" not in response.headers
    assert len(emu.store.queue) == 0
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"403": 1}
    assert stats["records_accepted"] == 0


async def test_key_is_checked_before_the_body(emulator: EmuFactory) -> None:
    emu = await emulator()
    response = await emu.push(b"not json at all", key="wrong-key")
    assert response.status == 403
    assert await response.json() == FORBIDDEN


# --- payload shape (400) ----------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not json", b"this is not json", "body is not valid JSON"),
    ("truncated json", b'[{"@type": "contact", "id": "c1"', "body is not valid JSON"),
    ("not utf-8", b'[{"@type": "contact", "id": "\xff\xfe"}]', "body is not valid JSON"),
    ("object, not array", contact("c1"), "body must be a JSON array"),
    ("string, not array", "c1", "body must be a JSON array"),
    ("empty array", [], "body must hold 1 to 100 records, got 0"),
    ("101 records", _contacts(101), "body must hold 1 to 100 records, got 101"),
    ("record is a string", ["c1"], "record 0 is not an object"),
    ("second record is a list", [contact("c1"), [contact("c2")]], "record 1 is not an object"),
    ("no @type", [{"@collection": "shop", "id": "c1"}], "record 0: @type missing or unknown"),
    ("unknown @type", [{"@type": "customer", "id": "c1"}], "record 0: @type missing or unknown"),
    ("@type not a string", [{"@type": ["contact"], "id": "c1"}],
     "record 0: @type missing or unknown"),
    ("@type an object", [{"@type": {"name": "contact"}, "id": "c1"}],
     "record 0: @type missing or unknown"),
    ("no id", [contact("c1"), {"@type": "contact", "@collection": "shop"}],
     "record 1: id missing"),
    ("mixed types", [contact("c1"), order("o1")],
     "records of different types in one request; never mix object types"),
]


@pytest.mark.parametrize(("body", "problem"), [(b, p) for _, b, p in BAD_BODIES],
                         ids=[name for name, _, _ in BAD_BODIES])
async def test_malformed_push_is_400_with_the_reason(
        emulator: EmuFactory, body: Any, problem: str) -> None:
    emu = await emulator()
    response = await emu.push(body)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert await response.json() == {"status": "ERROR", "message": f"Payload invalid: {problem}"}
    assert len(emu.store.queue) == 0
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"400": 1}
    assert stats["records_accepted"] == 0


async def test_exactly_100_records_of_one_type_are_accepted(emulator: EmuFactory) -> None:
    emu = await emulator()
    response = await emu.push(_contacts(100))
    assert response.status == 202
    assert (await response.json())["accepted"] == 100
    assert len(emu.store.queue) == 100


# --- the 202 answer ---------------------------------------------------------------------------


async def test_accepted_push_is_202_with_counts_request_id_and_queue_headers(
        emulator: EmuFactory) -> None:
    emu = await emulator()
    first = await emu.push(_contacts(2))
    assert first.status == 202
    assert first.content_type == "application/json"
    body = await first.json()
    assert set(body) == {"status", "request_id", "accepted", "rejected"}
    assert body["status"] == "OK"
    assert body["accepted"] == 2
    assert body["rejected"] == 0
    assert uuid.UUID(body["request_id"]).version == 4
    assert first.headers["X-QueueSize-Limit"] == "50000"
    assert first.headers["X-QueueSize-Remaining"] == "49998"
    # the records wait in the import queue, tagged with the request id
    assert [(rid, rec["id"]) for rid, rec in emu.store.queue] == [
        (body["request_id"], "c0"), (body["request_id"], "c1")]

    second = await emu.push(_contacts(3, start=2))
    assert second.status == 202
    body2 = await second.json()
    assert body2["accepted"] == 3
    assert body2["request_id"] != body["request_id"]
    assert second.headers["X-QueueSize-Remaining"] == "49995"


async def test_queue_headers_follow_the_configured_capacity(emulator: EmuFactory) -> None:
    emu = await emulator(queue_capacity=10)
    response = await emu.push(_contacts(4))
    assert response.status == 202
    assert response.headers["X-QueueSize-Limit"] == "10"
    assert response.headers["X-QueueSize-Remaining"] == "6"


async def test_record_over_60_kb_is_rejected_and_listed_in_push_errors(
        emulator: EmuFactory) -> None:
    emu = await emulator()
    at_limit = _sized_contact("fits", MAX_RECORD_BYTES)
    too_big = _sized_contact("big", MAX_RECORD_BYTES + 1)
    response = await emu.push([at_limit, too_big, contact("small")])
    assert response.status == 202
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert response.headers["X-QueueSize-Remaining"] == str(50_000 - 2)
    assert [rec["id"] for _, rec in emu.store.queue] == ["fits", "small"]

    errors = await emu.json("/v2/push/_errors")
    assert errors == [{"error_message": "Payload invalid: Record is too large.",
                       "error_path": "root", "record_id": "big", "record_type": "contact",
                       "request_id": body["request_id"]}]
    assert "Record is too large" in errors[0]["error_message"]
    stats = await emu.stats()
    assert (stats["records_accepted"], stats["records_rejected"]) == (2, 1)
    assert stats["distinct_ids"] == 2  # a rejected record is not counted as received

    emu.drain()
    assert sorted(emu.store.records["contact"]) == ["shop/fits", "shop/small"]


# --- rate limit -------------------------------------------------------------------------------


async def test_fifth_request_in_one_second_gets_429_at_rate_4(emulator: EmuFactory) -> None:
    emu = await emulator(rate=4.0)
    statuses = [(await emu.push([contact(f"c{i}")])).status for i in range(4)]
    assert statuses == [202, 202, 202, 202]
    refused = await emu.push([contact("c4")])
    assert refused.status == 429
    assert await refused.json() == TOO_MANY
    assert "Retry-After" not in refused.headers
    assert refused.headers["X-QueueSize-Limit"] == "50000"
    assert refused.headers["X-QueueSize-Remaining"] == "49996"
    assert [rec["id"] for _, rec in emu.store.queue] == ["c0", "c1", "c2", "c3"]
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"202": 4, "429": 1}
    assert stats["max_requests_in_any_second"] == 5
    assert stats["max_2xx_in_any_second"] == 4


async def test_arrival_jitter_delays_the_stamp_the_rate_window_counts(
        emulator: EmuFactory) -> None:
    """``arrival_jitter`` stands for a network's one-way delay: the arrival is counted late."""
    emu = await emulator(rate=4.0, arrival_jitter=(0.05, 0.05))
    loop = asyncio.get_running_loop()
    before = loop.time()
    assert (await emu.push([contact("c1")])).status == 202
    stamped = emu.store.stats.first_push
    assert stamped is not None and stamped >= before + 0.05


@pytest.mark.parametrize("retry_after", [True, False])
async def test_retry_after_is_sent_only_when_configured(
        emulator: EmuFactory, retry_after: bool) -> None:
    emu = await emulator(rate=1.0, retry_after=retry_after)
    assert (await emu.push([contact("c1")])).status == 202
    refused = await emu.push([contact("c2")])
    assert refused.status == 429
    assert refused.headers.get("Retry-After") == ("1" if retry_after else None)


async def test_every_arrival_counts_and_the_rate_is_checked_before_key_and_body(
        emulator: EmuFactory) -> None:
    """App order: rate window, then key (403), then body (400). Refused requests use the
    window too, so a client sending garbage still gets 429 once over the rate."""
    emu = await emulator(rate=4.0)
    assert (await emu.push([contact("c1")], key="wrong")).status == 403
    assert (await emu.push(b"nonsense")).status == 400
    assert (await emu.push([contact("c1")], key=None)).status == 403
    assert (await emu.push([])).status == 400
    # four arrivals in this second already, all refused: a valid fifth is over the rate
    fifth = await emu.push([contact("c1")])
    assert fifth.status == 429
    assert await fifth.json() == TOO_MANY
    # over the rate, neither the key nor the body is looked at
    assert (await emu.push([contact("c1")], key="wrong")).status == 429
    assert (await emu.push(b"nonsense")).status == 429
    assert len(emu.store.queue) == 0
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"403": 2, "400": 2, "429": 3}
    assert stats["max_requests_in_any_second"] == 7


async def test_window_slides_requests_are_accepted_again_once_it_has_passed(
        emulator: EmuFactory) -> None:
    """The window is shortened to 0.3 s to keep the test fast; SlidingWindow's own tests
    check the one-second boundary with exact times."""
    emu = await emulator(rate=2.0)
    emu.store.stats.arrivals.span = 0.3
    assert [(await emu.push([contact(f"c{i}")])).status for i in range(3)] == [202, 202, 429]
    await asyncio.sleep(0.35)
    assert (await emu.push([contact("c3")])).status == 202
    assert [rec["id"] for _, rec in emu.store.queue] == ["c0", "c1", "c3"]


async def test_refused_arrivals_keep_the_window_full(emulator: EmuFactory) -> None:
    """429s count as arrivals: a client hammering through 429s stays refused after the
    window of its accepted requests has passed (window shortened to 0.4 s)."""
    emu = await emulator(rate=2.0)
    emu.store.stats.arrivals.span = 0.4
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert [(await emu.push([contact(f"c{i}")])).status for i in range(2)] == [202, 202]
    await asyncio.sleep(0.2)
    assert [(await emu.push([contact(f"r{i}")])).status for i in range(2)] == [429, 429]
    await asyncio.sleep(max(0.0, start + 0.45 - loop.time()))
    # the two accepted ones have left the window; the two refused ones have not
    assert (await emu.push([contact("late")])).status == 429
    assert [rec["id"] for _, rec in emu.store.queue] == ["c0", "c1"]


async def test_rate_limit_is_not_applied_to_the_stats_endpoint(emulator: EmuFactory) -> None:
    emu = await emulator(rate=1.0)
    for _ in range(3):
        await emu.stats()
    assert (await emu.push([contact("c1")])).status == 202
    assert (await emu.stats())["max_requests_in_any_second"] == 1


# --- import queue limit -----------------------------------------------------------------------


async def test_full_import_queue_answers_429_until_drained(emulator: EmuFactory) -> None:
    emu = await emulator(queue_capacity=3)
    ok = await emu.push(_contacts(2))
    assert ok.status == 202
    assert ok.headers["X-QueueSize-Remaining"] == "1"
    # two records do not fit in the one free place: the whole push is refused
    full = await emu.push(_contacts(2, start=2))
    assert full.status == 429
    assert await full.json() == TOO_MANY
    assert full.headers["X-QueueSize-Limit"] == "3"
    assert full.headers["X-QueueSize-Remaining"] == "1"
    last = await emu.push(_contacts(1, start=4))
    assert last.status == 202
    assert last.headers["X-QueueSize-Remaining"] == "0"
    assert (await emu.push(_contacts(1, start=5))).status == 429
    assert [rec["id"] for _, rec in emu.store.queue] == ["c0", "c1", "c4"]

    emu.drain()
    again = await emu.push(_contacts(1, start=6))
    assert again.status == 202
    assert again.headers["X-QueueSize-Remaining"] == "2"
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"202": 3, "429": 2}
    assert stats["queue_depth"] == 1
    assert stats["records_imported"] == 3


async def test_full_queue_429_carries_retry_after_when_configured(emulator: EmuFactory) -> None:
    emu = await emulator(queue_capacity=1, retry_after=True)
    assert (await emu.push(_contacts(1))).status == 202
    full = await emu.push(_contacts(1, start=1))
    assert full.status == 429
    assert full.headers["Retry-After"] == "1"
    assert full.headers["X-QueueSize-Remaining"] == "0"


async def test_background_import_frees_the_queue(emulator: EmuFactory) -> None:
    emu = await emulator(queue_capacity=2, drain_per_second=1000.0)
    assert (await emu.push(_contacts(2))).status == 202
    assert (await emu.push(_contacts(1, start=2))).status == 429
    for _ in range(40):  # the drain task ticks every 50 ms
        if not emu.store.queue:
            break
        await asyncio.sleep(0.01)
    assert (await emu.push(_contacts(1, start=2))).status == 202
    assert sorted(emu.store.records["contact"]) == ["shop/c0", "shop/c1"]


# --- injected faults --------------------------------------------------------------------------


async def test_fail_rate_1_answers_every_valid_push_with_500_or_503(emulator: EmuFactory) -> None:
    emu = await emulator(fail_rate=1.0)
    statuses = []
    for i in range(20):
        response = await emu.push([contact(f"c{i}")])
        assert await response.json() == {"status": "ERROR", "message": "Internal error"}
        statuses.append(response.status)
    assert set(statuses) == {500, 503}
    assert len(emu.store.queue) == 0
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"500": statuses.count(500),
                                           "503": statuses.count(503)}
    assert stats["records_accepted"] == 0


async def test_faults_come_after_the_key_and_body_checks(emulator: EmuFactory) -> None:
    emu = await emulator(fail_rate=1.0, drop_rate=1.0)
    assert (await emu.push([contact("c1")], key="wrong")).status == 403
    assert (await emu.push([])).status == 400


async def test_drop_rate_1_closes_the_connection_without_an_answer(emulator: EmuFactory) -> None:
    emu = await emulator(drop_rate=1.0)
    with pytest.raises(aiohttp.ClientConnectionError) as caught:
        await emu.push([contact("c1")])
    assert isinstance(caught.value, aiohttp.ServerDisconnectedError)
    assert len(emu.store.queue) == 0
    # the server itself is still up and counted the drop
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"dropped": 1}
    assert stats["records_accepted"] == 0


async def test_lost_answer_rate_1_accepts_the_records_then_closes_the_connection(
    emulator: EmuFactory,
) -> None:
    """The outcome a client cannot know: Ometria took the batch, the answer never came."""
    emu = await emulator(lost_answer_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await emu.push([contact("c1")])
    assert len(emu.store.queue) == 1
    stats = await emu.stats()
    assert stats["requests_by_status"] == {"answer_lost": 1}
    assert stats["records_accepted"] == 1


async def test_retry_after_is_sent_on_5xx_when_asked(emulator: EmuFactory) -> None:
    emu = await emulator(fail_rate=1.0, retry_after=True)
    response = await emu.push([contact("c1")])
    assert response.status in (500, 503) and response.headers["Retry-After"] == "1"
    plain = await emulator(fail_rate=1.0)
    assert "Retry-After" not in (await plain.push([contact("c1")])).headers


async def test_fail_and_drop_rates_are_fractions(emulator: EmuFactory) -> None:
    emu = await emulator(fail_rate=0.3, drop_rate=0.3, seed=7)
    outcomes: list[int | str] = []
    for i in range(30):
        try:
            outcomes.append((await emu.push([contact(f"c{i}")])).status)
        except aiohttp.ServerDisconnectedError:
            outcomes.append("dropped")
    assert {202, "dropped"} <= set(outcomes)
    assert set(outcomes) - {202, 500, 503, "dropped"} == set()
    assert set(outcomes) & {500, 503}
    assert len(emu.store.queue) == outcomes.count(202)
    assert (await emu.stats())["requests_by_status"]["dropped"] == outcomes.count("dropped")


async def test_latency_delays_the_answer(emulator: EmuFactory) -> None:
    emu = await emulator(latency=(0.05, 0.05))
    loop = asyncio.get_running_loop()
    start = loop.time()
    response = await emu.push([contact("c1")])
    assert response.status == 202
    assert loop.time() - start >= 0.05


def test_emulator_app_holds_its_store() -> None:
    """The key the tests reach the store with is the app's own."""
    app = create_app(EmulatorOptions(queue_capacity=7))
    assert app[STORE].capacity == 7
    assert app[STORE].remaining == 7

