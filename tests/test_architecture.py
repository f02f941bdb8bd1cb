"""The package layout says the architecture: no two packages import each other.

Walks every module of `ometria_sync` with `ast`, builds the import graph between its top-level
parts (subpackages and top-level modules) and checks it has no cycle; and checks that no
function hides an `import ometria_sync...` (the usual way to dodge a cycle) unless a comment on
the line before or on the line itself gives a reason.
"""

from __future__ import annotations

import ast
import importlib
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


#: the band a module's length should sit in: past the top it holds more than one idea; below the
#: bottom it is usually a piece of an idea cut off by size (``__init__`` files aside). The top is
#: checked here; the bottom is a guide, listed by ``_short_modules`` for review, not a rule.
BAND = (60, 500)


def _long_modules(limit: int) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}: {count} lines"
        for _, path in _modules()
        if (count := len(path.read_text().splitlines())) > limit
    ]


def test_no_module_past_the_top_of_the_band() -> None:
    """Every module of ometria_sync fits in BAND[1] lines."""
    assert _long_modules(BAND[1]) == []


def test_long_module_check_sees_a_long_module() -> None:
    """The check reads real line counts (so the test above can fail): a limit below the
    longest module's length names that module."""
    longest = max(len(path.read_text().splitlines()) for _, path in _modules())
    assert len(_long_modules(longest - 1)) >= 1
    assert _long_modules(longest) == []


def _module_edges(module: str, path: Path, tree: ast.AST, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``module`` imports anywhere in ``tree``."""
    edges: set[str] = set()
    for node in ast.walk(tree):
        targets = _imported(module, path, node)
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            base = targets[0]
            named = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in named if t in modules] or [base]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module and target != ROOT:
                edges.add(target)
    return edges


def _module_graph() -> dict[str, set[str]]:
    """Imports between ometria_sync's modules, ``TYPE_CHECKING`` and function-local imports
    included (a package stands for its ``__init__``)."""
    modules = {name for name, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        edges = _module_edges(module, path, ast.parse(path.read_text(), str(path)), modules)
        if edges:
            graph[module] = edges
    return graph


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


#: module loops that exist today and are being taken apart (issue 28); the list only shrinks
KNOWN_LOOPS: list[list[str]] = []


def test_no_import_loop_between_modules() -> None:
    """No two modules import each other, directly or round a loop, not even under
    ``TYPE_CHECKING`` (apart from the loops still listed in KNOWN_LOOPS, each of which must
    still exist: a fixed loop is taken off the list)."""
    loops = _loops(_module_graph())
    assert [loop for loop in loops if loop not in KNOWN_LOOPS] == []
    assert [loop for loop in KNOWN_LOOPS if loop not in loops] == []


def test_loop_finder_finds_a_loop() -> None:
    """The loop finder sees a loop of three and a two-way pair, and nothing in a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"g"}}
    assert _loops(graph) == [["a", "b", "c"], ["d", "e"]]
    assert _loops({"a": {"b"}, "b": {"c"}}) == []


def test_module_graph_sees_type_checking_and_local_imports() -> None:
    """An import under ``TYPE_CHECKING`` or inside a function is an edge, and a name imported
    from a package is an edge to its module when the name is a module."""
    source = """
from typing import TYPE_CHECKING
from ometria_sync.p import b
if TYPE_CHECKING:
    from ometria_sync.p.c import Thing
def f():
    import ometria_sync.q.d
"""
    modules = {"ometria_sync.p", "ometria_sync.p.a", "ometria_sync.p.b", "ometria_sync.p.c",
               "ometria_sync.q.d"}
    edges = _module_edges("ometria_sync.p.a", Path("a.py"), ast.parse(source), modules)
    assert edges == {"ometria_sync.p.b", "ometria_sync.p.c", "ometria_sync.q.d"}


# -- package faces -------------------------------------------------------------------------------
# Each package says what it offers the others in its ``__init__``'s ``__all__``; the others import
# only those names, and only from the package itself (``from ometria_sync.state import
# StateStore``, never ``ometria_sync.state.store``). Inside a package, modules import each other
# directly. So a package can move things between its own modules without touching another.


def _packages() -> list[tuple[str, Path]]:
    return [(name, path) for name, path in _modules()
            if path.name == "__init__.py" and name != ROOT]


def _declared_all(path: Path) -> list[str] | None:
    """The names an ``__init__``'s ``__all__`` lists (None: it declares none)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if (isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)):
            value = ast.literal_eval(node.value)
            return list(value)
    return None


def test_every_package_declares_its_face() -> None:
    """Every subpackage's ``__init__`` lists ``__all__``, and every listed name is really there."""
    missing = [name for name, path in _packages() if _declared_all(path) is None]
    assert missing == []
    for name, path in _packages():
        module = importlib.import_module(name)
        absent = [item for item in _declared_all(path) or [] if not hasattr(module, item)]
        assert absent == [], name


def _face_violations(module: str, path: Path, tree: ast.AST,
                     faces: dict[str, list[str]]) -> list[str]:
    """The imports in ``module`` that reach into another top-level package past its face
    (``faces``: each top-level package's ``__all__``), or take a name its face does not list."""
    source = _part(module)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, path, node)
            names = [(target, alias.name) for alias in node.names]
        else:
            continue
        for target, name in names:
            dest = _part(target)
            face = f"{ROOT}.{dest}"
            if dest is None or dest == source or face not in faces:
                continue  # the root, a top-level module (errors, clock), or its own package
            if target != face:
                found.append(f"{module}:{node.lineno} imports {target}")
            elif name is not None and name not in faces[face]:
                found.append(f"{module}:{node.lineno} imports {name}, not in {face}.__all__")
    return found


def _faces() -> dict[str, list[str]]:
    return {name: _declared_all(path) or [] for name, path in _packages()
            if name.count(".") == 1}


def test_other_packages_import_only_through_the_face() -> None:
    """No module imports another top-level package's modules, or a name its face hides."""
    faces = _faces()
    found = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        found += _face_violations(module, path, tree, faces)
    assert found == []


def test_face_check_sees_an_import_past_the_face() -> None:
    """The check flags a module of another package, and a name the face does not list; it
    lets a package's own modules, and the face's names, through."""
    faces = {"ometria_sync.state": ["StateStore"], "ometria_sync.pipeline": []}
    source = """
from ometria_sync.state.store import StateStore
from ometria_sync.state import StateStore
from ometria_sync.state import sqlite_sql
import ometria_sync.state.store
from ometria_sync.pipeline.batch import Batch
from ometria_sync.errors import ConfigError
"""
    found = _face_violations("ometria_sync.pipeline.x", Path("x.py"), ast.parse(source), faces)
    assert found == [
        "ometria_sync.pipeline.x:2 imports ometria_sync.state.store",
        "ometria_sync.pipeline.x:4 imports sqlite_sql, not in ometria_sync.state.__all__",
        "ometria_sync.pipeline.x:5 imports ometria_sync.state.store",
    ]
