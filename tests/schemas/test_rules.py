"""Every schema rule, valid and invalid, with the exact message a person reads."""

from __future__ import annotations

from typing import Any

import pytest

from ometria_sync.schemas import validate_record

NULL_TEXT = ('is the text "null", which Ometria would store as "Null": send JSON null to '
             "delete the field, or leave the key out to keep it")
NO_OFFSET = "must be an ISO 8601 date-time with a UTC offset, e.g. 2024-03-01T10:15:00+00:00, got"


def _contact(**fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "id": "c1", **fields}


def _order(**fields: Any) -> dict[str, Any]:
    return {"@type": "order", "id": "o1", **fields}


def _item(**fields: Any) -> dict[str, Any]:
    return {"product_id": "p1", "quantity": 1, "unit_price": 5.0, **fields}


def _product(**fields: Any) -> dict[str, Any]:
    return {"@type": "product", "id": "p1", **fields}


def _event(**fields: Any) -> dict[str, Any]:
    return {"@type": "custom_event", "id": "e1", "event_type": "viewed_store",
            "identity_email": "ann@example.com", **fields}


def _errors(record_type: str, record: dict[str, Any], mode: str = "update") -> list[str]:
    return [str(p) for p in validate_record(record_type, record, mode=mode).errors]  # type: ignore[arg-type]


def _warnings(record_type: str, record: dict[str, Any], mode: str = "update") -> list[str]:
    return [str(p) for p in validate_record(record_type, record, mode=mode).warnings]  # type: ignore[arg-type]


VALID = [
    ("contact", _contact()),
    ("contact", _contact(email="ann.lee+news@example.co.uk", customer_id="cust-1")),
    ("contact", _contact(phone_number="+447700900123", marketing_optin="EXPLICITLY_OPTEDIN")),
    ("contact", _contact(marketing_optin="NOT_SPECIFIED",
                         timestamp_subscribed="2024-03-01T10:15:00Z")),
    ("contact", _contact(timestamp_acquired="2015-01-02T09:00:00+00")),
    ("contact", _contact(timestamp_unsubscribed="2024-03-01T10:15:00.123+0530")),
    ("contact", _contact(date_of_birth="1990-02-28", gender="f", country_id="GB")),
    ("contact", _contact(channels={"sms": {"allow_marketing": True, "allow_transactional": False,
                                           "dt_updated_marketing": "2024-03-01T10:15:00+00:00"}})),
    ("contact", _contact(properties={"tier": "gold", "score": 3, "vip": True, "tags": ["a", 1]})),
    ("contact", _contact(email=None, properties=None)),  # JSON null deletes a field
    ("contact", _contact(**{"@add_to_lists": [12, "34"], "@force_optin": True})),
    ("order", _order(timestamp="2024-03-01T10:15:00Z", currency="GBP", grand_total=10,
                     discount=0, lineitems=[_item(discount=-1.5)])),
    ("order", _order(lineitems=[{"sku": "S-1", "quantity": 2, "subtotal": 10.0}])),
    ("order", _order(status="cancelled", is_valid=False)),
    ("order", _order(shipping_address={"country_code": "US", "city": "Boston"})),
    ("order", _order(customer={"id": "cust-1", "email": "ann@example.com"})),
    ("order", _order(totals={"base": {"currency": "USD", "grand_total": 149, "discount": -10},
                             "local": {"currency": "EUR", "grand_total": 139}})),
    ("product", _product(title="Shirt", price=20.0, currency="EUR", url="https://x.example/p1")),
    ("product", _product(is_in_stock=False, **{"@merge": True})),
    ("product", _product(attributes=[{"type": "brand", "id": "acme", "label": "Acme"}],
                         listings=[{"store": "uk", "price": 9.5, "currency": "GBP"}])),
    ("custom_event", _event(timestamp="2023-05-25T15:32:52+00:00",
                            properties={"product_id": ["12345"], "price": 20.99})),
    ("custom_event", {"@type": "custom_event", "id": "e2", "event_type": "x",
                      "identity_account_id": "cust-1"}),
]


@pytest.mark.parametrize(("record_type", "record"), VALID)
def test_valid_records_have_no_errors(record_type: str, record: dict[str, Any]) -> None:
    """Records that follow every rule pass, including nulls, short offsets and Z."""
    assert _errors(record_type, record) == []


