"""The package layers of docs/architecture.md, read from the code: imports point one way and
nothing imports in a circle.

composition root (app.server, app.cli) -> workers -> app -> balancer -> adapters, storage
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "balancer", "adapters", "storage", "workers")
# What each package may import of the others (module-level and inside functions alike).
ALLOWED = {
    "adapters": set(),
    "storage": set(),
    "balancer": {"adapters", "storage"},
    "app": {"adapters", "balancer", "storage"},
    "workers": {"app", "adapters", "balancer", "storage"},
}
COMPOSITION_ROOT = {"app.server", "app.cli"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if module_level_only and isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def test_every_import_points_down_the_layers():
    wrong = []
    for module, path in modules().items():
        package = module.split(".")[0]
        for name in imports(path, module_level_only=False):
            target = name.split(".")[0]
            if target == "workers" and module in COMPOSITION_ROOT:
                continue  # the composition root assembles everything
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_there_is_no_import_cycle():
    known = modules()
    graph = {module: {name for name in imports(path, module_level_only=True) if name in known and name != module} for module, path in known.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
