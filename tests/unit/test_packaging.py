"""Every package the runtime code imports is a declared runtime dependency, and every declared
runtime dependency is used (a plain ``pip install .`` must serve; see
tests/integration/test_plain_install.py for the real thing)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("bridge", "scim", "oidc", "ad_sync", "config")
# Declared but never imported by name, and why.
USED_WITHOUT_IMPORT = {
    "psycopg": "the driver SQLAlchemy loads for postgresql+psycopg:// URLs",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0])
            for dep in project["dependencies"]}


def _imported_modules() -> dict[str, str]:
    """Top-level third-party modules imported anywhere in the runtime code -> a file."""
    found: dict[str, str] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in RUNTIME_PACKAGES:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_runtime_import_is_declared() -> None:
    declared = _declared()
    owners = importlib.metadata.packages_distributions()
    missing = {module: where for module, where in _imported_modules().items()
               if not {_normalise(d) for d in owners.get(module, [module])} & declared}
    assert missing == {}, f"imported at runtime but not in [project] dependencies: {missing}"


def test_every_declared_dependency_is_used() -> None:
    owners = importlib.metadata.packages_distributions()
    used = {_normalise(dist) for module in _imported_modules()
            for dist in owners.get(module, [module])}
    unused = _declared() - used - set(USED_WITHOUT_IMPORT)
    assert unused == set(), f"declared runtime dependencies nothing imports: {unused}"
