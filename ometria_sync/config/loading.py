"""Reading a job file: TOML, the environment's overrides, one validation, paths made absolute,
then the checks across keys; and, when they are needed, the secrets the file only names.

Every error is a ConfigError naming the key (``run.linger: expected ...``); nothing here
touches the network or the state.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.config.sections import JobSettings, OmetriaSettings, StateSettings, StreamSettings
from ometria_sync.errors import ConfigError
from ometria_sync.net import (
    base_url_problem,
    is_redis_url,
    is_schema_name,
    parse_state_url,
    read_credential,
    sqlite_url,
    url_scheme,
)
from ometria_sync.schemas import RECORD_TYPES
from ometria_sync.sources import (
    SECRET_REFUSED,
    SOURCE_KINDS,
    check_shared_tenants,
    resolve_path,
    secret_setting,
)

ENV_PREFIX = "OMETRIA_SYNC__"
_OVERRIDABLE = ("ometria", "state", "run", "report", "alerts")


class Job(msgspec.Struct, frozen=True):
    """A loaded job: settings with every path absolute, and where the file was."""

    path: Path
    settings: JobSettings

    @property
    def name(self) -> str:
        """The job's name (``name``, else the file's name without its extension): the state
        store keeps this job's rows, and its run lock, under it."""
        return self.settings.name or self.path.stem

    @property
    def stream_names(self) -> list[str]:
        """Every stream the job file lists (enabled or not): the state rows it owns."""
        return [s.name for s in self.streams]

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

    def check_credentials(self, streams: list[StreamSettings] | None = None) -> None:
        """ConfigError naming the key when a source's secret (a DSN, a token) is not there,
        for ``streams`` (default: the enabled ones). Only what reads the sources calls this:
        the commands that read only the state need no source secret."""
        for stream in self.select(None) if streams is None else streams:
            stream.source.check_credentials(f"streams[{self.index_of(stream.name)}].source")

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
        raise _config_error(str(exc), data) from None
    settings = _resolve_state_url(settings, os.environ if environ is None else environ)
    settings = _resolve_paths(settings, job_path.parent)
    check_settings(settings)
    return Job(path=job_path, settings=settings)


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in _OVERRIDABLE:
            raise ConfigError(
                name, "expected OMETRIA_SYNC__<OMETRIA|STATE|RUN|REPORT|ALERTS>__<KEY>"
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


def _config_error(message: str, data: Any = None) -> ConfigError:
    """Turn msgspec's "Expected `int`, got `str` - at `$.run.linger`" into ``run.linger: ...``;
    a table's key msgspec writes as ``[...]`` is named from ``data`` when it can be told."""
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
        path = _name_keys(path, data, unknown.group(1))
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


_STEP = re.compile(r"\[(\d+|\.\.\.)\]|\.?([^.\[]+)")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _name_keys(path: str, data: Any, unknown: str) -> str:
    """``streams[0].source.columns[...]`` -> ``streams[0].source.columns.gender``: each
    ``[...]`` (a key msgspec does not name) becomes the one key of that table whose value holds
    what the rest of the path and the unknown key reach; left as it is when it cannot be told."""
    steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(path)]

    def walk(node: Any, rest: list[tuple[str | None, str | None]]) -> list[str] | None:
        if not rest:
            return [] if isinstance(node, dict) and unknown in node else None
        (index, key), tail = rest[0], rest[1:]
        if key is not None:
            found = walk(node.get(key), tail) if isinstance(node, dict) else None
            return None if found is None else ["." + key, *found]
        if index != "...":
            ok = isinstance(node, list) and int(str(index)) < len(node)
            found = walk(node[int(str(index))], tail) if ok else None
            return None if found is None else [f"[{index}]", *found]
        if not isinstance(node, dict):
            return None
        hits = [(name, found) for name, value in node.items()
                if (found := walk(value, tail)) is not None]
        if len(hits) != 1:
            return None
        name, found = hits[0]
        shown = name if _BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'
        return ["." + shown, *found]

    named = walk(data, steps) if data is not None else None
    return "".join(named).lstrip(".") if named is not None else path


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
    where = parse_state_url(url)
    if where is None or where.kind != "sqlite":
        return url
    return sqlite_url(resolve_path(base, where.path))


# -------------------------------------------------------------------------------------------------
# Checks across keys, once the job file is read: URLs, the state's location, the streams'
# sources (each checks its own), before anything is sent.
# -------------------------------------------------------------------------------------------------

