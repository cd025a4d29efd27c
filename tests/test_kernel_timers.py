"""Kernel-internal timers on TIMER_SOFTIRQ (the base the spurious poller runs on)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from irqflow import Kernel
from irqflow.core.cpu import Cpu
from irqflow.core.timer import add_kernel_timer

TICK_NS = 4_000_000  # HZ=250


def _recorder(log: list[tuple[int, int, int]]) -> Any:
    def flow(k: Any, c: Cpu) -> Generator[Any, Any, None]:
        log.append((k.now(), k.jiffies, c.nr))
        yield from ()

    return flow


def test_timer_runs_from_timer_softirq_on_its_cpu_never_early_even_when_idle() -> None:
    """Invariant 63: a timer armed on CPU 1 for jiffy 3 runs in TIMER_SOFTIRQ on CPU 1, at
    the first tick where jiffies >= 3, although CPU 1 is idle (its tick keeps going)."""
    k = Kernel(cpus=2)
    k.trace.enable("irq:softirq_*")
    log: list[tuple[int, int, int]] = []
    add_kernel_timer(k, k.cpus[1], 3, _recorder(log))
    k.run(until=10 * TICK_NS)
    assert len(log) == 1
    t, jiffies, cpu = log[0]
    assert cpu == 1 and jiffies == 3
    assert 3 * TICK_NS <= t < 4 * TICK_NS
    raises = [e for e in k.trace.events() if e.name == "irq:softirq_raise"]
    assert [(e.cpu, e.fields["vec"]) for e in raises] == [(1, 1)]  # only when due


def test_timers_run_in_expiry_order_and_the_tick_stops_when_none_are_left() -> None:
    """Due timers run earliest first; once none is pending an idle CPU's tick stops,
    so run() without an end returns."""
    k = Kernel(cpus=1)
    log: list[tuple[int, int, int]] = []
    rec = _recorder(log)
    add_kernel_timer(k, k.cpus[0], 5, rec)
    add_kernel_timer(k, k.cpus[0], 2, rec)
    k.run()
    assert [j for _, j, _ in log] == [2, 5]
    assert k.statistics().arch["LOC"] == (5,)
    assert k.now() < 7 * TICK_NS
