"""Softirq core: invariants 6-18 of docs kernel-semantics.md section 12.

Every test drives a simulated machine through the public API (``request_irq``,
``open_softirq``, ``raise_softirq``, ``kthread_run`` ...) and checks exact counts, orders
and virtual times read back from the tracepoints and ``k.statistics()``.

Timing model used for the exact times below (see ``KernelConfig``): every kernel path
cost is set to 0 except one ``__do_softirq`` pass, which costs ``PASS_NS`` (irqflow's
``min_loop_ns`` floor); driver code runs at the start of its segment and the time it
charged with ``udelay`` follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from irqflow import IRQF_NO_THREAD, Kernel, Tasklet
from irqflow.proc import softirqs as proc_softirqs
from irqflow.trace.event import TraceEvent
from support import (
    BLOCK,
    HARDIRQ_OFFSET,
    HI,
    MS,
    NET_RX,
    NET_TX,
    PASS_NS,
    RCU,
    SCHED,
    SOFTIRQ_OFFSET,
    TASKLET,
    TIMER,
    US,
    events,
    irq_line,
    make_kernel,
)


def entries(k: Kernel, cpu: int | None = None) -> list[TraceEvent]:
    return events(k, "irq:softirq_entry", cpu)


def vecs(evs: list[TraceEvent]) -> list[int]:
    return [int(e.fields["vec"]) for e in evs]


def record(k: Kernel, log: list[tuple[Any, ...]], tag: str) -> Callable[[], None]:
    """A softirq action that logs (tag, time, cpu, comm, preempt_count)."""

    def action() -> None:
        log.append((tag, k.now(), k.smp_processor_id(), k.current().comm, k.preempt_count()))

    return action


# --- invariant 6: raise_softirq_irqoff wakes ksoftirqd iff !in_interrupt() -----------------


def test_raise_from_kthread_wakes_ksoftirqd_on_that_cpu() -> None:
    """Invariant 6: raise_softirq_irqoff from task context with BH enabled wakes ksoftirqd,
    and ksoftirqd/N then runs the vector."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))

    def body(k: Kernel) -> None:
        k.raise_softirq_irqoff(NET_RX)

    k.kthread_run(body, "raiser", cpu=1)
    k.run(until=1 * MS)

    wakes = events(k, "irqflow:ksoftirqd_wakeup")
    assert [(e.cpu, e.comm) for e in wakes] == [(1, "raiser")]
    assert k.statistics().ksoftirqd_wakeups == (0, 1)
    assert [(tag, cpu, comm, pc) for tag, _, cpu, comm, pc in log] == [
        ("rx", 1, "ksoftirqd/1", SOFTIRQ_OFFSET)
    ]


def test_raise_softirq_from_kthread_wakes_ksoftirqd() -> None:
    """Invariant 6: raise_softirq (irq-save wrapper) from a kthread also wakes ksoftirqd."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(BLOCK, record(k, log, "blk"))
    k.kthread_run(lambda k: k.raise_softirq(BLOCK), "raiser", cpu=0)
    k.run(until=1 * MS)
    assert k.statistics().ksoftirqd_wakeups == (1, 0)
    assert [(cpu, comm) for _, _, cpu, comm, _ in log] == [(0, "ksoftirqd/0")]


def test_raise_in_hardirq_does_not_wake_ksoftirqd() -> None:
    """Invariant 6: from hardirq context the bit waits for irq_exit; ksoftirqd is not woken."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))
    irq_line(k, 10, lambda: k.raise_softirq_irqoff(NET_RX), at=10 * US, cpus={1})
    k.run(until=1 * MS)

    assert events(k, "irqflow:ksoftirqd_wakeup") == []
    assert k.statistics().ksoftirqd_wakeups == (0, 0)
    # run by irq_exit on the interrupted idle task, one pass after the handler
    assert log == [("rx", 10 * US + PASS_NS, 1, "swapper/1", SOFTIRQ_OFFSET)]


