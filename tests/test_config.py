"""The job file: defaults, path resolution, environment overrides, and errors naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ometria_sync.config import Job, load_job, read_api_key, read_rate_limit_url
from ometria_sync.errors import ConfigError

STREAM = """
[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
"""


def _write(tmp_path: Path, text: str, data: bool = True) -> Path:
    if data:
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / "contacts.jsonl").write_text("")
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, STREAM), environ={})
    s = job.settings
    assert s.ometria.base_url == "https://api.ometria.com/v2"
    assert (s.ometria.rate_limit_per_second, s.ometria.batch_size) == (4.0, 100)
    assert s.ometria.dispatchers == 8
    assert s.state.checkpoint_url == f"sqlite:///{tmp_path}/state/checkpoints.db"
    assert s.state.dead_letter_path == f"{tmp_path}/state/dead-letter.jsonl"
    assert s.streams[0].source.path == f"{tmp_path}/data/contacts.jsonl"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ometria]\nbatch_size = 101\n" + STREAM,
         "ometria.batch_size: expected `int` <= 100"),
        ("[ometria]\nrate_limit_per_second = 'fast'\n" + STREAM,
         "ometria.rate_limit_per_second: expected `float`, got `str`"),
        ("[ometria]\nbase_url = 'http://api.ometria.com/v2'\n" + STREAM,
         "ometria.base_url: plain http:// is only allowed for loopback hosts"),
        ("[ometria]\nbsae_url = 'x'\n" + STREAM, "ometria.bsae_url: unknown key"),
        (STREAM.replace('record_type = "contact"', 'record_type = "contacts"'),
         "streams[0].record_type: invalid enum value 'contacts'; expected one of contact, "
         "order, product, custom_event"),
        (STREAM.replace('name = "contacts"\n', ""), "streams[0].name: required key is missing"),
        (STREAM + STREAM, "streams[1].name: duplicate stream name 'contacts'"),
        (STREAM.replace("data/contacts.jsonl", "data/nope.jsonl"),
         "streams[0].source.path: no such file"),
        (STREAM.replace('kind = "jsonl"', 'kind = "xml"'),
         "streams[0].source.kind: invalid value 'xml'; expected one of jsonl"),
        ("[state]\ncheckpoint_url = 'mysql://x'\n" + STREAM, "state.checkpoint_url: expected"),
        ("streams = []", "streams: the job lists no stream"),
        ("[ometria\n", "is not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_job(_write(tmp_path, text), environ={})
    assert message in str(info.value)


@pytest.mark.parametrize(("columns", "message"), [
    ('gender = { field = "gender", valus = { "1" = "m" } }',
     "streams[0].source.columns.gender.valus: unknown key"),
    ('email = "email"\n"First Name" = { field = "firstname", trim = false, tirm = true }',
     'streams[0].source.columns."First Name".tirm: unknown key'),
])
def test_a_typo_inside_a_column_table_names_the_column(tmp_path: Path, columns: str,
                                                      message: str) -> None:
    (tmp_path / "c.csv").write_text("email,gender,First Name\n")
    text = STREAM.replace('source = { kind = "jsonl", path = "data/contacts.jsonl" }',
                          '[streams.source]\nkind = "csv"\npath = "c.csv"\n'
                          f"[streams.source.columns]\n{columns}\n")
    with pytest.raises(ConfigError) as info:
        load_job(_write(tmp_path, text), environ={})
    assert str(info.value).startswith(message), info.value


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9"):
        job = load_job(_write(tmp_path, f"[ometria]\nbase_url = 'http://{host}/v2'\n" + STREAM),
                       environ={})
        assert job.settings.ometria.base_url.startswith("http://")


def test_environment_overrides(tmp_path: Path) -> None:
    env = {"OMETRIA_SYNC__OMETRIA__RATE_LIMIT_PER_SECOND": "8",
           "OMETRIA_SYNC__STATE__DEAD_LETTER_PATH": "/tmp/dl.jsonl",
           "OMETRIA_SYNC__RUN__GRACE_PERIOD": "2.5"}
    job = load_job(_write(tmp_path, STREAM), environ=env)
    assert job.settings.ometria.rate_limit_per_second == 8
    assert job.settings.state.dead_letter_path == "/tmp/dl.jsonl"
    assert job.settings.run.grace_period == 2.5


def test_the_alerts_section_is_overridable(tmp_path: Path) -> None:
    """A container sets its webhook and thresholds without editing the job file."""
    env = {"OMETRIA_SYNC__ALERTS__WEBHOOK_URL_ENV": "HOOK",
           "OMETRIA_SYNC__ALERTS__MAX_REFUSED": "0"}
    alerts = load_job(_write(tmp_path, STREAM), environ=env).settings.alerts
    assert (alerts.webhook_url_env, alerts.max_refused) == ("HOOK", 0)


def test_a_malformed_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OMETRIA_SYNC__STREAMS__X"):
        load_job(_write(tmp_path, STREAM), environ={"OMETRIA_SYNC__STREAMS__X": "1"})


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "nope.toml")


def test_select_unknown_stream(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, STREAM), environ={})
    with pytest.raises(ConfigError, match="--stream: no stream named orders"):
        job.select(["orders"])


def test_api_key_from_env_or_file_and_never_in_the_message(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, STREAM), environ={})
    assert read_api_key(job.settings.ometria, {"OMETRIA_API_KEY": " k1 \n"}) == "k1"
    with pytest.raises(ConfigError, match="OMETRIA_API_KEY is not set"):
        read_api_key(job.settings.ometria, {})
    (tmp_path / "key").write_text("k2\n")
    job = load_job(_write(tmp_path, "[ometria]\napi_key_file = 'key'\n" + STREAM), environ={})
    assert read_api_key(job.settings.ometria, {}) == "k2"


def test_rate_limit_url_from_the_file_or_the_environment(
    tmp_path: Path, make_job: Callable[..., Job]
) -> None:
    """Without either setting, no shared budget; the URL from the file, or from the variable
    ``rate_limit_url_env`` names; an unset variable or a non-Redis URL is an error that does not
    repeat the URL (it may hold a password)."""
    _write(tmp_path, "")
    assert read_rate_limit_url(make_job().settings.ometria) is None
    job = make_job(rate_limit_url="rediss://:pw@redis.example:6380/2")
    assert read_rate_limit_url(job.settings.ometria) == "rediss://:pw@redis.example:6380/2"
    job = make_job(rate_limit_url_env="SYNC_REDIS")
    env = {"SYNC_REDIS": "redis://:pw@127.0.0.1:6379/0"}
    assert read_rate_limit_url(job.settings.ometria, env) == env["SYNC_REDIS"]
    with pytest.raises(ConfigError, match="SYNC_REDIS is not set"):
        read_rate_limit_url(job.settings.ometria, {})
    with pytest.raises(ConfigError) as caught:
        read_rate_limit_url(job.settings.ometria, {"SYNC_REDIS": "http://:secret-pw@h/0"})
    assert "secret-pw" not in str(caught.value) and "redis://" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        make_job(rate_limit_url="memcached://:secret-pw@h")
    assert caught.value.key == "ometria.rate_limit_url" and "secret-pw" not in str(caught.value)
    with pytest.raises(ConfigError, match="not both"):
        make_job(rate_limit_url="redis://h/0", rate_limit_url_env="SYNC_REDIS")
    assert make_job().settings.ometria.rate_limit_retry_for == 30.0


def test_the_state_url_can_come_from_the_environment_and_be_postgresql(tmp_path: Path) -> None:
    url = "postgresql://sync:s3cret@db.internal:5432/ometria_sync"
    text = ('[state]\ncheckpoint_url_env = "STATE_URL"\nschema = "sync_live"\n'
            'dead_letter = "database"\n' + STREAM)
    state = load_job(_write(tmp_path, text), environ={"STATE_URL": url}).settings.state
    assert (state.checkpoint_url, state.schema, state.dead_letter) == (url, "sync_live",
                                                                      "database")
    with pytest.raises(ConfigError, match=r"state\.checkpoint_url_env: environment "
                                          r"variable STATE_URL is not set"):
        load_job(_write(tmp_path, text), environ={})


@pytest.mark.parametrize(("state", "message"), [
    ('checkpoint_url = "mysql://u:s3cret@h/db"', "state.checkpoint_url: expected sqlite:///PATH "
                                                  "or postgresql://USER@HOST/DATABASE, got mysql:"),
    ('checkpoint_url = "postgresql://h/db"\nschema = "Bad-Name"', "state.schema: 'Bad-Name'"),
    ('dead_letter = "s3"', "state.dead_letter: invalid enum value 's3'; expected \"file\""),
])
def test_bad_state_settings_name_the_key_and_never_the_password(
        tmp_path: Path, state: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_job(_write(tmp_path, f"[state]\n{state}\n" + STREAM), environ={})
    assert str(caught.value).startswith(message) and "s3cret" not in str(caught.value)
