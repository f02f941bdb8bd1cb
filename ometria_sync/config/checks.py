"""Checks across keys, once the job file is read: URLs, the state's location, the streams'
sources (each checks its own), before anything is sent."""

from __future__ import annotations

from pathlib import Path

from ometria_sync.config.sections import JobSettings, StateSettings
from ometria_sync.errors import ConfigError
from ometria_sync.net.urls import (
    base_url_problem,
    is_redis_url,
    is_schema_name,
    parse_state_url,
    url_scheme,
)
from ometria_sync.sources.omneo.settings import check_shared_tenants


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
