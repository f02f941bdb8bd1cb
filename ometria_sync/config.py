"""The job file: frozen settings, validated once at start-up, with errors that name the key.

Precedence, lowest first: built-in defaults, the TOML job file, environment variables named
``OMETRIA_SYNC__<SECTION>__<KEY>`` (e.g. ``OMETRIA_SYNC__OMETRIA__RATE_LIMIT_PER_SECOND=8``,
``OMETRIA_SYNC__STATE__CHECKPOINT_URL=sqlite:////data/cp.db``). Override values are read as TOML
values when they parse as one (numbers, booleans), else as strings. Only the ``ometria``,
``state``, ``run`` and ``report`` sections can be overridden.

Relative paths resolve against the job file's folder. The API key never lives in the file: it is
read from the environment variable ``ometria.api_key_env`` or the file ``ometria.api_key_file``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.net.http import is_loopback_host
from ometria_sync.net.settings import HttpRetrySettings
from ometria_sync.schemas.records import RECORD_TYPES, RecordType
from ometria_sync.sources.files import resolve_path
from ometria_sync.sources.lines import DEFAULT_MAX_LINE_BYTES, MaxLineBytes
from ometria_sync.sources.objects import SECRET_REFUSED, secret_setting
from ometria_sync.sources.omneo.config import check_shared_tenants
from ometria_sync.sources.registry import SOURCE_KINDS, SourceSpec

ENV_PREFIX = "OMETRIA_SYNC__"
_OVERRIDABLE = ("ometria", "state", "run", "report")


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class OmetriaSettings(_Section, HttpRetrySettings, frozen=True):
    """``[ometria]``: where to send and how fast (and the retry settings of ``net``)."""

    base_url: str = "https://api.ometria.com/v2"
    api_key_env: str = "OMETRIA_API_KEY"
    api_key_file: str | None = None
    rate_limit_per_second: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 4.0
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    #: dispatchers working at once; 0 picks ``rate x 2 s`` (enough to hide 2 s answers)
    concurrency: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    #: total seconds one batch may spend waiting out 429s before the run fails
    max_throttle_wait: Annotated[float, msgspec.Meta(ge=0)] = 900.0
    #: share this account's rate budget with other processes through this Redis
    #: (redis:// or rediss://); or name the environment variable holding that URL
    rate_limit_url: str | None = None
    rate_limit_url_env: str | None = None
    #: seconds to keep retrying when that Redis is lost mid-run, before the run stops (exit 1)
    rate_limit_retry_for: Annotated[float, msgspec.Meta(ge=0)] = 30.0

    @property
    def dispatchers(self) -> int:
        if self.concurrency:
            return self.concurrency
        return max(2, min(256, round(self.rate_limit_per_second * 2)))


class StateSettings(_Section, frozen=True):
    """``[state]``: where progress and refused records are kept."""

    #: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``
    checkpoint_url: str = "sqlite:///state/checkpoints.db"
    #: read the URL from this environment variable instead (when it holds a password)
    checkpoint_url_env: str | None = None
    #: the PostgreSQL schema the state's tables live in
    schema: str = "ometria_sync"
    #: "file": refused records go to ``dead_letter_path``; "database": into the state store
    dead_letter: Literal["file", "database"] = "file"
    dead_letter_path: str = "state/dead-letter.jsonl"
    dry_run_dir: str = "state/dry-run"


class RunSettings(_Section, frozen=True):
    """``[run]``: shutdown and batching behaviour."""

    #: seconds SIGINT/SIGTERM waits for in-flight batches before giving up on them
    grace_period: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: seconds a half-full batch waits for more records before it is sent anyway
    linger: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    #: chunks (about 256 KiB or 500 rows each) buffered between a source and its batcher
    queue_chunks: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4
    #: a line (JSONL) or CSV line longer than this is dead-lettered with its first bytes and its
    #: length, never held whole; a source may set its own
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES


class ReportSettings(_Section, frozen=True):
    """``[report]``: what a person (and monitoring) sees of a run."""

    #: one JSON report per run is written here as <run-id>.json
    folder: str = "state/reports"
    #: bars on a terminal, JSON progress lines otherwise ("auto"), or "bars", "log", "off"
    progress: Literal["auto", "bars", "log", "off"] = "auto"
    #: seconds between JSON progress lines
    progress_interval: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: write Prometheus metrics here at the end of each run (node_exporter textfile collector)
    metrics_textfile: str | None = None
    #: push the same metrics to this Pushgateway (host:port or URL)
    pushgateway_url: str | None = None


class StreamSettings(_Section, frozen=True):
    """One ``[[streams]]`` entry."""

    name: Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    record_type: RecordType
    source: SourceSpec
    #: "update": a record needs only its id (Ometria merges); "create": also what creation needs
    mode: Literal["update", "create"] = "update"
    #: dead-letter records with fields the schema does not know, instead of warning
    strict: bool = False
    #: run alongside the previous stream instead of after it
    parallel: bool = False
    #: skip records whose content is unchanged since Ometria last acknowledged them
    change_detection: bool = True
    enabled: bool = True


class JobSettings(_Section, frozen=True):
    """The whole job file."""

    streams: list[StreamSettings]
    ometria: OmetriaSettings = msgspec.field(default_factory=OmetriaSettings)
    state: StateSettings = msgspec.field(default_factory=StateSettings)
    run: RunSettings = msgspec.field(default_factory=RunSettings)
    report: ReportSettings = msgspec.field(default_factory=ReportSettings)


class Job(msgspec.Struct, frozen=True):
    """A loaded job: settings with every path absolute, and where the file was."""

    path: Path
    settings: JobSettings

    @property
    def streams(self) -> list[StreamSettings]:
        return self.settings.streams

    def select(self, names: list[str] | None) -> list[StreamSettings]:
        """The enabled streams, or exactly those named (``--stream``), in job order."""
        if not names:
            return [s for s in self.streams if s.enabled]
        known = {s.name for s in self.streams}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError("--stream", f"no stream named {', '.join(unknown)} in {self.path}")
        return [s for s in self.streams if s.name in names]

    def index_of(self, name: str) -> int:
        """The stream's index in the job file (error messages name ``streams[i]``)."""
        return next(i for i, s in enumerate(self.streams) if s.name == name)


