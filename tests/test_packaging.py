"""What users install and run: the console script, the Dockerfile's entrypoint, the sample job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from ometria_sync import __version__
from ometria_sync.config import load_job

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ometria_sync", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_version_and_help() -> None:
    assert _cli("--version").stdout.strip() == f"ometria-sync {__version__}"
    help_text = _cli("--help").stdout
    for command in ("run", "validate", "status", "reset", "emulator"):
        assert command in help_text


def test_usage_error_exits_2() -> None:
    assert _cli("run").returncode == 2
    assert _cli("frobnicate").returncode == 2


def test_config_error_exits_1_naming_the_key(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[[streams]]\nname = "c"\nrecord_type = "contact"\n'
                   'source = { kind = "jsonl", path = "missing.jsonl" }\n')
    result = _cli("run", str(job))
    assert result.returncode == 1
    assert "streams[0].source.path: no such file" in result.stderr


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ometria-sync"] == "ometria_sync.cli:entry"


def test_dockerfile_runs_the_console_script_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["ometria-sync"\]$', text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install --no-deps --no-build-isolation ." in text
    # what the entrypoint runs is the installed console script; it must start
    script = Path(sys.executable).parent / "ometria-sync"
    assert script.exists(), "pip install . did not install the ometria-sync script"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert out.returncode == 0 and __version__ in out.stdout


def test_the_sample_job_loads() -> None:
    job = load_job(ROOT / "config" / "example.toml", environ={})
    assert [s.name for s in job.streams] == ["products", "contacts", "orders"]
