"""What the job file only names: the API key and the shared rate budget's Redis URL (which may
hold a password), read from the environment or a file when they are needed. No message ever
contains them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ometria_sync.config.checks import check_redis_url
from ometria_sync.config.sections import OmetriaSettings
from ometria_sync.errors import ConfigError
from ometria_sync.net.http import read_credential


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
