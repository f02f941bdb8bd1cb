"""Which records verify looks up: the latest valid version of each id, as the batcher would
send it; a seeded uniform sample; the window the last sending run covered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.config import Job
from ometria_sync.sources import SourceItem
from ometria_sync.verify.check import plan
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.run import collect
from ometria_sync.verify.select import Tally, Target, Window, last_run_window


async def select(job: Job, *, sample: int | None = None, seed: int = 0,
                 window: Window | None = None) -> tuple[list[Target], int]:
    """The ids verify would check (in source order) and the records it counted invalid."""
    ledger = Ledger()
    try:
        if window is not None:
            folder = Path(job.settings.report.folder)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "r.json").write_text(json.dumps({
                "started_at": window.started_at, "streams": [{
                    "stream": "contacts", "checkpoint_position": window.end,
                    "start_position": window.start, "started_from_top": window.start is None}]}))
        found = await collect(job, job.select(None), ledger, sample=sample, seed=seed,
                              last_run=window is not None)
        targets = [t for chunk in ledger.chunks("contacts") for t, _ in chunk]
        return targets, found.invalid["contacts"]
    finally:
        ledger.close()


def _write(tmp_path: Path, records: list[Any]) -> None:
    path = tmp_path / "data" / "contacts.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))


def _contact(i: int, **fields: Any) -> dict[str, Any]:
    return {"@collection": "shop", "id": f"c{i}", "email": f"u{i}@example.com", **fields}


async def test_all_takes_the_latest_valid_version_with_its_line(
        tmp_path: Path, make_job: Callable[..., Job]) -> None:
    _write(tmp_path, [_contact(1, firstname="Old"), _contact(2), "{not json",
                      _contact(3, email="broken"), {"id": "c4", "@type": "order"},
                      _contact(1, firstname="New")])
    targets, invalid = await select(make_job())
    assert [(t.id, t.source.rsplit("/", 1)[1]) for t in targets] == [
        ("c2", "contacts.jsonl:2"), ("c1", "contacts.jsonl:6")]
    assert targets[1].record == {"@type": "contact", **_contact(1, firstname="New")}
    assert invalid == 3


async def test_a_sample_is_repeatable_with_its_seed_and_uniform(
        tmp_path: Path, make_job: Callable[..., Job]) -> None:
    _write(tmp_path, [_contact(i) for i in range(100)])
    job = make_job()

    async def ids(seed: int) -> list[str]:
        return sorted(t.id for t in (await select(job, sample=10, seed=seed))[0])

    first = await ids(7)
    assert len(first) == 10 and first == await ids(7)
    assert first != await ids(8)
    picked: Counter[str] = Counter()
    for seed in range(300):
        picked.update(await ids(seed))
    # each of 100 ids expected 30 times in 300 samples of 10; none never, none hugely often
    assert len(picked) == 100
    assert max(picked.values()) < 60 and min(picked.values()) > 10


async def test_last_run_window_from_the_reports(tmp_path: Path,
                                                make_job: Callable[..., Job]) -> None:
    reports = tmp_path / "state" / "reports"
    reports.mkdir(parents=True)

    def report(run_id: str, start: Any, position: Any, *, dry_run: bool = False) -> None:
        (reports / f"{run_id}.json").write_text(json.dumps({
            "run_id": run_id, "started_at": run_id, "dry_run": dry_run,
            "streams": [{"stream": "contacts", "checkpoint_position": position,
                         "start_position": start, "started_from_top": start is None}]}))

    assert last_run_window(str(reports), "contacts") is None
    report("20240101T000000Z-a", None, [60, 2])
    assert last_run_window(str(reports), "contacts") == Window(None, [60, 2],
                                                               "20240101T000000Z-a")
    report("20240102T000000Z-b", [60, 2], [120, 4])
    report("20240103T000000Z-c", [120, 4], [999, 9], dry_run=True)
    window = last_run_window(str(reports), "contacts")
    assert window == Window([60, 2], [120, 4], "20240102T000000Z-b")
    # a run that read a new file from the top covered it from the top, whatever came before
    report("20240104T000000Z-d", None, [50, 3])
    assert last_run_window(str(reports), "contacts") == Window(None, [50, 3],
                                                               "20240104T000000Z-d")
    # a report that does not say where its run started: from the top (more, never less)
    (reports / "20240105T000000Z-e.json").write_text(json.dumps({
        "run_id": "e", "started_at": "e", "dry_run": False,
        "streams": [{"stream": "contacts", "checkpoint_position": [70, 4]}]}))
    assert last_run_window(str(reports), "contacts") == Window(None, [70, 4], "e")
    for old in reports.glob("*.json"):
        old.unlink()

    lines = [json.dumps(_contact(i)) for i in range(6)]
    _write(tmp_path, lines)
    ends = []
    offset = 0
    for line in lines:
        offset += len(line) + 1
        ends.append(offset)
    chosen, _ = await select(make_job(), window=Window([ends[1], 2], [ends[3], 4], "x"))
    assert [t.id for t in chosen] == ["c2", "c3"]


def test_plan_takes_list_pages_when_they_cost_fewer_requests(
        make_job: Callable[..., Job]) -> None:
    assert plan("o", "order", 1000, 1000, "auto").method == "list"
    assert plan("o", "order", 1000, 1000, "auto").requests == 5
    assert plan("o", "order", 3, 100_000, "auto").method == "single"
    assert plan("o", "order", 3, 100_000, "list").requests == 401
    # contacts are looked up one by one only by email
    assert plan("c", "contact", 3, 100_000, "auto").method == "single"
    assert plan("c", "contact", 3, 100_000, "auto", without_email=1).method == "list"
    # custom events: no read endpoint, nothing requested
    none = plan("e", "custom_event", 3, 3, "auto")
    assert (none.method, none.requests) == ("none", 0)


def test_a_whole_read_meets_the_refused_keys_it_watches() -> None:
    """By id (with its collection), by the id a refused row's id column gave, or by position
    for a line without one: the keys a run gives its refusals; others are not noted."""
    tally = Tally(watch=frozenset({"shop/c1", "c2", "position [10,1]", "shop/c9"}))
    for item in (SourceItem({"@collection": "shop", "id": "c1", "email": "x"}, [5, 1]),
                 SourceItem(None, [7, 2], error="bad row", id="c2"),
                 SourceItem(None, [10, 1], error="not JSON"),
                 SourceItem({"@collection": "shop", "id": "c3"}, [12, 3])):
        tally.meet(item)
    assert tally.seen == {"shop/c1", "c2", "position [10,1]"}


def test_a_cursor_window_ends_after_the_rows_at_the_checkpoint() -> None:
    """Rows of a tie group share the position before the group: every row at the
    checkpoint's position is inside, the first row after them ends the window; a checkpoint
    row never met (it moved since) lets the read go on to the end."""
    from ometria_sync.verify.select import _CursorWindow

    def at(*values: str) -> dict[str, list[str]]:
        return {"after": list(values)}

    window = _CursorWindow(Window(at("a"), at("c"), "x"))
    assert window.start == at("a")
    assert [window.passed(p) for p in (at("b"), at("c"), at("c"), at("d"), at("e"))] == [
        False, False, False, True, True]
    assert window.ended
    never = _CursorWindow(Window(None, at("c"), "x"))
    assert not any(never.passed(p) for p in (at("a"), at("b"), at("d")))
    assert not never.ended
