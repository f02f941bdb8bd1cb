"""The ``kind = "magento2"`` source table of the job file: which Magento entity, where its
database is, which store views; checked once at start-up, each error naming its key.

    source = { kind = "magento2", entity = "orders", dsn_env = "MAGENTO_DSN",
               table_prefix = "", store_ids = [1, 2], page_size = 1000, lookback_seconds = 300 }

The keys live here and the tables each entity reads (:data:`TABLES`); what opens the source
is in :mod:`.config`, so the readers depend on the settings and never the other way.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from ometria_sync.errors import ConfigError
from ometria_sync.net import parse_mysql_dsn
from ometria_sync.sources.base import SourceConfig
from ometria_sync.sources.sql_settings import check_sweep_every, dsn_missing

Entity = Literal["products", "contacts", "orders"]

#: the record type each entity yields
RECORD_TYPES: dict[str, str] = {"products": "product", "contacts": "contact",
                                "orders": "order"}

_STORES = ("store",)
_EAV = ("eav_entity_type", "eav_attribute")
#: the tables each entity reads (without the prefix), checked by the preflight
TABLES: dict[str, tuple[str, ...]] = {
    "products": ("catalog_product_entity", *(f"catalog_product_entity_{t}" for t in
                                             ("varchar", "int", "decimal", "datetime", "text")),
                 *_EAV, "cataloginventory_stock_item", "catalog_product_super_link",
                 "catalog_product_website", *_STORES, "core_config_data",
                 "directory_currency_rate"),
    "contacts": ("customer_entity", "customer_address_entity", "newsletter_subscriber",
                 *_STORES),
    "orders": ("sales_order", "sales_order_item", "sales_order_address", "sales_order_payment",
               "eav_attribute", *_STORES),
}

_PREFIX = re.compile(r"[A-Za-z0-9_]*")


class Magento2Settings(SourceConfig, frozen=True, kw_only=True):
    """The keys of a ``magento2`` source (docs/magento2.md)."""

    entity: Entity
    #: the variable holding ``mysql://USER:PASSWORD@HOST[:3306]/DATABASE``
    dsn_env: str
    #: Magento's ``db_prefix``, before every table name
    table_prefix: str = ""
    #: store views to read (absent: every store view)
    store_ids: list[int] | None = None
    page_size: int = 1000
    #: a resumed read of a timestamp key starts this many seconds before its checkpoint
    lookback_seconds: float = 300.0
    connect_timeout: float = 10.0
    #: ``on_missing = "deactivate"``: how often every current id is listed (:mod:`.keys`)
    sweep_every: str = "7d"

    def check(self, key: str) -> None:
        if not _PREFIX.fullmatch(self.table_prefix):
            raise ConfigError(f"{key}.table_prefix", "letters, digits and _ only (Magento's "
                                                     f"db_prefix), got {self.table_prefix!r}")
        if not 1 <= self.page_size <= 100_000:
            raise ConfigError(f"{key}.page_size", f"must be 1..100000, got {self.page_size}")
        if not self.lookback_seconds >= 0:
            raise ConfigError(f"{key}.lookback_seconds",
                              f"must be >= 0, got {self.lookback_seconds}")
        if self.store_ids is not None and (not self.store_ids
                                           or any(s <= 0 for s in self.store_ids)):
            raise ConfigError(f"{key}.store_ids", "list store view ids (> 0; 0 is the admin "
                                                  "store), or leave the key out for all views")
        check_sweep_every(f"{key}.sweep_every", self.sweep_every)

    def check_record_type(self, key: str, record_type: str) -> None:
        expected = RECORD_TYPES[self.entity]
        if record_type != expected:
            raise ConfigError(f"{key}.entity", f"entity {self.entity!r} yields {expected} "
                                               f"records but the stream's record_type is "
                                               f"{record_type!r}")

    def check_credentials(self, key: str) -> None:
        dsn = os.environ.get(self.dsn_env, "")
        if not dsn:
            raise ConfigError(f"{key}.dsn_env", dsn_missing(self.dsn_env))
        try:
            parse_mysql_dsn(dsn)
        except ValueError as exc:
            raise ConfigError(f"{key}.dsn_env", f"{self.dsn_env}: {exc}") from None

    def table(self, name: str) -> str:
        """A table's name in this database, quoted."""
        return f"`{self.table_prefix}{name}`"

    def selected(self, store_id: int) -> bool:
        """Whether ``store_id`` is one of the views to read (``store_ids``, else every one)."""
        return store_id > 0 and (self.store_ids is None or store_id in self.store_ids)

