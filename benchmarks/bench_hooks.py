"""Benchmark: what tracing costs the sim engine when it is off, against a build with no hooks.

Usage::

    python benchmarks/bench_hooks.py [--duration-ms N] [--rate PPS] [--repeat K] [--seed S]
                                     [--target PCT] [--keep DIR] [--strict]

Every tracepoint in irqflow sits behind ``if k.tracing:`` (or ``self.tracing``, or a local
copy ``tracing``), so a kernel with tracing off still pays one test per tracepoint it
passes. To price those tests this script makes a "no hooks" copy of ``src/irqflow`` in a
temporary directory (or ``--keep DIR``): with the ``ast`` module, every ``if`` statement
whose test is exactly the name ``tracing`` or an attribute ``<anything>.tracing`` is
removed (``pass`` where a block would be left empty), and an ``if``/``else`` is replaced by
its else branch. Rewritten files go through ``ast.unparse``; files without hooks are copied
byte for byte. Tests that only mention tracing (``if replay and k.tracing:``) and local
copies (``tracing = k.tracing``) are left in place and listed.

Both builds then run the "2-CPU NIC scenario" of ``workload.py`` (the driver in
``irqflow_model.py``) with tracing off, each run in a fresh subprocess whose PYTHONPATH is
the build's source directory (``bench_hooks.py --worker SRC``). Runs are interleaved,
alternating which build goes first, ``--repeat`` times each; a worker times the simulation
only (``run`` and the drain), not the import or the kernel and driver set-up. Reported per
build: hard IRQs simulated, best and median wall seconds, hard IRQs per wall-second (best);
then the overhead of tracing-off over no-hooks (best time vs best time) against the target
(under 5%). Both builds must simulate exactly the same thing (same counts, same end time).

Exit status: 0, or 1 when the stripping or a worker fails or the builds disagree, or with
``--strict`` when the overhead is not under the target.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workload import NicWorkload, add_workload_args

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = BENCH_DIR.parent / "src"
PACKAGE = "irqflow"

#: tracing off may cost at most this much wall time over the no-hooks build, percent
TARGET_PCT = 5.0
#: give a single worker run this long before calling it hung, seconds
WORKER_TIMEOUT_S = 900.0
#: statement-list fields an emptied block must get a ``pass`` back in
_BLOCK_FIELDS = ("body", "orelse", "finalbody")

#: the counts a worker reports that must agree between the builds
COMPARED = ("packets", "hardirqs", "softirq_items", "tasklets", "busy_ns", "end_ns")


# --- the "no hooks" copy ---------------------------------------------------------------------


def is_tracing_test(test: ast.expr) -> bool:
    """Whether ``test`` is exactly ``tracing`` or ``<expr>.tracing``."""
    if isinstance(test, ast.Name):
        return test.id == "tracing"
    return isinstance(test, ast.Attribute) and test.attr == "tracing"


def mentions_tracing(node: ast.AST) -> bool:
    """Whether ``tracing`` or ``<expr>.tracing`` is read anywhere in ``node``."""
    return any(
        isinstance(n, ast.Name | ast.Attribute)
        and isinstance(n.ctx, ast.Load)
        and is_tracing_test(n)
        for n in ast.walk(node)
    )


class HookStripper(ast.NodeTransformer):
    """Removes ``if <tracing>:`` statements; an ``if``/``else`` becomes its else branch.

    ``removed`` and ``left`` collect line numbers (of the source the tree came from): the
    removed ``if`` statements, and the statements that still read tracing (compound tests,
    local copies such as ``tracing = k.tracing``).
    """

    def __init__(self) -> None:
        self.removed: list[int] = []
        self.left: list[int] = []

    def generic_visit(self, node: ast.AST) -> ast.AST:
        # statement lists that are not empty now (an ``else`` may legitimately be empty)
        had = [
            f
            for f in _BLOCK_FIELDS
            if isinstance(getattr(node, f, None), list) and getattr(node, f)
        ]
        super().generic_visit(node)
        for field in had:
            if not getattr(node, field):
                setattr(node, field, [ast.Pass()])  # a block that lost its only statement(s)
        return node

    def visit_If(self, node: ast.If) -> ast.AST | list[ast.stmt]:
        self.generic_visit(node)
        if is_tracing_test(node.test):
            self.removed.append(node.lineno)
            return node.orelse  # [] for a plain ``if``: the statement disappears
        if mentions_tracing(node.test):
            self.left.append(node.lineno)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if is_tracing_test(node.value):
            self.left.append(node.lineno)
        return self.generic_visit(node)


@dataclass(frozen=True, slots=True)
class Stripped:
    """One file after :func:`strip_source`."""

    #: the new source (the original text, untouched, when nothing was removed)
    source: str
    #: line numbers of the removed ``if`` statements, in the original source
    removed: tuple[int, ...]
    #: line numbers of statements still reading tracing, in the original source
    left: tuple[int, ...]


def strip_source(source: str, filename: str = "<unknown>") -> Stripped:
    """Remove the tracing hooks from one module's source; see :class:`HookStripper`."""
    tree = ast.parse(source, filename=filename)
    stripper = HookStripper()
    tree = stripper.visit(tree)
    if stripper.removed:
        source = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return Stripped(source, tuple(sorted(stripper.removed)), tuple(sorted(stripper.left)))


