"""Tasklets: invariants 19-26 of docs kernel-semantics.md section 12.

Tasklets are identified by their ``data`` argument: each callback logs
``(data, time, cpu, comm)`` when it starts, so the tests check exact run counts, CPUs,
orders and virtual times.  Timing model as in support.py: every kernel path cost is 0
except one ``__do_softirq`` pass (``PASS_NS``).
"""

from __future__ import annotations

from typing import Any

from irqflow import Kernel, Tasklet
from support import (
    BLOCK,
    HI,
    MS,
    NET_RX,
    PASS_NS,
    TASKLET,
    TIMER,
    US,
    events,
    irq_line,
    make_kernel,
)


def logging_tasklet(k: Kernel, log: list[tuple[Any, ...]], label: str, cost_us: int = 0) -> Tasklet:
    """A tasklet whose callback logs (label, time, cpu, comm) and charges ``cost_us``."""

    def func(data: str) -> None:
        log.append((data, k.now(), k.smp_processor_id(), k.current().comm))
        if cost_us:
            k.udelay(cost_us)

    return Tasklet(func, label)


# --- invariant 19 ----------------------------------------------------------------------------


def test_schedule_while_sched_is_a_noop() -> None:
    """Invariant 19: tasklet_schedule on a tasklet with SCHED set does nothing: three
    schedules in one handler queue it once, raise TASKLET_SOFTIRQ once, run it once."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")

    def body() -> None:
        for _ in range(3):
            k.tasklet_schedule(t)

    irq_line(k, 10, body, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    assert log == [("t", 10 * US + PASS_NS, 0, "swapper/0")]
    assert [int(e.fields["vec"]) for e in events(k, "irq:softirq_raise")] == [TASKLET]
    assert k.statistics().softirqs["TASKLET"] == (1, 0)


def test_schedule_from_other_cpu_while_queued_is_a_noop() -> None:
    """Invariant 19: while the tasklet waits on CPU 0's list (SCHED set), a schedule from
    CPU 1 neither queues it on CPU 1 nor raises anything there: it runs once, on CPU 0."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")

    def long_handler() -> None:
        k.tasklet_schedule(t)  # queued at 10 us; runs after this 100 us handler
        k.udelay(100)

    irq_line(k, 10, long_handler, at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.tasklet_schedule(t), at=50 * US, cpus={1})
    k.run(until=1 * MS)
    assert log == [("t", 110 * US + PASS_NS, 0, "swapper/0")]
    assert [e.cpu for e in events(k, "irq:softirq_raise")] == [0]
    assert events(k, "irq:softirq_entry", cpu=1) == []


# --- invariant 20 ----------------------------------------------------------------------------


def test_tasklets_run_fifo_on_the_scheduling_cpu() -> None:
    """Invariant 20: tasklets go to the tail of the calling CPU's list: scheduled a, b, c on
    CPU 1 they run a, b, c on CPU 1 (FIFO, not the 2.4-era LIFO)."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    a, b, c = (logging_tasklet(k, log, name, cost_us=1) for name in "abc")

    def body() -> None:
        k.tasklet_schedule(a)
        k.tasklet_schedule(b)
        k.tasklet_schedule(c)

    irq_line(k, 10, body, at=10 * US, cpus={1})
    k.run(until=1 * MS)
    start = 10 * US + PASS_NS
    assert log == [
        ("a", start, 1, "swapper/1"),
        ("b", start + 1 * US, 1, "swapper/1"),
        ("c", start + 2 * US, 1, "swapper/1"),
    ]
    assert [e.cpu for e in events(k, "irq:tasklet_entry")] == [1, 1, 1]


def test_tasklet_runs_where_it_was_scheduled_not_where_it_ran_before() -> None:
    """Invariant 20: the list is the *calling* CPU's: scheduled from CPU 0 it runs on CPU 0,
    scheduled later from CPU 1 it runs on CPU 1."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.tasklet_schedule(t), at=500 * US, cpus={1})
    k.run(until=1 * MS)
    assert log == [
        ("t", 10 * US + PASS_NS, 0, "swapper/0"),
        ("t", 500 * US + PASS_NS, 1, "swapper/1"),
    ]


