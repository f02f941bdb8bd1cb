"""Run reports kept in the state store (both stores): written through the ordered queue, read
back newest-last, a retried write adds no row, and each job sees only its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from ometria_sync.state import open_state
from ometria_sync.state.store import StateStore
from tests.pg import DSN
from tests.state.conftest import Opener


def _report(n: int) -> tuple[str, str, bytes]:
    run_id = f"2026120{n}T021000.000Z-abc{n}"
    started = f"2026-12-0{n}T02:10:00+00:00"
    return run_id, started, f'{{"run_id": "{run_id}", "n": {n}}}'.encode()


async def test_reports_are_kept_and_read_back_newest_last(open_store: Opener) -> None:
    store = await open_store()
    for n in (3, 1, 2, 4):  # written out of order: read back by start time
        store.add_run_report(*_report(n))
    await store.aclose()
    again = await open_store()  # another process, later
    assert await again.run_reports(2) == [_report(3)[2], _report(4)[2]]
    assert await again.run_reports(100) == [_report(n)[2] for n in (1, 2, 3, 4)]


async def test_writing_a_report_again_replaces_it(store: StateStore) -> None:
    run_id, started, _ = _report(1)
    store.add_run_report(run_id, started, b'{"try": 1}')
    store.add_run_report(run_id, started, b'{"try": 2}')
    assert await store.run_reports(10) == [b'{"try": 2}']


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_each_job_sees_its_own_reports(kind: str, tmp_path: Path, pg_schema: str) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}" if kind == "sqlite" else DSN
    stores = [await open_state(url, pg_schema, job=name) for name in ("contacts", "orders")]
    try:
        for n, store in enumerate(stores, start=1):
            store.add_run_report(*_report(n))
            await store.flush()
        assert [await s.run_reports(10) for s in stores] == [[_report(1)[2]], [_report(2)[2]]]
    finally:
        for store in stores:
            await store.aclose()
