"""docs/architecture.md's import rules, read from the source: which room may import which, and no cycle.

Every `import` statement counts, at the top of a module or inside a function (an import inside a function
hides a dependency; it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import vtrbench

PACKAGE = Path(vtrbench.__file__).parent
GROUND_FLOOR = "ground floor"
# room -> the rooms it may import (its own and the ground floor always); docs/architecture.md's table
ALLOWED = {
    GROUND_FLOOR: set(),
    "methods": set(),
    "datasets": set(),
    "offline": {"methods.backbone"},
    "reports": set(),
    "benchmark": {"methods", "datasets", "offline", "reports"},
}
TORCH_FREE = ("reports", GROUND_FLOOR)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(module: str) -> set[str]:
    """The vtrbench modules `module` imports, and the top-level names of every other import."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from vtrbench.benchmark import distributed` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


def room_of(module: str) -> str:
    parts = module.split(".")
    if module == "vtrbench.__main__":
        return "benchmark"
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return GROUND_FLOOR


def test_every_room_imports_only_what_the_architecture_allows():
    wrong = []
    for module in sorted(MODULES):
        mine = room_of(module)
        for target in sorted(imports(module)):
            if target.split(".")[0] == "torch" and mine in TORCH_FREE:
                wrong.append(f"{module} imports torch")
            if not target.startswith("vtrbench.") or target == "vtrbench":
                continue
            theirs = room_of(target)
            if theirs in (mine, GROUND_FLOOR):
                continue
            allowed = ALLOWED[mine]
            if theirs not in allowed and target.removeprefix("vtrbench.") not in allowed:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_no_import_cycle():
    graph = {module: {t for t in imports(module) if t in MODULES and t != module} for module in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