def test_tasklet_schedule_from_kthread_runs_in_that_cpus_ksoftirqd() -> None:
    """Invariants 20 and 6: scheduled from task context on CPU 1 (BH enabled), the tasklet
    goes on CPU 1's list and the raise wakes ksoftirqd/1, which runs it."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")
    k.kthread_run(lambda k: k.tasklet_schedule(t), "sched", cpu=1)
    k.run(until=1 * MS)
    assert [(cpu, comm) for _, _, cpu, comm in log] == [(1, "ksoftirqd/1")]
    assert k.statistics().ksoftirqd_wakeups == (0, 1)


def test_hi_and_normal_lists_are_separate_fifos() -> None:
    """Invariant 20: each vector has its own per-CPU FIFO list."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    n1, n2, h1, h2 = (logging_tasklet(k, log, name) for name in ("n1", "n2", "h1", "h2"))

    def body() -> None:
        k.tasklet_schedule(n1)
        k.tasklet_hi_schedule(h1)
        k.tasklet_schedule(n2)
        k.tasklet_hi_schedule(h2)

    irq_line(k, 10, body, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    assert [name for name, *_ in log] == ["h1", "h2", "n1", "n2"]


# --- invariant 21 ----------------------------------------------------------------------------


def test_tasklet_never_runs_on_two_cpus_at_once() -> None:
    """Invariant 21: scheduled on CPU 1 while its 200 us callback runs on CPU 0, the
    tasklet is found running (RUN bit), requeued on CPU 1 until CPU 0 is done, and then
    runs exactly once more there, never overlapping the first run."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t", cost_us=200)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.tasklet_schedule(t), at=50 * US, cpus={1})
    k.run(until=5 * MS)

    first_start = 10 * US + PASS_NS
    first_end = first_start + 200 * US
    assert len(log) == 2
    assert log[0] == ("t", first_start, 0, "swapper/0")
    _, second_start, cpu, comm = log[1]
    assert cpu == 1
    assert comm in ("swapper/1", "ksoftirqd/1")
    # on the first pass of CPU 1 that starts after RUN cleared
    assert first_end <= second_start <= first_end + 2 * PASS_NS
    spans = sorted(
        (e.ts, e.cpu, e.name) for e in k.trace.events() if e.name.startswith("irq:tasklet_")
    )
    assert [(cpu, name) for _, cpu, name in spans] == [
        (0, "irq:tasklet_entry"),
        (0, "irq:tasklet_exit"),
        (1, "irq:tasklet_entry"),
        (1, "irq:tasklet_exit"),
    ]
    # while it waited, CPU 1 kept re-raising TASKLET_SOFTIRQ on itself only
    assert {e.cpu for e in events(k, "irq:softirq_raise") if e.ts > 50 * US} == {1}
    assert not t.scheduled
    assert not t.running


def test_different_tasklets_run_in_parallel_on_different_cpus() -> None:
    """Invariant 21: serialization is per tasklet: two different tasklets overlap."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    a = logging_tasklet(k, log, "a", cost_us=100)
    b = logging_tasklet(k, log, "b", cost_us=100)
    irq_line(k, 10, lambda: k.tasklet_schedule(a), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.tasklet_schedule(b), at=20 * US, cpus={1})
    k.run(until=1 * MS)
    assert log == [
        ("a", 10 * US + PASS_NS, 0, "swapper/0"),
        ("b", 20 * US + PASS_NS, 1, "swapper/1"),
    ]


# --- invariant 22 ----------------------------------------------------------------------------


def test_sched_cleared_before_callback_reschedule_from_itself_runs_once_more() -> None:
    """Invariant 22: SCHED is clear when the callback starts, so a tasklet that schedules
    itself (twice) from its own callback runs exactly once more, in the next pass."""
    k = make_kernel()
    seen: list[tuple[int, bool]] = []

    def func(data: Any) -> None:
        seen.append((k.now(), t.scheduled))
        k.udelay(10)
        if len(seen) == 1:
            k.tasklet_schedule(t)
            k.tasklet_schedule(t)  # coalesces with the first

    t = Tasklet(func)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    k.run(until=1 * MS)

    first = 10 * US + PASS_NS
    assert seen == [(first, False), (first + 10 * US + PASS_NS, False)]
    seq = [
        e.name.split(":")[1]
        for e in k.trace.events()
        if e.name in ("irq:softirq_entry", "irq:softirq_exit") or e.name.startswith("irq:tasklet_")
    ]
    assert seq == [
        "softirq_entry",
        "tasklet_entry",
        "tasklet_exit",
        "softirq_exit",
        "softirq_entry",
        "tasklet_entry",
        "tasklet_exit",
        "softirq_exit",
    ]
    assert k.statistics().softirqs["TASKLET"] == (2, 0)


# --- invariant 23 ----------------------------------------------------------------------------


def test_disabled_scheduled_tasklet_stays_scheduled_and_runs_after_enable() -> None:
    """Invariant 23: a disabled tasklet that is scheduled stays SCHED and is requeued pass
    after pass (the sim keeps advancing); after tasklet_enable it runs on the next pass
    without a new tasklet_schedule, exactly once."""
    k = make_kernel(trace="irq:tasklet_*")
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")
    k.tasklet_disable(t)  # not running anywhere: returns at once
    assert k.now() == 0
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    k.run(until=300 * US)

    assert log == []
    assert t.scheduled
    assert k.now() == 300 * US
    # requeued with TASKLET_SOFTIRQ re-raised every pass: irq_exit's passes, then ksoftirqd
    snap = k.statistics()
    assert snap.softirqs["TASKLET"][0] > 1000
    assert snap.ksoftirqd_wakeups == (1, 0)

    k.call_at(400 * US, k.tasklet_enable, t)
    k.run(until=1 * MS)
    assert len(log) == 1
    _, when, cpu, comm = log[0]
    assert (cpu, comm) == (0, "ksoftirqd/0")
    assert 400 * US <= when <= 400 * US + 2 * PASS_NS
    assert not t.scheduled
    # done: ksoftirqd went back to sleep and the CPU is idle again
    idle_before = k.statistics().cpus[0].idle
    k.run(until=2 * MS)
    assert k.statistics().cpus[0].idle - idle_before == 1 * MS


def test_tasklet_enable_without_schedule_does_not_run_it() -> None:
    """Invariant 23: tasklet_enable never schedules by itself."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")
    k.tasklet_disable_nosync(t)
    k.call_at(100 * US, k.tasklet_enable, t)
    k.run(until=1 * MS)
    assert log == []
    assert events(k, "irq:softirq_raise") == []


# --- invariant 24 ----------------------------------------------------------------------------


def test_tasklet_disable_waits_for_running_instance() -> None:
    """Invariant 24: tasklet_disable from outside the machine returns only once the running
    callback has finished (virtual time advances to its end), and then the tasklet does not
    run again until enabled."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t", cost_us=500)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=[10 * US, 700 * US], cpus={0})
    k.run(until=100 * US)
    assert t.running

    k.tasklet_disable(t)
    (exit_ev,) = events(k, "irq:tasklet_exit")
    assert exit_ev.ts == 10 * US + PASS_NS + 500 * US
    assert k.now() == exit_ev.ts
    assert not t.running

    k.run(until=2 * MS)  # the second raise at 700 us schedules it, but it is disabled
    assert len(log) == 1
    assert t.scheduled
    k.tasklet_enable(t)
    k.run(until=3 * MS)
    assert len(log) == 2


