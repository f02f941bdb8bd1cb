"""The emulator's asynchronous import (validation, ``/v2/push/_errors``, merge by type and id),
its read endpoints, profiles and ``/_emulator/stats``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ometria_sync.emulator.profiles import profile_id
from tests.emulator.support import Emu, EmuFactory, contact, order, product

NOT_FOUND = {"status": "ERROR", "message": "Not Found"}
BAD_PAGE = {"status": "ERROR", "message": "limit must be 1..250, offset >= 0"}


async def _push_ok(emu: Emu, records: list[dict[str, Any]]) -> str:
    """Push, expect a 202 accepting every record, return the request id."""
    response = await emu.push(records)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert (body["accepted"], body["rejected"]) == (len(records), 0)
    assert "skipped" not in body  # never for a normal push: the engine counts it unconfirmed
    request_id: str = body["request_id"]
    return request_id


async def _import(emu: Emu, records: list[dict[str, Any]]) -> str:
    request_id = await _push_ok(emu, records)
    emu.drain()
    return request_id


# --- validation at import time ----------------------------------------------------------------

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("contact bad email", contact("c1", email="not-an-email"),
     "root > email", 'must be an email address, got "not-an-email"'),
    ("order currency ZZZ", order("o1", currency="ZZZ"),
     "root > currency", 'must be an ISO 4217 currency code such as "GBP", got "ZZZ"'),
    ("order total as a string", order("o1", grand_total="10"),
     "root > grand_total", 'must be a number, got "10"'),
    ("order id a number", order("o1") | {"id": 5},
     "root > id", "must be a string, got 5"),
    ("order positive line discount",
     order("o1", lineitems=[{"product_id": "p1", "quantity": 1, "unit_price": 5.0,
                             "subtotal": 5.0, "discount": 5}]),
     "root > lineitems[0] > discount", "must be <= 0, got 5"),
]


@pytest.mark.parametrize(("record", "path", "message"), [(r, p, m) for _, r, p, m in INVALID],
                         ids=[name for name, _, _, _ in INVALID])
async def test_invalid_record_is_accepted_then_listed_in_push_errors(
        emulator: EmuFactory, record: dict[str, Any], path: str, message: str) -> None:
    emu = await emulator()
    good = dict(record, id="good")
    for field in ("email", "currency", "grand_total", "lineitems"):
        good.pop(field, None)
    # the push itself is fine: Ometria validates asynchronously
    request_id = await _push_ok(emu, [record, good])
    assert await emu.json("/v2/push/_errors") == []
    emu.drain()
    assert await emu.json("/v2/push/_errors") == [{
        "error_message": message, "error_path": path, "record_id": record["id"],
        "record_type": record["@type"], "request_id": request_id}]
    table = emu.store.records[record["@type"]]
    assert [stored["id"] for stored in table.values()] == ["good"]
    stats = await emu.stats()
    assert (stats["records_imported"], stats["import_errors"]) == (1, 1)


async def test_a_country_id_the_client_refuses_is_still_imported(emulator: EmuFactory) -> None:
    """The client refuses a contact's "UK" (issue 29); Ometria's documents do not say its
    import does, so the emulator keeps such a contact, and still refuses an address's."""
    emu = await emulator()
    await _import(emu, [contact("c1", country_id="UK")])
    await _import(emu, [order("o1", billing_address={"country_code": "UK"})])
    assert emu.store.get("contact", "shop/c1") is not None
    assert [e["error_path"] for e in await emu.json("/v2/push/_errors")] == [
        "root > billing_address > country_code"]


async def test_push_errors_keeps_the_latest_100_newest_first(emulator: EmuFactory) -> None:
    emu = await emulator()
    bad = [contact(f"b{i}", email=f"bad{i}") for i in range(110)]
    first = await _push_ok(emu, bad[:60])
    second = await _push_ok(emu, bad[60:])
    emu.drain()
    errors = await emu.json("/v2/push/_errors")
    assert len(errors) == 100
    assert [e["record_id"] for e in errors] == [f"b{i}" for i in range(109, 9, -1)]
    assert {e["request_id"] for e in errors[:50]} == {second}
    assert {e["request_id"] for e in errors[50:]} == {first}
    assert {e["error_path"] for e in errors} == {"root > email"}
    assert errors[0]["error_message"] == 'must be an email address, got "bad109"'
    assert (await emu.stats())["import_errors"] == 110


