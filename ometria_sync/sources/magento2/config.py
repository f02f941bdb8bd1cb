"""The ``kind = "magento2"`` source table: the keys (:mod:`.settings`) with what opens each
entity's parts and the preflight, so the readers depend on the settings, never the other way.
"""

from __future__ import annotations

from collections.abc import Callable

from ometria_sync.sources.base import Deletions, Source
from ometria_sync.sources.magento2.contacts import contact_parts
from ometria_sync.sources.magento2.database import preflight
from ometria_sync.sources.magento2.keys import keys_source
from ometria_sync.sources.magento2.orders import order_parts
from ometria_sync.sources.magento2.products import product_parts
from ometria_sync.sources.magento2.reader import MagentoSource, PartPlan
from ometria_sync.sources.magento2.settings import Magento2Settings
from ometria_sync.sources.sql_settings import sweep_seconds


class Magento2SourceConfig(Magento2Settings, frozen=True, kw_only=True, tag="magento2"):
    """Products, contacts or orders read from a Magento 2.4 database (docs/magento2.md)."""

    def deletions(self) -> Deletions:
        """Magento deletes rows outright: the built-in keys sweep lists every current id
        every ``sweep_every`` (:mod:`.keys`)."""
        return Deletions(None, keys_source(self), sweep_seconds(self.sweep_every) or 0.0)

    async def preflight(self, key: str) -> None:
        await preflight(self, key)

    def open(self) -> Source:
        return MagentoSource(self, _PARTS[self.entity](self))


#: each entity's parts
_PARTS: dict[str, Callable[[Magento2Settings], list[PartPlan]]] = {
    "products": product_parts, "contacts": contact_parts, "orders": order_parts}
