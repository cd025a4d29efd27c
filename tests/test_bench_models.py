"""The benchmark's models (benchmarks/) simulate what they claim to: counts, CPU time, order.

The SimPy model is the baseline irqflow is timed against, so it is checked on its own:
per-packet counts agree once drained, CPU time is conserved across preemptions, the load
matches rate * 6 µs / 2 CPUs, and two scripted timelines pin down preemption and resumption.
The irqflow model is checked the same way once irqflow can be imported.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("simpy")

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

workload: ModuleType = importlib.import_module("workload")
simpy_model: ModuleType = importlib.import_module("simpy_model")

SHORT_NS = 5_000_000  # 5 ms of virtual time: ~500 packets at the default rate


def check_counts(w: Any, r: Any) -> None:
    """Counts every model must satisfy once its deferred work has drained."""
    lo, hi = w.packet_count_bounds()
    assert lo <= r.packets <= hi
    assert r.hardirqs == r.softirq_items == r.tasklets
    assert r.wall_s > 0


@pytest.mark.parametrize("rate_pps", [100_000.0, 250_000.0])
def test_simpy_model_counts_and_load(rate_pps: float) -> None:
    w = workload.NicWorkload(rate_pps=rate_pps, duration_ns=SHORT_NS, seed=7)
    r = simpy_model.run_simpy(w)

    check_counts(w, r)
    assert r.hardirqs == r.packets  # SimPy queues every interrupt: none is lost
    # Preempted work resumes with exactly its remaining time: nothing lost or run twice.
    assert r.busy_ns == r.packets * w.work_per_packet_ns
    assert r.preemptions > 0
    # Utilisation ~ rate * 6 µs / 2 CPUs, within the Poisson spread of the packet count.
    util = r.utilisation(w.cpus, w.duration_ns)
    rel = 6 / math.sqrt(w.expected_packets)
    assert util == pytest.approx(w.expected_utilisation, rel=rel)
    # Drained soon after the last packet: the machine is not overloaded.
    assert r.end_ns < w.duration_ns + 1_000_000


def test_simpy_model_same_seed_same_result() -> None:
    w = workload.NicWorkload(duration_ns=SHORT_NS)
    a, b = simpy_model.run_simpy(w), simpy_model.run_simpy(w)
    assert (a.packets, a.hardirqs, a.end_ns, a.preemptions) == (
        b.packets,
        b.hardirqs,
        b.end_ns,
        b.preemptions,
    )


def scripted(arrivals: list[int]) -> tuple[list[tuple[int, int, str, int]], Any]:
    log: list[tuple[int, int, str, int]] = []
    model = simpy_model.SimpyNicModel(workload.NicWorkload(), log=log)
    model.start(arrivals)
    model.run()
    return log, model


def test_simpy_preempted_softirq_resumes_ahead_of_queued_work() -> None:
    # Packets alternate CPUs: 0, 2, 4 go to CPU 0; 1, 3 to CPU 1.
    log, model = scripted([0, 500, 1_000, 1_500, 5_000])
    assert log == [
        (2_000, 0, "hardirq", 0),
        (2_500, 1, "hardirq", 1),
        (4_000, 0, "hardirq", 2),  # queued behind hardirq 0, not preempting it
        (4_500, 1, "hardirq", 3),
        (7_000, 0, "hardirq", 4),  # preempts softirq 0 at 5000, 1000 ns into it
        (7_500, 1, "softirq", 1),
        (9_000, 0, "softirq", 0),  # resumes first, runs its remaining 2000 ns
        (10_500, 1, "softirq", 3),
        (11_500, 1, "tasklet", 1),
        (12_000, 0, "softirq", 2),
        (12_500, 1, "tasklet", 3),
        (15_000, 0, "softirq", 4),
        (16_000, 0, "tasklet", 0),
        (17_000, 0, "tasklet", 2),
        (18_000, 0, "tasklet", 4),
    ]
    assert model.preemptions == 1
    assert model.busy_ns == 5 * 6_000


def test_simpy_hardirq_at_the_instant_softirq_ends() -> None:
    # Hard IRQ 2 arrives at 5000, when softirq 0 would end; SimPy delivers the preemption
    # (an URGENT event) before the softirq's timeout, with nothing left to run.
    log, model = scripted([0, 100, 5_000])
    assert log == [
        (2_000, 0, "hardirq", 0),
        (2_100, 1, "hardirq", 1),
        (5_000, 0, "softirq", 0),
        (5_100, 1, "softirq", 1),
        (6_100, 1, "tasklet", 1),
        (7_000, 0, "hardirq", 2),
        (8_000, 0, "tasklet", 0),
        (11_000, 0, "softirq", 2),
        (12_000, 0, "tasklet", 2),
    ]
    assert model.busy_ns == 3 * 6_000


def test_irqflow_model_counts() -> None:
    irqflow_model = pytest.importorskip("irqflow_model", reason="irqflow core not importable")
    w = workload.NicWorkload(duration_ns=SHORT_NS, seed=7)
    r = irqflow_model.run_irqflow(w)

    check_counts(w, r)
    # An edge raise may coalesce with one already pending, never more than a handful here.
    assert 0.98 * r.packets <= r.hardirqs <= r.packets
    # irqflow also charges its own kernel paths, so the CPUs are at least this busy.
    assert r.busy_ns >= r.hardirqs * w.work_per_packet_ns

    again = irqflow_model.run_irqflow(w)
    assert (again.packets, again.hardirqs, again.busy_ns, again.end_ns) == (
        r.packets,
        r.hardirqs,
        r.busy_ns,
        r.end_ns,
    )
