"""The core is sans-time and sans-I/O: it imports no clock, thread, randomness, I/O or engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parent.parent / "src" / "irqflow" / "core"
FORBIDDEN = {
    "time",
    "threading",
    "random",
    "socket",
    "select",
    "selectors",
    "asyncio",
    "subprocess",
    "os",
    "signal",
    "irqflow.engine",
    "irqflow.devices",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_time_or_io(path: Path) -> None:
    """Every module under irqflow/core stays free of clocks, threads, randomness and I/O."""
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_layering_test_sees_the_core() -> None:
    """Guard against the test above passing vacuously."""
    assert len(list(CORE.rglob("*.py"))) >= 10
