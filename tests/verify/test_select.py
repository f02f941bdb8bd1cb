"""Which records verify looks up: the latest valid version of each id, as the batcher would
send it; a seeded uniform sample; the window the last sending run covered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.config import Job
from ometria_sync.pipeline.validation import schema_validator
from ometria_sync.verify.check import plan
from ometria_sync.verify.select import Window, last_run_window, select


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
    stream = make_job().streams[0]
    chosen = await select(stream, schema_validator(stream))
    assert [(t.id, t.source.rsplit("/", 1)[1]) for t in chosen.targets] == [
        ("c2", "contacts.jsonl:2"), ("c1", "contacts.jsonl:6")]
    assert chosen.targets[1].record == {"@type": "contact", **_contact(1, firstname="New")}
    assert (chosen.distinct, chosen.invalid) == (2, 3)


async def test_a_sample_is_repeatable_with_its_seed_and_uniform(
        tmp_path: Path, make_job: Callable[..., Job]) -> None:
    _write(tmp_path, [_contact(i) for i in range(100)])
    stream = make_job().streams[0]
    validate = schema_validator(stream)

    async def ids(seed: int) -> list[str]:
        return sorted(t.id for t in (await select(stream, validate, sample=10,
                                                  seed=seed)).targets)

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

    def report(run_id: str, position: Any, *, dry_run: bool = False) -> None:
        (reports / f"{run_id}.json").write_text(json.dumps({
            "run_id": run_id, "started_at": run_id, "dry_run": dry_run,
            "streams": [{"stream": "contacts", "checkpoint_position": position}]}))

    assert last_run_window(str(reports), "contacts") is None
    report("20240101T000000Z-a", [60, 2])
    assert last_run_window(str(reports), "contacts") == Window(None, [60, 2],
                                                               "20240101T000000Z-a")
    report("20240102T000000Z-b", [120, 4])
    report("20240103T000000Z-c", [999, 9], dry_run=True)
    window = last_run_window(str(reports), "contacts")
    assert window == Window([60, 2], [120, 4], "20240102T000000Z-b")

    lines = [json.dumps(_contact(i)) for i in range(6)]
    _write(tmp_path, lines)
    ends = []
    offset = 0
    for line in lines:
        offset += len(line) + 1
        ends.append(offset)
    stream = make_job().streams[0]
    chosen = await select(stream, schema_validator(stream),
                          window=Window([ends[1], 2], [ends[3], 4], "x"))
    assert [t.id for t in chosen.targets] == ["c2", "c3"]


def test_plan_takes_list_pages_when_they_cost_fewer_requests(
        make_job: Callable[..., Job]) -> None:
    from ometria_sync.verify.select import Target

    def targets(n: int, **record: Any) -> list[Target]:
        return [Target(str(i), str(i), dict(record), "f") for i in range(n)]

    assert plan("o", "order", targets(1000), 1000, "auto").method == "list"
    assert plan("o", "order", targets(1000), 1000, "auto").requests == 5
    assert plan("o", "order", targets(3), 100_000, "auto").method == "single"
    assert plan("o", "order", targets(3), 100_000, "list").requests == 401
    # contacts are looked up one by one only by email
    assert plan("c", "contact", targets(3, email="a@b.co"), 100_000, "auto").method == "single"
    assert plan("c", "contact", targets(3), 100_000, "auto").method == "list"
    assert plan("e", "custom_event", targets(3), 3, "auto").method == "none"
