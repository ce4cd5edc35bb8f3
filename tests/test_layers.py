"""The shape of the code: dependencies point inward (adapters -> projections -> ledger), and no
module imports another that imports it back, directly or through others (imports inside
functions count: they only hide a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ledger", "projections", "adapters")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` is ``a.b`` when that is a
    module: a package's submodule, not the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_dependencies_point_inward() -> None:
    inner = {"ledger": {"projections", "adapters"}, "projections": {"adapters"}}
    for module, imported in _graph().items():
        forbidden = inner.get(module.split(".")[0], set())
        wrong = sorted(i for i in imported if i.split(".")[0] in forbidden)
        assert not wrong, f"{module} imports {wrong}"


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], {start}
        while stack:
            module, path = stack.pop()
            for imported in graph.get(module, set()):
                if imported == start and not start.startswith(imported + "."):
                    circles.append(" -> ".join([*path, start]))
                elif imported not in seen and not start.startswith(imported + "."):
                    seen.add(imported)
                    stack.append((imported, [*path, imported]))
    assert not circles, "\n".join(sorted(set(circles))[:10])
