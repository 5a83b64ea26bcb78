"""The import graph of ``models/`` and ``stream/``: no upward import, no cycle.

Every ``import`` counts, at module level or inside a function: a lazy import hides a cycle
from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "stream")

# Lowest first; a module may import its own layer and those below. A module belongs to the
# longest prefix that names it, so new modules under stream/ are stream core unless listed.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("schema", ("models.schema", "models.records")),
    ("models", ("models",)),
    ("stream core", ("stream",)),
    ("web", ("stream.web",)),
    ("app", ("stream.app",)),
    ("cli", ("stream.cli",)),
    ("developer tools", ("stream.dev", "models.bench")),
)


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` is, or lives in (``a.b.C`` -> ``a.b``); None if outside."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, package: str, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {m for a in node.names if (m := _owner(a.name, modules))}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    out = set()
    for alias in node.names:  # ``from pkg import submodule`` imports the submodule
        full = f"{base}.{alias.name}"
        target = full if full in modules else _owner(base, modules)
        if target:
            out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            targets |= _imported(node, package, modules)
        graph[name] = targets - {name}
    return graph


def layer_of(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level >= 0, f"{module} is in no layer"
    return level


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_project():
    graph = import_graph()
    assert {"models.schema", "stream.app", "stream.cli.entry", "stream.web.views"} <= set(graph)
    assert "stream.web.views" in graph["stream.app"]


def test_models_never_import_stream():
    graph = import_graph()
    upward = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m.split(".")[0] == "models"
        for t in targets
        if t.split(".")[0] == "stream"
    )
    assert not upward, upward


def test_no_import_cycles():
    found = list(cycles(import_graph()))
    assert not found, [sorted(c) for c in found]


def test_no_layer_imports_a_higher_one():
    upward = sorted(
        f"{m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in import_graph().items()
        for t in targets
        if layer_of(t) > layer_of(m)
    )
    assert not upward, upward