def test_raise_in_softirq_does_not_wake_ksoftirqd() -> None:
    """Invariant 6: from softirq context the bit is left for the running __do_softirq loop."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(TIMER, record(k, log, "timer"))

    def rx() -> None:
        log.append(("rx", k.now()))
        k.raise_softirq_irqoff(TIMER)

    k.open_softirq(NET_RX, rx)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    k.run(until=1 * MS)

    assert k.statistics().ksoftirqd_wakeups == (0, 0)
    assert events(k, "irqflow:ksoftirqd_wakeup") == []
    # the restart pass runs TIMER, still on the interrupted idle task
    assert log == [
        ("rx", 10 * US + PASS_NS),
        ("timer", 10 * US + 2 * PASS_NS, 0, "swapper/0", SOFTIRQ_OFFSET),
    ]


def test_raise_with_bh_disabled_does_not_wake_ksoftirqd() -> None:
    """Invariant 6: in a BH-disabled section in_interrupt() is true, so the raise only sets
    the bit (local_bh_enable will run it); ksoftirqd is not woken."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))

    def body(k: Kernel) -> None:
        with k.bh_disabled():
            k.raise_softirq_irqoff(NET_RX)

    k.kthread_run(body, "worker", cpu=0)
    k.run(until=1 * MS)
    assert k.statistics().ksoftirqd_wakeups == (0, 0)
    assert events(k, "irqflow:ksoftirqd_wakeup") == []
    assert [(cpu, comm) for _, _, cpu, comm, _ in log] == [(0, "worker")]


# --- invariant 7: pending bits are per CPU --------------------------------------------------


def test_softirq_runs_on_the_raising_cpu() -> None:
    """Invariant 7: a softirq raised on CPU 1 runs on CPU 1 and one raised on CPU 0 runs on
    CPU 0, even when both are raised at the same instant."""
    k = make_kernel()
    k.open_softirq(NET_RX, lambda: k.udelay(50))
    k.open_softirq(BLOCK, lambda: k.udelay(50))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=[10 * US, 500 * US], cpus={1})
    irq_line(k, 11, lambda: k.raise_softirq(BLOCK), at=[10 * US], cpus={0})
    k.run(until=2 * MS)

    assert [(e.cpu, int(e.fields["vec"])) for e in events(k, "irq:softirq_raise")] == [
        (1, NET_RX),
        (0, BLOCK),
        (1, NET_RX),
    ]
    assert sorted((e.cpu, int(e.fields["vec"]), e.ts) for e in entries(k)) == [
        (0, BLOCK, 10 * US + PASS_NS),
        (1, NET_RX, 10 * US + PASS_NS),
        (1, NET_RX, 500 * US + PASS_NS),
    ]
    snap = k.statistics()
    assert snap.softirqs["NET_RX"] == (0, 2)
    assert snap.softirqs["BLOCK"] == (1, 0)


def test_kthread_raise_on_cpu1_runs_in_ksoftirqd_1() -> None:
    """Invariant 7: the raise from a kthread on CPU 1 is handled by ksoftirqd/1 on CPU 1,
    never by CPU 0, although CPU 0 is idle."""
    k = make_kernel()
    k.open_softirq(NET_TX, lambda: None)
    k.kthread_run(lambda k: k.raise_softirq(NET_TX), "tx", cpu=1)
    k.run(until=1 * MS)
    assert [(e.cpu, e.comm) for e in entries(k)] == [(1, "ksoftirqd/1")]
    assert k.statistics().softirqs["NET_TX"] == (0, 1)


# --- invariant 8: irq_exit ---------------------------------------------------------------


def test_irq_exit_drops_hardirq_offset_before_running_softirqs() -> None:
    """Invariant 8: irq_exit removes HARDIRQ_OFFSET first, so softirqs run by it see
    preempt_count 0x100 (serving softirq, not in hardirq) with IRQs on."""
    k = make_kernel()
    seen: list[tuple[int, bool, bool, bool]] = []
    k.open_softirq(
        NET_RX,
        lambda: seen.append(
            (k.preempt_count(), k.in_hardirq(), k.in_serving_softirq(), k.irqs_disabled())
        ),
    )
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=1 * US, cpus={0})
    k.run(until=1 * MS)
    assert seen == [(SOFTIRQ_OFFSET, False, True, False)]
    (entry,) = entries(k)
    assert entry.preempt_count == SOFTIRQ_OFFSET
    assert entry.irqs_off is False


