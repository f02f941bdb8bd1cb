"""The package layout says the architecture: no two packages import each other.

Walks every module of `ometria_sync` with `ast`, builds the import graph between its top-level
parts (subpackages and top-level modules) and checks it has no cycle; and checks that no
function hides an `import ometria_sync...` (the usual way to dodge a cycle) unless a comment on
the line before or on the line itself gives a reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ometria_sync

PACKAGE = Path(ometria_sync.__file__).parent
ROOT = "ometria_sync"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an `import from` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported(module: str, path: Path, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        target = _absolute(module, path, node)
        if node.module is None:  # `from . import x`: each name may be a module
            return [f"{target}.{alias.name}" for alias in node.names]
        return [target]
    return []


def _part(module: str) -> str | None:
    """The top-level part of `ometria_sync` a module belongs to (None: the root package)."""
    parts = module.split(".")
    if parts[0] != ROOT or len(parts) < 2:
        return None
    return parts[1]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        source = _part(module)
        if source is None:
            continue  # the root package re-exports the public API from every part
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for target in _imported(module, path, node):
                dest = _part(target)
                if dest is not None and dest != source:
                    graph.setdefault(source, set()).add(dest)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_two_packages_import_each_other() -> None:
    """The import graph between ometria_sync's parts has no cycle."""
    assert _cycle(_graph()) is None


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a two-way dependency (so the test above can fail)."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def _hidden_imports() -> list[str]:
    found = []
    for module, path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        for func in ast.walk(ast.parse(text, str(path))):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                targets = _imported(module, path, node)
                if not any(t == ROOT or t.startswith(ROOT + ".") for t in targets):
                    continue
                line = lines[node.lineno - 1]
                before = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                reason = ("#" in line) or before.startswith("#")
                if not reason or "cycle" in (line + before).lower():
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_no_import_hidden_in_a_function() -> None:
    """A function-local import of ometria_sync needs a stated reason, and not a cycle."""
    assert _hidden_imports() == []


#: the most lines a module of ometria_sync may have: past it, a module holds more than one idea
MAX_LINES = 300


def _long_modules(limit: int) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}: {count} lines"
        for _, path in _modules()
        if (count := len(path.read_text().splitlines())) > limit
    ]


def test_no_module_over_300_lines() -> None:
    """Every module of ometria_sync fits in MAX_LINES lines."""
    assert _long_modules(MAX_LINES) == []


def test_long_module_check_sees_a_long_module() -> None:
    """The check reads real line counts (so the test above can fail): a limit below the
    longest module's length names that module."""
    longest = max(len(path.read_text().splitlines()) for _, path in _modules())
    assert len(_long_modules(longest - 1)) >= 1
    assert _long_modules(longest) == []