INVALID = [
    # ids
    ("contact", {"@type": "contact", "id": 42}, "id: must be a string, got 42"),
    ("contact", _contact(id="a b"), 'id: must not contain spaces, got "a b"'),
    ("contact", _contact(id=""), "id: must not be empty"),
    ("contact", _contact(customer_id=7), "customer_id: must be a string, got 7"),
    ("contact", _contact(customer_id="cust 7"),
     'customer_id: must not contain spaces, got "cust 7"'),
    ("order", _order(customer={"id": "c 1"}), 'customer.id: must not contain spaces, got "c 1"'),
    ("order", _order(lineitems=[_item(product_id="p 1")]),
     'lineitems[0].product_id: must not contain spaces, got "p 1"'),
    # timestamps
    ("contact", _contact(timestamp_subscribed="2024-03-01T10:15:00"),
     f'timestamp_subscribed: {NO_OFFSET} "2024-03-01T10:15:00" (no offset)'),
    ("contact", _contact(timestamp_subscribed="2024-03-01"),
     f'timestamp_subscribed: {NO_OFFSET} "2024-03-01" (no offset)'),
    ("order", _order(timestamp="01/03/2024 10:15"), f'timestamp: {NO_OFFSET} "01/03/2024 10:15"'),
    ("order", _order(timestamp="2024-02-30T10:15:00Z"),
     'timestamp: is not a real date-time, got "2024-02-30T10:15:00Z"'),
    ("order", _order(timestamp="2024-03-01 10:15:00+00:00"),
     f'timestamp: {NO_OFFSET} "2024-03-01 10:15:00+00:00" (date and time are separated by "T")'),
    ("order", _order(timestamp=1709288100), "timestamp: must be a string, got 1709288100"),
    ("contact", _contact(channels={"sms": {"dt_updated_marketing": "yesterday"}}),
     f'channels.sms.dt_updated_marketing: {NO_OFFSET} "yesterday"'),
    ("contact", _contact(date_of_birth="1990-02-30"),
     'date_of_birth: is not a real date (day is out of range for month), got "1990-02-30"'),
    ("contact", _contact(date_of_birth="30/01/1990"),
     'date_of_birth: must be a date written YYYY-MM-DD, got "30/01/1990"'),
    # codes
    ("order", _order(currency="gbp"),
     'currency: must be an ISO 4217 currency code such as "GBP", got "gbp" (did you mean "GBP"?)'),
    ("order", _order(currency="XYZ"),
     'currency: must be an ISO 4217 currency code such as "GBP", got "XYZ"'),
    ("order", _order(totals={"base": {"currency": "EURO", "grand_total": 1}}),
     'totals.base.currency: must be an ISO 4217 currency code such as "GBP", got "EURO"'),
    ("order", _order(billing_address={"country_code": "UK"}),
     'billing_address.country_code: must be an ISO 3166-1 alpha-2 country code such as "GB", '
     'got "UK" (did you mean "GB"?)'),
    ("product", _product(listings=[{"currency": "$"}]),
     'listings[0].currency: must be an ISO 4217 currency code such as "GBP", got "$"'),
    # money and quantities
    ("order", _order(discount=5.0), "discount: must be <= 0, got 5.0"),
    ("order", _order(lineitems=[_item(), _item(), _item(discount=5.0)]),
     "lineitems[2].discount: must be <= 0, got 5.0"),
    ("order", _order(lineitems=[_item(totals={"local": {"discount": 2}})]),
     "lineitems[0].totals.local.discount: must be <= 0, got 2"),
    ("order", _order(grand_total="12.50"), 'grand_total: must be a number, got "12.50"'),
    ("order", _order(lineitems=[_item(unit_price="5")]),
     'lineitems[0].unit_price: must be a number, got "5"'),
    ("order", _order(lineitems=[_item(quantity=1.5)]),
     "lineitems[0].quantity: must be an integer, got 1.5"),
    ("order", _order(lineitems=[_item(quantity=-1)]),
     "lineitems[0].quantity: must be >= 0, got -1"),
    ("order", _order(is_valid="yes"), 'is_valid: must be true or false, got "yes"'),
    ("order", _order(lineitems=[{"quantity": 1, "unit_price": 2.0}]),
     "lineitems[0]: needs one of product_id, sku (Ometria matches the product by them)"),
    ("order", _order(lineitems=[_item(variant_options=[{"type": "size", "id": "l"}])]),
     "lineitems[0].variant_options[0].label: is required"),
    ("order", _order(lineitems={"product_id": "p1"}),
     'lineitems: must be a list, got {"product_id":"p1"}'),
    # contacts
    ("contact", _contact(marketing_optin="yes"),
     'marketing_optin: must be one of EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT, NOT_SPECIFIED, '
     'got "yes"'),
    ("contact", _contact(email="ann@"), 'email: must be an email address, got "ann@"'),
    ("contact", _contact(email="ann example.com"),
     'email: must be an email address, got "ann example.com"'),
    ("order", _order(customer={"email": "ann@@example.com"}),
     'customer.email: must be an email address, got "ann@@example.com"'),
    ("contact", _contact(phone_number="07700 900123"),
     'phone_number: must be an E.164 phone number such as "+447700900123", got "07700 900123"'),
    ("contact", _contact(phone_number="+44 7700 900123"),
     'phone_number: must be an E.164 phone number such as "+447700900123", '
     'got "+44 7700 900123"'),
    # properties
    ("contact", _contact(properties={"address": {"city": "Leeds"}}),
     'properties.address: must be a string, number, boolean or a list of them, '
     'got {"city":"Leeds"}'),
    ("contact", _contact(properties={"nested": [[1]]}),
     "properties.nested[0]: must be a string, number or boolean, got [1]"),
    ("contact", _contact(properties="gold"), 'properties: must be an object, got "gold"'),
    # the text "null"
    ("contact", _contact(lastname="null"), f"lastname: {NULL_TEXT}"),
    ("contact", _contact(email="NULL"), f"email: {NULL_TEXT}"),
    ("contact", _contact(properties={"tier": "Null"}), f"properties.tier: {NULL_TEXT}"),
    ("contact", _contact(store_ids=["uk", "null"]), f"store_ids[1]: {NULL_TEXT}"),
    ("order", _order(shipping_address={"city": "null"}), f"shipping_address.city: {NULL_TEXT}"),
    # custom events
    ("custom_event", _event(event_type="e" * 32),
     f'event_type: must be under 32 characters (Ometria truncates longer names), got 32: '
     f'"{"e" * 32}"'),
    ("custom_event", _event(properties={"note": "x" * 513}),
     "properties.note: must be at most 512 characters, got 513"),
    ("custom_event", _event(properties={"notes": ["ok", "x" * 600]}),
     "properties.notes[1]: must be at most 512 characters, got 600"),
    ("custom_event", {"@type": "custom_event", "id": "e1", "event_type": "x"},
     "needs one of identity_email, identity_account_id, profile_id (Ometria links every event "
     "to a contact)"),
    ("custom_event", {"@type": "custom_event", "id": "e1", "identity_email": "a@b.co"},
     "event_type: is required (the event's type, as configured in Ometria)"),
    # the envelope
    ("contact", {"@type": "order", "id": "c1"}, '@type: must be "contact", got "order"'),
    ("widget", {"id": "w1"}, '@type: must be one of contact, order, product, custom_event, '
                             'got "widget"'),
]


