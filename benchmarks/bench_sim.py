"""Benchmark: irqflow's sim engine against a plain SimPy model of the same workload.

Usage::

    python benchmarks/bench_sim.py [--duration-ms N] [--rate PPS] [--repeat K] [--seed S]
                                   [--target X] [--strict]

Both models run the "2-CPU NIC scenario" of ``workload.py`` in this process, on the same
packet times, each ``--repeat`` times (interleaved); the best (fastest) run of each is
reported: hard IRQs simulated, wall seconds, hard IRQs per wall-second, CPU utilisation
(busy time / (CPUs x duration)), and the ratio irqflow/SimPy against the target
(irqflow >= 3x SimPy, pure Python).

If irqflow cannot be imported the SimPy half still runs and irqflow is reported as
unavailable. Exit status: 0, or 1 when an irqflow run fails, or with ``--strict`` when
irqflow is unavailable or misses the target.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import sys
import traceback
from collections.abc import Callable, Sequence

from simpy_model import run_simpy
from workload import NicWorkload, Result, add_workload_args

RunFn = Callable[[NicWorkload], Result]

#: irqflow must simulate at least this many times as many hard IRQs per wall-second as SimPy
TARGET_RATIO = 3.0


def load_irqflow() -> tuple[RunFn | None, str]:
    """``(run_irqflow, "")``, or ``(None, why)`` when irqflow cannot be imported."""
    try:
        from irqflow_model import run_irqflow
    except Exception as exc:  # ImportError, or a half-built core failing at import time
        return None, f"{type(exc).__name__}: {exc}"
    return run_irqflow, ""


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_workload_args(p)
    p.add_argument("--repeat", type=int, default=3, help="runs per model, best kept (default 3)")
    p.add_argument(
        "--target",
        type=float,
        default=TARGET_RATIO,
        help="required irqflow/SimPy ratio (default %(default)g)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when irqflow is unavailable or below the target",
    )
    args = p.parse_args(argv)
    if args.duration_ms <= 0 or args.rate <= 0 or args.repeat < 1:
        p.error("--duration-ms and --rate must be positive and --repeat at least 1")
    return args


def run_once(run: RunFn, w: NicWorkload, results: list[Result]) -> None:
    gc.collect()
    results.append(run(w))


def consistency(r: Result) -> str:
    """'' when the counts agree, else a short complaint."""
    problems = []
    if not r.hardirqs == r.softirq_items == r.tasklets:
        problems.append(
            f"hardirqs/softirq/tasklets differ: {r.hardirqs}/{r.softirq_items}/{r.tasklets}"
        )
    if r.hardirqs > r.packets:
        problems.append(f"more hard IRQs ({r.hardirqs}) than packets ({r.packets})")
    return "; ".join(problems)


def print_row(r: Result, w: NicWorkload) -> None:
    util = r.utilisation(w.cpus, w.duration_ns)
    print(
        f"{r.model:<9} {r.packets:>10,} {r.hardirqs:>10,} {r.wall_s:>9.3f} "
        f"{r.rate:>14,.0f} {util:>7.1%}"
    )
    problem = consistency(r)
    if problem:
        print(f"  WARNING {r.model}: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    w = NicWorkload(
        rate_pps=args.rate,
        duration_ns=round(args.duration_ms * 1_000_000),
        seed=args.seed,
    )
    run_irqflow, why_unavailable = load_irqflow()

    print("irqflow benchmark: 2-CPU NIC scenario, irqflow sim engine vs SimPy")
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"simpy {package_version('simpy')}, irqflow {package_version('irqflow')}"
    )
    print(
        f"workload: {w.cpus} CPUs, {w.rate_pps:,.0f} packets/s Poisson (seed {w.seed}), "
        f"{w.duration_ns / 1e6:g} ms virtual; per packet hardirq {w.hardirq_ns} ns + "
        f"NET_RX {w.softirq_ns} ns + tasklet {w.tasklet_ns} ns"
    )
    print(
        f"expected: {w.expected_packets:,.0f} packets, workload utilisation "
        f"{w.expected_utilisation:.1%}; best of {args.repeat} run(s) per model"
    )

    simpy_runs: list[Result] = []
    irqflow_runs: list[Result] = []
    irqflow_failed = False
    for _ in range(args.repeat):
        run_once(run_simpy, w, simpy_runs)
        if run_irqflow is not None and not irqflow_failed:
            try:
                run_once(run_irqflow, w, irqflow_runs)
            except Exception:
                irqflow_failed = True
                print("\nirqflow run FAILED:", file=sys.stderr)
                traceback.print_exc()

    print()
    print(
        f"{'model':<9} {'packets':>10} {'hard IRQs':>10} {'wall s':>9} "
        f"{'hard IRQs/s':>14} {'util':>7}"
    )
    simpy_best = min(simpy_runs, key=lambda r: r.wall_s)
    print_row(simpy_best, w)

    if run_irqflow is None:
        print(f"irqflow   unavailable ({why_unavailable})")
        return 1 if args.strict else 0
    if irqflow_failed:
        print("irqflow   FAILED (traceback above)")
        return 1
    irqflow_best = min(irqflow_runs, key=lambda r: r.wall_s)
    print_row(irqflow_best, w)
    print(
        "  (irqflow's utilisation includes its kernel-path costs: interrupt entry/exit, "
        "softirq passes, tasklet dispatch)"
    )

    ratio = irqflow_best.rate / simpy_best.rate
    met = ratio >= args.target
    print(
        f"\nratio irqflow/SimPy (hard IRQs per wall-second): {ratio:.2f}x "
        f"(target >= {args.target:g}x: {'met' if met else 'NOT met'})"
    )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
