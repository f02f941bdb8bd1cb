"""What an HTTP client (Ometria's, Omneo's) needs to connect: TLS, and its credential (an API
key, a token) read from a file or an environment variable.

Guarantee: no message ever contains the credential; each names the setting to fix
(``file_key`` or ``env_key``) and where it looked.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

from ometria_sync.errors import ConfigError


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificate verification is always on; ``ca_bundle`` replaces the system's trust store."""
    return ssl.create_default_context(cafile=ca_bundle)


def read_credential(
    *,
    path: str | None,
    file_key: str,
    env_name: str,
    env_key: str,
    holds: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The credential from the file at ``path`` if set, else from ``env_name``; surrounding
    white space (a trailing newline) is dropped. ``holds`` says what it is, for the message.

    Raises ConfigError when the file cannot be read or is empty, or the variable is unset."""
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(file_key, f"cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(file_key, f"{path} is empty (it should hold {holds})")
        return value
    env = os.environ if environ is None else environ
    value = env.get(env_name, "").strip()
    if not value:
        raise ConfigError(
            env_key, f"the environment variable {env_name} is not set (it holds {holds})")
    return value
