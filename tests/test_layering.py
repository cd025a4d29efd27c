"""Layering rules.

* The core is sans-time and sans-I/O: it imports no clock, thread, randomness, I/O or
  engine, and neither tracing nor statistics (they observe it through
  ``core/observe.py``).
* Each subsystem owns its state: no ``cast(...)`` of the kernel, and no module assigns
  another object's private (``_``) attribute.
* Engines call the core only through its public flow entry points and kernel methods:
  no ``k._name`` / ``kernel._name`` outside the few documented services.
"""

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
    "irqflow.trace",
    "irqflow.stats",
}
ENGINES = Path(__file__).parent.parent / "src" / "irqflow" / "engine"
#: the kernel's shared services an engine may call (KernelBase in core/base.py)
ENGINE_MAY_CALL = {"_call", "_run_in_task", "_this_cpu"}


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


def _private_writes(tree: ast.AST) -> list[str]:
    """``x._name = ...`` (or ``+=``) where ``x`` is not ``self``/``cls``."""
    bad = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and t.attr.startswith("_")
                and not t.attr.startswith("__")
                and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"))
            ):
                bad.append(f"line {node.lineno}: {ast.unparse(t)}")
    return bad


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_modules_own_their_state(path: Path) -> None:
    """No cast of the kernel object, no writes to another object's private attributes."""
    text = path.read_text()
    assert "cast(" not in text, f"{path.name} casts (a subsystem reaching into another)"
    bad = _private_writes(ast.parse(text))
    assert not bad, f"{path.name} writes another object's private attributes: {bad}"


@pytest.mark.parametrize("path", sorted(ENGINES.rglob("*.py")), ids=lambda p: p.name)
def test_engines_use_the_cores_public_surface(path: Path) -> None:
    """An engine reads no private attribute of the kernel (``k._x``, ``self.k._x``)
    beyond the documented services."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            is_kernel = (isinstance(owner, ast.Name) and owner.id in ("k", "kernel")) or (
                isinstance(owner, ast.Attribute) and owner.attr in ("k", "kernel")
            )
            if is_kernel and node.attr not in ENGINE_MAY_CALL:
                bad.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not bad, f"{path.name}: {bad}"
