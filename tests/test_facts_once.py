"""Facts kept once: every place that needs one reads it from where it is defined."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import msgspec
import pytest

import ometria_sync
from ometria_sync import config, schemas, state
from ometria_sync.config import loading
from ometria_sync.errors import ConfigError, StateError
from ometria_sync.net import urls
from ometria_sync.net.http import HttpRetrySettings
from ometria_sync.pacing import redis_budget
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.sources import SOURCE_KINDS, SourceSpec, mapping
from ometria_sync.sources.omneo import normalise
from ometria_sync.sources.omneo import settings as omneo_config
from ometria_sync.sources.omneo.settings import OmneoSourceConfig
from ometria_sync.state import file_lock, sqlite_sql, store


def test_record_types_are_defined_once() -> None:
    """The job file's record types, the validator's and the Structs' are one tuple."""
    assert config.RECORD_TYPES is schemas.RECORD_TYPES
    assert get_args(config.RecordType) == schemas.RECORD_TYPES
    assert tuple(RECORD_STRUCTS) == schemas.RECORD_TYPES


def test_source_kinds_come_from_the_union() -> None:
    """Every tag of the SourceSpec union is a kind, in the union's order."""
    tags = tuple(spec.__struct_config__.tag for spec in get_args(SourceSpec))
    assert tags == SOURCE_KINDS


def test_retry_settings_are_one_struct() -> None:
    """[ometria] and the Omneo sources take the same retry settings, from one declaration."""
    assert issubclass(config.OmetriaSettings, HttpRetrySettings)
    assert issubclass(OmneoSourceConfig, HttpRetrySettings)
    with pytest.raises(msgspec.ValidationError, match="max_retries"):
        msgspec.convert({"max_retries": -1}, config.OmetriaSettings)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"nope": 1}, config.OmetriaSettings)


@pytest.mark.parametrize("word", ["true", "T", " yes ", "y", "1", "false", "f", "No", "n", "0"])
def test_one_boolean_vocabulary(word: str) -> None:
    """CSV cells and Omneo fields read the same words as booleans."""
    assert mapping._boolean(word) == normalise.boolean(word)


def test_the_two_zone_loaders_have_distinct_names() -> None:
    """The configuration's zone loader (ConfigError) and Omneo's (Unusable) are not confused."""
    assert not hasattr(normalise, "load_zone")
    assert normalise.known_zone("UTC").key == "UTC"
    with pytest.raises(normalise.Unusable):
        normalise.known_zone("Not/AZone")


def test_every_module_reads_the_state_url_through_one_parser() -> None:
    """The configuration's check and its path resolution, the state's opener, the SQLite store
    and its run lock all read ``state.checkpoint_url`` with ``net/urls.py``'s parser; the schema
    name, the Redis scheme and the HTTP APIs' base URLs are checked by its functions too."""
    for module in (loading, state, sqlite_sql, file_lock):
        assert module.parse_state_url is urls.parse_state_url, module.__name__
    assert loading.is_schema_name is urls.is_schema_name
    assert store.is_schema_name is urls.is_schema_name
    assert loading.is_redis_url is urls.is_redis_url
    assert loading.base_url_problem is omneo_config.base_url_problem is urls.base_url_problem
    assert redis_budget.normalise_url is store.normalise_url is urls.normalise_url


_URL_SPELLINGS = ("sqlite:///", "postgresql://", "postgres://")


def _spells_a_scheme(text: str) -> bool:
    return text.startswith(_URL_SPELLINGS) or text in ("redis", "rediss")


def test_url_schemes_are_spelled_in_one_module() -> None:
    """No module but ``net/urls.py`` writes a state URL's prefix or a Redis scheme as a string
    (an f-string building ``sqlite:///...`` counts): the scheme facts are kept once."""
    package = Path(ometria_sync.__file__).parent
    spelled = set()
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _spells_a_scheme(node.value):
                spelled.add(path.relative_to(package).as_posix())
    assert spelled == {"net/urls.py"}


@pytest.mark.parametrize("url", [
    "sqlite:///state/checkpoints.db", "sqlite:////data/cp.db", "postgresql://sync@db:5432/x",
    "postgres://db/x", "sqlite://state.db", "redis://localhost/0", "mysql://db/x", "state.db",
])
async def test_the_config_check_the_opener_and_the_run_lock_agree(url: str) -> None:
    """A URL the one parser refuses is refused by the configuration's check and by the
    opener alike; a SQLite URL's run lock sits beside the very file the parser names."""
    where = urls.parse_state_url(url)
    key = "state.checkpoint_url"
    if where is None:
        with pytest.raises(ConfigError, match=key):
            loading._check_state(config.StateSettings(checkpoint_url=url))
        with pytest.raises(StateError, match="not supported"):
            await state.open_state(url)
        return
    loading._check_state(config.StateSettings(checkpoint_url=url))
    if where.kind == "sqlite":
        assert url == urls.sqlite_url(where.path)
        assert file_lock.lock_path_for(url, "nightly") == Path(f"{where.path}.nightly.lock")
    else:
        assert where.dsn == url


@pytest.mark.parametrize("url", ["mysql:canary-pw@db/x", "state:canary-pw"])
async def test_a_refused_state_url_shows_its_scheme_only(url: str) -> None:
    """The check, the opener and the SQLite store show the text before the first colon, the
    same for all three. (The opener and the SQLite store used to cut at ``://`` instead: a URL
    without ``//`` then showed whole, its password with it.)"""
    assert urls.url_scheme(url) == url.split(":", 1)[0]
    with pytest.raises(ConfigError) as checked:
        loading._check_state(config.StateSettings(checkpoint_url=url))
    with pytest.raises(StateError) as opened:
        await state.open_state(url)
    with pytest.raises(StateError) as stored:
        sqlite_sql.open_checkpoint_store(url)
    for raised in (checked, opened, stored):
        assert "canary-pw" not in str(raised.value)
        assert urls.url_scheme(url) in str(raised.value)
