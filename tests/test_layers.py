"""The import graph of ``src/mixer`` has no circles, and the low modules stay low: a newcomer
can read the package bottom-up (specs, schema, errors, rng -> sources -> transforms -> mix ->
formats/writers -> engine -> pipeline -> cli)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOT = REPO / "src" / "mixer"
LOW = {"mixer.errors", "mixer.specs", "mixer.schema", "mixer.rng", "mixer.text", "mixer.pyexpr"}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                # ``from pkg import a, b``: an edge to each submodule named, else to ``pkg`` itself
                named = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = named or [base]
            for target in targets:
                while target and target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_low_modules_import_only_low_modules() -> None:
    edges = graph()
    for name in LOW:
        assert edges[name] <= LOW, f"{name} imports {sorted(edges[name] - LOW)}"


def test_reading_sources_never_imports_recipe_parsing() -> None:
    edges = graph()
    for name in [m for m in edges if m.startswith(("mixer.sources", "mixer.pools", "mixer.tokens", "mixer.dedup",
                                                   "mixer.decontaminate"))]:
        assert "mixer.recipe" not in edges[name], f"{name} imports mixer.recipe"
