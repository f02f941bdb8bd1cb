"""Reading Ometria back (aioresponses, no network): list pages of 250 with offsets until a
short page, 404 as "not there", 429s and 5xx retried through the pacer, a refused key fatal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses

from ometria_sync.errors import AuthenticationError, RetriesExhaustedError
from ometria_sync.net.http import Backoff
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.verify import ledger as ledger_module
from ometria_sync.verify import run as run_module
from ometria_sync.verify.check import look_up, plan
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.reader import Reader
from ometria_sync.verify.run import check_stream
from ometria_sync.verify.select import Target

BASE = "https://api.example.test/v2"
ORDERS = re.compile(r"^https://api\.example\.test/v2/orders\?.*$")


class CountingPacer(Pacer):
    def __init__(self) -> None:
        super().__init__(1000.0)
        self.acquired = 0

    async def acquire(self) -> Any:
        self.acquired += 1
        return await super().acquire()


@pytest.fixture
async def reader() -> AsyncIterator[Reader]:
    client = OmetriaClient(BASE, "key", timeout=5)
    pacer = CountingPacer()

    async def no_sleep(_: float) -> None:
        return None

    yield Reader(client, pacer, Backoff(0.0, 0.0), max_retries=2, sleep=no_sleep)
    await client.aclose()


def _orders(start: int, count: int) -> list[dict[str, Any]]:
    return [{"@type": "order", "id": f"o{i}"} for i in range(start, start + count)]


def _queries(mock: aioresponses) -> list[dict[str, str]]:
    return [dict(url.query) for (_, url), calls in mock.requests.items() for _ in calls]


async def test_pages_walk_250_at_a_time_until_a_short_page(reader: Reader) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/orders?limit=250&offset=0", payload=_orders(0, 250))
        mock.get(f"{BASE}/orders?limit=250&offset=250", payload=_orders(250, 250))
        mock.get(f"{BASE}/orders?limit=250&offset=500", payload=_orders(500, 7))
        pages = [page async for page in reader.pages("/orders")]
        assert [len(p) for p in pages] == [250, 250, 7]
        assert _queries(mock) == [{"limit": "250", "offset": str(o)} for o in (0, 250, 500)]
    assert reader.requests == 3
    assert reader._pacer.acquired == 3  # type: ignore[attr-defined]


async def test_an_exact_multiple_needs_one_empty_page(reader: Reader) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/profiles?limit=250&offset=0&updateSince=2024-01-01",
                 payload=[{"id": str(i)} for i in range(250)])
        mock.get(f"{BASE}/profiles?limit=250&offset=250&updateSince=2024-01-01", payload=[])
        pages = [p async for p in reader.pages("/profiles", {"updateSince": "2024-01-01"})]
    assert [len(p) for p in pages] == [250, 0]


async def test_404_is_not_there_and_429_and_503_are_retried(reader: Reader) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/orders/o1", status=404, payload={"status": "ERROR",
                                                           "message": "Not Found"})
        mock.get(f"{BASE}/orders/o2", status=429)
        mock.get(f"{BASE}/orders/o2", status=503)
        mock.get(f"{BASE}/orders/o2", payload={"id": "o2"})
        assert await reader.get("/orders/o1") is None
        assert await reader.get("/orders/o2") == {"id": "o2"}
    assert reader.requests == 4


async def test_a_refused_key_is_fatal_and_endless_5xx_give_up(reader: Reader) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/orders/o1", status=403)
        with pytest.raises(AuthenticationError):
            await reader.get("/orders/o1")
        for _ in range(3):
            mock.get(f"{BASE}/orders/o2", status=500)
        with pytest.raises(RetriesExhaustedError):
            await reader.get("/orders/o2")


def _target(rid: str, **record: Any) -> Target:
    return Target(key=rid, id=rid, record={"id": rid, **record}, source=f"f:{rid}")


async def test_the_list_matches_ids_across_pages_into_the_ledger(reader: Reader) -> None:
    ledger = Ledger()
    ledger.add(0, "orders", [_target("o5"), _target("o251"), _target("o999")], selected=True)
    how = plan("orders", "order", 3, 3, "list")
    with aioresponses() as mock:
        mock.get(ORDERS, payload=_orders(0, 250))
        mock.get(ORDERS, payload=_orders(250, 3))
        await check_stream(reader, ledger, how, {}, workers=2)
    assert ledger.statuses() == {"orders": {"verified": 2, "missing": 1}}
    assert [(o.id, o.status) for o in ledger.problems({"orders": "order"}, 10)] == [
        ("o999", "missing")]
    ledger.close()


async def test_look_up_single_contacts_by_email(reader: Reader) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/profiles?email=ann@example.com", payload={"id": "p1"})
        mock.get(f"{BASE}/profiles?email=bob@example.com", status=404)
        found = await look_up(reader, "contact",
                              [_target("c1", email="ann@example.com"),
                               _target("c2", email="bob@example.com")], workers=4)
    assert found == {"c1": {"id": "p1"}, "c2": None}


async def test_ids_are_looked_up_and_settled_a_chunk_at_a_time(
        reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays flat: each chunk is read back, looked up and judged before the next."""
    monkeypatch.setattr(ledger_module, "CHUNK", 40)
    ledger = Ledger()
    ledger.add(0, "orders", [_target(f"o{i}") for i in range(100)], selected=True)
    calls: list[tuple[int, int]] = []

    async def fake_look_up(_: Reader, record_type: str, targets: list[Target], *,
                           workers: int) -> dict[str, dict[str, Any] | None]:
        settled = sum(ledger.statuses().get("orders", {}).values())
        calls.append((len(targets), settled))
        return {t.key: dict(t.record) for t in targets}

    monkeypatch.setattr(run_module, "look_up", fake_look_up)
    await check_stream(reader, ledger, plan("orders", "order", 100, 100, "single"), {},
                       workers=2)
    assert calls == [(40, 0), (40, 40), (20, 80)]
    assert ledger.statuses() == {"orders": {"verified": 100}}
    ledger.close()
