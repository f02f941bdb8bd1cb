"""Every command and option explains itself, with its default; the docs list every command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ometria_sync.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_argument_has_help() -> None:
    missing = [f"{name} {action.dest}" for name, command in _commands().items()
               for action in command._actions if not action.help]
    assert missing == []


def test_every_default_is_shown() -> None:
    """An option with a default (not None, not a flag's False) shows it in --help."""
    unshown = []
    for name, command in _commands().items():
        text = " ".join(command.format_help().split())
        for action in command._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            shown = action.default if not isinstance(action.default, tuple) else 0
            if f"default: {shown}" not in text and f"default: {shown:g}" not in text:
                unshown.append(f"{name} {action.option_strings[0]} ({action.default!r})")
    assert unshown == []


def test_the_check_sees_a_missing_default() -> None:
    """The formatter is what shows them: without it, the check above finds some."""
    command = _commands()["emulator"]
    command.formatter_class = argparse.HelpFormatter
    assert "default: 50000" not in " ".join(command.format_help().split())


def test_the_commands_page_lists_every_command() -> None:
    table = (ROOT / "docs" / "commands.md").read_text()
    listed = set(re.findall(r"^\| `ometria-sync ([a-z-]+)", table, re.M))
    assert set(_commands()) - listed == set()
    assert "docs/commands.md" in (ROOT / "README.md").read_text()
