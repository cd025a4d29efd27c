"""The hook-stripping transform of benchmarks/bench_hooks.py (not the timing itself).

``if <tracing>:`` blocks go, an ``else`` branch stays in their place, unrelated ``if``
statements are untouched, and the stripped copy of the real package still imports and
simulates exactly what the original does, with no tracepoint left to fire.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
SRC_DIR = ROOT / "src"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

bench_hooks: ModuleType = importlib.import_module("bench_hooks")


def strip(source: str) -> tuple[str, int, tuple[int, ...]]:
    """(new source, hooks removed, lines left reading tracing) for a dedented snippet."""
    result = bench_hooks.strip_source(textwrap.dedent(source))
    return result.source, len(result.removed), result.left


def same_code(a: str, b: str) -> bool:
    return ast.dump(ast.parse(textwrap.dedent(a))) == ast.dump(ast.parse(textwrap.dedent(b)))


def test_removes_attribute_and_name_hooks() -> None:
    src, removed, left = strip(
        """
        def f(k, c):
            x = 1
            if k.tracing:
                k.trace.emit(c, "irq:softirq_raise", {"vec": 3})
            if self.tracing:
                self.trace.emit(c, "a", {})
            tracing = k.tracing
            if tracing:
                k.trace.emit(c, "b", {})
            if k.engine.kernel.tracing:
                emit()
            return x
        """
    )
    assert removed == 4
    assert "emit" not in src
    assert left == (8,)  # the local copy stays: "everything else identical"
    assert same_code(src, "def f(k, c):\n x = 1\n tracing = k.tracing\n return x\n")


def test_else_branch_replaces_the_if() -> None:
    src, removed, _ = strip(
        """
        def f(k):
            if k.tracing:
                return "traced"
            else:
                k.count += 1
                return "plain"
        def g(k):
            if k.tracing:
                return 1
            elif k.x:
                return 2
            return 3
        """
    )
    assert removed == 2
    assert same_code(
        src,
        """
        def f(k):
            k.count += 1
            return "plain"
        def g(k):
            if k.x:
                return 2
            return 3
        """,
    )


def test_unrelated_ifs_are_kept() -> None:
    source = """
        def f(k, replay, x):
            if x:
                a()
            if k.tracing_enabled:
                b()
            if k.tracing():
                c()
            if not k.tracing:
                d()
            if replay and k.tracing:
                e()
            if k.tracing == 1:
                g()
            return 1 if k.tracing else 2
        """
    src, removed, left = strip(source)
    assert removed == 0
    assert src == textwrap.dedent(source)  # a file with no hooks is not rewritten at all
    assert left == (7, 9, 11, 13)  # read tracing, not as the whole test: listed, kept


def test_emptied_blocks_get_pass() -> None:
    src, removed, _ = strip(
        """
        def f(k):
            if k.tracing:
                emit()
        for i in range(3):
            if x:
                if k.tracing:
                    emit()
            else:
                if tracing:
                    emit()
        try:
            if k.tracing:
                emit()
        finally:
            if k.tracing:
                emit()
        """
    )
    assert removed == 5
    assert same_code(
        src,
        """
        def f(k):
            pass
        for i in range(3):
            if x:
                pass
            else:
                pass
        try:
            pass
        finally:
            pass
        """,
    )
    compile(src, "<stripped>", "exec")


def test_stripped_code_behaves_like_tracing_off() -> None:
    source = """
        def f(k, log):
            if k.tracing:
                log.append("trace")
            else:
                log.append("else")
            for i in range(2):
                if k.tracing:
                    log.append("loop trace")
                log.append(i)
            return log
        """

    class K:
        tracing = False

    def call(code: str) -> list[object]:
        ns: dict[str, object] = {}
        exec(compile(code, "<test>", "exec"), ns)
        fn = ns["f"]
        assert callable(fn)
        out = fn(K(), [])
        assert isinstance(out, list)
        return out

    src, removed, _ = strip(source)
    assert removed == 2
    assert call(src) == call(textwrap.dedent(source)) == ["else", 0, 1]


# --- the real package --------------------------------------------------------------------------

TINY_SIM = """
import json, sys
import irqflow
from irqflow import IRQ_HANDLED, Kernel

k = Kernel(cpus=1)
if sys.argv[1] == "trace":
    k.trace.enable("*")
hits = []

def handler(irq, dev):
    hits.append(k.now())
    k.ndelay(1000)
    return IRQ_HANDLED

k.request_irq(11, handler, name="dev")
k.call_at(0, k.raise_irq, 11)
k.run()
print(json.dumps({"file": irqflow.__file__, "hits": hits, "now": k.now(),
                  "events": len(k.trace.events())}))
"""


def run_tiny_sim(pythonpath: Path, mode: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    proc = subprocess.run(
        [sys.executable, "-c", TINY_SIM, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    return out


@pytest.fixture(scope="module")
def stripped_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("nohooks")
    results = bench_hooks.strip_package(SRC_DIR / "irqflow", root)
    return root, results


def test_real_package_loses_dozens_of_hooks(stripped_root: tuple[Path, dict[str, object]]) -> None:
    root, results = stripped_root
    assert bench_hooks.hook_count(results) >= 10  # 21 today; a floor, not an exact count
    originals = sorted(p.relative_to(SRC_DIR) for p in (SRC_DIR / "irqflow").rglob("*.py"))
    copies = sorted(p.relative_to(root) for p in (root / "irqflow").rglob("*.py"))
    assert copies == originals
    for path in (root / "irqflow").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")
        again = bench_hooks.strip_source(source)
        assert again.removed == (), f"{path}: hooks left at lines {again.removed}"


def test_stripped_package_imports_and_runs(stripped_root: tuple[Path, dict[str, object]]) -> None:
    root, _ = stripped_root
    stripped = run_tiny_sim(root, "plain")
    original = run_tiny_sim(SRC_DIR, "plain")
    assert Path(str(stripped["file"])).is_relative_to(root)
    assert Path(str(original["file"])).is_relative_to(SRC_DIR)
    assert stripped["hits"] == original["hits"]
    assert isinstance(original["hits"], list) and len(original["hits"]) == 1
    assert stripped["now"] == original["now"]
    # With tracing switched on, the original records the interrupt; the copy has no hooks.
    assert run_tiny_sim(SRC_DIR, "trace")["events"] != 0
    assert run_tiny_sim(root, "trace")["events"] == 0