def load_job(path: str | Path, environ: Mapping[str, str] | None = None) -> Job:
    """Read, override from the environment, validate and resolve a job file.

    Raises ConfigError naming the offending key; never touches the network or the state.
    """
    job_path = Path(path).expanduser().resolve()
    try:
        data = tomllib.loads(job_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"job file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot read job file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    _apply_env_overrides(data, os.environ if environ is None else environ)
    try:
        settings = msgspec.convert(data, JobSettings)
    except msgspec.ValidationError as exc:
        raise _config_error(str(exc)) from None
    settings = _resolve_state_url(settings, os.environ if environ is None else environ)
    settings = _resolve_paths(settings, job_path.parent)
    _check(settings)
    return Job(path=job_path, settings=settings)


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in _OVERRIDABLE:
            raise ConfigError(
                name, "expected OMETRIA_SYNC__<OMETRIA|STATE|RUN|REPORT>__<KEY>"
            )
        section = data.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError(parts[0], "must be a table")
        section[parts[1]] = _parse_env_value(raw)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _config_error(message: str) -> ConfigError:
    """Turn msgspec's "Expected `int`, got `str` - at `$.run.linger`" into ``run.linger: ...``."""
    match = _MSGSPEC_PATH.match(message)
    assert match is not None
    path = (match.group("path") or "").lstrip(".")
    text = match.group("msg")
    field = re.match(r"Object missing required field `([^`]+)`", text)
    if field:
        path = f"{path}.{field.group(1)}" if path else field.group(1)
        text = "required key is missing"
    unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        text = "unknown key (check the spelling)"
        if ".source" in path and secret_setting(unknown.group(1)):
            text = SECRET_REFUSED
    if path.endswith("record_type"):
        text += f"; expected one of {', '.join(RECORD_TYPES)}"
    elif path == "state.dead_letter":
        text += '; expected "file" (state.dead_letter_path) or "database" (the state store)'
    elif path.endswith("source.kind"):
        text += f"; expected one of {', '.join(SOURCE_KINDS)}"
    return ConfigError(path, text[0].lower() + text[1:] if text else text)


def _resolve_paths(settings: JobSettings, base: Path) -> JobSettings:
    state = settings.state
    state = msgspec.structs.replace(
        state,
        checkpoint_url=_resolve_sqlite_url(state.checkpoint_url, base),
        dead_letter_path=resolve_path(base, state.dead_letter_path),
        dry_run_dir=resolve_path(base, state.dry_run_dir),
    )
    ometria = settings.ometria
    if ometria.api_key_file:
        ometria = msgspec.structs.replace(
            ometria, api_key_file=resolve_path(base, ometria.api_key_file)
        )
    if ometria.ca_bundle:
        ometria = msgspec.structs.replace(ometria, ca_bundle=resolve_path(base, ometria.ca_bundle))
    limit = settings.run.max_line_bytes
    streams = [msgspec.structs.replace(s, source=s.source.resolve(base).with_run_settings(
        max_line_bytes=limit)) for s in settings.streams]
    report = settings.report
    report = msgspec.structs.replace(
        report,
        folder=resolve_path(base, report.folder),
        metrics_textfile=resolve_path(base, report.metrics_textfile)
        if report.metrics_textfile
        else None,
    )
    return msgspec.structs.replace(
        settings, state=state, ometria=ometria, streams=streams, report=report
    )


def _resolve_state_url(settings: JobSettings, environ: Mapping[str, str]) -> JobSettings:
    """``state.checkpoint_url_env``, when set, names the variable that holds the URL."""
    name = settings.state.checkpoint_url_env
    if not name:
        return settings
    url = environ.get(name, "").strip()
    if not url:
        raise ConfigError("state.checkpoint_url_env",
                          f"environment variable {name} is not set (it holds the state's URL)")
    state = msgspec.structs.replace(settings.state, checkpoint_url=url)
    return msgspec.structs.replace(settings, state=state)


def _resolve_sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    return prefix + resolve_path(base, url[len(prefix) :])


def _check(settings: JobSettings) -> None:
    url = urlsplit(settings.ometria.base_url)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ConfigError("ometria.base_url", f"not an http(s) URL: {settings.ometria.base_url!r}")
    if url.scheme == "http" and not is_loopback_host(url.hostname):
        raise ConfigError(
            "ometria.base_url",
            "plain http:// is only allowed for loopback hosts (127.0.0.1, localhost); use https://",
        )
    _check_state(settings.state)
    if not settings.streams:
        raise ConfigError("streams", "the job lists no stream")
    seen: set[str] = set()
    for index, stream in enumerate(settings.streams):
        if stream.name in seen:
            raise ConfigError(f"streams[{index}].name", f"duplicate stream name {stream.name!r}")
        seen.add(stream.name)
        stream.source.check(f"streams[{index}].source")
    check_shared_tenants([(f"streams[{i}].source", s.source)
                          for i, s in enumerate(settings.streams)])
    ometria = settings.ometria
    if ometria.rate_limit_url and ometria.rate_limit_url_env:
        raise ConfigError("ometria.rate_limit_url", "set rate_limit_url or rate_limit_url_env, "
                          "not both")
    if ometria.rate_limit_url:
        _check_redis_url("ometria.rate_limit_url", ometria.rate_limit_url)
    if settings.ometria.ca_bundle and not Path(settings.ometria.ca_bundle).is_file():
        raise ConfigError("ometria.ca_bundle", f"no such file: {settings.ometria.ca_bundle}")


def _check_redis_url(key: str, url: str) -> None:
    """A redis:// or rediss:// URL; the message never repeats the URL (it may hold a password)."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("redis", "rediss"):
        raise ConfigError(key, "expected a redis://HOST:PORT/DB or rediss:// URL")


def read_rate_limit_url(
    settings: OmetriaSettings, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Redis URL of the shared rate budget, or None to pace this process alone.

    Raises ConfigError when ``rate_limit_url_env`` names an unset variable or a bad URL; the
    message never contains the URL."""
    if settings.rate_limit_url:
        return settings.rate_limit_url
    if not settings.rate_limit_url_env:
        return None
    env = os.environ if environ is None else environ
    url = env.get(settings.rate_limit_url_env, "").strip()
    if not url:
        raise ConfigError(
            "ometria.rate_limit_url_env",
            f"environment variable {settings.rate_limit_url_env} is not set (it holds the "
            "Redis URL of the shared rate budget)",
        )
    _check_redis_url(f"environment variable {settings.rate_limit_url_env}", url)
    return url


def _check_state(state: StateSettings) -> None:
    key = "state.checkpoint_url_env" if state.checkpoint_url_env else "state.checkpoint_url"
    url = state.checkpoint_url
    if url.startswith(("postgresql://", "postgres://")):
        if not urlsplit(url).hostname and "host=" not in url:
            raise ConfigError(key, "expected postgresql://USER@HOST:PORT/DATABASE")
    elif not url.startswith("sqlite:///"):
        # the scheme only: the rest may hold a password
        raise ConfigError(key, f"expected sqlite:///PATH or postgresql://USER@HOST/DATABASE, "
                               f"got {url.split(':', 1)[0]}:...")
    if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", state.schema):
        raise ConfigError("state.schema", f"{state.schema!r} is not a plain lower-case SQL name")


def read_api_key(settings: OmetriaSettings, environ: Mapping[str, str] | None = None) -> str:
    """The API key from ``api_key_file`` if set, else from the ``api_key_env`` variable.

    Raises ConfigError naming where it looked; the message never contains the key.
    """
    env = os.environ if environ is None else environ
    if settings.api_key_file:
        try:
            key = Path(settings.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError("ometria.api_key_file", f"cannot read: {exc.strerror}") from None
        if not key:
            raise ConfigError("ometria.api_key_file", "the file is empty")
        return key
    key = env.get(settings.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            "ometria.api_key_env",
            f"environment variable {settings.api_key_env} is not set (it holds the API key)",
        )
    return key
