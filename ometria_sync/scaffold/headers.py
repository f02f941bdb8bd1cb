"""Which record field a CSV column most likely fills, from its header name: the one matching
table ``ometria-sync init`` uses.

Names are compared after :func:`normal` (lower case, every run of other characters one ``_``):
``First Name``, ``first_name`` and ``FIRST-NAME`` are one name. Each name belongs to one field
of a record type (the tests hold the table to that), and each field takes at most one column:
when a header has two names of one field (``entity_id`` and ``id``), the one listed first here
wins and the other is left unmapped. A column type is never listed here: it is read from the
field's type in the schema (``price`` is a number, ``timestamp_acquired`` a timestamp), so the
two cannot disagree.

Each entry's ``conventions`` (what they do: the ``conventions`` module) turn a platform's
cells into what Ometria takes, when the column's sampled cells show that they need it:
Magento's 1/2/3 genders, 0/1 subscriptions, positive item discounts, URL keys; Shopify's yes/no
consent and apostrophe-prefixed ids; local phone numbers, UK countries, 31/12/1980 dates.

Names come from the exports shops make: Magento 2's admin exports (customers main file,
catalog products, orders), Shopify's customer, product and order CSVs, and common hand-made
names. Hints say what a platform's values need before Ometria takes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from ometria_sync.scaffold import conventions as c
from ometria_sync.scaffold.conventions import Computed, Convention, Conversion, Sample
from ometria_sync.schemas import FieldDoc, RecordType, field_guide


class Known(msgspec.Struct, frozen=True):
    """A field and the header names that fill it, best first; ``hint`` says what the values
    of such a column often need."""

    field: str
    names: tuple[str, ...]
    hint: str = ""
    #: a hint for one of the names only (it wins over ``hint``)
    name_hints: tuple[tuple[str, str], ...] = ()
    #: what the cells may need, tried in order: the first that applies is written
    conventions: tuple[Convention, ...] = ()
    #: conventions for one of the names only (they win over ``conventions``)
    name_conventions: tuple[tuple[str, tuple[Convention, ...]], ...] = ()
    #: other fields the column fills as well (a contact's id is its customer_id too)
    also: tuple[str, ...] = ()
    #: for one of the names: fields computed from its cell when no column fills them
    name_computes: tuple[tuple[str, Computed], ...] = ()


_OPTIN = ('cells must read EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT or NOT_SPECIFIED: Magento '
          'writes 1/0, Shopify yes/no; map them with a value map, e.g. values = { "1" = '
          '"EXPLICITLY_OPTEDIN", "0" = "NOT_SPECIFIED" }')
_GENDER = ('Magento writes 1/2/3 (male/female/not specified); Ometria takes m, f, o: '
           'values = { "1" = "m", "2" = "f", "3" = "" }')
_PHONE = ("Ometria takes E.164 (+447700900123): a local number needs e.g. "
          "expr = \"e164(value, 'GB')\"")
_COUNTRY = "ISO 3166-1 alpha-2: GB, not UK or United Kingdom"
_LOCAL_TIME = "a time without an offset is read in the source's timezone"
_STATUS = ('Magento writes 1 enabled / 2 disabled, Shopify active/draft/archived: '
           'values = { "1" = true, "2" = false }')
_SLUG = ("a URL key, not a URL: Ometria wants the page's full URL "
         "(expr = \"'https://shop.example/' + value + '.html'\")")
_DISCOUNT = ("Ometria's discounts are <= 0: Magento and Shopify write item discounts "
             "positive (expr = \"-value\")")
_HANDLE = ("Shopify writes one row per variant, each with the product's Handle: every row is "
           "sent as this one product (the last wins); map Variant SKU to id for a product "
           "per variant")
_IMAGE = "Magento writes a path under /media/catalog/product: Ometria wants the full URL"

_OPTEDIN, _NOT_SPECIFIED = "EXPLICITLY_OPTEDIN", "NOT_SPECIFIED"
_NO = "; a 'no' is NOT_SPECIFIED, not EXPLICITLY_OPTEDOUT: it does not say the customer opted out"
_OPTINS = c.value_map(
    ({"1": _OPTEDIN, "0": _NOT_SPECIFIED}, "Magento's is_subscribed: 1 subscribed, 0 not" + _NO),
    ({"yes": _OPTEDIN, "no": _NOT_SPECIFIED}, "Shopify's yes/no consent" + _NO),
    ({"Yes": _OPTEDIN, "No": _NOT_SPECIFIED}, "yes/no consent" + _NO),
    ({"true": _OPTEDIN, "false": _NOT_SPECIFIED}, "true/false consent" + _NO),
    ({"TRUE": _OPTEDIN, "FALSE": _NOT_SPECIFIED}, "TRUE/FALSE consent" + _NO),
)
_GENDERS = c.value_map(({"1": "m", "2": "f", "3": ""},
                        "Magento's genders: 1 male, 2 female, 3 not specified (left out)"))
_ACTIVE = c.value_map(
    ({"1": True, "2": False}, "Magento's status: 1 enabled, 2 disabled"),
    ({"active": True, "draft": False, "archived": False},
     "Shopify's status: active, draft or archived"),
)
_ID = (c.as_text,)
_DATE = (c.calendar_date,)
_TIME = (c.timestamp,)
_DISCOUNTS = (c.negate_positive,)
_COUNTRY_CODES = (c.country,)

#: the one matching table: record type -> the fields a column name can fill
KNOWN: dict[RecordType, tuple[Known, ...]] = {
    "contact": (
        Known("id", ("entity_id", "id", "customer_id", "customer_entity_id"),
              conventions=_ID, also=("customer_id",)),
        Known("email", ("email", "e_mail", "email_address", "customer_email")),
        Known("firstname", ("firstname", "first_name", "given_name", "forename")),
        Known("lastname", ("lastname", "last_name", "surname", "family_name")),
        Known("middlename", ("middlename", "middle_name")),
        Known("prefix", ("prefix", "salutation")),
        Known("gender", ("gender", "sex"), _GENDER, conventions=(_GENDERS,)),
        Known("date_of_birth", ("dob", "date_of_birth", "birthday", "birth_date", "birthdate"),
              "Ometria takes YYYY-MM-DD: 31/12/1980 needs expr = \"date(value, '%d/%m/%Y')\"",
              conventions=_DATE),
        Known("timestamp_acquired", ("created_at", "created", "date_created", "signup_date",
                                     "registered_at", "customer_since"), _LOCAL_TIME,
              conventions=_TIME),
        Known("phone_number", ("phone", "telephone", "phone_number", "mobile", "mobile_phone",
                               "default_address_phone", "billing_telephone"), _PHONE,
              conventions=(c.phone,)),
        Known("country_id", ("country_id", "country", "country_code",
                             "default_address_country_code", "billing_country_id"), _COUNTRY,
              conventions=_COUNTRY_CODES),
        Known("marketing_optin", ("is_subscribed", "accepts_email_marketing",
                                  "accepts_marketing", "subscribed", "newsletter",
                                  "marketing_optin"), _OPTIN, conventions=(_OPTINS,)),
        Known("timestamp_subscribed", ("subscribed_at", "change_status_at"), _LOCAL_TIME,
              conventions=_TIME),
        Known("timezone", ("timezone", "time_zone")),
    ),
    "product": (
        Known("id", ("entity_id", "id", "product_id", "handle"), name_hints=(("handle", _HANDLE),),
              conventions=_ID, name_computes=(("handle", c.SHOPIFY_URL),)),
        Known("sku", ("sku", "variant_sku")),
        Known("title", ("name", "title", "product_name")),
        Known("price", ("price", "variant_price", "regular_price")),
        Known("special_price", ("special_price", "sale_price")),
        Known("special_price_dt_from", ("special_price_from_date", "special_from_date"),
              _LOCAL_TIME, conventions=_TIME),
        Known("special_price_dt_to", ("special_price_to_date", "special_to_date"), _LOCAL_TIME,
              conventions=_TIME),
        # Shopify writes Status and Published: Status (archived too) wins
        Known("is_active", ("product_online", "is_active", "enabled", "status", "published"),
              _STATUS, conventions=(_ACTIVE,)),
        Known("is_in_stock", ("is_in_stock", "in_stock", "stock_status")),
        Known("url", ("url", "product_url", "url_key"), name_hints=(("url_key", _SLUG),),
              name_conventions=(("url_key", (c.url_from_key,)),)),
        Known("image_url", ("image_url", "image", "base_image", "image_src", "variant_image"),
              _IMAGE, conventions=(c.url_from_path,)),
        Known("currency", ("currency", "currency_code")),
        Known("parent_id", ("parent_id", "parent_sku")),
        Known("is_variant", ("is_variant",)),
    ),
    "order": (
        Known("id", ("increment_id", "order_id", "order_number", "id", "entity_id", "name")),
        Known("timestamp", ("created_at", "order_date", "purchase_date", "placed_at", "created",
                            "date"), _LOCAL_TIME, conventions=_TIME),
        Known("grand_total", ("grand_total", "total", "order_total", "grand_total_purchased")),
        Known("subtotal", ("subtotal",)),
        Known("discount", ("discount_amount", "discount"),
              "Ometria's discounts are <= 0: Shopify writes them positive (expr = \"-value\")",
              conventions=_DISCOUNTS),
        Known("shipping", ("shipping_amount", "shipping")),
        Known("tax", ("tax_amount", "taxes", "tax")),
        Known("currency", ("order_currency_code", "currency", "currency_code",
                           "base_currency_code")),
        Known("status", ("status", "order_status", "financial_status")),
        Known("customer.email", ("customer_email", "email")),
        Known("customer.id", ("customer_id",)),
        Known("customer.firstname", ("customer_firstname", "customer_first_name")),
        Known("customer.lastname", ("customer_lastname", "customer_last_name")),
        Known("coupon_code", ("coupon_code", "discount_code")),
        Known("payment_method", ("payment_method",)),
        Known("shipping_method", ("shipping_method", "shipping_description")),
        Known("store", ("store", "store_code", "store_name")),
        Known("channel", ("channel", "source")),
        Known("billing_address.city", ("billing_city",)),
        Known("billing_address.postcode", ("billing_postcode", "billing_zip")),
        Known("billing_address.country_code", ("billing_country_id", "billing_country",
                                               "billing_country_code"), _COUNTRY,
              conventions=_COUNTRY_CODES),
        Known("shipping_address.city", ("shipping_city",)),
        Known("shipping_address.postcode", ("shipping_postcode", "shipping_zip")),
        Known("shipping_address.country_code", ("shipping_country_id", "shipping_country",
                                                "shipping_country_code"), _COUNTRY,
              conventions=_COUNTRY_CODES),
        Known("lineitems[].sku", ("sku", "item_sku", "lineitem_sku", "product_sku")),
        Known("lineitems[].product_id", ("product_id", "item_product_id")),
        Known("lineitems[].variant_id", ("variant_id", "item_variant_id")),
        Known("lineitems[].quantity", ("qty_ordered", "item_qty_ordered", "qty", "quantity",
                                       "lineitem_quantity")),
        Known("lineitems[].unit_price", ("item_price", "lineitem_price", "unit_price", "price")),
        Known("lineitems[].discount", ("item_discount_amount", "lineitem_discount",
                                       "item_discount"), _DISCOUNT, conventions=_DISCOUNTS),
        Known("lineitems[].tax", ("item_tax_amount", "lineitem_tax")),
        # Magento's row_total is price x quantity, before discount and tax
        Known("lineitems[].subtotal", ("row_total", "item_row_total")),
        Known("lineitems[].total", ("lineitem_total",)),
    ),
    "custom_event": (
        Known("id", ("event_id", "id")),
        Known("event_type", ("event_type", "type", "event")),
        Known("timestamp", ("timestamp", "created_at", "occurred_at", "date"), _LOCAL_TIME,
              conventions=_TIME),
        Known("identity_email", ("email", "identity_email", "customer_email")),
        Known("identity_account_id", ("customer_id", "account_id", "identity_account_id")),
        Known("profile_id", ("profile_id",)),
        Known("store_id", ("store_id",)),
    ),
}

_SEPARATORS = re.compile(r"[^0-9a-z]+")


def normal(name: str) -> str:
    """``" First Name "`` -> ``first_name``; ``Body (HTML)`` -> ``body_html``."""
    return _SEPARATORS.sub("_", name.strip().lower()).strip("_")


class ColumnMatch(msgspec.Struct, frozen=True):
    """A header column and the field it fills (None: no known field), with the CSV type its
    cells are read as, a hint about its values, and the options a convention wrote (with the
    notes that say why: a note starting ``CHECK:`` is an assumption the user must check)."""

    column: str
    field: str | None
    type: str = "string"
    hint: str = ""
    also: tuple[str, ...] = ()
    values: dict[str, Any] | None = None
    expr: str | None = None
    on_error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return () if self.field is None else (self.field, *self.also)


#: column types by the JSON type of the field (a string field's type comes from its check)
_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}
_CHECK_TYPES = {"timestamp_problem": "timestamp", "date_problem": "date"}
#: record type -> the field whose column is the id when no column is (and how it is written)
ID_STAND_INS: dict[str, tuple[str, str | None, str]] = {
    "contact": ("email", "lower(value)", "the email (in lower case: one customer, one id)"),
    "product": ("sku", None, "the SKU"),
}


def cell_type(doc: FieldDoc) -> str:
    """How a column filling the field ``doc`` describes is read: ``price`` as a number,
    ``timestamp_acquired`` as a timestamp, an id as a string."""
    return _TYPES.get(doc.type) or _CHECK_TYPES.get(doc.check or "", "string")


def match_header(record_type: RecordType, header: list[str],
                 rows: Sequence[Sequence[str]] = (), region: str = "GB") -> list[ColumnMatch]:
    """One match per column of ``header``, in header order; with ``rows`` (the sample), each
    column's conventions are tried on its cells."""
    docs = {d.path: d for d in field_guide(record_type)}
    by_name: dict[str, list[int]] = {}
    for index, column in enumerate(header):
        by_name.setdefault(normal(column), []).append(index)
    chosen: dict[int, tuple[Known, str]] = {}
    for known in KNOWN[record_type]:
        for name in known.names:
            free = [i for i in by_name.get(name, []) if i not in chosen]
            if free:
                chosen[free[0]] = known, name
                break
    matches = []
    for index, column in enumerate(header):
        found = chosen.get(index)
        if found is None:
            matches.append(ColumnMatch(column, None))
            continue
        known, name = found
        match = ColumnMatch(column, known.field, cell_type(docs[known.field]),
                            dict(known.name_hints).get(name, known.hint), known.also)
        if rows:
            cells = tuple(cell for row in rows if index < len(row) and (cell := row[index].strip()))
            tried = dict(known.name_conventions).get(name, known.conventions)
            match = _convert(match, tried, Sample(cells, region))
        matches.append(match)
    return _stand_in_id(record_type, matches)


