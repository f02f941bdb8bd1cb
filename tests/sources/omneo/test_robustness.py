"""Property tests: any JSON value in any field of a profile, its aggregations or a transaction
is read and mapped, or refused with a FieldError naming a path; nothing else is ever raised."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.schemas import validate_record
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.contacts import to_contact
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.orders import to_order
from ometria_sync.sources.omneo.profile import parse_aggregations, parse_profile
from ometria_sync.sources.omneo.transaction import parse_transaction
from tests.sources.omneo import samples
from tests.sources.omneo.test_normalise import JSON

PROFILE_KEYS = sorted(samples.profile(1))
AGGREGATION_KEYS = sorted(samples.aggregations(1))
TRANSACTION_KEYS = sorted(samples.transaction(1, 1))
ITEM_KEYS = sorted(samples.item(1))
SCALAR = (str, int, float, bool)
# fields whose text Omneo owns and Ometria judges (an email that is no address is Ometria's
# refusal, reported by the engine's validation, not the mapping's)
PASSED_THROUGH = ("email", "customer_id", "id", "customer.id", "customer.email", "prefix",
                  "store", "lineitems")


def _messed(base: dict[str, Any], keys: list[str], draw: st.DrawFn) -> dict[str, Any]:
    changes = draw(st.dictionaries(st.sampled_from(keys), JSON, max_size=4))
    return base | changes


@st.composite
def profiles(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    raw = _messed(samples.profile(1), PROFILE_KEYS, draw)
    kind = draw(st.sampled_from(["absent", "any JSON", "messed"]))
    if kind == "absent":
        return raw, None
    if kind == "any JSON":
        return raw, draw(JSON)
    return raw, _messed(samples.aggregations(1), AGGREGATION_KEYS, draw)


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    raw = _messed(samples.transaction(1, 1), TRANSACTION_KEYS, draw)
    if draw(st.booleans()):
        raw["items"] = [_messed(samples.item(1), ITEM_KEYS, draw)]
    return raw


def _only_passed_through(problems: list[Any]) -> bool:
    return all(p.path.split("[")[0] in PASSED_THROUGH or p.path.startswith(PASSED_THROUGH)
               for p in problems)


@settings(max_examples=300)
@given(profiles())
def test_any_profile_becomes_a_contact_or_a_field_error(case: tuple[dict[str, Any], Any]
                                                        ) -> None:
    raw, aggs = case
    try:
        contact = to_contact(parse_profile(raw, dt.UTC), parse_aggregations(aggs, dt.UTC),
                             OmneoProfilesConfig())
    except FieldError as exc:
        assert exc.reason
        return
    assert all(isinstance(v, SCALAR) for v in contact.get("properties", {}).values())
    assert _only_passed_through(validate_record("contact", contact).errors)


@settings(max_examples=300)
@given(transactions())
def test_any_transaction_becomes_an_order_or_a_field_error(raw: dict[str, Any]) -> None:
    try:
        tx = parse_transaction(raw, dt.UTC)
        order = to_order(tx, tx.profile, OmneoTransactionsConfig(default_currency="AUD"))
    except FieldError as exc:
        assert exc.reason
        return
    assert order["grand_total"] >= 0 and order.get("discount", 0) <= 0
    assert _only_passed_through(validate_record("order", order).errors)