def test_tasklet_disable_nosync_does_not_wait() -> None:
    """Invariant 24: tasklet_disable_nosync returns at once, even while the callback runs."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t", cost_us=500)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    k.run(until=100 * US)
    k.tasklet_disable_nosync(t)
    assert k.now() == 100 * US
    assert t.running
    k.run(until=1 * MS)
    assert len(log) == 1


# --- invariant 25 ----------------------------------------------------------------------------


def test_tasklet_kill_waits_until_neither_scheduled_nor_running() -> None:
    """Invariant 25: tasklet_kill on a queued (not yet started) tasklet returns once it has
    run, with SCHED and RUN clear."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t", cost_us=30)

    def long_handler() -> None:
        k.tasklet_schedule(t)
        k.udelay(100)

    irq_line(k, 10, long_handler, at=10 * US, cpus={0})
    k.run(until=50 * US)
    assert t.scheduled and not t.running

    k.tasklet_kill(t)
    assert log == [("t", 110 * US + PASS_NS, 0, "swapper/0")]
    assert k.now() == 140 * US + PASS_NS
    assert not t.scheduled
    assert not t.running


def test_tasklet_kill_waits_for_a_running_callback() -> None:
    """Invariant 25: tasklet_kill on a running tasklet returns when the callback ends."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t", cost_us=300)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={1})
    k.run(until=20 * US)
    assert t.running
    k.tasklet_kill(t)
    assert k.now() == 310 * US + PASS_NS
    assert not t.scheduled and not t.running
    assert len(log) == 1


def test_tasklet_kill_on_idle_tasklet_returns_at_once_and_it_can_be_reused() -> None:
    """Invariant 25: killing an idle tasklet does not wait; SCHED is left clear, so a later
    schedule queues and runs it normally."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    t = logging_tasklet(k, log, "t")
    k.run(until=10 * US)
    k.tasklet_kill(t)
    assert k.now() == 10 * US
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=20 * US, cpus={0})
    k.run(until=1 * MS)
    assert log == [("t", 20 * US + PASS_NS, 0, "swapper/0")]


