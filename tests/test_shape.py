"""The shape docs/architecture.md promises, checked: which app may import which, no module past
500 lines, and mypy (with django-stubs and djangorestframework-stubs) clean.

Dependencies point one way: pksweb's core <- clusters <- tenants, upgrades. ``sandbox`` is a
library of its own that imports none of the apps; only wiring and management commands start it.
The core of ``pksweb`` imports no domain app: only its wiring (settings, URLconfs, ASGI routing,
the Celery app, demo seeding, management commands) composes the apps.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("pksweb", "clusters", "tenants", "upgrades", "sandbox", "notifications")
DOMAIN = ("clusters", "tenants", "upgrades", "notifications")
# Who may import whom, among the apps (wiring aside). Anything else is a dependency pointing backwards.
ALLOWED = {
    "pksweb": set(),
    "clusters": {"pksweb"},
    "tenants": {"pksweb", "clusters"},
    "upgrades": {"pksweb", "clusters"},
    "sandbox": set(),
    "notifications": {"pksweb", "clusters", "tenants", "upgrades"},  # on top: it hears every app's events
}
# The modules that compose the apps: settings, URLconfs, ASGI routing, the Celery app, demo seeding,
# management commands (and the embedded server that starts a sandbox fleet beside the dashboard).
WIRING = ("pksweb.settings", "pksweb.urls", "pksweb.api.urls", "pksweb.asgi", "pksweb.routing", "pksweb.celery",
          "pksweb.seed", "pksweb.embedded", "pksweb.management")
LIMIT = 500


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*APPS)


def _is_wiring(module: str) -> bool:
    return module.startswith(WIRING) or ".management." in module


def _app(module: str) -> str:
    return module.split(".", 1)[0]


def _backward_imports() -> list[str]:
    graph = _graph()
    found = []
    for module in sorted(graph.modules):
        if _is_wiring(module):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            importer_app, imported_app = _app(module), _app(imported)
            if importer_app != imported_app and imported_app in ALLOWED and imported_app not in ALLOWED[importer_app]:
                found.append(f"{module} imports {imported}")
    return found


def test_dependencies_point_one_way():
    """No app imports an app it sits below (which also rules out every cycle between apps), and the core
    of pksweb imports no domain app."""
    assert _backward_imports() == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            if group:
                found.append(sorted([module, *group]))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back():
    """No import cycle between any two modules, late imports inside functions included (a task module and the
    services it calls, an app and the app it registers with): each would mean code sits in the wrong place."""
    graph = grimp.build_graph(*APPS, exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    assert _cycles(edges) == []


def test_sandbox_imports_no_app():
    graph = _graph()
    wrong = [f"{m} imports {i}" for m in graph.find_children("sandbox") | {"sandbox"}
             for i in graph.find_modules_directly_imported_by(m) if _app(i) in ("pksweb",) + DOMAIN]
    assert wrong == []


def _python_files() -> list[Path]:
    files = []
    for folder in (*APPS, "tests", "bench"):
        files += [p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]
    return files


@pytest.mark.parametrize("limit", [LIMIT])
def test_no_module_over_500_lines(limit):
    """A module past 500 lines has become two things: split it along those things."""
    long = {str(p.relative_to(ROOT)): n for p in _python_files() if (n := len(p.read_text().splitlines())) > limit}
    assert long == {}


def test_tests_import_no_conftest_or_test_module():
    """Helpers shared by tests live in tests/support/; fixtures come from conftest by name, never by import."""
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith(("from tests.", "import tests.")):
                target = text.split()[1]
                if target.endswith("conftest") or ".test_" in target:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {text}")
    assert offenders == []


def test_mypy_is_clean():
    """mypy with django-stubs and djangorestframework-stubs, as configured in pyproject.toml (strict where it says)."""
    from mypy import api

    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / "var" / "mypy")])
    assert status == 0, out + err