@pytest.mark.parametrize(("record_type", "record", "message"), INVALID,
                         ids=[case[2][:60] for case in INVALID])
def test_each_rule_reports_its_exact_message(record_type: str, record: dict[str, Any],
                                             message: str) -> None:
    """A broken rule gives exactly one error, with the path and the value found."""
    assert _errors(record_type, record) == [message]


def test_every_problem_of_a_record_is_reported_not_only_the_first() -> None:
    """Type errors and value errors of one record come together, in field order."""
    record = _order(grand_total="12.50", currency="gbp", customer={"id": 5},
                    lineitems=[_item(quantity="2", discount=3)])
    assert _errors("order", record) == [
        'grand_total: must be a number, got "12.50"',
        "customer.id: must be a string, got 5",
        'lineitems[0].quantity: must be an integer, got "2"',
        'currency: must be an ISO 4217 currency code such as "GBP", got "gbp" '
        '(did you mean "GBP"?)',
        "lineitems[0].discount: must be <= 0, got 3",
    ]


CREATE = [
    ("order", _order(), [
        'timestamp: is required to create an order (mode = "create")',
        'grand_total: is required to create an order without totals (mode = "create")',
        'currency: is required to create an order without totals (mode = "create")']),
    ("order", _order(timestamp="2024-03-01T10:15:00Z", totals={
        "base": {"currency": "GBP", "grand_total": 1}, "local": {"currency": "GBP",
                                                                 "grand_total": 1}}), []),
    ("order", _order(timestamp="2024-03-01T10:15:00Z", grand_total=None, currency="GBP"),
     ['grand_total: is required to create an order without totals (mode = "create")']),
    ("order", _order(timestamp="2024-03-01T10:15:00Z", grand_total=1, currency="GBP",
                     lineitems=[{"product_id": "p1"}]),
     ["lineitems[0].quantity: is required in a line item",
      "lineitems[0]: needs one of unit_price, subtotal (the line item's price)"]),
    ("contact", _contact(email="ann@example.com"),
     ['@collection: is required to create a contact (mode = "create")']),
    ("contact", _contact(**{"@collection": "shop"}),
     ['needs one of email, customer_id, phone_number to create a contact (mode = "create")']),
    ("product", _product(), ['title: is required to create a product (mode = "create")']),
    ("custom_event", _event(), ['timestamp: is required to create an event (mode = "create")']),
]


