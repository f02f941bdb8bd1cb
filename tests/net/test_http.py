"""A credential is read from its file or its variable; a failure names the setting, never the
credential itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from ometria_sync.errors import ConfigError
from ometria_sync.net.http import read_credential

SECRET = "s3cr3t-value"


def _read(path: str | None, environ: dict[str, str]) -> str:
    return read_credential(path=path, file_key="x.key_file", env_name="X_KEY",
                           env_key="x.key_env", holds="the X key", environ=environ)


def test_the_file_wins_over_the_variable_and_loses_its_newline(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(f"  {SECRET}\n")
    assert _read(str(key), {"X_KEY": "from-env"}) == SECRET


def test_the_variable_when_no_file_is_named() -> None:
    assert _read(None, {"X_KEY": f" {SECRET} "}) == SECRET


@pytest.mark.parametrize("environ", [{}, {"X_KEY": "   "}])
def test_an_unset_or_blank_variable_names_the_setting(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _read(None, environ)
    assert str(caught.value).startswith("x.key_env: the environment variable X_KEY is not set")
    assert "the X key" in str(caught.value)


def test_an_empty_file_names_the_file_setting(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("\n")
    with pytest.raises(ConfigError, match=r"^x\.key_file: .* is empty"):
        _read(str(key), {"X_KEY": SECRET})


def test_an_unreadable_file_names_the_file_and_never_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _read(str(tmp_path / "missing"), {"X_KEY": SECRET})
    message = str(caught.value)
    assert message.startswith("x.key_file: cannot read")
    assert "missing" in message
    assert SECRET not in message