# --- merge by type and id ---------------------------------------------------------------------


async def test_partial_contact_updates_only_its_fields_and_null_deletes(
        emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [contact("c1", email="ann@example.com", firstname="Ann", lastname="Lee",
                                properties={"tier": "gold", "points": 10})])
    await _import(emu, [contact("c1", firstname="Annie", properties={"points": 20})])
    expected = {"@type": "contact", "@collection": "shop", "id": "c1",
                "email": "ann@example.com", "firstname": "Annie", "lastname": "Lee",
                "properties": {"points": 20}}  # nested objects are replaced whole
    assert emu.store.records["contact"] == {"shop/c1": expected}

    await _import(emu, [contact("c1", lastname=None)])
    del expected["lastname"]
    assert emu.store.records["contact"] == {"shop/c1": expected}
    assert await emu.json("/v2/contacts/c1") == expected

    # an update that fails validation leaves the stored record as it was
    await _import(emu, [contact("c1", email="broken", firstname="Zed")])
    assert await emu.json("/v2/contacts/c1") == expected


async def test_null_on_a_new_record_is_not_stored(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [contact("c9", email="c9@example.com", lastname=None)])
    assert emu.store.records["contact"]["shop/c9"] == {
        "@type": "contact", "@collection": "shop", "id": "c9", "email": "c9@example.com"}


async def test_contacts_are_keyed_by_collection_and_id(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [contact("c1", "shop", email="shop@example.com"),
                        contact("c1", "crm", email="crm@example.com"),
                        {"@type": "contact", "id": "c1", "email": "default@example.com"}])
    await _import(emu, [contact("c1", "crm", firstname="Cy")])
    records = emu.store.records["contact"]
    assert {key: r.get("email") for key, r in records.items()} == {
        "shop/c1": "shop@example.com", "crm/c1": "crm@example.com",
        "default/c1": "default@example.com"}
    assert records["crm/c1"]["firstname"] == "Cy"
    assert "firstname" not in records["shop/c1"]
    stats = await emu.stats()
    assert stats["distinct_ids"] == 3
    assert stats["ids_received_more_than_once"] == 1


async def test_cancelling_an_order_with_a_partial_record_keeps_the_rest(
        emulator: EmuFactory) -> None:
    emu = await emulator()
    full = order("123551", customer={"id": "u1", "email": "ann@example.com"},
                 lineitems=[{"product_id": "p1", "quantity": 2, "unit_price": 5.0,
                             "subtotal": 10.0}])
    await _import(emu, [full])
    await _import(emu, [{"@type": "order", "id": "123551", "status": "cancelled",
                         "is_valid": False}])
    assert await emu.json("/v2/orders/123551") == full | {"status": "cancelled",
                                                          "is_valid": False,
                                                          "total_unit_quantity": 2}
    assert list(emu.store.records["order"]) == ["123551"]


