"""Fixtures for the Omneo source: the stand-in on 127.0.0.1 and the token in the environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.sources.omneo.standin import TOKEN, OmneoData, running_standin


@pytest.fixture(autouse=True)
def omneo_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OMNEO_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def omneo() -> Callable[..., Any]:
    """``async with omneo(data, ignore_sort=True) as standin`` serves ``data``."""

    def start(data: OmneoData | None = None, **options: Any) -> Any:
        return running_standin(data or OmneoData(), **options)

    return start