def _convert(match: ColumnMatch, tried: tuple[Convention, ...], sample: Sample) -> ColumnMatch:
    for convention in tried:
        found = convention(sample)
        if found is not None:
            return _with(match, found)
    return match


def _with(match: ColumnMatch, found: Conversion) -> ColumnMatch:
    kind = match.type if found.type is None else (found.type or "string")
    return msgspec.structs.replace(match, type=kind, hint="", values=found.values,
                                   expr=found.expr, on_error=found.on_error, notes=found.notes)


def computed_columns(record_type: RecordType, matches: list[ColumnMatch]) -> list[ColumnMatch]:
    """Fields no column fills that the table computes from a mapped column's cell (Shopify's
    product URL from its Handle): computed columns, keyed by the field's name (never one of
    the header's)."""
    filled = {f for m in matches for f in m.fields}
    taken = {m.column for m in matches}
    knowns = {k.field: k for k in KNOWN[record_type]}
    out = []
    for match in matches:
        known = knowns.get(match.field or "")
        computes = dict(known.name_computes) if known else {}
        computed = computes.get(normal(match.column))
        if computed is None or computed.field in filled or computed.field in taken:
            continue
        filled.add(computed.field)
        out.append(ColumnMatch(computed.field, computed.field,
                               expr=computed.expr.format(cell=c.cell_of(match.column)),
                               notes=(computed.note,)))
    return out


def _stand_in_id(record_type: str, matches: list[ColumnMatch]) -> list[ColumnMatch]:
    """With no id column, the column Ometria's records of the type are usually keyed by
    (a contact's email, a product's SKU) fills the id too, and says so."""
    stand_in = ID_STAND_INS.get(record_type)
    if stand_in is None or any("id" in m.fields for m in matches):
        return matches
    field, expr, what = stand_in
    out = []
    for match in matches:
        if match.field == field and "id" not in match.fields:
            note = (f"{c.CHECK}the export has no id column: {what} is each record's id; "
                    "map your own id column to id if you have one")
            match = msgspec.structs.replace(match, also=("id", *match.also),
                                            expr=match.expr or expr,
                                            notes=(note, *match.notes))
            field = ""
        out.append(match)
    return out
