"""Sources made of exactly one part (a file, an object, a query)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from ometria_sync.sources.base import SourcePart


@dataclasses.dataclass
class SinglePartSource:
    """A source made of exactly one part."""

    part: SourcePart

    async def parts(self) -> list[SourcePart]:
        return [self.part]

    async def aclose(self) -> None:
        return None


@dataclasses.dataclass
class LazyPartSource:
    """A source made of one part found when the stream starts (an object's current version)."""

    find: Callable[[], Awaitable[SourcePart]]

    async def parts(self) -> list[SourcePart]:
        return [await self.find()]

    async def aclose(self) -> None:
        return None
