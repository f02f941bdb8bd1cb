"""The documentation: a short README for a newcomer, the reference as an mkdocs site in docs/.

The site is built with `mkdocs build --strict`, which fails on a broken link or anchor, a page
left out of the navigation (mkdocs.yml's `validation` makes that a warning) or any other warning.
Two tests break a copy of the site on purpose, so a change to mkdocs or to mkdocs.yml that stops
strict from catching either would fail here, not pass unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ometria_sync.config import load_job
from tests.test_architecture import PACKAGE, _graph

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MOST_LINES = 200
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAP_ROW = re.compile(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", re.M)


def _build(config_root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=config_root, capture_output=True, text=True, timeout=120)


def _copy_of_the_site(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(DOCS, copy / "docs")
    return copy


def _nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for item in nav:
        if isinstance(item, str):
            pages.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_the_site_builds_strict_without_a_warning(tmp_path: Path) -> None:
    out = _build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-4000:]
    assert "WARNING" not in out.stderr, out.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "architecture" / "index.html").exists()


def test_a_page_left_out_of_the_navigation_fails_the_strict_build(tmp_path: Path) -> None:
    copy = _copy_of_the_site(tmp_path)
    (copy / "docs" / "orphan.md").write_text("# Orphan\n\nNot in mkdocs.yml's nav.\n")
    out = _build(copy, tmp_path / "site")
    assert out.returncode != 0
    assert "orphan.md" in out.stderr, out.stderr[-4000:]


@pytest.mark.parametrize("link", ["no-such-page.md", "commands.md#no-such-anchor"],
                         ids=["page", "anchor"])
def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path, link: str) -> None:
    copy = _copy_of_the_site(tmp_path)
    with (copy / "docs" / "metrics.md").open("a") as page:
        page.write(f"\nSee [nowhere]({link}).\n")
    out = _build(copy, tmp_path / "site")
    assert out.returncode != 0
    assert link.split("#")[-1] in out.stderr, out.stderr[-4000:]


def test_every_page_in_docs_is_in_the_navigation_and_every_nav_entry_exists() -> None:
    """Checked here too, whatever mkdocs' own rules become."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = _nav_pages(config["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed)), "a page is listed twice"
    assert "architecture.md" in listed and listed[0] == "index.md"


def test_the_readme_stays_short_and_links_to_the_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < README_MOST_LINES, (
        f"README.md has {len(text.splitlines())} lines: reference belongs in docs/")
    links = LINK.findall(text)
    assert "docs/index.md" in links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target = ROOT / link.split("#")[0]
        assert target.exists(), f"README links to {link}, which does not exist"


def test_the_readme_quick_start_commands_are_make_targets() -> None:
    text = README.read_text()
    make = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", make, re.M), f"no `{target}` target in the Makefile"


def test_the_readme_first_job_loads(tmp_path: Path) -> None:
    """The job file in the README's "A first real job" is a valid job as written."""
    (block,) = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    (tmp_path / "job.toml").write_text(block)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "contacts.jsonl").write_text("")
    job = load_job(tmp_path / "job.toml", environ={})
    assert [(s.name, s.record_type) for s in job.streams] == [("contacts", "contact")]


def test_the_package_map_allows_every_import_the_code_makes() -> None:
    """docs/development.md's "where things live" table names every package, and each package
    imports only packages its row allows ("may import": a permission, so a row may allow more)."""
    rows = dict(MAP_ROW.findall((DOCS / "development.md").read_text()))
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(rows) == packages
    for package, imports in _graph().items():
        if package not in packages or rows[package].strip() == "any":
            continue
        allowed = set(re.findall(r"`(\w+)`", rows[package]))
        assert imports & packages <= allowed, (
            f"{package} imports {sorted(imports & packages - allowed)}: not in its docs row")
