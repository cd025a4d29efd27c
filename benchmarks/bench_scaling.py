"""Benchmark: how the sim engine's cost per event scales with CPUs, duration and lines.

Usage::

    python benchmarks/bench_scaling.py [--rate PPS] [--repeat K] [--quick]

Every CPU gets its own NIC lines (affinity: that CPU), each with Poisson arrivals, and
each packet goes through a top half, NET_RX and a tasklet, as in ``workload.py``.  The
table gives wall microseconds per simulated hard IRQ (best of ``--repeat`` runs) and the
ratio to the first row of its group:

* **CPUs**: 1 to 64 busy CPUs at the same per-CPU load (cost per event should stay flat);
* **duration**: 50 to 400 ms of virtual time on 2 CPUs (total cost linear: flat per event);
* **lines**: 1 to 64 lines on 2 CPUs, the same total rate (flat per event).

Wall-clock numbers on a shared machine are noisy; the ratios within one run are what to
read.  ``benchmarks/bench_callgrind.py`` counts instructions for the 2-CPU case.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Sequence

from irqflow import IRQ_HANDLED, Kernel, SoftIrq, Tasklet

NET_RX = SoftIrq.NET_RX_SOFTIRQ
FIRST_IRQ = 32


def run(cpus: int, lines: int, rate_per_cpu: float, duration_ms: int, seed: int = 1) -> float:
    """Simulate the workload; returns wall microseconds per hard IRQ."""
    k = Kernel(cpus=cpus, seed=seed)
    backlog = [0] * cpus
    handed = [0] * cpus
    hardirqs = [0]

    def top(irq: int, dev: object) -> int:
        hardirqs[0] += 1
        backlog[k.smp_processor_id()] += 1
        k.ndelay(2000)
        k.raise_softirq(NET_RX)
        return IRQ_HANDLED

    def deliver(cpu: int) -> None:
        n, handed[cpu] = handed[cpu], 0
        if n:
            k.ndelay(1000 * n)

    tasklets = [Tasklet(deliver, c) for c in range(cpus)]

    def net_rx() -> None:
        cpu = k.smp_processor_id()
        n, backlog[cpu] = backlog[cpu], 0
        if n:
            k.ndelay(3000 * n)
            handed[cpu] += n
            k.tasklet_schedule(tasklets[cpu])

    k.open_softirq(NET_RX, net_rx)
    nlines = cpus * lines
    rng = random.Random(seed)
    rate = rate_per_cpu / lines
    end = duration_ms * 1_000_000
    for i in range(nlines):
        irq = FIRST_IRQ + i
        k.request_irq(irq, top, name=f"eth{i}")
        k.irq_set_affinity(irq, {i % cpus})

        def arrive(irq: int = irq) -> None:
            k.raise_irq(irq)
            t = k.now() + max(1, round(rng.expovariate(rate) * 1e9))
            if t < end:
                k.call_at(t, arrive)

        k.call_at(max(1, round(rng.expovariate(rate) * 1e9)), arrive)
    gc.collect()
    t0 = time.perf_counter()
    k.run(until=end)
    wall = time.perf_counter() - t0
    return wall / max(1, hardirqs[0]) * 1e6


def best(repeat: int, *args: int | float) -> float:
    return min(run(*args) for _ in range(repeat))  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50_000, help="packets/s per CPU (default 50k)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="fewer and shorter points")
    args = p.parse_args(argv)
    dur = 20 if args.quick else 100
    cpu_counts = (1, 2, 8) if args.quick else (1, 2, 4, 8, 16, 32, 64)
    durations = (25, 50) if args.quick else (50, 100, 200, 400)
    line_counts = (1, 8) if args.quick else (1, 4, 16, 64)
    groups = {
        f"CPUs (lines 1/CPU, {dur} ms)": [(n, 1, args.rate, dur) for n in cpu_counts],
        "duration (2 CPUs)": [(2, 1, args.rate, d) for d in durations],
        f"lines (2 CPUs, {dur} ms)": [(2, n, args.rate, dur) for n in line_counts],
    }
    print(f"sim engine scaling, Python {sys.version.split()[0]}: wall us per simulated hard IRQ")
    print(f"{'group':<28}{'point':>10}{'us/IRQ':>10}{'ratio':>8}")
    for name, points in groups.items():
        base = None
        for cpus, lines, rate, dur_ms in points:
            us = best(args.repeat, cpus, lines, rate, dur_ms)
            base = base or us
            point = {"CPUs": cpus, "duration": f"{dur_ms} ms", "lines": lines * cpus}[
                name.split()[0]
            ]
            print(f"{name:<28}{point!s:>10}{us:>10.1f}{us / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
