"""Timers on TIMER_SOFTIRQ: Timer, add_timer, mod_timer, del_timer(_sync) (invariant 63)."""

from __future__ import annotations

from typing import Any

import pytest

from irqflow import IrqflowError, Kernel, KernelConfig, SleepInAtomicContext, Timer
from irqflow.core.cpu import Cpu
from irqflow.core.timer import add_kernel_timer
from support import MS, events, make_kernel

TICK = 4 * MS  # HZ=250


CASCADING = KernelConfig.preset("2.6")


@pytest.mark.parametrize(("config", "fires"), [(KernelConfig(), 4), (CASCADING, 3)])
def test_callback_runs_in_timer_softirq_on_the_arming_cpu_never_early(
    config: KernelConfig, fires: int
) -> None:
    """Invariant 63: armed from CPU 1 for jiffies+3, the callback runs in TIMER_SOFTIRQ on
    CPU 1, never early: on the lazy wheel (6.13) a jiffy after expires, as calc_index
    rounds level 0 up; on the cascading wheel (2.6) at the first tick where jiffies >=
    expires.  CPU 1 idles meanwhile, its tick stopped: one LOC, when the timer is due."""
    k = make_kernel(config=config)
    seen: list[tuple[int, int, int, bool]] = []
    t = Timer(lambda d: seen.append((k.now(), k.jiffies, k.smp_processor_id(),
                                     k.in_serving_softirq())))  # fmt: skip

    def arm(k: Kernel) -> None:
        k.add_timer(t, k.jiffies + 3)

    k.kthread_run(arm, "arm", cpu=1)
    k.run(until=10 * TICK)
    assert len(seen) == 1
    now, jiffies, cpu, in_softirq = seen[0]
    assert (jiffies, cpu, in_softirq) == (fires, 1, True)
    assert fires * TICK <= now < (fires + 1) * TICK
    assert k.statistics().arch["LOC"][1] == 1
    raises = [e for e in events(k, "irq:softirq_raise") if e.fields["vec"] == 1]
    assert [e.cpu for e in raises] == [1]  # raised from the tick only when due
    assert [e.fields["timer"] for e in events(k, "timer:timer_expire_entry")] == [t.name]


def test_mod_timer_moves_and_del_timer_cancels() -> None:
    """mod_timer re-arms (returns whether it was pending; same expiry is a no-op);
    del_timer returns whether it was pending and the callback never runs."""
    k = Kernel(cpus=1, config=CASCADING)
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


@pytest.mark.parametrize(("config", "fired"), [(KernelConfig(), [2, 5, 8, 11]),
                                               (CASCADING, [1, 3, 5, 7])])  # fmt: skip
def test_timer_rearmed_from_its_own_callback_is_periodic(
    config: KernelConfig, fired: list[int]
) -> None:
    """A callback that mod_timers itself for jiffies + 2 runs every 2 jiffies on the
    cascading wheel; the lazy wheel's round-up makes the period 3."""
    k = Kernel(cpus=1, config=config)
    seen: list[int] = []

    def tick(data: Any) -> None:
        seen.append(k.jiffies)
        if len(seen) < 4:
            k.mod_timer(t, k.jiffies + 2)

    t = Timer(tick)
    k.add_timer(t, 1)
    k.run()
    assert seen == fired


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
    k = Kernel(cpus=1, config=CASCADING)
    t = Timer(lambda d: k.udelay(5_000))
    k.add_timer(t, 1)
    k.run(until=TICK + 1_000_000)
    assert t.running
    assert k.del_timer_sync(t) is False
    assert not t.running and k.now() >= TICK + 5 * MS


def test_kernel_timer_flows_and_tick_stop() -> None:
    """Kernel-internal timers run earliest first; an idle CPU's tick is stopped and the
    CPU is woken only for each timer (NO_HZ: one LOC each), so run() without an end
    returns once none is left."""
    k = Kernel(cpus=1, config=CASCADING)
    log: list[int] = []

    def flow(k: Any, c: Cpu) -> None:
        log.append(k.jiffies)

    add_kernel_timer(k, k.cpus[0], 5, flow)
    add_kernel_timer(k, k.cpus[0], 2, flow)
    k.run()
    assert log == [2, 5]
    assert k.statistics().arch["LOC"] == (2,)


