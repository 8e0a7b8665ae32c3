"""No import cycle among the project's modules (hvlab, workflows, activities, starter, simulator,
worker), read from the source with :mod:`ast`.

Every import counts: at module level, inside functions, and under ``if TYPE_CHECKING:`` (a
type-only import is still a dependency). ``import a.b`` and ``from a.b import x`` depend on
``a.b``; ``from a import b`` on the submodule ``a.b`` when there is one, else on ``a``'s
``__init__``. A package's ``__init__`` that Python runs before a submodule is not counted as
the submodule's dependency (a package re-exporting its submodules is no cycle).

The known cycles outside ``simulator/`` are allowed edge by edge in :data:`KNOWN_CYCLE_EDGES`;
removing those edges must leave no cycle, so any new cycle fails, and an allowed edge that no
longer closes a cycle fails too until it is taken off the list.

No module takes a private (underscore-prefixed) name from another project module, by ``from m
import _x`` or by ``m._x`` on an imported module: what two modules share gets a public name in
the lower one (the few that still do are listed in :data:`KNOWN_PRIVATE_IMPORTS`). And the
CLI is layered: only ``starter.cli`` imports the command modules (``starter.commands.*``), and
nothing imports ``starter.cli``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hvlab", "workflows", "activities", "starter", "simulator")
SINGLE_MODULES = ("worker",)

# Edges allowed to close a cycle while it is being taken apart: none now.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()

# Private (underscore) names one project module takes from another, allowed until they get a
# public name in a lower module: (importer, "module.name").
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset({
    # issue 16 item 5: to remove (simulator/pstypes.py's enum helper wants a public name)
    ("simulator.cmdlets.host_jobs", "simulator.pstypes._enum"),
    ("simulator.cmdlets.network", "simulator.pstypes._enum"),
    ("simulator.cmdlets.smb", "simulator.pstypes._enum"),
})

Graph = dict[str, set[str]]


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    for name in SINGLE_MODULES:
        out[name] = root / f"{name}.py"
    return out


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The project modules ``name`` (at ``path``) imports, wherever the import statement is."""
    known = set(modules)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            module = _imported_from(node, package)
            submodules = {f"{module}.{a.name}" for a in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names) and module in known:
                found.add(module)
    found.discard(name)
    return found