async def test_records_are_visible_only_once_imported(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _push_ok(emu, [order("o1")])
    assert (await emu.get("/v2/orders/o1")).status == 404
    assert await emu.json("/v2/orders") == []
    assert (await emu.stats())["queue_depth"] == 1
    emu.drain()
    assert await emu.json("/v2/orders/o1") == order("o1")
    assert (await emu.stats())["queue_depth"] == 0


async def test_background_drain_imports_at_the_configured_pace(emulator: EmuFactory) -> None:
    emu = await emulator(drain_per_second=20.0)  # one record per 50 ms tick
    await _push_ok(emu, [product(f"p{i}") for i in range(10)])
    await asyncio.sleep(0.16)
    stats = await emu.stats()
    assert 2 <= stats["records_imported"] <= 4
    assert stats["queue_depth"] == 10 - stats["records_imported"]


# --- read-back --------------------------------------------------------------------------------


async def test_orders_list_pages_with_limit_and_offset(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [order(f"o{i}") for i in range(12)])

    async def ids(**params: Any) -> list[str]:
        return [o["id"] for o in await emu.json("/v2/orders", **params)]

    assert await ids() == [f"o{i}" for i in range(10)]  # default limit 10
    assert await ids(offset=10) == ["o10", "o11"]
    assert await ids(limit=3, offset=4) == ["o4", "o5", "o6"]
    assert await ids(limit=250) == [f"o{i}" for i in range(12)]
    assert await ids(limit=1) == ["o0"]
    assert await ids(offset=12) == []
    assert (await emu.json("/v2/orders", limit=1, offset=3)) == [order("o3")]


@pytest.mark.parametrize(("params", "body"), [
    ({"limit": 251}, BAD_PAGE),
    ({"limit": 0}, BAD_PAGE),
    ({"offset": -1}, BAD_PAGE),
    ({"limit": "ten"}, {"status": "ERROR", "message": "limit and offset must be integers"}),
    ({"offset": "1.5"}, {"status": "ERROR", "message": "limit and offset must be integers"}),
])
async def test_orders_list_refuses_bad_paging(
        emulator: EmuFactory, params: dict[str, Any], body: dict[str, str]) -> None:
    emu = await emulator()
    response = await emu.get("/v2/orders", **params)
    assert response.status == 400
    assert await response.json() == body


async def test_single_records_by_id_and_404_for_unknown_ids(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [order("o1")])
    await _import(emu, [product("p1", url="https://example.com/p1")])
    await _import(emu, [contact("c1", email="ann@example.com")])
    assert await emu.json("/v2/orders/o1") == order("o1")
    assert await emu.json("/v2/products/p1") == product("p1", url="https://example.com/p1")
    assert await emu.json("/v2/contacts/c1") == contact("c1", email="ann@example.com")
    for path in ("/v2/orders/o2", "/v2/products/p2", "/v2/contacts/c2",
                 "/v2/products/o1", "/v2/orders/p1", "/v2/profiles/u404"):
        response = await emu.get(path)
        assert response.status == 404, path
        assert await response.json() == NOT_FOUND


READ_PATHS = ["/v2/push/_errors", "/v2/orders", "/v2/orders/o1", "/v2/products/p1",
              "/v2/contacts/c1", "/v2/profiles", "/v2/profiles/u1"]


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_read_endpoints_need_the_key(
        emulator: EmuFactory, path: str, key: str | None) -> None:
    emu = await emulator()
    await _import(emu, [order("o1")])
    response = await emu.get(path, key=key)
    assert response.status == 403
    assert await response.json() == {"status": "ERROR", "message": "Forbidden"}


async def test_read_endpoints_count_against_the_rate_limit(emulator: EmuFactory) -> None:
    emu = await emulator(rate=2.0, retry_after=True)
    assert (await emu.get("/v2/push/_errors")).status == 200
    assert (await emu.get("/v2/orders")).status == 200
    refused = await emu.get("/v2/orders")
    assert refused.status == 429
    assert await refused.json() == {"status": "ERROR", "message": "Too Many Requests"}
    assert refused.headers["Retry-After"] == "1"
    assert (await emu.push([order("o1")])).status == 429
    stats = await emu.stats()
    assert stats["max_requests_in_any_second"] == 4
    assert stats["requests_by_status"] == {"429": 2}


async def test_health_needs_no_key(emulator: EmuFactory) -> None:
    emu = await emulator()
    response = await emu.get("/_emulator/health", key=None)
    assert response.status == 200
    assert await response.json() == {"status": "OK"}


# --- profiles ---------------------------------------------------------------------------------


async def _profile_fixture(emu: Emu) -> None:
    # email-only listings arrive *before* the customer's own listing
    await _import(emu, [contact("n1", "news", email="ANN@example.com"),
                        contact("n2", "news", email="bob@example.com", firstname="Bob"),
                        contact("c3", "shop", email="Bob@Example.com"),
                        contact("n3", "news", firstname="Nobody")])
    await _import(emu, [contact("c1", "shop", customer_id="u1", email="ann@example.com",
                                firstname="Ann", lastname="Lee",
                                marketing_optin="EXPLICITLY_OPTEDIN",
                                properties={"tier": "gold"}),
                        contact("k1", "crm", customer_id="u1", email="ann.lee@work.example")])
    await _import(emu, [order("o1", grand_total=10.0, customer={"id": "u1"}),
                        order("o2", grand_total=20.5,
                              customer={"email": "ann.lee@work.example"}),
                        order("o3", grand_total=100.0, is_valid=False, customer={"id": "u1"}),
                        order("o4", grand_total=5.0, customer={"email": "BOB@example.com"}),
                        order("o5", grand_total=7.0, customer={"id": "nobody"})])
    assert await emu.json("/v2/push/_errors") == []


def _profile(cluster_key: str, **fields: Any) -> dict[str, Any]:
    """A Profile object as seed 000 shows it, with the emulator's defaults."""
    base: dict[str, Any] = {
        "@type": "profile", "id": profile_id(cluster_key), "customer_id": None, "email": None,
        "prefix": None, "firstname": None, "middlename": None, "lastname": None,
        "suffix": None, "name": None, "gender": None, "date_of_birth": None, "country": None,
        "marketing_optin": None,
        "dates": {"acquired": None, "first_purchase": None, "last_purchase": None,
                  "first_seen": None, "last_seen": None, "marketing_optin": None,
                  "marketing_optout": None},
        "identities": [], "lists": [], "properties": {}, "seen": False,
        "stats": {"aov": 0, "orders": 0, "orders_attempted": 0, "revenue": 0,
                  "total_items": 0, "visits": 0},
        "tags": []}
    return base | fields


ANN = _profile(
    "customer:u1", customer_id="u1", email="ann@example.com", firstname="Ann", lastname="Lee",
    name="Ann Lee", marketing_optin="EXPLICITLY_OPTEDIN",
    dates={"acquired": None, "first_purchase": "2024-03-01T10:15:00+00:00",
           "last_purchase": "2024-03-01T10:15:00+00:00", "first_seen": None,
           "last_seen": None, "marketing_optin": None, "marketing_optout": None},
    identities=[{"id": "u1", "type": "customer_id"}, {"id": "ann@example.com", "type": "email"},
                {"id": "ann.lee@work.example", "type": "email"}],
    stats={"aov": 15.25, "orders": 2, "orders_attempted": 3, "revenue": 30.5,
           "total_items": 0, "visits": 0},
    properties={"tier": "gold"})
BOB = _profile(
    "email:bob@example.com", email="bob@example.com", firstname="Bob", name="Bob",
    dates={"acquired": None, "first_purchase": "2024-03-01T10:15:00+00:00",
           "last_purchase": "2024-03-01T10:15:00+00:00", "first_seen": None,
           "last_seen": None, "marketing_optin": None, "marketing_optout": None},
    identities=[{"id": "bob@example.com", "type": "email"}],
    stats={"aov": 5.0, "orders": 1, "orders_attempted": 1, "revenue": 5.0, "total_items": 0,
           "visits": 0})


async def test_profiles_cluster_by_customer_id_then_email(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _profile_fixture(emu)
    assert await emu.json("/v2/profiles") == [ANN, BOB]
    assert await emu.json("/v2/profiles", limit=1, offset=1) == [BOB]
    # GET /profiles?email= is one profile (an object), matched whatever the case
    assert await emu.json("/v2/profiles", email="Bob@example.com") == BOB
    assert await emu.json("/v2/profiles", email="ann.lee@work.example") == ANN
    missing = await emu.get("/v2/profiles", email="nobody@example.com")
    assert missing.status == 404
    assert await missing.json() == NOT_FOUND
    # the id is Ometria's own, opaque, not the customer id
    assert ANN["id"] != "u1"
    assert await emu.json(f"/v2/profiles/{ANN['id']}") == ANN
    for unknown in ("u1", "n3"):
        response = await emu.get(f"/v2/profiles/{unknown}")
        assert response.status == 404
        assert await response.json() == NOT_FOUND


async def test_profile_stats_follow_order_updates(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _profile_fixture(emu)
    await _import(emu, [{"@type": "order", "id": "o1", "is_valid": False}])
    profile = await emu.json(f"/v2/profiles/{ANN['id']}")
    assert profile["stats"] == {"aov": 20.5, "orders": 1, "orders_attempted": 3,
                                "revenue": 20.5, "total_items": 0, "visits": 0}



async def test_profile_look_ups_see_listings_imported_after_the_first_look_up(
        emulator: EmuFactory) -> None:
    """Look-ups by email and by id are built once per state of the store, not kept past an
    import: a listing imported after the first look-up is found by both."""
    emu = await emulator()
    await _profile_fixture(emu)
    assert (await emu.get("/v2/profiles", email="cy@example.com")).status == 404
    assert (await emu.get(f"/v2/profiles/{profile_id('customer:u9')}")).status == 404
    await _import(emu, [contact("c9", "shop", customer_id="u9", email="Cy@example.com")])
    cy = await emu.json("/v2/profiles", email="cy@example.com")
    assert (cy["id"], cy["customer_id"]) == (profile_id("customer:u9"), "u9")
    assert await emu.json(f"/v2/profiles/{cy['id']}") == cy
    assert await emu.json("/v2/profiles") == [ANN, cy, BOB]  # customer ids first

# --- stats ------------------------------------------------------------------------------------


async def test_stats_count_requests_records_and_ids(emulator: EmuFactory) -> None:
    emu = await emulator(rate=5.0)
    empty = await emu.stats()
    assert empty == {
        "requests_by_status": {}, "requests": 0, "max_requests_in_any_second": 0,
        "max_2xx_in_any_second": 0, "first_request_at": None, "last_request_at": None,
        "records_accepted": 0, "records_rejected": 0, "records_imported": 0,
        "import_errors": 0, "import_failures": 0, "import_failures_silent": 0,
        "distinct_ids": 0, "ids_received_more_than_once": 0,
        "queue_depth": 0}

    await _push_ok(emu, [contact("c1"), contact("c2")])
    await _push_ok(emu, [contact("c2"), contact("c3", email="bad")])
    await _push_ok(emu, [order("c1")])  # same id, other type: another id
    assert (await emu.push([contact("c4")], key="wrong")).status == 403
    assert (await emu.push([])).status == 400
    assert (await emu.push([contact("c5")])).status == 429

    stats = await emu.stats()
    assert stats["requests_by_status"] == {"202": 3, "403": 1, "400": 1, "429": 1}
    assert stats["requests"] == 6
    assert stats["max_requests_in_any_second"] == 6
    assert stats["max_2xx_in_any_second"] == 3
    assert stats["records_accepted"] == 5
    assert stats["records_rejected"] == 0
    assert stats["distinct_ids"] == 4
    assert stats["ids_received_more_than_once"] == 1
    assert stats["queue_depth"] == 5
    assert stats["records_imported"] == 0
    assert isinstance(stats["first_request_at"], float)
    assert stats["last_request_at"] >= stats["first_request_at"]

    emu.drain()
    stats = await emu.stats()
    assert (stats["queue_depth"], stats["records_imported"], stats["import_errors"]) == (0, 4, 1)


async def test_contacts_read_by_collection_and_id(emulator: EmuFactory) -> None:
    """The same id in two collections is two listings: /contacts/{collection}/{id} names one."""
    emu = await emulator()
    await _import(emu, [contact("c1", "shop", email="shop@example.com"),
                        contact("c1", "app", email="app@example.com")])
    assert (await emu.json("/v2/contacts/shop/c1"))["email"] == "shop@example.com"
    assert (await emu.json("/v2/contacts/app/c1"))["email"] == "app@example.com"
    assert (await emu.get("/v2/contacts/pos/c1")).status == 404
