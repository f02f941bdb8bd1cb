"""The file sources' shared keys (line cap, object store) are declared once, on FileSettings,
and the job file still reads them where users write them."""

from __future__ import annotations

import msgspec
import pytest

from ometria_sync.sources import SourceSpec
from ometria_sync.sources.files.csv import CsvOptions, CsvSourceConfig
from ometria_sync.sources.files.glob import _CSV_ONLY, GlobSourceConfig
from ometria_sync.sources.files.jsonl import JsonlSourceConfig
from ometria_sync.sources.files.location import FileSettings
from ometria_sync.sources.files.store import StoreOptions

SHARED = {"max_line_bytes": 2048, "endpoint_url": "http://127.0.0.1:9000",
          "region": "eu-west-2"}
FILE_CONFIGS = [JsonlSourceConfig, CsvOptions, CsvSourceConfig, GlobSourceConfig]


@pytest.mark.parametrize("cls", FILE_CONFIGS, ids=lambda c: c.__name__)
def test_the_shared_keys_are_inherited_never_redeclared(cls: type) -> None:
    """Every file config takes FileSettings' keys from FileSettings itself."""
    assert issubclass(cls, FileSettings)
    assert set(FileSettings.__struct_fields__) <= set(cls.__struct_fields__)
    for klass in cls.__mro__[:cls.__mro__.index(FileSettings)]:
        assert not set(vars(klass).get("__annotations__", {})) & set(SHARED), klass


@pytest.mark.parametrize("table", [
    {"kind": "jsonl", "path": "data/contacts.jsonl"},
    {"kind": "csv", "path": "data/orders.csv", "columns": {"Email": "email"}, "delimiter": ";"},
    {"kind": "glob", "pattern": "drops/*.csv", "format": "csv"},
], ids=lambda t: t["kind"])
def test_the_job_file_reads_the_shared_keys_as_before(table: dict[str, object]) -> None:
    """``source = { kind = ..., max_line_bytes = ..., endpoint_url = ..., region = ... }``
    decodes as it did when each config declared the keys itself; unknown keys are refused."""
    config = msgspec.convert(table | SHARED, SourceSpec)
    assert isinstance(config, FileSettings)
    assert (config.max_line_bytes, config.line_limit) == (2048, 2048)
    assert config.store == StoreOptions("http://127.0.0.1:9000", "eu-west-2")
    defaults = msgspec.convert(table, SourceSpec)
    assert isinstance(defaults, FileSettings)
    assert defaults.with_run_settings(max_line_bytes=4096).line_limit == 4096
    assert config.with_run_settings(max_line_bytes=4096) is config
    with pytest.raises(msgspec.ValidationError, match="unknown field `endpoint`"):
        msgspec.convert(table | {"endpoint": "x"}, SourceSpec)


def test_a_glob_of_json_lines_refuses_exactly_the_csv_keys() -> None:
    """The CSV-only keys are CsvOptions' own: the mapping and the dialect, not the shared ones."""
    assert _CSV_ONLY == ("columns", "drop", "constants", "timezone", "delimiter", "quotechar")