def test_tasklet_kill_stops_a_self_rescheduling_tasklet() -> None:
    """Invariant 25 (spec 5.4): tasklet_kill waits until it can set SCHED itself, i.e.
    until the queued instance starts and clears it; holding SCHED stops new schedules, so
    the callback's own tasklet_schedule is a no-op.  Killed while run 1 is running and
    run 2 is queued, the tasklet runs exactly twice and kill returns when run 2 ends."""
    k = make_kernel()
    runs: list[int] = []

    def func(data: Any) -> None:
        runs.append(k.now())
        if len(runs) < 50:  # bounded, so that the buggy behaviour ends quickly
            k.tasklet_schedule(t)
        k.udelay(10)

    t = Tasklet(func)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=10 * US, cpus={0})
    k.run(until=15 * US)
    assert t.running and t.scheduled  # run 1 is running and has queued run 2

    k.tasklet_kill(t)
    assert runs == [10 * US + PASS_NS, 20 * US + 2 * PASS_NS]
    assert k.now() == 30 * US + 2 * PASS_NS
    assert not t.scheduled and not t.running
    k.run(until=1 * MS)
    assert len(runs) == 2


# --- invariant 26 ----------------------------------------------------------------------------


def test_hi_tasklets_run_in_vector_0_before_timer_and_net_rx() -> None:
    """Invariant 26: HI tasklets run in HI_SOFTIRQ (vector 0), before TIMER and NET_RX of
    the same pass; normal tasklets run in TASKLET_SOFTIRQ (vector 6), after them."""
    k = make_kernel()
    order: list[str] = []
    k.open_softirq(TIMER, lambda: order.append("TIMER"))
    k.open_softirq(NET_RX, lambda: order.append("NET_RX"))
    k.open_softirq(BLOCK, lambda: order.append("BLOCK"))
    normal = Tasklet(lambda data: order.append("tasklet"))
    hi = Tasklet(lambda data: order.append("hi tasklet"))

    def body() -> None:
        k.raise_softirq(NET_RX)
        k.tasklet_schedule(normal)
        k.raise_softirq(BLOCK)
        k.raise_softirq(TIMER)
        k.tasklet_hi_schedule(hi)

    irq_line(k, 10, body, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    assert order == ["hi tasklet", "TIMER", "NET_RX", "BLOCK", "tasklet"]

    # each tasklet ran inside the softirq_entry/exit of its own vector
    current_vec = None
    where = {}
    for e in k.trace.events():
        if e.name == "irq:softirq_entry":
            current_vec = int(e.fields["vec"])
        elif e.name == "irq:softirq_exit":
            current_vec = None
        elif e.name == "irq:tasklet_entry":
            where[len(where)] = current_vec
    assert where == {0: HI, 1: TASKLET}
    assert k.statistics().softirqs["HI"] == (1, 0)
    assert k.statistics().softirqs["TASKLET"] == (1, 0)
