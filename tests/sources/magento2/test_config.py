"""The magento2 source table: its keys checked at start-up naming the key, the entity
against the stream's record_type, and the preflight against a Magento database (tables by
prefix, Adobe Commerce's staged catalogue, store views, the DSN's password never shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from ometria_sync.config import load_job
from ometria_sync.errors import ConfigError
from ometria_sync.sources.magento2 import Magento2SourceConfig
from tests.magento2 import create_schema, seed_stores
from tests.mysql import Database


def _job(tmp_path: Path, record_type: str, source: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(f'[[streams]]\nname = "s"\nrecord_type = "{record_type}"\n'
                    f'source = {{ kind = "magento2", dsn_env = "MAGENTO_DSN", {source} }}\n')
    return path


@pytest.mark.parametrize(("record_type", "source", "message"), [
    ("order", 'entity = "products"',
     "streams[0].source.entity: entity 'products' yields product records but the stream's "
     "record_type is 'order'"),
    ("product", 'entity = "items"', "streams[0].source.entity"),
    ("product", 'entity = "products", table_prefix = "m2-"', "streams[0].source.table_prefix"),
    ("product", 'entity = "products", page_size = 0', "streams[0].source.page_size"),
    ("product", 'entity = "products", store_ids = [0]', "streams[0].source.store_ids"),
    ("product", 'entity = "products", lookback_seconds = -1',
     "streams[0].source.lookback_seconds"),
    ("contact", 'entity = "orders"', "streams[0].source.entity: entity 'orders' yields order"),
])
def test_keys_are_checked_naming_the_key(tmp_path: Path, record_type: str, source: str,
                                         message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_job(_job(tmp_path, record_type, source), environ={})
    assert message in str(info.value)


def test_a_good_table_loads(tmp_path: Path) -> None:
    job = load_job(_job(tmp_path, "product", 'entity = "products", store_ids = [1, 2], '
                                             'table_prefix = "m2_"'), environ={})
    source = job.settings.streams[0].source
    assert isinstance(source, Magento2SourceConfig)
    assert (source.store_ids, source.page_size, source.lookback_seconds) == ([1, 2], 1000, 300)


def settings(**options: Any) -> Magento2SourceConfig:
    return msgspec.convert({"kind": "magento2", "entity": "products",
                            "dsn_env": "MAGENTO_DSN", **options}, Magento2SourceConfig)


@pytest.mark.mysql
async def test_preflight_names_a_missing_table_with_its_prefix(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)
    await create_schema(my_db, "m2_")
    await my_db.execute("DROP TABLE m2_catalog_product_super_link")
    with pytest.raises(ConfigError) as info:
        await settings(table_prefix="m2_").preflight("streams[0].source")
    assert str(info.value) == ("streams[0].source.table_prefix: table "
                               "m2_catalog_product_super_link not found")
    with pytest.raises(ConfigError, match="table catalog_product_entity not found"):
        await settings().preflight("streams[0].source")


@pytest.mark.mysql
async def test_preflight_refuses_the_staged_catalogue_and_unknown_views(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)
    await create_schema(my_db)
    await seed_stores(my_db)
    await settings(store_ids=[1, 4]).preflight("k")
    with pytest.raises(ConfigError, match=r"^k.store_ids: no store view 9 in store$"):
        await settings(store_ids=[1, 9]).preflight("k")
    await my_db.execute("ALTER TABLE catalog_product_entity ADD COLUMN row_id INT UNSIGNED")
    with pytest.raises(ConfigError, match=r"k\.entity: catalog_product_entity has row_id"):
        await settings().preflight("k")


@pytest.mark.mysql
async def test_a_refused_connection_names_the_key_and_hides_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGENTO_DSN", "mysql://root:s3cret-pw@127.0.0.1:3306/no_such_db_x")
    with pytest.raises(ConfigError) as info:
        await settings().preflight("k")
    assert str(info.value).startswith("k.dsn_env: ")
    assert "s3cret-pw" not in str(info.value)
    monkeypatch.setenv("MAGENTO_DSN", "postgres://x@h/db")
    with pytest.raises(ConfigError, match=r"k\.dsn_env: MAGENTO_DSN: the scheme"):
        await settings().preflight("k")
    monkeypatch.delenv("MAGENTO_DSN")
    with pytest.raises(ConfigError, match=r"k\.dsn_env: the environment variable MAGENTO_DSN"):
        await settings().preflight("k")
