"""The shape of the code: no project module is part of an import cycle (imports inside
functions included), and no module outgrows a few hundred lines. The layers themselves are
checked by import-linter (``lint-imports`` in ``make test``, contract in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import grimp

PACKAGES = ("bridge", "scim", "oidc", "ad_sync", "config")
ROOT = Path(__file__).resolve().parents[2]
# Generated migrations are exempt; the rest stay readable in one sitting.
MAX_LINES = 600


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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


def _with_packages(graph: grimp.ImportGraph) -> grimp.ImportGraph:
    """``graph`` plus the imports Python makes implicitly: importing ``a.b.c`` runs
    ``a/__init__`` and ``a/b/__init__`` first (except the importer's own packages, which
    are already running)."""
    for importer in list(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            parts = imported.split(".")
            for depth in range(1, len(parts)):
                package = ".".join(parts[:depth])
                if package != importer and not importer.startswith(package + ".") and \
                        package in graph.modules:
                    graph.add_import(importer=importer, imported=package)
    return graph


def test_no_project_module_is_part_of_an_import_cycle() -> None:
    graph = _with_packages(grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True))
    assert _cycles(graph) == []


def test_a_cycle_through_a_package_file_counts() -> None:
    graph = grimp.ImportGraph()
    for name in ("p", "p.views", "q", "q.hooks"):
        graph.add_module(name)
    graph.add_import(importer="p", imported="p.views")  # p/__init__ imports its views
    graph.add_import(importer="p.views", imported="q.hooks")
    graph.add_import(importer="q.hooks", imported="p.views")  # q.hooks -> p -> p.views
    assert _cycles(_with_packages(graph)) == [["p", "p.views", "q.hooks"]]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def test_no_module_is_over_the_size_limit() -> None:
    too_long = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                too_long[str(path.relative_to(ROOT))] = lines
    assert too_long == {}


def test_only_the_unit_of_work_writes_audit_events() -> None:
    """Events are written by bridge.audit's recorder, called by the unit of work alone
    (``UnitOfWork.run`` and friends); every other module goes through it."""
    writers = {}
    allowed = {Path("bridge/audit.py"), Path("bridge/engine/unit_of_work.py")}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative in allowed or "migrations" in relative.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if "audit.record(" in text or "insert(AuditEvent" in text or \
                    "AuditEvent(**" in text:
                writers[str(relative)] = True
    assert writers == {}