def strip_package(src_pkg: Path, dest_root: Path) -> dict[str, Stripped]:
    """Copy package directory ``src_pkg`` into ``dest_root`` with its hooks stripped.

    Returns each ``.py`` file's result by its path relative to ``dest_root`` (POSIX form).
    ``dest_root`` is then a directory to put on PYTHONPATH.
    """
    dest_pkg = dest_root / src_pkg.name
    shutil.copytree(src_pkg, dest_pkg, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    results: dict[str, Stripped] = {}
    for path in sorted(dest_pkg.rglob("*.py")):
        rel = path.relative_to(dest_root).as_posix()
        result = strip_source(path.read_text(encoding="utf-8"), filename=rel)
        if result.removed:
            path.write_text(result.source, encoding="utf-8")
        results[rel] = result
    return results


def hook_count(results: dict[str, Stripped]) -> int:
    return sum(len(r.removed) for r in results.values())


# --- the worker: one timed run in this process -----------------------------------------------


def worker(src: Path, w: NicWorkload) -> dict[str, Any]:
    """Run the NIC scenario once with irqflow imported from ``src``; time the simulation."""
    import irqflow

    where = Path(irqflow.__file__).resolve()
    if not where.is_relative_to(src.resolve()):
        raise RuntimeError(f"irqflow imported from {where}, not from {src}")
    from irqflow_model import IrqflowNicModel
    from workload import arrival_times

    model = IrqflowNicModel(w)
    if model.k.tracing:
        raise RuntimeError("tracing is on in a fresh kernel; this benchmark needs it off")
    model.start(arrival_times(w))
    gc.collect()
    start = time.perf_counter()
    model.run()
    wall_s = time.perf_counter() - start
    r = model.result(wall_s)
    return {
        "irqflow": str(where),
        "wall_s": wall_s,
        "packets": r.packets,
        "hardirqs": r.hardirqs,
        "softirq_items": r.softirq_items,
        "tasklets": r.tasklets,
        "busy_ns": r.busy_ns,
        "end_ns": r.end_ns,
    }


def workload_args(w: NicWorkload) -> list[str]:
    return [
        "--duration-ms",
        repr(w.duration_ns / 1e6),
        "--rate",
        repr(w.rate_pps),
        "--seed",
        str(w.seed),
    ]


def run_worker(src: Path, w: NicWorkload) -> dict[str, Any]:
    """One fresh subprocess running :func:`worker` with PYTHONPATH = ``src``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)
    env["PYTHONHASHSEED"] = "0"  # same string hashing (dict/set layout) in every run
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(src), *workload_args(w)]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker for {src} exited with {proc.returncode}:\n{proc.stderr.strip()}"
        )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"worker for {src} printed nothing; stderr:\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- the driver -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workload_args(p)
    p.add_argument("--repeat", type=int, default=5, help="runs per build, best kept (default 5)")
    p.add_argument(
        "--target",
        type=float,
        default=TARGET_PCT,
        help="tracing-off overhead must be under this, percent (default %(default)g)",
    )
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="write the no-hooks copy to DIR/irqflow and keep it (default: a temporary dir)",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when the overhead is not under the target"
    )
    p.add_argument(
        "--worker",
        type=Path,
        metavar="SRC",
        help="internal: run the workload once with irqflow from SRC and print a JSON line",
    )
    args = p.parse_args(argv)
    if args.duration_ms <= 0 or args.rate <= 0 or args.repeat < 1:
        p.error("--duration-ms and --rate must be positive and --repeat at least 1")
    return args


def print_hooks(results: dict[str, Stripped]) -> None:
    n = hook_count(results)
    files = {rel: r for rel, r in results.items() if r.removed}
    print(f"stripped {n} tracing hooks from {len(files)} files:")
    for rel, r in files.items():
        lines = ", ".join(map(str, r.removed))
        print(f"  {rel:<34} {len(r.removed):>3}  (line{'s' if len(r.removed) > 1 else ''} {lines})")
    left = [f"{rel}:{line}" for rel, r in results.items() for line in r.left]
    if left:
        print(
            f"left in place ({len(left)}; compound tests and local copies still read tracing): "
            + ", ".join(left)
        )


def summarize(name: str, runs: list[dict[str, Any]]) -> tuple[float, str]:
    """The best wall time, and the build's table row."""
    walls = [r["wall_s"] for r in runs]
    best = min(walls)
    hardirqs = runs[0]["hardirqs"]
    row = (
        f"{name:<12} {hardirqs:>10,} {best:>9.3f} {statistics.median(walls):>9.3f} "
        f"{max(walls):>9.3f} {hardirqs / best:>13,.0f}"
    )
    return best, row


def disagreements(runs: list[dict[str, Any]]) -> list[str]:
    """Counts that differ between any two runs (of either build)."""
    first = runs[0]
    return [
        f"{key}: {first[key]} vs {r[key]}"
        for r in runs[1:]
        for key in COMPARED
        if r[key] != first[key]
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    w = NicWorkload(
        rate_pps=args.rate,
        duration_ns=round(args.duration_ms * 1_000_000),
        seed=args.seed,
    )
    if args.worker is not None:
        print(json.dumps(worker(args.worker, w)))
        return 0

    print("irqflow benchmark: tracing off vs no tracing hooks at all, 2-CPU NIC scenario (sim)")
    print(f"Python {platform.python_version()} ({platform.python_implementation()})")
    print(
        f"workload: {w.cpus} CPUs, {w.rate_pps:,.0f} packets/s Poisson (seed {w.seed}), "
        f"{w.duration_ns / 1e6:g} ms virtual; per packet hardirq {w.hardirq_ns} ns + "
        f"NET_RX {w.softirq_ns} ns + tasklet {w.tasklet_ns} ns"
    )

    with tempfile.TemporaryDirectory(prefix="irqflow-nohooks-") as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        if (root / PACKAGE).exists():
            print(f"error: {root / PACKAGE} already exists", file=sys.stderr)
            return 1
        root.mkdir(parents=True, exist_ok=True)
        try:
            results = strip_package(SRC_DIR / PACKAGE, root)
        except SyntaxError as exc:
            print(f"error: cannot parse {exc.filename}: {exc}", file=sys.stderr)
            return 1
        print_hooks(results)
        n = hook_count(results)
        assert n >= 10, f"only {n} tracing hooks found in {SRC_DIR / PACKAGE}; expected ~20"
        print(f"no-hooks copy: {root / PACKAGE}{'' if args.keep else ' (temporary)'}")
        print(
            f"best of {args.repeat} interleaved run(s) per build, each in a fresh process; "
            "simulation timed, import and set-up not\n"
        )

        builds = {"tracing off": SRC_DIR, "no hooks": root}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
        order = list(builds)
        try:
            for i in range(args.repeat):
                line = []
                for name in order if i % 2 == 0 else order[::-1]:
                    r = run_worker(builds[name], w)
                    runs[name].append(r)
                    line.append(f"{name} {r['wall_s']:.3f} s")
                print(f"  round {i + 1}: " + ", ".join(line), flush=True)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            print(f"\nworker FAILED: {exc}", file=sys.stderr)
            return 1

    print()
    print(
        f"{'build':<12} {'hard IRQs':>10} {'best s':>9} {'median s':>9} {'worst s':>9} "
        f"{'hard IRQs/s':>13}"
    )
    best_hooks, row = summarize("tracing off", runs["tracing off"])
    print(row)
    best_bare, row = summarize("no hooks", runs["no hooks"])
    print(row)

    problems = disagreements(runs["tracing off"] + runs["no hooks"])
    if problems:
        print("\nFAILED: the builds did not simulate the same thing: " + "; ".join(problems))
        return 1
    r = runs["no hooks"][0]
    print(
        f"  (both builds: {r['packets']:,} packets, {r['hardirqs']:,} hard IRQs, "
        f"end at {r['end_ns']:,} ns virtual; identical in every run)"
    )

    overhead = 100.0 * (best_hooks / best_bare - 1.0)
    met = overhead < args.target
    print(
        f"\noverhead of tracing off vs no hooks (best wall time): {overhead:+.1f}% "
        f"(target < {args.target:g}%: {'met' if met else 'NOT met'})"
    )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