def test_irq_exit_does_not_run_softirqs_when_interrupting_bh_disabled_task() -> None:
    """Invariant 8: an IRQ that interrupts a BH-disabled section must not run softirqs at
    irq_exit (in_interrupt() is still true); local_bh_enable runs them at the end of the
    section, in the task, with preempt_count 0x101."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=50 * US, cpus={0})

    def body(k: Kernel) -> None:
        with k.bh_disabled():
            k.udelay(100)

    k.kthread_run(body, "worker", cpu=0)
    k.run(until=1 * MS)
    # the handler interrupted BH-disabled code: it sees 0x10000 + 0x200
    (h,) = events(k, "irq:irq_handler_entry")
    assert h.preempt_count == HARDIRQ_OFFSET + 0x200
    assert [(comm, pc) for _, _, _, comm, pc in log] == [("worker", SOFTIRQ_OFFSET + 1)]
    assert log[0][1] >= 100 * US


# --- invariant 9: no nested softirq run from a hard IRQ during softirq processing -----------


def test_hardirq_during_softirq_does_not_start_nested_run() -> None:
    """Invariant 9: a hard IRQ taken while NET_RX runs raises TIMER; its irq_exit sees
    in_interrupt() and starts nothing; the restart check of the outer run finds TIMER and
    runs it in the next pass, on the same CPU, without ksoftirqd."""
    k = make_kernel(cpus=1)
    k.open_softirq(NET_RX, lambda: k.udelay(100))
    k.open_softirq(TIMER, lambda: k.udelay(10))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.raise_softirq(TIMER), at=60 * US, cpus={0})
    k.run(until=1 * MS)

    rx_start = 10 * US + PASS_NS
    names = [
        (e.ts, e.name.split(":")[1], e.fields.get("vec", e.fields.get("irq")))
        for e in k.trace.events()
        if e.name
        in (
            "irq:softirq_entry",
            "irq:softirq_exit",
            "irq:irq_handler_entry",
            "irq:irq_handler_exit",
        )
    ]
    assert names == [
        (10 * US, "irq_handler_entry", 10),
        (10 * US, "irq_handler_exit", 10),
        (rx_start, "softirq_entry", NET_RX),
        (60 * US, "irq_handler_entry", 11),  # nested in NET_RX, IRQs are on there
        (60 * US, "irq_handler_exit", 11),  # ... and no softirq_entry follows it
        (rx_start + 100 * US, "softirq_exit", NET_RX),
        (rx_start + 100 * US + PASS_NS, "softirq_entry", TIMER),
        (rx_start + 110 * US + PASS_NS, "softirq_exit", TIMER),
    ]
    (nested,) = [e for e in events(k, "irq:irq_handler_entry") if e.fields["irq"] == 11]
    assert nested.preempt_count == HARDIRQ_OFFSET + SOFTIRQ_OFFSET
    assert k.statistics().ksoftirqd_wakeups == (0,)
    assert {e.comm for e in entries(k)} == {"swapper/0"}


# --- invariant 10: mask cleared before IRQs on; ascending order; once per pass -------------


def test_vectors_run_lowest_first_each_once_per_pass() -> None:
    """Invariant 10: the snapshot's vectors run in ascending index order, each once,
    however often and in whatever order they were raised."""
    k = make_kernel()
    for nr in (TIMER, NET_RX, BLOCK, SCHED, RCU):
        k.open_softirq(nr, lambda: k.udelay(1))

    def handler_body() -> None:
        for nr in (RCU, NET_RX, TIMER, SCHED, BLOCK, NET_RX, TIMER, RCU):
            k.raise_softirq(nr)

    irq_line(k, 10, handler_body, at=5 * US, cpus={0})
    k.run(until=1 * MS)
    assert vecs(entries(k)) == [TIMER, NET_RX, BLOCK, SCHED, RCU]
    assert [e.ts for e in entries(k)] == [5 * US + PASS_NS + n * US for n in range(5)]
    assert vecs(events(k, "irq:softirq_raise")) == [
        RCU,
        NET_RX,
        TIMER,
        SCHED,
        BLOCK,
        NET_RX,
        TIMER,
        RCU,
    ]


def test_mask_is_cleared_before_irqs_are_enabled() -> None:
    """Invariant 10: an interrupt that waited while IRQs were off is taken the moment
    __do_softirq enables them; the bits it raises (even the vector being snapshotted) land
    in the cleared mask and run in the next pass instead of being lost or merged."""
    k = make_kernel(cpus=1)
    k.open_softirq(NET_RX, lambda: k.udelay(5))
    k.open_softirq(TIMER, lambda: k.udelay(5))

    def first() -> None:
        k.raise_softirq(NET_RX)
        k.udelay(10)

    def second() -> None:
        k.raise_softirq(NET_RX)
        k.raise_softirq(TIMER)

    irq_line(k, 10, first, at=1 * US, cpus={0})
    irq_line(k, 11, second, at=5 * US, cpus={0})  # arrives while IRQs are off in `first`
    k.run(until=1 * MS)

    (h11,) = [e for e in events(k, "irq:irq_handler_entry") if e.fields["irq"] == 11]
    # taken at the IRQ-enable of the first pass: already serving softirqs
    assert h11.ts == 11 * US
    assert h11.preempt_count == HARDIRQ_OFFSET + SOFTIRQ_OFFSET
    assert [(int(e.fields["vec"]), e.ts) for e in entries(k)] == [
        (NET_RX, 11 * US + PASS_NS),  # pass 1: the snapshot taken before IRQs went on
        (TIMER, 16 * US + 2 * PASS_NS),  # pass 2: what the nested IRQ raised
        (NET_RX, 21 * US + 2 * PASS_NS),
    ]
    assert k.statistics().softirqs["NET_RX"] == (2,)
    assert k.statistics().softirqs["TIMER"] == (1,)


# --- invariant 11: a vector raised during a pass waits for the next pass ----------------


def test_vector_raised_during_pass_runs_in_next_pass() -> None:
    """Invariant 11: NET_RX raises TIMER (lower), itself and SCHED (higher) while it runs;
    none of them runs in the current pass, all run in the next one, in ascending order."""
    k = make_kernel()
    calls = []

    def rx() -> None:
        calls.append(k.now())
        if len(calls) == 1:
            k.raise_softirq(TIMER)
            k.raise_softirq(NET_RX)
            k.raise_softirq(SCHED)
        k.udelay(10)

    k.open_softirq(NET_RX, rx)
    k.open_softirq(TIMER, lambda: k.udelay(10))
    k.open_softirq(SCHED, lambda: k.udelay(10))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=1 * US, cpus={0})
    k.run(until=1 * MS)

    t0 = 1 * US + PASS_NS
    t1 = t0 + 10 * US + PASS_NS
    assert [(int(e.fields["vec"]), e.ts) for e in entries(k)] == [
        (NET_RX, t0),
        (TIMER, t1),
        (NET_RX, t1 + 10 * US),
        (SCHED, t1 + 20 * US),
    ]
    assert k.statistics().ksoftirqd_wakeups == (0, 0)


# --- invariant 12: 10 passes, the jiffy time limit, need_resched ------------------------


def self_reraising(k: Kernel, nr: int, total: int, cost_ns: int) -> list[tuple[int, str]]:
    """Open ``nr`` with an action that costs ``cost_ns`` and re-raises itself until it has
    run ``total`` times; returns the (time, comm) log of its runs."""
    runs: list[tuple[int, str]] = []

    def action() -> None:
        runs.append((k.now(), k.current().comm))
        k.ndelay(cost_ns)
        if len(runs) < total:
            k.raise_softirq(nr)

    k.open_softirq(nr, action)
    return runs


def test_at_most_ten_passes_then_ksoftirqd() -> None:
    """Invariant 12: a self-re-raising softirq gets 10 passes in irq_exit, then
    ksoftirqd/0 is woken once and runs the rest."""
    k = make_kernel()
    runs = self_reraising(k, NET_RX, 25, 10 * US)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=1 * US, cpus={0})
    k.run(until=10 * MS)

    assert [comm for _, comm in runs] == ["swapper/0"] * 10 + ["ksoftirqd/0"] * 15
    assert [t for t, _ in runs[:10]] == [
        1 * US + n * (10 * US + PASS_NS) + PASS_NS for n in range(10)
    ]
    (wake,) = events(k, "irqflow:ksoftirqd_wakeup")
    tenth_exit = entries(k)[9].ts + 10 * US
    assert (wake.cpu, wake.ts) == (0, tenth_exit)
    assert k.statistics().ksoftirqd_wakeups == (1, 0)
    assert k.statistics().softirqs["NET_RX"] == (25, 0)


def test_restart_limit_is_configurable() -> None:
    """Invariant 12: softirq_max_restart bounds the passes of one invocation."""
    k = make_kernel(softirq_max_restart=3)
    runs = self_reraising(k, NET_RX, 5, 10 * US)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=1 * US, cpus={0})
    k.run(until=10 * MS)
    assert [comm for _, comm in runs] == ["swapper/0"] * 3 + ["ksoftirqd/0"] * 2


def test_restart_stops_after_a_pass_longer_than_max_softirq_time() -> None:
    """Invariant 12: MAX_SOFTIRQ_TIME is 1 jiffy (4 ms) at HZ=250; a pass that charges more
    than 4 ms always crosses it, so there is no restart and ksoftirqd takes over."""
    k = make_kernel()
    runs = self_reraising(k, NET_RX, 3, 4 * MS + 100 * US)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=3 * MS, cpus={0})
    k.run(until=40 * MS)
    assert [comm for _, comm in runs] == ["swapper/0", "ksoftirqd/0", "ksoftirqd/0"]
    assert k.statistics().ksoftirqd_wakeups == (1, 0)


@pytest.mark.parametrize(
    ("hz", "start", "passes_in_irq"),
    [
        # HZ=250, MAX_SOFTIRQ_TIME = 1 jiffy = 4 ms. Passes of 1 ms (+PASS_NS) from 1 ms
        # end at ~2, ~3, ~4.0003 ms: jiffy 1 reached after the 3rd
        (250, 1 * MS, 3),
        # from 0.5 ms they end at ~1.5, ~2.5, ~3.5 (< 4 ms, restart), ~4.5 ms
        (250, 500 * US, 4),
        # HZ=1000: msecs_to_jiffies(2) = 2 jiffies; from 0.5 ms: ~1.5 (jiffy 1), ~2.5 (2)
        (1000, 500 * US, 2),
        # HZ=300: msecs_to_jiffies(2) rounds 0.6 up to 1 jiffy = 3.33 ms: ~1.5, ~2.5, ~3.5
        (300, 500 * US, 3),
    ],
)
def test_restart_time_limit_counts_jiffies(hz: int, start: int, passes_in_irq: int) -> None:
    """Invariant 12: restart only while jiffies is before start jiffy +
    msecs_to_jiffies(2) (rounded up): how many 1 ms passes fit depends on HZ and on where
    in the jiffy the run starts."""
    k = make_kernel(hz=hz)
    runs = self_reraising(k, NET_RX, 8, 1 * MS)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=start, cpus={0})
    k.run(until=40 * MS)
    comms = [comm for _, comm in runs]
    assert comms == ["swapper/0"] * passes_in_irq + ["ksoftirqd/0"] * (8 - passes_in_irq)
    (wake,) = events(k, "irqflow:ksoftirqd_wakeup")
    assert wake.ts == start + passes_in_irq * (1 * MS + PASS_NS)
    limit_jiffies = -(-2 * hz // 1000)
    assert wake.ts >= limit_jiffies * (1_000_000_000 // hz)


def test_restart_stops_on_need_resched() -> None:
    """Invariant 12: when a task wakes during the run and needs the CPU, the run stops after
    the current pass and hands the rest to ksoftirqd."""
    k = make_kernel(cpus=1)

    async def sleeper(k: Kernel) -> None:
        await k.usleep_range(1000, 1000)  # wakes at 1 ms, in the middle of the softirq run

    k.kthread_run(sleeper, "sleeper", cpu=0)
    runs = self_reraising(k, NET_RX, 20, 100 * US)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=500 * US, cpus={0})
    k.run(until=20 * MS)

    # passes end at 0.5 ms + n * 100.1 us; the 5th one (ends 1.0005 ms) sees need_resched
    in_irq = [t for t, comm in runs if comm == "swapper/0"]
    assert len(in_irq) == 5
    (wake,) = events(k, "irqflow:ksoftirqd_wakeup")
    assert wake.ts == 500 * US + 5 * (100 * US + PASS_NS)
    assert len(runs) == 20
    assert [comm for _, comm in runs[5:]] == ["ksoftirqd/0"] * 15


# --- invariant 13: local_bh_enable runs pending softirqs in the caller --------------------


def test_local_bh_enable_runs_pending_softirqs_synchronously() -> None:
    """Invariant 13: raising inside bh_disabled() only marks the vector; the outermost
    local_bh_enable runs it right there, in the calling kthread, with preempt_count 0x101,
    before it returns."""
    k = make_kernel()
    log: list[Any] = []

    def rx() -> None:
        log.append(("rx", k.current().comm, k.preempt_count(), k.in_serving_softirq()))

    k.open_softirq(NET_RX, rx)

    def body(k: Kernel) -> None:
        with k.bh_disabled():
            k.raise_softirq(NET_RX)
            log.append(("raised", k.preempt_count()))
            with k.bh_disabled():  # nested: the inner enable must not run anything
                pass
            log.append(("inner enable returned", k.preempt_count()))
        log.append(("enable returned", k.preempt_count()))

    k.kthread_run(body, "worker", cpu=1)
    k.run(until=1 * MS)
    assert log == [
        ("raised", 0x200),
        ("inner enable returned", 0x200),
        ("rx", "worker", SOFTIRQ_OFFSET + 1, True),
        ("enable returned", 0),
    ]
    (entry,) = entries(k)
    assert (entry.cpu, entry.comm, entry.preempt_count) == (1, "worker", 0x101)
    assert k.statistics().ksoftirqd_wakeups == (0, 0)


def test_local_bh_enable_with_irqs_off_still_runs_pending_softirqs() -> None:
    """Invariant 13 (spec 1.4): local_bh_enable with IRQs disabled is a bug the kernel
    warns about, but it still calls do_softirq (which saves and disables IRQs itself), so
    the softirq raised in the section runs there, in the caller, and is not stranded."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))

    def body(k: Kernel) -> None:
        k.local_irq_disable()
        with k.bh_disabled():
            k.raise_softirq(NET_RX)
        log.append(("bh enabled",))
        k.local_irq_enable()

    k.kthread_run(body, "worker", cpu=0)
    k.run(until=100 * MS)
    assert any("local_bh_enable" in r.text for r in k.statistics().log)
    assert [e[0] for e in log] == ["rx", "bh enabled"]
    assert log[0][3:] == ("worker", SOFTIRQ_OFFSET + 1)


