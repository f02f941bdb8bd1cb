"""``state.schema`` is validated whole: a name with a trailing newline reaches the same tables
(PostgreSQL ignores it) but would hash to another run-lock key, so it is refused, in the job
file's checks and when a store is opened."""

from __future__ import annotations

import pytest

from ometria_sync.config.loading import check_settings
from ometria_sync.config.sections import JobSettings, StateSettings
from ometria_sync.errors import ConfigError, StateError
from ometria_sync.state import open_state
from ometria_sync.state.pg_schema import lock_key
from ometria_sync.state.store import check_schema
from tests.pg import DSN


@pytest.mark.parametrize("name", ["ometria_sync\n", "ometria_sync\n\n", "\nometria_sync"])
def test_a_schema_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(StateError, match="not a plain lower-case SQL name"):
        check_schema(name)
    with pytest.raises(StateError):
        lock_key(name, "run lock")
    settings = JobSettings(streams=[], state=StateSettings(
        checkpoint_url="postgresql://u@h/db", schema=name))
    with pytest.raises(ConfigError, match=r"state\.schema"):
        check_settings(settings)


async def test_opening_a_store_refuses_it_before_connecting() -> None:
    with pytest.raises(StateError, match="not a plain lower-case SQL name"):
        await open_state(DSN, "ometria_sync\n")

