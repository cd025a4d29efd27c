"""cmwq as Linux 6.13 runs it (kernel/workqueue.c): unbound pools are not
concurrency-managed, max_active's default and range, automatic CPU_INTENSIVE only for
concurrency-managed workers and measured since the last wake-up, and the req_cpu/cpu
fields of ``workqueue_queue_work``."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

import pytest

from irqflow import (
    IRQ_HANDLED,
    WQ_CPU_INTENSIVE,
    WQ_HIGHPRI,
    WQ_UNBOUND,
    DelayedWork,
    IrqflowError,
    Kernel,
    KernelConfig,
    Work,
)
from irqflow.trace.ftrace import format_event
from support import MS, US, ZERO, events, make_kernel

#: Linux 6.13 with what ZERO sets on top of its preset: the kernel's own paths free
#: (times are exact), full preemption
M613 = KernelConfig.preset("6.13", **{
    f.name: getattr(ZERO, f.name) for f in dataclasses.fields(ZERO)
    if getattr(ZERO, f.name) != getattr(KernelConfig.preset("2.6"), f.name)
})  # fmt: skip

#: include/linux/workqueue.h WORK_CPU_UNBOUND (NR_CPUS of a distro kernel)
WORK_CPU_UNBOUND = 8192


def make(cpus: int = 2, trace: str | None = "*", **overrides: Any) -> Kernel:
    return make_kernel(cpus, trace=trace, config=M613, **overrides)


def queue_from_task(k: Kernel, cpu: int, fn: Any) -> None:
    """Run ``fn()`` once from a kernel thread on ``cpu``."""
    k.kthread_run(lambda k: fn(), f"queuer/{cpu}", cpu=cpu)


# --- 1. unbound pools are not concurrency-managed ------------------------------------------


def test_unbound_items_that_sleep_run_concurrently_each_on_its_own_worker() -> None:
    """Five items that sleep 10 ms on a WQ_UNBOUND queue all end 10 ms after they were
    queued (the seed's model and a concurrency-managed pool: 10, 20, ... 50 ms)."""
    k = make()
    ub = k.alloc_workqueue("ub", WQ_UNBOUND)
    ran: list[tuple[str, int, str]] = []

    async def item(w: Work) -> None:
        await k.usleep_range(10_000, 10_000)
        ran.append((w.name, k.now(), k.current().comm))

    items = [Work(item, name=f"i{n}") for n in range(5)]
    queue_from_task(k, 0, lambda: [k.queue_work(ub, w) for w in items])
    k.run(until=100 * MS)
    assert len(ran) == 5
    assert all(10 * MS <= t < 11 * MS for _, t, _ in ran), ran
    assert len({comm for _, _, comm in ran}) == 5
    assert all(comm.startswith("kworker/u") for _, _, comm in ran)
    pools = k.wq.cmwq.pools
    assert all(p.nr_running == 0 for p in pools)


def test_unbound_max_active_limits_the_whole_workqueue() -> None:
    """max_active of an unbound queue is wq-wide: with 2, items run two at a time, in
    queueing order, even when queued from both CPUs."""
    k = make()
    ub = k.alloc_workqueue("ub2", WQ_UNBOUND, 2)
    running = [0]
    peak = [0]
    ends: list[int] = []

    async def item(w: Work) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await k.usleep_range(10_000, 10_000)
        running[0] -= 1
        ends.append(k.now())

    items = [Work(item, name=f"i{n}") for n in range(6)]
    queue_from_task(k, 0, lambda: [k.queue_work(ub, w) for w in items[:3]])
    queue_from_task(k, 1, lambda: [k.queue_work(ub, w) for w in items[3:]])
    k.run(until=100 * MS)
    assert peak[0] == 2 and len(ends) == 6
    assert [t // (10 * MS) for t in ends] == [1, 1, 2, 2, 3, 3]


def test_bound_pools_stay_concurrency_managed() -> None:
    """Per-CPU pools keep one running worker: CPU-bound items queued together run one
    after another on the same worker, never two at once."""
    k = make(cpus=1)
    comms: list[str] = []
    spans: list[tuple[int, int]] = []

    def busy(w: Work) -> None:
        t0 = k.now()
        comms.append(k.current().comm)
        k.udelay(500)
        spans.append((t0, k.now()))

    items = [Work(busy, name=f"b{n}") for n in range(4)]
    queue_from_task(k, 0, lambda: [k.schedule_work(w) for w in items])
    k.run(until=10 * MS)
    assert comms == ["kworker/0:0"] * 4
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_real_engine_a_blocked_unbound_item_does_not_starve_the_next() -> None:
    """On OS threads: an unbound item that blocks in plain Python until the item queued
    after it has run gets released by it (it would wait out its timeout if the pool
    ran one item at a time)."""
    k = Kernel(cpus=2, engine="real", config=KernelConfig.preset("6.13"))
    released = threading.Event()
    seen: list[bool] = []
    with k:
        ub = k.alloc_workqueue("ub", WQ_UNBOUND)
        k.queue_work(ub, Work(lambda w: seen.append(released.wait(20)), name="blocked"))
        k.queue_work(ub, Work(lambda w: released.set(), name="releaser"))
    assert seen == [True]


# --- 2. max_active: the default and the range ----------------------------------------------


def test_max_active_defaults_to_1024_and_accepts_1_to_2048() -> None:
    """WQ_DFL_ACTIVE (1024) for 0, WQ_MAX_ACTIVE (2048) is the largest."""
    k = make()
    assert k.system_wq.max_active == 1024
    assert k.alloc_workqueue("dfl").max_active == 1024
    assert k.alloc_workqueue("one", 0, 1).max_active == 1
    assert k.alloc_workqueue("max", WQ_UNBOUND, 2048).max_active == 2048


@pytest.mark.parametrize("bad", [2049, 100_000, -1, True, 1.5])
def test_max_active_out_of_range_is_refused_with_the_fix(bad: Any) -> None:
    """The kernel clamps to 1..2048 with a warning; irqflow refuses, naming the queue,
    the value and the range."""
    k = make()
    with pytest.raises(IrqflowError, match=r"alloc_workqueue\('big'.*1\.\.2048.*0 for"):
        k.alloc_workqueue("big", 0, bad)


# --- 4. automatic CPU_INTENSIVE (6.5+) -------------------------------------------------------


def test_an_item_that_sleeps_between_6_ms_bursts_is_never_cpu_intensive() -> None:
    """The threshold (10 ms) counts CPU time since the last wake-up: 6 ms bursts
    separated by short sleeps never reach it, however long the item runs in total."""
    k = make(cpus=1)
    wq = k.alloc_workqueue("bursty")

    async def bursts(w: Work) -> None:
        for _ in range(4):
            k.udelay(6_000)
            await k.usleep_range(1000, 1000)

    queue_from_task(k, 0, lambda: k.queue_work(wq, Work(bursts)))
    k.run(until=100 * MS)
    assert wq.stats["cpu_intensive"] == 0
    assert wq.stats["completed"] == 1


def test_an_item_that_spins_12_ms_is_marked_and_the_next_runs_on_another_worker() -> None:
    """12 ms of CPU without sleeping: at the first tick past 10 ms (HZ=1000) the worker
    is marked CPU_INTENSIVE, leaves the concurrency count, and the item queued behind it
    starts on another worker before the spinner ends."""
    k = make(cpus=1, hz=1000)
    wq = k.alloc_workqueue("spin")
    seen: dict[str, tuple[int, str]] = {}

    def spin(w: Work) -> None:
        k.udelay(12_000)
        seen["spin_end"] = (k.now(), k.current().comm)

    def nxt(w: Work) -> None:
        seen["next"] = (k.now(), k.current().comm)

    queue_from_task(k, 0, lambda: (k.queue_work(wq, Work(spin)), k.queue_work(wq, Work(nxt))))
    k.run(until=100 * MS)
    assert wq.stats["cpu_intensive"] == 1
    assert seen["next"][1] != seen["spin_end"][1]
    assert 10 * MS <= seen["next"][0] < seen["spin_end"][0]
    assert all(p.nr_running == 0 for p in k.wq.cmwq.pools)


def test_unbound_workers_are_never_marked_cpu_intensive() -> None:
    """wq_worker_tick returns at once for workers that do not count (NOT_RUNNING), which
    every unbound worker is; so do WQ_CPU_INTENSIVE queues' workers."""
    k = make(cpus=1)
    ub = k.alloc_workqueue("ub", WQ_UNBOUND)
    ci = k.alloc_workqueue("ci", WQ_CPU_INTENSIVE)
    queue_from_task(k, 0, lambda: (k.queue_work(ub, Work(lambda w: k.udelay(30_000))),
                                   k.queue_work(ci, Work(lambda w: k.udelay(30_000)))))  # fmt: skip
    k.run(until=100 * MS)
    assert ub.stats["cpu_intensive"] == 0 and ci.stats["cpu_intensive"] == 0
    assert ub.stats["completed"] == 1 and ci.stats["completed"] == 1


# --- 5. workqueue_queue_work's req_cpu and cpu, workqueue_activate_work --------------------


def test_queue_work_traces_req_cpu_unbound_and_the_pools_cpu() -> None:
    """req_cpu is WORK_CPU_UNBOUND (8192) for queue_work/schedule_work and delayed work,
    the CPU asked for with queue_work_on; cpu is the pool's CPU, -1 for unbound pools."""
    k = make()
    ub = k.alloc_workqueue("ub", WQ_UNBOUND)
    hi = k.alloc_workqueue("hi", WQ_HIGHPRI)
    a, b, c, d, e = (Work(lambda w: None, name=n) for n in "abcde")
    dw = DelayedWork(lambda w: None, name="dw")

    def on_cpu1() -> None:
        k.schedule_work(a)
        k.queue_work(ub, b)
        k.queue_work_on(0, hi, c)
        k.queue_work_on(1, ub, d)
        k.queue_work(k.system_bh_wq, e)
        k.schedule_delayed_work(dw, 1)

    queue_from_task(k, 1, on_cpu1)
    k.run(until=20 * MS)
    got = {e.fields["work"]: (e.fields["req_cpu"], e.fields["cpu"], e.fields["workqueue"])
           for e in events(k, "workqueue:workqueue_queue_work")}  # fmt: skip
    assert got == {
        "a": (WORK_CPU_UNBOUND, 1, "events"),
        "b": (WORK_CPU_UNBOUND, -1, "ub"),
        "c": (0, 0, "hi"),
        "d": (1, -1, "ub"),
        "e": (WORK_CPU_UNBOUND, 1, "events_bh"),
        "dw": (WORK_CPU_UNBOUND, 1, "events"),
    }
    (line,) = [format_event(e) for e in events(k, "workqueue:workqueue_queue_work")
               if e.fields["work"] == "b"]  # fmt: skip
    assert line.endswith("workqueue=ub req_cpu=8192 cpu=-1")


def test_activate_work_is_traced_at_queueing_or_when_an_inactive_item_gets_room() -> None:
    """Invariant 59: queue_work -> activate_work -> execute_start -> execute_end for each
    item; with max_active 1 the second item's activate_work comes when the first ends."""
    k = make(cpus=1)
    wq = k.alloc_workqueue("one", 0, 1)

    async def item(w: Work) -> None:
        await k.usleep_range(1000, 1000)

    a, b = Work(item, name="a"), Work(item, name="b")
    queue_from_task(k, 0, lambda: (k.queue_work(wq, a), k.queue_work(wq, b)))
    k.run(until=10 * MS)
    seq = [(e.name.split(":")[1].removeprefix("workqueue_"), e.fields["work"], e.ts)
           for e in k.trace.events() if e.name.startswith("workqueue:")]  # fmt: skip
    assert [(n, w) for n, w, _ in seq] == [
        ("queue_work", "a"),
        ("activate_work", "a"),
        ("queue_work", "b"),
        ("execute_start", "a"),
        ("execute_end", "a"),
        ("activate_work", "b"),
        ("execute_start", "b"),
        ("execute_end", "b"),
    ]
    assert seq[5][2] == seq[4][2] >= MS  # b became active when a ended


def test_per_cpu_threads_model_traces_req_cpu_the_same_way() -> None:
    """The seed's events/N model shares the tracepoints and their fields."""
    k = make(workqueue_model="per-cpu-threads")
    queue_from_task(k, 1, lambda: (k.schedule_work(Work(lambda w: None, name="a")),
                                   k.queue_work_on(0, k.system_wq,
                                                   Work(lambda w: None, name="b"))))  # fmt: skip
    k.run(until=5 * US)
    got = {e.fields["work"]: (e.fields["req_cpu"], e.fields["cpu"])
           for e in events(k, "workqueue:workqueue_queue_work")}  # fmt: skip
    assert got == {"a": (WORK_CPU_UNBOUND, 1), "b": (0, 0)}


def test_queue_work_on_a_cpu_the_machine_lacks_names_the_cpus_and_the_fix() -> None:
    k = make()
    with pytest.raises(IrqflowError, match=r"queue_work_on\(5, events, w\).*0\.\.1; give one"):
        k.queue_work_on(5, k.system_wq, Work(lambda w: None, name="w"))


def test_a_woken_worker_counts_only_once_it_runs_again() -> None:
    """wq_worker_running runs when the worker returns from schedule(): a worker woken
    from its sleep but still waiting for the CPU does not count, so the running worker
    goes on (keep_working) with the item queued meanwhile instead of leaving it for later."""
    k = make(cpus=1, preempt_model="voluntary")  # a running kworker is not preempted
    seen: dict[str, tuple[int, str]] = {}

    def mark(name: str) -> None:
        seen[name] = (k.now(), k.current().comm)

    async def sleeper(w: Work) -> None:
        # woken at 0.5 ms, while "long" holds the CPU (still protected by RUN_TO_PARITY,
        # so the wake-up does not ask for a reschedule)
        await k.usleep_range(500, 500)
        k.udelay(100)
        mark("sleeper_end")

    def long(w: Work) -> None:
        k.udelay(2_000)
        mark("long_end")

    x = Work(lambda w: mark("x_start"), name="x")
    queue_from_task(k, 0, lambda: (k.schedule_work(Work(sleeper)), k.schedule_work(Work(long))))
    k.request_irq(24, lambda i, d: (k.schedule_work(x), IRQ_HANDLED)[1], name="dev")
    k.call_at(1_500 * US, k.raise_irq, 24)  # queues x while "long" runs
    k.run(until=10 * MS)
    assert seen["x_start"] == seen["long_end"]  # same worker, at once
    assert seen["x_start"][0] < seen["sleeper_end"][0]
