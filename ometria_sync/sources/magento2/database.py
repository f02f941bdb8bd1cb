"""A Magento database through the MySQL source's connection (:mod:`..mysql`): the same DSN
rules, session (UTC, utf8mb4, ``REPEATABLE READ``) and one snapshot per page, plus what an
entity reads along with each page of keys, in that page's snapshot; and the preflight.

Nothing stays open between pages: each page is one ``START TRANSACTION READ ONLY, WITH
CONSISTENT SNAPSHOT`` ... ``COMMIT`` holding the keyset query and the entity's reads of the
page's related rows (attributes, items, addresses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from asyncmy.errors import MySQLError

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.keyset import Row
from ometria_sync.sources.magento2.settings import TABLES, Magento2Settings
from ometria_sync.sources.mysql import MysqlDriver
from ometria_sync.sources.sql_settings import SqlSourceConfig

#: ``select(sql, params)``: every row, as tuples
Select = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class Assembler(Protocol):
    """An entity's records: what it reads with a page of key rows, and each row's record."""

    async def gather(self, select: Select, rows: list[dict[str, Any]]) -> None:
        """Read what the rows' records need and keep it in the rows."""

    def record(self, row: Row) -> dict[str, Any]:
        """The record of one gathered row (ValueError/TypeError: the row is refused)."""

    def record_id(self, row: Row) -> str | None:
        """The id the row's record has, for a row :meth:`record` refused (None: none)."""


#: makes an entity's assembler once per read, after connecting
Opener = Callable[[Select, Magento2Settings], Awaitable[Assembler]]


class PartConfig(SqlSourceConfig, frozen=True, kw_only=True, tag="magento2-part"):
    """One part's keyset query as the SQL reader reads it, with the Magento settings and the
    entity's assembler opener (never in a job file)."""

    settings: Any
    opener: Any


def selector(cursor: Any) -> Select:
    async def select(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        await cursor.execute(sql, params or None)
        return list(await cursor.fetchall())
    return select


class MagentoDriver(MysqlDriver):
    """The MySQL driver whose pages also hold the entity's related rows."""

    kind = "magento2"

    def __init__(self, config: SqlSourceConfig) -> None:
        super().__init__(config)
        assert isinstance(config, PartConfig)
        self._part = config
        self._assembler: Assembler | None = None

    @property
    def assembler(self) -> Assembler:
        assert self._assembler is not None, "connect() first"
        return self._assembler

    async def connect(self) -> None:
        await super().connect()
        part = self._part
        try:
            async with self.conn.cursor() as cursor:
                self._assembler = await part.opener(selector(cursor), part.settings)
        except (OSError, MySQLError) as exc:
            raise SourceError(f"reading Magento's stores and attributes: {exc}") from None

    async def complete(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.assembler.gather(selector(cursor), rows)

    async def stream(self, sql: str, params: list[Any], size: int
                     ) -> AsyncIterator[list[Row]]:
        """A tie group: every key ends with the table's primary key, so a group is one row,
        read (with its related rows) as a page is."""
        rows = await self.fetch(sql, params)
        for start in range(0, len(rows), size):
            yield rows[start:start + size]


async def preflight(settings: Magento2Settings, key: str) -> None:
    """Connect; every table the entity reads exists; not Adobe Commerce's staged catalogue;
    every ``store_ids`` view exists. ConfigError naming the key."""
    settings.check_credentials(key)
    probe = SqlSourceConfig(dsn_env=settings.dsn_env, query="SELECT 1", cursor=["1"],
                            connect_timeout=settings.connect_timeout)
    driver = MysqlDriver(probe)
    try:
        await driver.connect()
    except SourceError as exc:
        raise ConfigError(f"{key}.dsn_env", str(exc)) from exc
    try:
        async with driver.conn.cursor() as cursor:
            await _check(selector(cursor), settings, key)
    except MySQLError as exc:
        raise ConfigError(f"{key}.dsn_env", f"reading the Magento database: {exc}") from None
    finally:
        await driver.close()


async def _check(select: Select, settings: Magento2Settings, key: str) -> None:
    prefix = settings.table_prefix
    names = [prefix + t for t in TABLES[settings.entity]]
    found = {str(n) for (n,) in await select(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})", names)}
    for name in names:
        if name not in found:
            raise ConfigError(f"{key}.table_prefix", f"table {name} not found")
    if settings.entity == "products" and await select(
            "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND COLUMN_NAME = 'row_id'",
            [prefix + "catalog_product_entity"]):
        raise ConfigError(f"{key}.entity", f"{prefix}catalog_product_entity has row_id: "
                                           "Adobe Commerce's staged catalogue is not read")
    if settings.store_ids:
        views = {int(s) for (s,) in await select(
            f"SELECT store_id FROM {settings.table('store')} WHERE store_id > 0")}
        missing = [s for s in settings.store_ids if s not in views]
        if missing:
            raise ConfigError(f"{key}.store_ids", f"no store view {missing[0]} in "
                                                  f"{prefix}store")
