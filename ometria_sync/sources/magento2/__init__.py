"""Magento 2.4's own database as a source: products, contacts and orders with no SQL to
write, read through the MySQL source's connection and keyset reader. See docs/magento2.md."""

from ometria_sync.sources.magento2.config import Magento2SourceConfig

__all__ = ["Magento2SourceConfig"]