# --- invariant 14: ksoftirqd -------------------------------------------------------------


def test_ksoftirqd_is_named_per_cpu_and_nice_0() -> None:
    """Invariant 14: one ksoftirqd per CPU, named ksoftirqd/<cpu>, SCHED_OTHER nice 0
    (kernel prio 120), and it runs its own CPU's vectors."""
    k = make_kernel(cpus=3)
    k.open_softirq(NET_RX, lambda: None)
    for cpu in range(3):
        k.kthread_run(lambda k: k.raise_softirq(NET_RX), f"raiser{cpu}", cpu=cpu)
    k.run(until=1 * MS)
    wakeups = [
        (e.fields["comm"], e.fields["prio"], e.fields["target_cpu"])
        for e in events(k, "sched:sched_wakeup")
        if e.fields["comm"].startswith("ksoftirqd")
    ]
    assert sorted(wakeups) == [(f"ksoftirqd/{n}", 120, n) for n in range(3)]
    assert sorted((e.cpu, e.comm) for e in entries(k)) == [(n, f"ksoftirqd/{n}") for n in range(3)]
    ks = sorted((t.comm, t.nice, t.policy, t.cpu) for t in k.tasks if "ksoftirqd" in t.comm)
    assert ks == [(f"ksoftirqd/{n}", 0, "normal", n) for n in range(3)]


