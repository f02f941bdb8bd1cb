"""The lock files: what the README, CI and the Dockerfile install, and how they agree with
pyproject.toml's ranges (kept for people who install the package into their own environment)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", re.M)


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {canonicalize_name(n): v for n, v in PIN.findall(text)}


RUNTIME = _pins("requirements.lock")
TEST = _pins("requirements-test.lock")


@pytest.mark.parametrize(("lock", "requirements"), [
    (RUNTIME, PROJECT["dependencies"]),
    (TEST, PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]),
], ids=["runtime", "test"])
def test_each_lock_satisfies_the_ranges(lock: dict[str, str], requirements: list[str]) -> None:
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is not locked"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"{req.name}=={lock[name]} in the lock is outside pyproject.toml's {req.specifier}")


def test_the_two_locks_agree_on_every_shared_package() -> None:
    differ = {n: (v, TEST.get(n)) for n, v in RUNTIME.items() if TEST.get(n) != v}
    assert not differ, f"runtime and test locks differ: {differ}"


def test_the_runtime_lock_holds_only_what_the_package_needs_at_run_time() -> None:
    for test_only in ("aiolimiter", "pytest", "aioresponses", "hypothesis", "mypy"):
        assert test_only not in RUNTIME


def test_every_pin_carries_hashes() -> None:
    for name in ("requirements.lock", "requirements-test.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", (ROOT / name).read_text())
        pinned = [b for b in blocks if PIN.match(b)]
        assert pinned and all("--hash=sha256:" in b for b in pinned), name


def test_the_build_backend_is_locked_so_installs_need_no_unpinned_download() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for line in build:
        req = Requirement(line)
        assert req.specifier.contains(RUNTIME[canonicalize_name(req.name)])


def test_everything_that_installs_installs_from_the_lock() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r requirements-test.lock" in make
    docker = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in docker
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_building_the_package_metadata_prints_no_deprecation_warning(tmp_path: Path) -> None:
    """With the build backend the project asks for (locked, or the newest in test-latest)."""
    from importlib.metadata import version

    (build,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert Requirement(build).specifier.contains(version("setuptools")), version("setuptools")
    code = ("import sys\nfrom setuptools import build_meta\n"
            "build_meta.prepare_metadata_for_build_wheel(sys.argv[1])")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