def check_settings(settings: JobSettings) -> None:
    """Raise ConfigError naming the first key that cannot work (each source checks its own)."""
    problem = base_url_problem(settings.ometria.base_url)
    if problem:
        raise ConfigError("ometria.base_url", problem)
    _check_state(settings.state)
    if not settings.streams:
        raise ConfigError("streams", "the job lists no stream")
    seen: set[str] = set()
    for index, stream in enumerate(settings.streams):
        if stream.name in seen:
            raise ConfigError(f"streams[{index}].name", f"duplicate stream name {stream.name!r}")
        seen.add(stream.name)
        stream.source.check(f"streams[{index}].source")
        stream.source.check_record_type(f"streams[{index}].source", stream.record_type)
        check_on_missing(f"streams[{index}]", stream)
    check_shared_tenants([(f"streams[{i}].source", s.source)
                          for i, s in enumerate(settings.streams)])
    ometria = settings.ometria
    if ometria.rate_limit_url and ometria.rate_limit_url_env:
        raise ConfigError("ometria.rate_limit_url", "set rate_limit_url or rate_limit_url_env, "
                          "not both")
    if ometria.rate_limit_url:
        check_redis_url("ometria.rate_limit_url", ometria.rate_limit_url)
    if settings.ometria.ca_bundle and not Path(settings.ometria.ca_bundle).is_file():
        raise ConfigError("ometria.ca_bundle", f"no such file: {settings.ometria.ca_bundle}")


#: sources read whole on every run: what they no longer hold was removed
_FULL_READ = ("jsonl", "csv", "glob")


def check_on_missing(key: str, stream: StreamSettings) -> None:
    """ConfigError naming the key when ``on_missing = "deactivate"`` cannot work for
    ``stream``: a record type without a deactivation, no change index (it is how the job knows
    what it delivered), lists missing, or a source that is never read whole."""
    if stream.on_missing == "ignore":
        return
    if stream.record_type not in ("product", "order", "contact"):
        raise ConfigError(f"{key}.on_missing", f"{stream.record_type} records cannot be "
                          "deactivated (products, orders and contacts can)")
    if not stream.change_detection:
        raise ConfigError(f"{key}.on_missing", "needs change_detection = true: the change "
                          "index is how the job knows which ids it delivered")
    if stream.on_missing_contact == "remove_from_lists" and not stream.on_missing_lists:
        raise ConfigError(f"{key}.on_missing_lists", "name the lists to remove a missing "
                          "contact from (on_missing_contact = \"remove_from_lists\")")
    kind = str(type(stream.source).__struct_config__.tag)
    deletions = stream.source.deletions()
    if kind in _FULL_READ or (deletions is not None and (deletions.deleted or deletions.keys)):
        return
    more = (" (set its deleted_query or keys_query)" if deletions is not None else
            "; deactivate works with jsonl, csv and glob sources, and with postgres and mysql "
            "sources given a deleted_query or a keys_query, and with magento2 sources")
    raise ConfigError(f"{key}.on_missing", f"a {kind} source is not read whole on every run, "
                      f"so a missing row cannot be told from an unchanged one{more} "
                      "(docs/deletions.md)")


def check_redis_url(key: str, url: str) -> None:
    """A redis:// or rediss:// URL; the message never repeats the URL (it may hold a password)."""
    if not is_redis_url(url):
        raise ConfigError(key, "expected a redis://HOST:PORT/DB or rediss:// URL")


def _check_state(state: StateSettings) -> None:
    key = "state.checkpoint_url_env" if state.checkpoint_url_env else "state.checkpoint_url"
    url = state.checkpoint_url
    where = parse_state_url(url)
    if where is not None and where.kind == "postgres":
        if not where.names_host:
            raise ConfigError(key, "expected postgresql://USER@HOST:PORT/DATABASE")
    elif where is None:
        # the scheme only: the rest may hold a password
        raise ConfigError(key, f"expected sqlite:///PATH or postgresql://USER@HOST/DATABASE, "
                               f"got {url_scheme(url)}:...")
    if not is_schema_name(state.schema):  # matched whole: "x\n" reaches x's tables
        raise ConfigError("state.schema", f"{state.schema!r} is not a plain lower-case SQL name")


# -------------------------------------------------------------------------------------------------
# What the job file only names: the API key and the shared rate budget's Redis URL (which may
# hold a password), read from the environment or a file when they are needed. No message ever
# contains them.
# -------------------------------------------------------------------------------------------------

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
    check_redis_url(f"environment variable {settings.rate_limit_url_env}", url)
    return url


def read_api_key(settings: OmetriaSettings, environ: Mapping[str, str] | None = None) -> str:
    """The API key from ``api_key_file`` if set, else from the ``api_key_env`` variable.

    Raises ConfigError naming where it looked; the message never contains the key.
    """
    return read_credential(
        path=settings.api_key_file, file_key="ometria.api_key_file",
        env_name=settings.api_key_env, env_key="ometria.api_key_env",
        holds="the Ometria API key", environ=environ)