def _imported_from(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` statement names, relative imports resolved."""
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])
    return node.module or ""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports_of(name: str, path: Path, modules: Iterable[str]) -> set[tuple[str, str]]:
    """The private names of other project modules that ``name`` (at ``path``) uses:
    ``from m import _x`` and ``m._x`` where ``m`` is bound to a project module by an import.
    Each as ``(name, "m._x")``."""
    known = set(modules)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[tuple[str, str]] = set()
    bound: dict[str, str] = {}  # local name -> the project module (or package) it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _imported_from(node, package)
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
                elif module in known and _private(alias.name) and module != name:
                    found.add((name, f"{module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.partition(".")[0]
                if alias.asname and alias.name in known:
                    bound[alias.asname] = alias.name
                elif not alias.asname and top in known:
                    bound[top] = top
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain: list[str] = []
        value: ast.expr = node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in bound:
            continue
        module = ".".join([bound[value.id], *chain])
        if module in known and module != name:
            found.add((name, f"{module}.{node.attr}"))
    return found


def private_imports(root: Path = ROOT) -> set[tuple[str, str]]:
    modules = project_modules(root)
    return {pair for name, path in modules.items()
            for pair in private_imports_of(name, path, modules)}


def import_graph(root: Path = ROOT) -> Graph:
    modules = project_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph: Graph, component: list[str]) -> str:
    members = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a]) if b in members]
    return "\n".join([f"  cycle among {', '.join(component)}:", *edges])


def without(graph: Graph, edges: Iterable[tuple[str, str]]) -> Graph:
    dropped = set(edges)
    return {a: {b for b in bs if (a, b) not in dropped} for a, bs in graph.items()}


# -- the analysis itself ------------------------------------------------------------------------


def _empty_project(root: Path) -> None:
    """The project's packages and single modules, empty, under ``root``."""
    for package in PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for name in SINGLE_MODULES:
        (root / f"{name}.py").write_text("")


def test_finds_cycles_through_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The analysis sees a cycle closed by an import inside a function or under
    TYPE_CHECKING, and none where a package merely re-exports its submodules."""
    _empty_project(tmp_path)
    sim = tmp_path / "simulator"
    (sim / "a.py").write_text("from simulator.b import x\n")
    (sim / "b.py").write_text("x = 1\n\ndef f():\n    from simulator import a\n")
    (sim / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\n")
    (sim / "d.py").write_text("from simulator.c import *\nclass D: ...\n")
    (sim / "pkg").mkdir()
    (sim / "pkg" / "__init__.py").write_text("from simulator.pkg.impl import thing\n")
    (sim / "pkg" / "impl.py").write_text("from simulator.pkg import base\nthing = base\n")
    (sim / "pkg" / "base.py").write_text("")
    assert cycles(import_graph(tmp_path)) == [
        ["simulator.a", "simulator.b"], ["simulator.c", "simulator.d"]]


# -- the project ---------------------------------------------------------------------------------


def test_simulator_has_no_import_cycle() -> None:
    graph = import_graph()
    found = [c for c in cycles(graph) if any(m.startswith("simulator") for m in c)]
    assert not found, "import cycles in simulator/:\n" + "\n".join(
        describe(graph, c) for c in found)


def test_no_new_import_cycle() -> None:
    """Apart from the allowed edges, the project's modules import each other without a
    cycle; each allowed edge still closes one (else take it off KNOWN_CYCLE_EDGES)."""
    graph = import_graph()
    found = cycles(without(graph, KNOWN_CYCLE_EDGES))
    assert not found, "new import cycles (make the shared part a lower module):\n" + "\n".join(
        describe(graph, c) for c in found)
    closing = {(a, b) for c in cycles(graph) for a in c for b in graph[a] if b in c}
    stale = sorted(KNOWN_CYCLE_EDGES - closing)
    assert not stale, f"these allowed edges close no cycle any more, remove them: {stale}"


def test_finds_private_names_taken_from_another_module(tmp_path: Path) -> None:
    """The analysis sees ``from m import _x`` (also relative and inside a function) and
    ``m._x`` on a module bound by ``import``, ``import ... as`` or ``from package import m``;
    not a module's own private names, dunders, or a private attribute of a non-module."""
    _empty_project(tmp_path)
    cli = tmp_path / "starter"
    (cli / "lower.py").write_text("_helper = 1\npublic = 2\n")
    (cli / "a.py").write_text("from starter.lower import _helper, public\n")
    (cli / "b.py").write_text("def f():\n    from .lower import _helper\n")
    (cli / "c.py").write_text("from starter import lower\nx = lower._helper\n")
    (cli / "d.py").write_text("import starter.lower\nx = starter.lower._helper\n")
    (cli / "e.py").write_text("import starter.lower as low\nx = low._helper\n")
    (cli / "fine.py").write_text(
        "from starter.lower import public\n_mine = 1\nx = _mine\n"
        "from starter import lower\ny = lower.__name__\nz = public._real\n")
    assert private_imports(tmp_path) == {
        (f"starter.{m}", "starter.lower._helper") for m in ("a", "b", "c", "d", "e")}


def test_no_private_name_crosses_a_module() -> None:
    """No project module uses another one's private name (outside KNOWN_PRIVATE_IMPORTS); each
    allowed one is still used (else take it off the list)."""
    found = private_imports()
    new = sorted(found - KNOWN_PRIVATE_IMPORTS)
    assert not new, ("private names used across modules (give the shared helper a public "
                     f"name in the lower module): {new}")
    stale = sorted(KNOWN_PRIVATE_IMPORTS - found)
    assert not stale, f"these allowed private imports are gone, remove them: {stale}"


def test_the_cli_is_layered() -> None:
    """Only ``starter.cli`` imports the command modules, and no module imports ``starter.cli``
    (it mounts the commands; what they share lives in starter's lower modules)."""
    graph = import_graph()
    commands = {m for m in graph if m.startswith("starter.commands.")}
    assert commands, "no command modules under starter/commands/"
    wrong = sorted((a, b) for a, bs in graph.items() for b in bs
                   if (b in commands and a != "starter.cli") or b == "starter.cli")
    assert not wrong, f"imports across the CLI's layers: {wrong}"
