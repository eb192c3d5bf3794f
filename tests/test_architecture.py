"""The house rules of the import graph (shared/docs/ARCHITECTURE.md), read from the source:

* no circle: no module of the package imports one that (directly or through others) imports it back;
* no private name crosses a module: ``from mmea_pyg.x import _y`` appears nowhere (package, CLI,
  tests, benchmarks).

Imports under ``if TYPE_CHECKING:`` are annotations, not imports, and are left out; lazy imports
inside functions count like any other. ``from package import submodule`` is an import of the
submodule; ``from package import name`` an import of the package's ``__init__``.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("mmea_pyg", "cli", "tests", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "cli":  # installed as mmea_pyg.cli
        parts = ["mmea_pyg", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in SOURCES for p in sorted((REPO / folder).rglob("*.py"))}


def _under_type_checking(parents: list[ast.AST]) -> bool:
    return any(isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) for p in parents)


def _imports(path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The package modules ``path`` imports, and the private names it imports from them."""
    edges: set[str] = set()
    private: list[str] = []
    stack: list[tuple[ast.AST, list[ast.AST]]] = [(ast.parse(path.read_text(encoding="utf-8")), [])]
    while stack:
        node, parents = stack.pop()
        stack.extend((child, [*parents, node]) for child in ast.iter_child_nodes(node))
        if _under_type_checking(parents):
            continue
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("mmea_pyg")
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                edges.add(sub if sub in modules else node.module)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append(f"{alias.name} from {node.module} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            edges.update(a.name for a in node.names if a.name.startswith("mmea_pyg"))
    return edges, private


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    modules = _modules()
    found = {name: _imports(path, modules) for name, path in modules.items()}
    return {n: e for n, (e, _) in found.items()}, {n: p for n, (_, p) in found.items() if p}


def _path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A chain of imports from ``start`` to ``goal`` (breadth first), or :obj:`None`."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            chain = [here]
            while previous[chain[-1]] is not None:
                chain.append(previous[chain[-1]])
            return chain[::-1]
        for there in graph.get(here, ()):
            if there not in previous:
                previous[there] = here
                queue.append(there)
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph, _ = _graph()
    package = {name for name in graph if name.startswith("mmea_pyg")}
    circles = []
    for module in sorted(package):
        for imported in sorted(graph[module] & package - {module}):
            back = _path(graph, imported, module)
            if back is not None:
                circles.append(" -> ".join([module, *back]))
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_private_name_crosses_a_module():
    _, private = _graph()
    found = [f"{module}: {name}" for module, names in sorted(private.items()) for name in names]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_checker_sees_a_circle_and_a_private_import(tmp_path: Path):
    # The rules above are only as good as the reading of the source: a circle and a private import
    # written here are found.
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from mmea_pyg.b import helper\n", encoding="utf-8")
    b.write_text("def f():\n    from mmea_pyg.a import _hidden\n", encoding="utf-8")
    modules = {"mmea_pyg.a": a, "mmea_pyg.b": b}
    graph = {name: _imports(path, modules)[0] for name, path in modules.items()}
    assert _path(graph, "mmea_pyg.b", "mmea_pyg.a") == ["mmea_pyg.b", "mmea_pyg.a"]
    assert _path(graph, "mmea_pyg.a", "mmea_pyg.b") == ["mmea_pyg.a", "mmea_pyg.b"]
    assert _imports(b, modules)[1] == ["_hidden from mmea_pyg.a (line 2)"]
    typed = tmp_path / "c.py"
    typed.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mmea_pyg.a import _x\n")
    assert _imports(typed, modules) == (set(), [])