# --- the lazy wheel (6.13) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "level", "late"),
    [(0, 0, 1), (1, 0, 1), (62, 0, 1), (63, 1, 1), (250, 1, 6), (503, 1, 1), (504, 2, 8),
     (1000, 2, 24), (4031, 2, 1), (4032, 3, 64)],
)  # fmt: skip
def test_calc_wheel_index_levels_and_rounding(delta: int, level: int, late: int) -> None:
    """calc_wheel_index: level n (granularity 8^n jiffies) starts at delta 63 << 3(n-1);
    the bucket expiry rounds expires strictly up to the granularity, even at level 0."""
    from irqflow.core.timer import calc_wheel_index

    got_level, bucket = calc_wheel_index(delta, 0, 9)  # armed at jiffy 0
    assert (got_level, bucket - delta) == (level, late)
    assert bucket % (8**level) == 0
    # the level follows the delta, the rounding the absolute expiry
    assert calc_wheel_index(1000 + delta, 1000, 9)[0] == level


def test_expired_and_obscenely_long_timers() -> None:
    """An expiry in the past fires at the base's next run; one beyond the wheel's reach
    is clamped to its capacity (WHEEL_TIMEOUT_MAX) instead of wrapping."""
    from irqflow.core.timer import calc_wheel_index, lvl_start

    assert calc_wheel_index(990, 1000, 9) == (0, 1000)
    level, bucket = calc_wheel_index(1000 + 10**12, 1000, 9)
    assert level == 8 and bucket <= 1000 + lvl_start(9)


def test_one_clock_runs_the_highest_level_first_and_each_bucket_newest_first() -> None:
    """collect_expired_timers fills the levels upward and __run_timers expires them
    downward; hlist_add_head makes a bucket LIFO.  At HZ=1000, from jiffy 0: a, b for
    jiffy 63 (level 1, bucket 64) and c, d for jiffy 63 armed at jiffy 2 (level 0,
    bucket 64): run order b, a (level 1, newest first), then d, c (level 0)."""
    k = Kernel(cpus=1, config=KernelConfig(hz=1000))
    k.trace.enable("timer:*")
    order: list[str] = []
    timers = {n: Timer(lambda d: order.append(d), n, name=n) for n in "abcd"}

    def arm_at_2(k: Kernel) -> None:
        k.msleep(2)  # returns at jiffy 3: 63 is then less than 63 jiffies away
        k.add_timer(timers["c"], 63)
        k.add_timer(timers["d"], 63)

    k.add_timer(timers["a"], 63)
    k.add_timer(timers["b"], 63)
    k.kthread_run(arm_at_2, "arm", cpu=0)
    k.run()
    assert [t.bucket for t in timers.values()] == [64, 64, 64, 64]
    assert order == ["b", "a", "d", "c"]
    entry = [e for e in events(k, "timer:timer_expire_entry") if e.fields["timer"] in timers]
    assert {(e.fields["now"], e.fields["baseclk"]) for e in entry} == {(64, 64)}


def test_a_1s_timer_on_an_idle_cpu_costs_one_local_timer_interrupt() -> None:
    """NO_HZ idle: the tick stops and the clock event is programmed for the timer (item
    7 of issue 11): one LOC for a 1 s timer, not one per jiffy; it fires in level 1, up
    to 8 jiffies late (1004-1032 ms at HZ=250)."""
    k = make_kernel(1, config=KernelConfig(), trace=None)
    fired: list[int] = []
    t = Timer(lambda d: fired.append(k.now()))
    k.add_timer(t, k.jiffies + 250)
    k.run()
    assert k.statistics().arch["LOC"] == (1,)
    assert len(fired) == 1 and 1004 * MS <= fired[0] < 1033 * MS


def test_housekeeping_timers_do_not_keep_a_quiet_machine_running() -> None:
    """The kernel's perpetual timers (the spurious poller) re-arm for ever: run()
    without an end stops once nothing else is left, and never before."""
    k = Kernel(cpus=1)
    polls: list[int] = []

    def poll(k: Any, c: Cpu) -> None:
        polls.append(k.jiffies)
        k.timers.add_kernel_timer(c, k.jiffies + 25, poll, housekeeping=True)

    k.timers.add_kernel_timer(k.cpus[0], 25, poll, housekeeping=True)
    ordinary = Timer(lambda d: None)
    k.add_timer(ordinary, 200)
    k.run()
    assert not k.timer_pending(ordinary) and k.jiffies >= 200
    assert len(polls) >= 7  # it kept polling while the machine was busy
    n = len(polls)
    k.run(until=k.now() + 1000 * MS)
    assert len(polls) > n  # and goes on whenever the machine runs
