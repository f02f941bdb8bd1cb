"""``on_missing``: its defaults, and the ConfigError naming the key for what cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from ometria_sync.config import load_job
from ometria_sync.errors import ConfigError

STREAM = """
[[streams]]
name = "s"
record_type = "{type}"
source = {source}
{extra}
"""
JSONL = '{ kind = "jsonl", path = "data.jsonl" }'
PG = ('{ kind = "postgres", dsn_env = "DSN", query = "SELECT * FROM t", '
      'cursor = ["updated_at", "id"] }')


def _load(tmp_path: Path, *, type: str = "product", source: str = JSONL, extra: str = "") -> None:
    (tmp_path / "data.jsonl").write_text("")
    path = tmp_path / "job.toml"
    path.write_text(STREAM.format(type=type, source=source, extra=extra))
    load_job(path, environ={})


def test_defaults_leave_missing_ids_alone(tmp_path: Path) -> None:
    """Without the key a stream ignores missing ids; the guard and the order status default."""
    (tmp_path / "data.jsonl").write_text("")
    path = tmp_path / "job.toml"
    path.write_text(STREAM.format(type="order", source=JSONL, extra=""))
    stream = load_job(path, environ={}).settings.streams[0]
    assert (stream.on_missing, stream.max_missing_fraction) == ("ignore", 0.1)
    assert (stream.on_missing_contact, stream.on_missing_order_status) == ("opt_out", "cancelled")


def test_deactivate_on_a_file_source_is_accepted(tmp_path: Path) -> None:
    """A JSON Lines source is read whole: deactivate is allowed."""
    _load(tmp_path, extra='on_missing = "deactivate"\nmax_missing_fraction = 0.2')


def test_a_sql_source_tells_deletions_by_its_deleted_or_keys_query(tmp_path: Path) -> None:
    """A cursor source with a keys query (swept every 12 hours) may deactivate."""
    _load(tmp_path, source=PG.replace(" }", ', keys_query = "SELECT id FROM t", '
                                            'sweep_every = "12h" }'),
          extra='on_missing = "deactivate"')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra": 'on_missing = "delete"'}, "streams[0].on_missing: invalid enum value"),
        ({"extra": 'on_missing = "deactivate"\nmax_missing_fraction = 1.5'},
         "streams[0].max_missing_fraction: expected `float` <= 1"),
        ({"type": "custom_event", "extra": 'on_missing = "deactivate"'},
         "streams[0].on_missing: custom_event records cannot be deactivated"),
        ({"extra": 'on_missing = "deactivate"\nchange_detection = false'},
         "streams[0].on_missing: needs change_detection = true"),
        ({"type": "contact",
          "extra": 'on_missing = "deactivate"\non_missing_contact = "remove_from_lists"'},
         "streams[0].on_missing_lists: name the lists"),
        ({"source": PG, "extra": 'on_missing = "deactivate"'},
         "streams[0].on_missing: a postgres source is not read whole on every run, so a "
         "missing row cannot be told from an unchanged one (set its deleted_query or "
         "keys_query)"),
        ({"source": PG.replace(" }", ', deleted_query = "SELECT id FROM d" }')},
         "streams[0].source.deleted_cursor: name the columns"),
        ({"source": PG.replace(" }", ', keys_query = "SELECT id FROM t", sweep_every = "1w" }')},
         "streams[0].source.sweep_every: expected a duration like"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    """Each setting that cannot work is refused before anything runs, naming its key."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **kwargs)
    assert message in str(caught.value)
