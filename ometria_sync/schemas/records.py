"""Ometria's push records as msgspec Structs: the fields each type has and their JSON types.

These Structs say the *shape*: which fields exist, which are objects or lists of objects, and
which JSON type each holds (ids and codes are strings, money is a number, quantities are
integers; nothing is coerced). The value rules (formats, code lists, signs, what a new record
needs) live in :mod:`ometria_sync.schemas.rules`.

Every optional field may be JSON ``null``: Ometria deletes the stored value of a field sent as
null. A missing field (``UNSET``) leaves the stored value alone, because Ometria merges partial
records into existing ones. Fields are named as on the wire (``@type``, ``@merge``...).
Sources: ``shared/reference/ometria-data-api.md`` section 5 and seed document 003.
"""

from __future__ import annotations

from typing import Literal, get_args

from msgspec import UNSET, Struct, UnsetType, field

Scalar = str | int | float | bool | None
#: Custom key/values: scalars, or lists of scalars (product lists in custom events).
Properties = dict[str, Scalar | list[Scalar]]

Str = str | None | UnsetType
Number = float | None | UnsetType  # JSON integers are numbers too
Int = int | None | UnsetType
Bool = bool | None | UnsetType
Props = Properties | None | UnsetType
StrList = list[str] | None | UnsetType


class _Shape(Struct, gc=False, omit_defaults=True):
    """Base of every record part: unknown fields are allowed here (the rules report them)."""


# --- contact -------------------------------------------------------------------------------

class SmsChannel(_Shape):
    """SMS consent: ``channels.sms``."""

    allow_marketing: Bool = UNSET
    allow_transactional: Bool = UNSET
    dt_updated_marketing: Str = UNSET
    dt_updated_transactional: Str = UNSET


class ContactChannels(_Shape):
    sms: SmsChannel | UnsetType | None = UNSET


class Contact(_Shape):
    """One listing of a person in one collection; Ometria clusters listings into profiles."""

    id: str
    type: Str = field(name="@type", default=UNSET)
    collection: Str = field(name="@collection", default=UNSET)
    merge: Bool = field(name="@merge", default=UNSET)
    force_optin: Bool = field(name="@force_optin", default=UNSET)
    add_to_lists: list[int | str] | UnsetType | None = field(name="@add_to_lists", default=UNSET)
    remove_from_lists: list[int | str] | UnsetType | None = field(
        name="@remove_from_lists", default=UNSET)
    email: Str = UNSET
    customer_id: Str = UNSET
    phone_number: Str = UNSET
    marketing_optin: Str = UNSET
    timestamp_acquired: Str = UNSET
    timestamp_subscribed: Str = UNSET
    timestamp_unsubscribed: Str = UNSET
    prefix: Str = UNSET
    firstname: Str = UNSET
    middlename: Str = UNSET
    lastname: Str = UNSET
    gender: Str = UNSET
    date_of_birth: Str = UNSET
    country_id: Str = UNSET
    timezone: Str = UNSET
    store_ids: StrList = UNSET
    properties: Props = UNSET
    channels: ContactChannels | UnsetType | None = UNSET


# --- order ---------------------------------------------------------------------------------

class OrderAddress(_Shape):
    city: Str = UNSET
    state: Str = UNSET
    postcode: Str = UNSET
    country_code: Str = UNSET


class OrderCustomer(_Shape):
    """``id`` is the contact's ``customer_id``: it links the order to the profile."""

    id: Str = UNSET
    email: Str = UNSET
    firstname: Str = UNSET
    lastname: Str = UNSET


class OrderTotal(_Shape):
    """``totals.base`` / ``totals.local`` of an OrderExtended (multi-currency) order."""

    currency: str
    grand_total: float
    shipping: Number = UNSET
    tax: Number = UNSET
    discount: Number = UNSET
    subtotal: Number = UNSET


class OrderTotals(_Shape):
    base: OrderTotal | UnsetType | None = UNSET
    local: OrderTotal | UnsetType | None = UNSET


class LineItemTotal(_Shape):
    """``lineitems[i].totals.base`` / ``.local``."""

    currency: Str = UNSET
    unit_price: Number = UNSET
    discount: Number = UNSET
    refunded: Number = UNSET
    subtotal: Number = UNSET
    tax: Number = UNSET
    total: Number = UNSET


