"""The source tree's shape, read from its imports (ast), so a wrong turn cannot come back.

* The action server's package (actions/) is used by nothing else: what the console, the
  commands and the Rasa servers share with it lives in common/ (common/records/ for the
  records and their tables).
* No import cycles among the project's own modules, counting imports inside functions too
  (a deferred import is how a cycle hides).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

from common.paths import PROJECT_ROOT

PACKAGES = ("actions", "channels", "common", "components", "devtools", "servers", "staff", "tests")
# Outside actions/, only these may import it: the tests of the action server, and the tool
# that measures the booking form's date reading against other libraries.
MAY_IMPORT_ACTIONS = ("tests/", "devtools/availability/compare.py")
# Cycles left to break, each with why it is still here. The list only shrinks.
KNOWN_CYCLES = {
    # The bench's conversations borrow run.py's parser while run.py scores with them; the bench
    # was being reworked by another change when this test came (issue 24): break it there.
    frozenset({"devtools.bench.conversations", "devtools.bench.run"}),
}


def project_files() -> Iterator[Path]:
    """Every Python file of the project's own packages."""
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "node_modules" not in path.parts and "__pycache__" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    """`staff/console/app.py` -> `staff.console.app` (a package's __init__ is the package)."""
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project's modules that the file imports, anywhere in it (functions included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from staff.console import views` imports a module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph() -> nx.DiGraph:
    """Modules as nodes, an edge from each module to each project module it imports."""
    files = {module_name(path): path for path in project_files()}
    graph = nx.DiGraph()
    for name, path in files.items():
        graph.add_node(name, path=str(path.relative_to(PROJECT_ROOT)))
    for name, path in files.items():
        graph.add_edges_from((name, target) for target in imported(path, set(files)))
    return graph


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    """The import graph, read once for the module's tests (parsing every file takes seconds)."""
    return import_graph()


def test_the_graph_sees_imports_inside_functions(graph: nx.DiGraph) -> None:
    """The checks below would pass vacuously if deferred imports were missed."""
    assert graph.has_edge("staff.console.server", "staff.console.app")  # imported inside main()
    assert graph.has_edge("staff.console.base", "common.records.bookings")


def test_nothing_outside_actions_imports_the_action_server(graph: nx.DiGraph) -> None:
    offenders = sorted(
        f"{source} imports {target}"
        for source, target in graph.edges
        if target.split(".")[0] == "actions"
        and source.split(".")[0] != "actions"
        and not graph.nodes[source]["path"].startswith(MAY_IMPORT_ACTIONS)
    )
    assert offenders == [], "move what they share with the action server to common/"


def test_no_import_cycles_among_the_projects_modules(graph: nx.DiGraph) -> None:
    cycles = sorted(
        " -> ".join([*cycle, cycle[0]])
        for cycle in nx.simple_cycles(graph)
        if frozenset(cycle) not in KNOWN_CYCLES
    )
    assert cycles == [], "a cycle: move what both need to a module both import"
