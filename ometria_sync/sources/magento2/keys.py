"""The Magento preset's keys sweep (``on_missing = "deactivate"``): Magento deletes rows
outright, so no read by cursor ever sees a product, customer or order go; every
``sweep_every`` the sweep lists every id the preset would send now, and the delivered ids it
does not list are deactivated (``pipeline/deletions.py``).

Each entity's list is a MySQL source of its own over the preset's DSN (the SQL sources' keys
sweep machinery), read by the integer primary keys, with the ids spelled as the readers send
them and the same ``table_prefix`` and ``store_ids`` filters:

* products: every ``catalog_product_entity`` row (the preset reads every product), its
  ``entity_id``;
* contacts: customers of the selected views' websites (``entity_id``) and guest subscribers
  of the selected views (``subscriber-`` and ``subscriber_id``), as :mod:`.contacts` reads them;
* orders: ``sales_order`` of the selected views, ``increment_id`` trimmed.
"""

from __future__ import annotations

from ometria_sync.sources.magento2.contacts import guests_where, websites
from ometria_sync.sources.magento2.settings import Magento2Settings
from ometria_sync.sources.mysql import MysqlSourceConfig
from ometria_sync.sources.sql_settings import MARKER


def _views(settings: Magento2Settings, column: str) -> str:
    """``AND column IN (store_ids)`` (nothing without ``store_ids``)."""
    if settings.store_ids is None:
        return ""
    return f" AND {column} IN ({', '.join(map(str, settings.store_ids))})"


def keys_query(settings: Magento2Settings) -> tuple[str, list[str]]:
    """The query listing every id the entity's read would send now, and the integer keys it is
    read by: a table's primary key (the keyset predicate placed on it, so the index serves
    every page), or for contacts ``(k0, k1)`` over customers then guest subscribers."""
    t = settings.table
    if settings.entity == "products":
        return (f"SELECT entity_id, CAST(entity_id AS CHAR) AS id FROM "
                f"{t('catalog_product_entity')} WHERE {MARKER}", ["entity_id"])
    if settings.entity == "orders":
        return (f"SELECT entity_id, TRIM(increment_id) AS id FROM {t('sales_order')} WHERE "
                f"TRIM(COALESCE(increment_id, '')) <> ''{_views(settings, 'store_id')} "
                f"AND {MARKER}", ["entity_id"])
    return (f"SELECT 0 AS k0, c.entity_id AS k1, CAST(c.entity_id AS CHAR) AS id "
            f"FROM {t('customer_entity')} AS c WHERE 1 = 1{websites(settings, 'c.website_id')} "
            f"UNION ALL SELECT 1, s.subscriber_id, CONCAT('subscriber-', s.subscriber_id) "
            f"FROM {t('newsletter_subscriber')} AS s LEFT JOIN {t('customer_entity')} AS c "
            f"ON c.entity_id = s.customer_id WHERE {guests_where()}"
            f"{_views(settings, 's.store_id')}", ["k0", "k1"])


def keys_source(settings: Magento2Settings) -> MysqlSourceConfig:
    """The entity's ids as a MySQL source (only ``id`` kept), read whole by its keys."""
    query, cursor = keys_query(settings)
    return MysqlSourceConfig(dsn_env=settings.dsn_env, query=query, cursor=cursor, drop=cursor,
                             page_size=max(settings.page_size, 5000),
                             connect_timeout=settings.connect_timeout, lookback_seconds=0.0)
