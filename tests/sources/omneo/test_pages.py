"""Walking Omneo's pages from a checkpoint, against the stand-in: key order, seeking past rows
that change during the walk, resume and its de-duplication, the look-back window, and servers
that ignore the filter, the sort or the page number."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from structlog.testing import capture_logs

from ometria_sync.errors import SourceError
from ometria_sync.sources.omneo.client import OmneoClient
from ometria_sync.sources.omneo.pages import (
    START,
    Entry,
    Walk,
    WalkSettings,
    key_of_position,
    read_envelope,
)
from ometria_sync.sources.omneo.reader import key_reader
from tests.sources.omneo import samples
from tests.sources.omneo.standin import TOKEN, OmneoData, StandIn

Omneo = Callable[..., Any]
KEY_OF = key_reader(dt.UTC, lambda f: f.text("id"))


def data_with(updated: list[float]) -> OmneoData:
    """Profile n (1-based) updated ``updated[n-1]`` seconds after the epoch."""
    data = OmneoData()
    for n, seconds in enumerate(updated, start=1):
        data.profiles[samples.profile_id(n)] = samples.profile(n, updated=seconds)
    return data


def ids(entries: list[Entry]) -> list[int]:
    return [int(e.raw["id"][-12:]) for e in entries]


@asynccontextmanager
async def walking(standin: StandIn, start: Any = None, **settings: Any
                  ) -> AsyncIterator[tuple[Walk, list[Entry]]]:
    client = OmneoClient(standin.url, TOKEN, rate=1000, concurrency=4)
    options = {"page_size": 4} | settings
    walk = Walk(client, "/profiles", WalkSettings(**options), KEY_OF, start)
    try:
        yield walk, []
    finally:
        await client.aclose()


async def read_all(standin: StandIn, start: Any = None, **settings: Any) -> list[Entry]:
    async with walking(standin, start, **settings) as (walk, entries):
        async for page in walk.pages():
            entries += page
    return entries


TIES = [1, 2, 2, 2, 3, 5, 5, 6, 7, 7, 7, 7, 7, 8, 9, 10, 11, 11, 12, 13]


async def test_a_walk_reads_every_row_once_in_key_order(omneo: Omneo) -> None:
    async with omneo(data_with(TIES)) as standin:
        entries = await read_all(standin)
    assert sorted(ids(entries)) == list(range(1, 21)) and len(entries) == 20
    keys = [e.key for e in entries]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert entries[-1].position == ["2024-05-01T08:00:13+00:00", samples.profile_id(20)]
    asked = [s.query for s in standin.requests("profiles")]
    assert "filter[updated_at]" not in asked[0]
    assert all(q["sort"] == "updated_at,id" and q["page[size]"] == "4" for q in asked)
    # seeks from the last updated_at seen; pages on only inside the five rows at 08:00:07
    assert [(q.get("filter[updated_at]", "")[-2:], q["page[number]"]) for q in asked] == [
        ("", "1"), ("02", "1"), ("03", "1"), ("06", "1"), ("07", "1"), ("07", "2"),
        ("10", "1"), ("12", "1")]


async def test_a_row_updated_during_the_walk_is_not_missed(omneo: Omneo) -> None:
    """Page numbers would shift when row 2 moves to the end; seeking does not care."""
    async with omneo(data_with([float(n) for n in range(1, 13)])) as standin, \
            walking(standin) as (walk, entries):
        async for page in walk.pages():
            entries += page
            if len(entries) == 4:
                standin.data.profiles[samples.profile_id(2)]["updated_at"] = samples.stamp(60)
    assert ids(entries) == [*range(1, 13), 2]


async def test_resume_reads_only_what_sorts_after_the_checkpoint(omneo: Omneo) -> None:
    """From the checkpoint of row 10 (07 s, the second of five rows tied at 07 s): rows 11 on,
    and the rows tied with it up to it are not read again."""
    async with omneo(data_with(TIES)) as standin:
        start = (await read_all(standin))[9].position
        standin.seen.clear()
        entries = await read_all(standin, start)
    assert start == ["2024-05-01T08:00:07+00:00", samples.profile_id(10)]
    assert ids(entries) == list(range(11, 21))
    assert standin.requests("profiles")[0].query["filter[updated_at]"] == "2024-05-01 08:00:07"


async def test_a_checkpoint_at_the_end_reads_nothing(omneo: Omneo) -> None:
    async with omneo(data_with(TIES)) as standin:
        end = (await read_all(standin))[-1].position
        assert await read_all(standin, end) == []


async def test_the_look_back_window_is_read_again_at_the_checkpoint(omneo: Omneo) -> None:
    """lookback_seconds = 3 from row 10's checkpoint (07 s): rows updated at 05 s and later
    come again, at the checkpoint's own position (change detection drops them if unchanged)."""
    async with omneo(data_with(TIES)) as standin:
        start = (await read_all(standin))[9].position
        entries = await read_all(standin, start, lookback_seconds=3)
    assert ids(entries) == list(range(6, 21))
    assert all(e.position == start for e in entries[:5])
    assert [e.position[1] for e in entries[5:]] == [samples.profile_id(n) for n in range(11, 21)]


