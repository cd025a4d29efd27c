"""Timers on TIMER_SOFTIRQ: Timer, add_timer, mod_timer, del_timer(_sync) (invariant 63)."""

from __future__ import annotations

from typing import Any

import pytest

from irqflow import IrqflowError, Kernel, KernelConfig, SleepInAtomicContext, Timer
from irqflow.core.cpu import Cpu
from irqflow.core.timer import add_kernel_timer
from support import MS, events, make_kernel

TICK = 4 * MS  # HZ=250


def test_callback_runs_in_timer_softirq_on_the_arming_cpu_never_early() -> None:
    """Invariant 63: armed from CPU 1 for jiffies+3, the callback runs in TIMER_SOFTIRQ on
    CPU 1 at the first tick where jiffies >= expires (CPU 1 is idle meanwhile)."""
    k = make_kernel(config=KernelConfig())
    seen: list[tuple[int, int, int, bool]] = []
    t = Timer(lambda d: seen.append((k.now(), k.jiffies, k.smp_processor_id(),
                                     k.in_serving_softirq())))  # fmt: skip

    def arm(k: Kernel) -> None:
        k.add_timer(t, k.jiffies + 3)

    k.kthread_run(arm, "arm", cpu=1)
    k.run(until=10 * TICK)
    assert len(seen) == 1
    now, jiffies, cpu, in_softirq = seen[0]
    assert (jiffies, cpu, in_softirq) == (3, 1, True)
    assert 3 * TICK <= now < 4 * TICK
    raises = [e for e in events(k, "irq:softirq_raise") if e.fields["vec"] == 1]
    assert [e.cpu for e in raises] == [1]  # raised from the tick only when due
    assert [e.fields["timer"] for e in events(k, "timer:timer_expire_entry")] == [t.name]


def test_mod_timer_moves_and_del_timer_cancels() -> None:
    """mod_timer re-arms (returns whether it was pending; same expiry is a no-op);
    del_timer returns whether it was pending and the callback never runs."""
    k = Kernel(cpus=1)
    fired: list[int] = []
    t = Timer(lambda d: fired.append(k.jiffies))
    assert k.mod_timer(t, 5) is False
    assert k.mod_timer(t, 5) is True
    assert k.mod_timer(t, 2) is True
    k.run(until=10 * TICK)
    assert fired == [2]
    u = Timer(lambda d: fired.append(-1))
    k.add_timer(u, k.jiffies + 1)
    assert k.timer_pending(u) and k.del_timer(u) is True and k.del_timer(u) is False
    k.run(until=20 * TICK)
    assert fired == [2]


def test_timer_rearmed_from_its_own_callback_is_periodic() -> None:
    """A callback that mod_timers itself runs every period, on its CPU."""
    k = Kernel(cpus=1)
    fired: list[int] = []

    def tick(data: Any) -> None:
        fired.append(k.jiffies)
        if len(fired) < 4:
            k.mod_timer(t, k.jiffies + 2)

    t = Timer(tick)
    k.add_timer(t, 1)
    k.run()
    assert fired == [1, 3, 5, 7]


def test_add_timer_twice_and_bad_expires_are_refused() -> None:
    """add_timer on a pending timer is a caller error (use mod_timer); expires must be
    an int of jiffies."""
    k = Kernel(cpus=1)
    t = Timer(lambda d: None)
    k.add_timer(t, 3)
    with pytest.raises(IrqflowError, match="mod_timer"):
        k.add_timer(t, 4)
    with pytest.raises(TypeError, match="jiffies"):
        k.mod_timer(t, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Timer(None)


def test_timer_callback_cannot_sleep() -> None:
    """Timer callbacks run in softirq context: might_sleep there is an oops."""
    k = Kernel(cpus=1)
    t = Timer(lambda d: k.kmalloc(64))
    k.add_timer(t, 1)
    k.run()
    (oops,) = k.statistics().oopses
    assert oops.exc_type == SleepInAtomicContext.__name__ and oops.context == "softirq"


def test_del_timer_sync_waits_for_a_running_callback() -> None:
    """del_timer_sync from outside returns once the callback (5 ms of CPU) is done."""
    k = Kernel(cpus=1)
    t = Timer(lambda d: k.udelay(5_000))
    k.add_timer(t, 1)
    k.run(until=TICK + 1_000_000)
    assert t.running
    assert k.del_timer_sync(t) is False
    assert not t.running and k.now() >= TICK + 5 * MS


def test_kernel_timer_flows_and_tick_stop() -> None:
    """Kernel-internal timers run earliest first; an idle CPU's tick stops once none is
    left, so run() without an end returns."""
    k = Kernel(cpus=1)
    log: list[int] = []

    def flow(k: Any, c: Cpu) -> None:
        log.append(k.jiffies)

    add_kernel_timer(k, k.cpus[0], 5, flow)
    add_kernel_timer(k, k.cpus[0], 2, flow)
    k.run()
    assert log == [2, 5]
    assert k.statistics().arch["LOC"] == (5,)
