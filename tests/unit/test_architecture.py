"""The house plan holds in the source: no import cycles, rooms import only what the plan allows,
and inside agent/ imports run down the floors.

Every written import is read statically with `ast` (module level, function level and under
`if TYPE_CHECKING:` alike), so nothing here is imported or executed. The tables at the top are
the plan as code; docs/ may point at them.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "watchstander."

# room -> the project rooms its modules may import (the "may import" column of ARCHITECTURE.md).
ROOM_MAY_IMPORT: dict[str, frozenset[str]] = {
    "connectors": frozenset({"connectors"}),
    "playbooks": frozenset({"playbooks", "connectors"}),
    "guidance": frozenset({"guidance"}),
    "agent": frozenset({"agent", "connectors", "playbooks", "guidance"}),
}
ROOMS = tuple(ROOM_MAY_IMPORT)

# The floors of agent/, top to bottom. A module may import its own floor or any lower one.
# "x.*" matches the module x and everything below it; a name without ".*" matches only itself.
AGENT_FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points", ("agent.cli.*", "agent.daemon.*", "agent.control.*", "agent.console.*", "agent.demo.*")),
    ("application", ("agent.app.*",)),
    ("domain", ("agent.detection.*", "agent.triage.*", "agent.policy.*")),
    ("store", ("agent.store.*",)),
    ("base", ("agent", "agent.errors", "agent.clock", "agent.models", "agent.assets", "agent.config.*")),
)

# Order within a floor: modules matching the left pattern must not import modules matching any
# pattern on the right (imports inside the left pattern itself are always allowed).
MUST_NOT_IMPORT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agent.control.*", ("agent.cli.*", "agent.daemon.*", "agent.console.*")),
    ("agent.daemon.*", ("agent.cli.*",)),
    ("agent.console.*", ("agent.cli.*", "agent.daemon.*")),
    ("agent.demo.*", ("agent.cli.*", "agent.daemon.*", "agent.control.*", "agent.console.*")),
    # The domain rooms are siblings: only app/ wires them together.
    ("agent.detection.*", ("agent.triage.*", "agent.policy.*")),
    ("agent.triage.*", ("agent.detection.*", "agent.policy.*")),
    ("agent.policy.*", ("agent.detection.*", "agent.triage.*")),
    # The engine knows no component.
    ("agent.store.engine.*", ("agent.store.*",)),
)

# (importing module, imported module) pairs allowed to import inside a function in agent/.
ALLOWED_FUNCTION_LEVEL_IMPORTS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class ImportEdge:
    """One written import of a project module: who imports what, where, and whether it is deferred."""

    importer: str
    target: str
    line: int
    function_level: bool


@dataclass(frozen=True)
class ImportScan:
    """The modules under a root (dotted name -> file), their imports, and the module graph."""

    modules: dict[str, Path]
    imports: list[ImportEdge]
    graph: dict[str, set[str]]

    def __repr__(self) -> str:
        return f"ImportScan({len(self.modules)} modules, {len(self.imports)} imports)"


def find_modules(root: Path) -> dict[str, Path]:
    """Map every module in the rooms under root to its file; a package is its __init__.py."""
    modules: dict[str, Path] = {}
    for room in ROOMS:
        for path in sorted((root / room).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """True for `TYPE_CHECKING` and `typing.TYPE_CHECKING`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(
    node: ast.AST, in_function: bool = False, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Yield every import statement below node with whether it is function level (and not TYPE_CHECKING)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, in_function and not type_checking
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for statement in node.body:
            yield from _import_statements(statement, in_function, True)
        for statement in node.orelse:
            yield from _import_statements(statement, in_function, type_checking)
        return
    inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    for child in ast.iter_child_nodes(node):
        yield from _import_statements(child, inner, type_checking)


def _project_name(dotted: str) -> str | None:
    """A name without its watchstander. prefix when it lies in one of the rooms, else None."""
    dotted = dotted.removeprefix(NAMESPACE)
    return dotted if dotted.partition(".")[0] in ROOMS else None


def _known_module(dotted: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of a project name that is a module (what Python imports before failing)."""
    name = _project_name(dotted) or ""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def resolve(statement: ast.Import | ast.ImportFrom, importer: str, modules: Mapping[str, Path]) -> set[str]:
    """The project modules one import statement names; `from X import m` counts as X.m when that is a module."""
    if isinstance(statement, ast.Import):
        found = {_known_module(alias.name, modules) for alias in statement.names}
        return {name for name in found if name}
    if statement.level:
        # Relative names live beside the rooms, so going above a room reaches the watchstander namespace.
        package = importer if modules[importer].name == "__init__.py" else importer.rpartition(".")[0]
        parts = package.split(".")
        if statement.level - 1 > len(parts):
            return set()
        parts = parts[: len(parts) - (statement.level - 1)] + ([statement.module] if statement.module else [])
        stem = ".".join(parts)
    else:
        stem = statement.module or ""
    targets: set[str] = set()
    for alias in statement.names:
        submodule = _project_name(f"{stem}.{alias.name}" if stem else alias.name)
        target = submodule if submodule in modules else _known_module(stem, modules)
        if target:
            targets.add(target)
    return targets


def find_imports(modules: Mapping[str, Path]) -> list[ImportEdge]:
    """Every written import of another project module; a package importing its own children is not counted."""
    edges: list[ImportEdge] = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for statement, function_level in _import_statements(tree):
            for target in sorted(resolve(statement, importer, modules)):
                if target == importer or (is_package and target.startswith(importer + ".")):
                    continue
                edges.append(ImportEdge(importer, target, statement.lineno, function_level))
    return edges


def scan(root: Path) -> ImportScan:
    """Read the modules under root and build the import graph (every module is a key)."""
    modules = find_modules(root)
    imports = find_imports(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for edge in imports:
        graph[edge.importer].add(edge.target)
    return ImportScan(modules, imports, graph)


def strongly_connected_components(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def enter(node: str) -> tuple[str, Iterator[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        return node, iter(sorted(graph[node]))

    for root in sorted(graph):
        if root in index:
            continue
        work = [enter(root)]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    work.append(enter(successor))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def _shortest_path(graph: Mapping[str, set[str]], start: str, goal: str, allowed: set[str]) -> list[str]:
    """Breadth-first path from start to goal through allowed modules only."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for successor in sorted(graph[node] & allowed):
            if successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    path: list[str] = []
    step: str | None = goal
    while step is not None:
        path.append(step)
        step = came_from[step]
    return path[::-1]


def describe_cycles(graph: Mapping[str, set[str]]) -> list[str]:
    """One shortest cycle through every edge inside each strongly connected component, as `a -> b -> a`."""
    cycles: set[tuple[str, ...]] = set()
    for component in strongly_connected_components(graph):
        members = set(component)
        for source in component:
            for target in sorted(graph[source] & members):
                cycle = [source, *_shortest_path(graph, target, source, members)[:-1]]
                first = cycle.index(min(cycle))
                cycles.add(tuple(cycle[first:] + cycle[:first]))
    return [" -> ".join([*cycle, cycle[0]]) for cycle in sorted(cycles)]


def matches(module: str, pattern: str) -> bool:
    """`x.*` matches x and everything below it; any other pattern matches only itself."""
    if pattern.endswith(".*"):
        stem = pattern[:-2]
        return module == stem or module.startswith(stem + ".")
    return module == pattern


def room_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every `module -> imported module` that crosses into a room the importer may not import."""
    found: list[str] = []
    for importer in sorted(graph):
        allowed = ROOM_MAY_IMPORT[importer.partition(".")[0]]
        found.extend(
            f"{importer} -> {target}" for target in sorted(graph[importer]) if target.partition(".")[0] not in allowed
        )
    return found


def floor_of(module: str) -> tuple[int, str] | None:
    """(height, floor name) of an agent module, 0 being the base; None when it is on no floor."""
    for position, (name, patterns) in enumerate(AGENT_FLOORS):
        if any(matches(module, pattern) for pattern in patterns):
            return len(AGENT_FLOORS) - 1 - position, name
    return None


def floor_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Unplaced agent modules, upward imports, and imports the within-floor order forbids."""
    found: list[str] = []
    for importer in sorted(m for m in graph if m.partition(".")[0] == "agent"):
        floor = floor_of(importer)
        if floor is None:
            found.append(f"{importer}: unplaced module: put it on a floor")
            continue
        for target in sorted(t for t in graph[importer] if t.partition(".")[0] == "agent"):
            target_floor = floor_of(target)
            if target_floor is not None and target_floor[0] > floor[0]:
                found.append(f"{importer} -> {target} (floor '{floor[1]}' imports higher floor '{target_floor[1]}')")
            for source_pattern, forbidden in MUST_NOT_IMPORT:
                if not matches(importer, source_pattern) or matches(target, source_pattern):
                    continue
                for pattern in forbidden:
                    if matches(target, pattern):
                        found.append(f"{importer} -> {target} ({source_pattern} must not import {pattern})")
    return found


def function_level_imports(imports: list[ImportEdge]) -> list[ImportEdge]:
    """Imports of project modules made inside functions of agent/ (TYPE_CHECKING blocks excluded)."""
    return [edge for edge in imports if edge.function_level and edge.importer.partition(".")[0] == "agent"]


@pytest.fixture(scope="module")
def repo_scan() -> ImportScan:
    """The import graph of this repository's source folders."""
    return scan(REPO)


def test_no_import_cycles(repo_scan: ImportScan) -> None:
    """No module imports itself back through any chain of project imports."""
    cycles = describe_cycles(repo_scan.graph)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(cycles)


def test_rooms_import_only_what_the_plan_allows(repo_scan: ImportScan) -> None:
    """connectors, playbooks and guidance import only the rooms ARCHITECTURE.md allows them."""
    found = room_violations(repo_scan.graph)
    assert not found, "imports the plan does not allow (see ROOM_MAY_IMPORT):\n" + "\n".join(found)


def test_agent_floors_import_downwards(repo_scan: ImportScan) -> None:
    """Every agent module is on a floor and imports only its own floor or lower ones, in the set order."""
    found = floor_violations(repo_scan.graph)
    assert not found, "agent/ floor rules broken (see AGENT_FLOORS, MUST_NOT_IMPORT):\n" + "\n".join(found)


def test_function_level_imports_are_rare(repo_scan: ImportScan) -> None:
    """Project modules are imported inside functions of agent/ only where the allow-list says so."""
    found = [
        f"{edge.importer}:{edge.line} imports {edge.target}"
        for edge in function_level_imports(repo_scan.imports)
        if (edge.importer, edge.target) not in ALLOWED_FUNCTION_LEVEL_IMPORTS
    ]
    assert not found, "function-level imports of project modules (move them up or allow-list them):\n" + "\n".join(
        found
    )


SAMPLE_TREE: dict[str, str] = {
    "agent/__init__.py": "",
    "agent/errors.py": "class Oops(Exception):\n    pass\n",
    "agent/models.py": "from __future__ import annotations\nfrom .errors import Oops\nIncident = dict\n",
    "agent/stray.py": "",
    "agent/store/__init__.py": "from .engine import connect\n",
    "agent/store/engine.py": (
        "from ..app.wiring import build\n"
        "from watchstander.agent.models import Incident\n"
        "\n"
        "def connect() -> None:\n"
        "    pass\n"
    ),
    "agent/store/audit.py": "",
    "agent/app/__init__.py": "",
    "agent/app/wiring.py": (
        "from typing import TYPE_CHECKING\n"
        "from watchstander.agent.store import engine\n"
        "if TYPE_CHECKING:\n"
        "    from ..errors import Oops\n"
        "\n"
        "def build() -> None:\n"
        "    import yaml\n"
        "    from watchstander.agent.store.audit import record\n"
    ),
    "agent/triage/__init__.py": "",
    "agent/triage/baseline.py": "",
    "agent/policy/__init__.py": "",
    "agent/policy/guard.py": "from ..triage import baseline\nfrom ... import connectors\n",
    "connectors/__init__.py": "",
    "connectors/events.py": "from watchstander.agent.errors import Oops\n",
}


@pytest.fixture
def sample_scan(tmp_path: Path) -> ImportScan:
    """The import graph of a small tree with one known fault of each kind."""
    for relative, text in SAMPLE_TREE.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return scan(tmp_path)


def test_resolver_counts_written_imports_only(sample_scan: ImportScan) -> None:
    """Relative, namespaced, TYPE_CHECKING and function-level imports resolve to the modules they name."""
    graph = sample_scan.graph
    assert graph["agent.store"] == set()  # a package importing its own child is no edge
    assert graph["agent.models"] == {"agent.errors"}
    assert graph["agent.store.engine"] == {"agent.app.wiring", "agent.models"}
    assert graph["agent.app.wiring"] == {"agent.store.engine", "agent.errors", "agent.store.audit"}
    assert graph["agent.policy.guard"] == {"agent.triage.baseline", "connectors"}
    assert graph["agent.stray"] == set()


def test_checker_catches_known_faults(sample_scan: ImportScan) -> None:
    """The checkers flag the cycle, room breach, floor breaches and deferred import planted in the sample."""
    assert describe_cycles(sample_scan.graph) == ["agent.app.wiring -> agent.store.engine -> agent.app.wiring"]
    assert room_violations(sample_scan.graph) == ["connectors.events -> agent.errors"]
    assert floor_violations(sample_scan.graph) == [
        "agent.policy.guard -> agent.triage.baseline (agent.policy.* must not import agent.triage.*)",
        "agent.store.engine -> agent.app.wiring (floor 'store' imports higher floor 'application')",
        "agent.stray: unplaced module: put it on a floor",
    ]
    assert [(e.importer, e.line, e.target) for e in function_level_imports(sample_scan.imports)] == [
        ("agent.app.wiring", 8, "agent.store.audit")
    ]
