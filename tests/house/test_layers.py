"""The house rules, checked on the source: imports point down the layers, no loops, modest modules,
every problem code catalogued, and every people-facing route asks the one access rule."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from core.errors import CODES
from core.settings import ROOT

# Top to bottom: a package may import its own modules and those of packages below it, never above.
LAYERS = ["cli", "console", "fieldapp", "sync_server", "edge", "simulator", "aggregator", "forms", "core"]
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")) if (ROOT / pkg).is_dir() else []:
            if "node_modules" in path.parts:
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in LAYERS}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {mod: {r for m in _imports(path) if (r := _resolve(m)) and r != mod} for mod, path in MODULES.items()}


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for mod, deps in GRAPH.items():
        mine = LAYERS.index(mod.split(".")[0])
        wrong += [f"{mod} -> {d}" for d in deps if LAYERS.index(d.split(".")[0]) < mine]
    assert not wrong, "imports that run back up the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_loops() -> None:
    # A package's __init__ re-exporting its submodules is not a loop of logic: ignore edges into a parent.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    loops: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if seen.get(d) == 1:
                loops.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_graph_sees_a_violation() -> None:
    """The checker can fail: a planted upward import is found."""
    planted = {"aggregator.x": {"sync_server.store"}}
    mine = LAYERS.index("aggregator")
    assert [d for d in planted["aggregator.x"] if LAYERS.index(d.split(".")[0]) < mine]


def test_modules_stay_small() -> None:
    lines = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    big = {m: n for m, n in lines.items() if n > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by job): {big}"


def test_every_module_opens_with_a_docstring() -> None:
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items() if p.stat().st_size}
    missing = [m for m, tree in trees.items() if ast.get_docstring(tree) is None]
    assert not missing, f"modules without a one-line docstring: {missing}"


def test_no_route_imports_a_cli_module() -> None:
    wrong = [f"{m} -> {d}" for m, deps in GRAPH.items() if not m.startswith("cli") for d in deps
             if d.startswith("cli")]
    assert not wrong, wrong


def test_problem_codes_are_catalogued_and_documented() -> None:
    used: set[str] = set()
    for path in MODULES.values():
        used.update(re.findall(r"\bcode=\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
        used.update(re.findall(r"^    code = \"([a-z_]+)\"", path.read_text(encoding="utf-8"), re.M))
    assert used - set(CODES) == set(), f"codes used but not in core.errors.CODES: {used - set(CODES)}"
    doc = (ROOT / "docs" / "problems.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, re.M))
    assert documented == set(CODES), (
        f"docs/problems.md and core.errors.CODES differ: only in code {set(CODES) - documented}, "
        f"only in docs {documented - set(CODES)}"
    )


# ------------------------------------------------------------------------------- the one access rule

# Functions that ARE the access rule, or apply it to a record/area: a people-facing route must call one.
ACCESS_RULE = re.compile(r"\b(may_see|doc_visible|visible_area|require_roles|area_scope)\b")
# Routes anyone or any device may call, and why.
OPEN_ROUTES = {
    "/healthz": "liveness, no data",
    "/formList": "device: published forms only (auth checked in the route)",
    "/forms/{form_id}/form.xml": "device: published form",
    "/forms/{form_id}/manifest": "device: published form media",
    "/forms/{form_id}/media/{filename}": "device: published form media",
    "/submission": "device: the write rule decides (sync_server)",
}


def _depends_on_roles(dependant: Any) -> bool:
    """Whether a route's dependency tree includes a ``require_roles(...)`` check."""
    for dep in dependant.dependencies:
        if getattr(dep.call, "__qualname__", "").startswith("require_roles.") or _depends_on_roles(dep):
            return True
    return False


def test_every_people_route_calls_the_access_rule() -> None:
    from console.app import PEOPLE_ROUTERS

    unchecked = []
    routes = [route for router in PEOPLE_ROUTERS for route in router.routes]
    assert len(routes) >= 5, "the console's routers list no routes: the check would prove nothing"
    for route in routes:
        path = getattr(route, "path", "")
        endpoint = getattr(route, "endpoint", None)
        if endpoint is None or path in OPEN_ROUTES or path.startswith(("/docs", "/openapi", "/redoc")):
            continue
        module = inspect.getmodule(endpoint)
        if module is None or not module.__name__.startswith("console"):
            continue
        src = inspect.getsource(endpoint)
        if not ACCESS_RULE.search(src) and not _depends_on_roles(route.dependant):
            unchecked.append(f"{path} ({module.__name__}.{endpoint.__name__})")
    assert not unchecked, "people-facing routes that never ask the access rule:\n" + "\n".join(unchecked)


@pytest.mark.parametrize(
    ("visible", "level", "unit", "hierarchy", "expected"),
    [
        ("91", "province", "91", "legacy", True),
        ("911", "province", "91", "legacy", False),
        ("911", "district", "911", "legacy", True),
        ("911", "district", "912", "legacy", False),
    ],
)
def test_may_see_basic_cases(visible: str, level: str, unit: str, hierarchy: str, expected: bool) -> None:
    from core.orgunits import may_see

    assert may_see(visible, level, unit, hierarchy) is expected