def test_ksoftirqd_shares_cpu_fairly_with_cpu_bound_nice0_kthread() -> None:
    """Invariant 14: under a softirq flood ksoftirqd is an ordinary nice-0 thread: CFS
    gives it and a CPU-bound nice-0 kthread about the same CPU time (softirq vs user)."""
    k = make_kernel(cpus=1, trace=None)
    end = 400 * MS

    def flood() -> None:
        k.udelay(50)
        k.raise_softirq(NET_RX)  # never stops: infinite softirq demand

    k.open_softirq(NET_RX, flood)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=1 * MS, cpus={0})

    async def hog(k: Kernel) -> None:
        while k.now() < end:
            k.udelay(100)
            await k.cond_resched()

    k.kthread_run(hog, "hog", cpu=0)
    k.run(until=end)
    cpu = k.statistics().cpus[0]
    share = cpu.softirq / (cpu.softirq + cpu.user)
    # half each, give or take the passes irq_exit runs on the hog's ticks (a nice-19
    # ksoftirqd would take ~98%, an RT one all of it)
    assert 0.45 <= share <= 0.6, (cpu.softirq, cpu.user)
    assert cpu.softirq + cpu.user == end  # the hog starts at 0: the CPU is never idle


# --- invariant 15: threadirqs --------------------------------------------------------------