async def test_a_server_that_ignores_the_filter_is_read_by_page_number(omneo: Omneo) -> None:
    async with omneo(data_with(TIES), ignore_filter=True) as standin:
        start = (await read_all(standin))[9].position
        with capture_logs() as logs:
            entries = await read_all(standin, start)
    assert ids(entries) == list(range(11, 21))
    assert [e["event"] for e in logs].count("omneo_filter_ignored") == 1


async def test_without_a_filter_everything_is_read_and_the_done_part_skipped(omneo: Omneo
                                                                            ) -> None:
    async with omneo(data_with(TIES)) as standin:
        start = (await read_all(standin))[9].position
        standin.seen.clear()
        entries = await read_all(standin, start, updated_filter="")
    assert ids(entries) == list(range(11, 21))
    asked = [s.query for s in standin.requests("profiles")]
    assert [q["page[number]"] for q in asked] == ["1", "2", "3", "4", "5"]
    assert not any("filter[updated_at]" in q for q in asked)


async def test_an_answer_out_of_order_fails_the_stream(omneo: Omneo) -> None:
    async with omneo(data_with([5, 1, 3, 2]), ignore_sort=True) as standin:
        with pytest.raises(SourceError, match=r"out of order .*check the source's sort "
                                              r"\('updated_at,id'\)"):
            await read_all(standin)


async def test_a_server_that_ignores_the_page_number_is_noticed(omneo: Omneo) -> None:
    """Twelve rows updated in the same second need page numbers; "p" is not Omneo's."""
    async with omneo(data_with([4.0] * 12)) as standin:
        with pytest.raises(SourceError, match="same rows for three pages"):
            await read_all(standin, page_number_param="p")


async def test_rows_without_a_usable_key_are_reported_once(omneo: Omneo) -> None:
    data = data_with([1, 2, 3, 4, 5, 6])
    data.profiles["bad-date"] = samples.profile(7) | {"id": "bad-date", "updated_at": "soon"}
    data.profiles["no-id"] = samples.profile(8) | {"id": None, "updated_at": samples.stamp(3)}
    async with omneo(data) as standin:
        entries = await read_all(standin)
    errors = [(e.error, e.position) for e in entries if e.error]
    assert errors == [('updated_at: not a date-time: "soon"', START),
                      ("id: missing", ["2024-05-01T08:00:02+00:00", samples.profile_id(2)])]
    assert sorted(ids([e for e in entries if not e.error])) == list(range(1, 7))


def page(data: list[Any], links: Any = None, meta: Any = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"data": data}
    if links is not None:
        answer["links"] = links
    if meta is not None:
        answer["meta"] = meta
    return answer


@pytest.mark.parametrize(("answer", "last"), [
    (page([]), True),
    (page([1], links={"next": None}, meta={"current_page": 1, "last_page": 9}), True),
    (page([1], links={"next": "https://x?page.number=2"}), False),
    (page([1], meta={"current_page": "3", "last_page": "3"}), True),
    (page([1], meta={"current_page": 2, "last_page": 3}), False),
    (page([1], meta={"current_page": None, "last_page": "many"}), True),  # short page
    (page([1, 2, 3, 4]), False),  # a full page, no links, no meta
    (page([1, 2, 3]), True),
])
def test_the_last_page_is_recognised(answer: dict[str, Any], last: bool) -> None:
    assert read_envelope(answer, 4, "GET /x") == (answer["data"], last)


@pytest.mark.parametrize("answer", [None, [], {"data": {"id": 1}}, {"items": []}])
def test_an_answer_without_a_data_list_fails(answer: Any) -> None:
    with pytest.raises(SourceError, match="no data list"):
        read_envelope(answer, 4, "GET /x")


def test_checkpoints() -> None:
    assert key_of_position(None) is None and key_of_position(START) is None
    assert key_of_position(["2024-05-01T08:00:07+00:00", "p"]) == (
        dt.datetime(2024, 5, 1, 8, 0, 7, tzinfo=dt.UTC), "p")
    with pytest.raises(SourceError, match="not an Omneo position"):
        key_of_position([1024, 12])
