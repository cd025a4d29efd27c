"""cmwq as Linux 6.13 runs it (kernel/workqueue.c): max_active's default and range, and
the req_cpu/cpu fields of ``workqueue_queue_work``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from irqflow import (
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
        await k.msleep(1)

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