def test_threadirqs_irq_exit_wakes_ksoftirqd_instead_of_running() -> None:
    """Invariant 15: with forced threading irq_exit wakes ksoftirqd; the softirq runs in
    ksoftirqd/N, not in the interrupted context.  The line is IRQF_NO_THREAD (a timer-like
    hard handler), so the raise happens in hard-IRQ context, not in an IRQ thread."""
    k = make_kernel(threadirqs=True)
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={1}, flags=IRQF_NO_THREAD)
    k.run(until=1 * MS)

    (wake,) = events(k, "irqflow:ksoftirqd_wakeup")
    assert (wake.cpu, wake.ts) == (1, 10 * US)
    order = [e.name for e in k.trace.events() if e.cpu == 1 and e.name.startswith("irq")]
    assert order.index("irqflow:irq_restore") < order.index("irq:softirq_entry")
    assert [(cpu, comm, pc) for _, _, cpu, comm, pc in log] == [(1, "ksoftirqd/1", SOFTIRQ_OFFSET)]
    assert k.statistics().ksoftirqd_wakeups == (0, 1)


def test_default_irq_exit_runs_softirqs_inline() -> None:
    """Invariant 15 (default profile): without threadirqs irq_exit runs them itself."""
    k = make_kernel()
    log: list[tuple[Any, ...]] = []
    k.open_softirq(NET_RX, record(k, log, "rx"))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={1})
    k.run(until=1 * MS)
    assert [(cpu, comm) for _, _, cpu, comm, _ in log] == [(1, "swapper/1")]
    order = [e.name for e in k.trace.events() if e.cpu == 1 and e.name.startswith("irq")]
    assert order.index("irq:softirq_entry") < order.index("irqflow:irq_restore")
    assert events(k, "irqflow:ksoftirqd_wakeup") == []


