"""An entity's parts, each read by the SQL sources' keyset reader (:mod:`..keyset`): its key
query, cursor and checkpoint are the part's own; the rows of a page are gathered and built
into records by the entity's assembler (:class:`~.database.Assembler`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import msgspec

from ometria_sync.schemas import Problem
from ometria_sync.sources.base import SourcePart
from ometria_sync.sources.keyset import KeysetQuery, Row
from ometria_sync.sources.magento2.database import MagentoDriver, Opener, PartConfig
from ometria_sync.sources.magento2.settings import Magento2Settings


def epoch_key(column: str) -> str:
    """A timestamp column as a key: NULL and the zero date count as 1970-01-01 00:00:00 (a
    computed key, which no index serves: for tables whose column has no index anyway)."""
    return (f"IF({column} IS NULL OR {column} < '1970-01-02', "
            f"CAST('1970-01-01 00:00:00' AS DATETIME), {column})")


class PartPlan(msgspec.Struct, frozen=True):
    """One checkpointed part of an entity."""

    #: the checkpoint's sub-key ("products", "customers", ...)
    key: str
    #: the keyset query, ``{cursor_after}`` in its ``WHERE``; table names already prefixed
    query: str
    cursor: list[str]
    opener: Any
    #: read the whole table every run (products)
    cycle: bool = False
    #: the key starts with a timestamp: a resumed read looks back ``lookback_seconds``
    timed: bool = False


class MagentoPart(KeysetQuery):
    """One part of a Magento entity."""

    def __init__(self, settings: Magento2Settings, plan: PartPlan) -> None:
        config = PartConfig(dsn_env=settings.dsn_env, query=plan.query, cursor=plan.cursor,
                            page_size=settings.page_size,
                            lookback_seconds=settings.lookback_seconds if plan.timed else 0,
                            connect_timeout=settings.connect_timeout, settings=settings,
                            opener=cast(Opener, plan.opener))
        super().__init__(MagentoDriver, config, cycle=plan.cycle)
        self._plan_key = plan.key
        self._entity = settings.entity

    @property
    def key(self) -> str:
        return self._plan_key

    @property
    def label(self) -> str:
        return f"magento2:{self._entity}:{self._plan_key}"

    def plan(self, names: list[str]) -> None:
        """No column mapping: the assembler builds each record."""

    def record(self, row: Row) -> tuple[dict[str, Any], list[Problem] | None]:
        driver = cast(MagentoDriver, self._driver)
        return driver.assembler.record(row), None

    def record_id(self, row: Row) -> str | None:
        return cast(MagentoDriver, self._driver).assembler.record_id(row)


@dataclasses.dataclass
class MagentoSource:
    """An entity's parts, read in order."""

    settings: Magento2Settings
    plans: list[PartPlan]

    async def parts(self) -> list[SourcePart]:
        return [MagentoPart(self.settings, plan) for plan in self.plans]

    async def aclose(self) -> None:
        return None