@pytest.mark.parametrize(("record_type", "record", "messages"), CREATE)
def test_create_mode_requires_what_a_new_record_needs(record_type: str, record: dict[str, Any],
                                                      messages: list[str]) -> None:
    """mode = "create" adds the required fields; the same records pass as updates."""
    assert _errors(record_type, record, mode="create") == messages
    if record_type != "custom_event":
        assert _errors(record_type, record) == []


def test_partial_updates_pass_and_incomplete_line_items_are_only_warnings() -> None:
    """Ometria merges partial records: update mode needs only the id and well-typed fields."""
    record = _order(lineitems=[{"sku": "S1"}])
    assert _errors("order", record) == []
    assert _warnings("order", record) == [
        "lineitems[0].quantity: is required in a line item",
        "lineitems[0]: needs one of unit_price, subtotal (the line item's price)"]


def test_unknown_fields_are_warnings_and_errors_when_strict() -> None:
    """Unknown fields are kept and counted; strict = true refuses the record."""
    record = _order(loyalty_points=3, lineitems=[_item(colour="red")])
    expected = ["loyalty_points: unknown field (sent as it is; strict = true refuses it)",
                "lineitems[0].colour: unknown field (sent as it is; strict = true refuses it)"]
    verdict = validate_record("order", record)
    assert verdict.ok and [str(p) for p in verdict.warnings] == expected
    strict = validate_record("order", record, strict=True)
    assert [str(p) for p in strict.errors] == expected


def test_unsure_rules_warn_instead_of_refusing() -> None:
    """Rules the reference marks unconfirmed never refuse a record Ometria would take."""
    record = _contact(gender="x", **{"@collection": "optin:sms"})
    verdict = validate_record("contact", record)
    assert verdict.ok
    assert [str(p) for p in verdict.warnings] == [
        'gender: is usually one of m, f, o, got "x" (kept: Ometria\'s values are unconfirmed)',
        '@collection: "optin:sms" is one of Ometria\'s SMS double opt-in collections: pushing '
        "here sends or records an SMS opt-in"]
    assert _warnings("product", _product(price=0)) == [
        "price: should be > 0 on a parent product for recommendations, got 0"]
    assert _warnings("product", _product(price=0, is_variant=True)) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("country_id", "UK", 'must be an ISO 3166-1 alpha-2 country code such as "GB", got "UK" '
                         '(did you mean "GB"?)'),
    ("country_id", "gb", 'must be an ISO 3166-1 alpha-2 country code such as "GB", got "gb" '
                         '(did you mean "GB"?)'),
    ("phone_number", "07700 900123",
     'must be an E.164 phone number such as "+447700900123", got "07700 900123"'),
    ("marketing_optin", "1", "must be one of EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT, "
                             'NOT_SPECIFIED, got "1"'),
])
def test_a_value_breaking_a_documented_format_is_refused(
        field: str, value: str, message: str) -> None:
    """Issue 29: Ometria documents these formats, so a value breaking one is refused (with
    the hint), never sent with a warning Ometria may not understand."""
    verdict = validate_record("contact", _contact(**{field: value}))
    assert [str(p) for p in verdict.errors] == [f"{field}: {message}"]
    assert verdict.warnings == []


def test_a_currency_breaking_iso_4217_is_refused() -> None:
    assert _errors("order", _order(currency="gbp")) == [
        'currency: must be an ISO 4217 currency code such as "GBP", got "gbp" '
        '(did you mean "GBP"?)']


def test_payloads_real_integrations_send_today_pass() -> None:
    """Z timestamps, subtotal without unit_price, channels.sms, event identities."""
    assert _errors("order", _order(timestamp="2024-03-01T10:15:00Z", currency="GBP",
                                   grand_total=10.0,
                                   lineitems=[{"product_id": "p1", "quantity": 2,
                                               "subtotal": 10.0}]), mode="create") == []
    assert _warnings("order", _order(lineitems=[{"product_id": "p1", "quantity": 2,
                                                  "subtotal": 10.0}])) == []
    assert _errors("contact", _contact(channels={"sms": {"allow_marketing": True}})) == []
    assert _errors("custom_event", {"@type": "custom_event", "id": "e1", "event_type": "x",
                                    "identity_email": "a@example.com",
                                    "identity_account_id": "cust-1"}) == []


def test_the_record_is_not_modified() -> None:
    """Validation reads the record; what is sent is what was read."""
    record = _order(grand_total="1", lineitems=[_item(extra=1)], unknown=None)
    copy = {**record, "lineitems": [dict(record["lineitems"][0])]}
    validate_record("order", record, mode="create", strict=True)
    assert record == copy