# --- invariant 16: the 4.9-6.4 ksoftirqd deferral era switch -------------------------------


def deferral_scenario(defers: bool, *, with_hi_tasklet: bool = False) -> list[tuple[Any, ...]]:
    """CPU 0 runs a nice-0 kthread that raises TIMER from task context (ksoftirqd/0 becomes
    runnable but does not preempt it) and then computes for 2 ms; at 100 us an IRQ raises
    NET_RX (and maybe schedules a HI tasklet)."""
    k = make_kernel(ksoftirqd_defers=defers)
    log: list[tuple[Any, ...]] = []
    k.open_softirq(TIMER, record(k, log, "timer"))
    k.open_softirq(NET_RX, record(k, log, "rx"))
    t = Tasklet(lambda data: record(k, log, "hi")())

    def handler_body() -> None:
        k.raise_softirq(NET_RX)
        if with_hi_tasklet:
            k.tasklet_hi_schedule(t)

    irq_line(k, 10, handler_body, at=100 * US, cpus={0})

    def body(k: Kernel) -> None:
        k.raise_softirq(TIMER)
        k.udelay(2000)

    k.kthread_run(body, "worker", cpu=0)
    k.run(until=20 * MS)
    return log


def test_default_profile_does_not_defer_to_runnable_ksoftirqd() -> None:
    """Invariant 16: v6.5+ (the default) runs NET_RX at irq_exit although ksoftirqd/0 is
    runnable."""
    log = deferral_scenario(False)
    rx = [entry for entry in log if entry[0] == "rx"]
    assert rx == [("rx", 100 * US + PASS_NS, 0, "worker", SOFTIRQ_OFFSET)]


def test_ksoftirqd_defers_era_leaves_net_rx_to_runnable_ksoftirqd() -> None:
    """Invariant 16: with the 4.9-6.4 rule, irq_exit returns without running NET_RX while
    ksoftirqd/0 is runnable; ksoftirqd runs it later."""
    log = deferral_scenario(True)
    rx = [entry for entry in log if entry[0] == "rx"]
    assert len(rx) == 1
    _, t, cpu, comm, _ = rx[0]
    assert (cpu, comm) == (0, "ksoftirqd/0")
    assert t > 100 * US + PASS_NS


def test_ksoftirqd_defers_era_never_defers_hi_and_tasklet() -> None:
    """Invariant 16: with a HI bit pending, the deferral rule does not apply: everything
    pending runs at irq_exit."""
    log = deferral_scenario(True, with_hi_tasklet=True)
    # TIMER was pending too (raised by the kthread): it runs in the same pass
    assert [(tag, t, comm) for tag, t, _, comm, _ in log] == [
        ("hi", 100 * US + PASS_NS, "worker"),
        ("timer", 100 * US + PASS_NS, "worker"),
        ("rx", 100 * US + PASS_NS, "worker"),
    ]


def bh_enable_deferral_scenario(defers: bool) -> list[tuple[Any, ...]]:
    """A kthread on CPU 0 raises TIMER from task context (ksoftirqd/0 becomes runnable),
    then raises NET_RX inside bh_disabled() and re-enables BH."""
    k = make_kernel(ksoftirqd_defers=defers)
    log: list[tuple[Any, ...]] = []
    k.open_softirq(TIMER, record(k, log, "timer"))
    k.open_softirq(NET_RX, record(k, log, "rx"))

    def body(k: Kernel) -> None:
        k.raise_softirq(TIMER)
        with k.bh_disabled():
            k.raise_softirq(NET_RX)
        log.append(("bh enabled",))

    k.kthread_run(body, "worker", cpu=0)
    k.run(until=10 * MS)
    return log


