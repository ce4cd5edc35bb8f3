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


ROOMS: dict[str, set[str]] = {
    # Each room of adapters/ and the rooms it may use; the front door (adapters/__init__) and
    # what they share (adapters.errors: the answer table; adapters.metrics) sit outside them.
    "adapters.sandbox": set(),
    "adapters.processor": set(),
    "adapters.webhooks": {"adapters.processor"},
    "adapters.service": {"adapters.processor", "adapters.webhooks"},
    "adapters.simulation": {"adapters.processor", "adapters.webhooks", "adapters.service",
                            "adapters.sandbox"},
    "adapters.testing": {"adapters.processor", "adapters.webhooks", "adapters.service",
                         "adapters.sandbox", "adapters.simulation"},
    "adapters.cli": {"adapters.processor", "adapters.webhooks", "adapters.service",
                     "adapters.sandbox", "adapters.simulation", "adapters.testing"},
}


def _room(module: str) -> str | None:
    return next((room for room in ROOMS if module == room or module.startswith(room + ".")),
                None)


def test_the_rooms_of_adapters_use_only_the_rooms_below_them() -> None:
    wrong = []
    for module, imported in _graph().items():
        room = _room(module)
        if room is None:
            continue
        for other in imported:
            target = _room(other)
            if target in (None, room) or target in ROOMS[room] or other in ROOMS[room]:
                continue
            wrong.append(f"{module} imports {other}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_sandbox_states_the_processors_rules_itself() -> None:
    """The simulator shares no rule with the ledger it tests: not the lifecycles, not the hold
    window, not the money rules; only the processor's entity shapes (what its API sends), the
    ISO 4217 table, the retry formula and the library's loggers (plumbing, not a rule)."""
    allowed = {"ledger.observations", "ledger.money", "ledger.backoff", "ledger.logs"}
    wrong = sorted(f"{module} imports {other}" for module, imported in _graph().items()
                   if module.startswith("adapters.sandbox")
                   for other in imported
                   if other.split(".")[0] in ("ledger", "projections") and other not in allowed)
    assert not wrong, "\n".join(wrong)
    money_used = set()
    for path in (ROOT / "adapters" / "sandbox").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "ledger.money":
                money_used |= {alias.name for alias in node.names}
    assert money_used <= {"ISO_4217"}, money_used