class LineItemTotals(_Shape):
    base: LineItemTotal | UnsetType | None = UNSET
    local: LineItemTotal | UnsetType | None = UNSET


class OrderLineItemVariantOption(_Shape):
    type: str
    id: str
    label: str


class OrderLineItem(_Shape):
    """One product line. One of ``product_id`` / ``sku`` names the product."""

    product_id: Str = UNSET
    variant_id: Str = UNSET
    sku: Str = UNSET
    quantity: Int = UNSET
    quantity_refunded: Int = UNSET
    unit_price: Number = UNSET
    refunded: Number = UNSET
    subtotal: Number = UNSET
    tax: Number = UNSET
    total: Number = UNSET
    discount: Number = UNSET
    is_on_sale: Bool = UNSET
    variant_options: list[OrderLineItemVariantOption] | UnsetType | None = UNSET
    totals: LineItemTotals | UnsetType | None = UNSET
    properties: Props = UNSET


class Order(_Shape):
    """An order in the simple form (``grand_total`` + ``currency``) or the OrderExtended form
    (``totals.base`` and ``totals.local``)."""

    id: str
    type: Str = field(name="@type", default=UNSET)
    merge: Bool = field(name="@merge", default=UNSET)
    timestamp: Str = UNSET
    grand_total: Number = UNSET
    subtotal: Number = UNSET
    discount: Number = UNSET
    shipping: Number = UNSET
    tax: Number = UNSET
    currency: Str = UNSET
    totals: OrderTotals | UnsetType | None = UNSET
    web_id: Str = UNSET
    status: Str = UNSET
    is_valid: Bool = UNSET
    customer: OrderCustomer | UnsetType | None = UNSET
    lineitems: list[OrderLineItem] | UnsetType | None = UNSET
    ip_address: Str = UNSET
    channel: Str = UNSET
    store: Str = UNSET
    payment_method: Str = UNSET
    shipping_method: Str = UNSET
    shipping_address: OrderAddress | UnsetType | None = UNSET
    billing_address: OrderAddress | UnsetType | None = UNSET
    coupon_code: Str = UNSET
    properties: Props = UNSET


# --- product -------------------------------------------------------------------------------

class ProductAttribute(_Shape):
    """Category, brand, colour...; Ometria replaces the whole list on every update."""

    type: str
    id: str
    label: Str = UNSET


class ProductListing(_Shape):
    """Per-store overrides of a product's fields."""

    store: Str = UNSET
    title: Str = UNSET
    url: Str = UNSET
    image_url: Str = UNSET
    price: Number = UNSET
    currency: Str = UNSET
    is_active: Bool = UNSET
    special_price: Number = UNSET


class Product(_Shape):
    """A product page, or a variant of one (``is_variant``)."""

    id: str
    type: Str = field(name="@type", default=UNSET)
    merge: Bool = field(name="@merge", default=UNSET)
    title: Str = UNSET
    sku: Str = UNSET
    price: Number = UNSET
    currency: Str = UNSET
    url: Str = UNSET
    image_url: Str = UNSET
    is_active: Bool = UNSET
    is_in_stock: Bool = UNSET
    is_variant: Bool = UNSET
    parent_id: Str = UNSET
    special_price: Number = UNSET
    special_price_dt_from: Str = UNSET
    special_price_dt_to: Str = UNSET
    attributes: list[ProductAttribute] | UnsetType | None = UNSET
    stores: StrList = UNSET
    listings: list[ProductListing] | UnsetType | None = UNSET
    properties: Props = UNSET


# --- custom event --------------------------------------------------------------------------

class CustomEvent(_Shape):
    """Something a contact did, for segments and automations; needs one identity."""

    id: str
    type: Str = field(name="@type", default=UNSET)
    event_type: Str = UNSET
    timestamp: Str = UNSET
    identity_email: Str = UNSET
    identity_account_id: Str = UNSET
    profile_id: Str = UNSET
    store_id: Str = UNSET
    properties: Props = UNSET


#: the push record types, the one place they are named
RecordType = Literal["contact", "order", "product", "custom_event"]
RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)

RECORD_STRUCTS: dict[str, type[_Shape]] = {
    "contact": Contact,
    "order": Order,
    "product": Product,
    "custom_event": CustomEvent,
}