def test_local_bh_enable_does_not_defer_in_default_profile() -> None:
    """Invariant 16 (v6.5+): local_bh_enable's do_softirq runs everything pending inline,
    TIMER included, although ksoftirqd/0 is runnable."""
    log = bh_enable_deferral_scenario(False)
    assert [(e[0], e[3]) if len(e) > 1 else e for e in log] == [
        ("timer", "worker"),
        ("rx", "worker"),
        ("bh enabled",),
    ]


def test_ksoftirqd_defers_era_do_softirq_defers_too() -> None:
    """Invariant 16: in the 4.9-6.4 era do_softirq (here from local_bh_enable) also returns
    without running anything while ksoftirqd is runnable and no HI/TASKLET bit is pending;
    ksoftirqd/0 runs both vectors later."""
    log = bh_enable_deferral_scenario(True)
    assert [(e[0], e[3]) if len(e) > 1 else e for e in log] == [
        ("bh enabled",),
        ("timer", "ksoftirqd/0"),
        ("rx", "ksoftirqd/0"),
    ]


# --- invariant 17: the same vector runs concurrently on two CPUs -----------------------------


def test_same_vector_runs_concurrently_on_two_cpus() -> None:
    """Invariant 17: there is no global serialization of a vector: NET_RX runs on CPU 0
    and CPU 1 over the same interval."""
    k = make_kernel()
    k.open_softirq(NET_RX, lambda: k.udelay(100))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.raise_softirq(NET_RX), at=20 * US, cpus={1})
    k.run(until=1 * MS)
    spans = {e.cpu: e.ts for e in entries(k)}, {e.cpu: e.ts for e in events(k, "irq:softirq_exit")}
    assert spans == (
        {0: 10 * US + PASS_NS, 1: 20 * US + PASS_NS},
        {0: 110 * US + PASS_NS, 1: 120 * US + PASS_NS},
    )
    assert k.statistics().softirqs["NET_RX"] == (1, 1)


# --- invariant 18: /proc/softirqs counts executions; softirq_raise per raise -------------------


def test_proc_softirqs_counts_executions_not_raises() -> None:
    """Invariant 18: three raises before a pass give one execution (+1 in /proc/softirqs)
    and three softirq_raise events; a raise during the pass gives a second execution."""
    k = make_kernel()
    rx_runs: list[int] = []

    def rx() -> None:
        rx_runs.append(k.now())
        if len(rx_runs) == 1:
            k.raise_softirq(NET_RX)
            k.raise_softirq(NET_RX)

    k.open_softirq(NET_RX, rx)

    def handler_body() -> None:
        for _ in range(3):
            k.raise_softirq(NET_RX)

    irq_line(k, 10, handler_body, at=10 * US, cpus={1})
    k.run(until=1 * MS)

    raises = events(k, "irq:softirq_raise")
    assert [(e.cpu, int(e.fields["vec"])) for e in raises] == [(1, NET_RX)] * 5
    assert len(rx_runs) == 2
    snap = k.statistics()
    assert snap.softirqs["NET_RX"] == (0, 2)
    assert snap.softirq_raises["NET_RX"] == (0, 5)
    assert all(snap.softirqs[name] == (0, 0) for name in snap.softirqs if name != "NET_RX")
    text = proc_softirqs(snap)
    assert "      NET_RX:          0          2\n" in text


def test_proc_softirqs_counts_one_per_vector_per_pass_across_vectors() -> None:
    """Invariant 18: each vector in a pass counts once on its CPU, HI and TASKLET included."""
    k = make_kernel()
    k.open_softirq(TIMER, lambda: None)
    t_hi = Tasklet(lambda data: None)
    t_lo1 = Tasklet(lambda data: None)
    t_lo2 = Tasklet(lambda data: None)

    def handler_body() -> None:
        k.raise_softirq(TIMER)
        k.tasklet_hi_schedule(t_hi)
        k.tasklet_schedule(t_lo1)
        k.tasklet_schedule(t_lo2)  # a second tasklet on the same vector: still one run

    irq_line(k, 10, handler_body, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    snap = k.statistics()
    assert snap.softirqs["HI"] == (1, 0)
    assert snap.softirqs["TIMER"] == (1, 0)
    assert snap.softirqs["TASKLET"] == (1, 0)
    assert vecs(entries(k)) == [HI, TIMER, TASKLET]


def test_vector_short_names_are_the_proc_softirqs_names() -> None:
    """SoftIrq.short_name is the name /proc/softirqs and the tracepoints print."""
    from irqflow import SoftIrq

    names = ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED"]
    names += ["HRTIMER", "RCU"]
    assert [v.short_name for v in SoftIrq] == names
