"""BH workqueues (6.9+): items run in the queueing CPU's softirq (invariant 58)."""

from __future__ import annotations

import pytest

from irqflow import (
    IRQ_HANDLED,
    WQ_BH,
    WQ_HIGHPRI,
    IrqflowError,
    Kernel,
    KernelConfig,
    SleepInAtomicContext,
    Tasklet,
    Work,
    Workqueue,
)
from support import MS, US, make_kernel


@pytest.mark.parametrize("model", ["per-cpu-threads", "cmwq"])
def test_bh_work_runs_in_tasklet_softirq_before_tasklets_in_queueing_order(model: str) -> None:
    """Invariant 58: normal BH items run in the queueing CPU's TASKLET_SOFTIRQ, before that
    vector's tasklets, in queueing order; highpri ones in HI_SOFTIRQ."""
    k = make_kernel(2, config=KernelConfig(workqueue_model=model))
    log: list[tuple[str, int, int]] = []

    def rec(name: str) -> Work:
        return Work(lambda w: log.append((name, k.smp_processor_id(), k.preempt_count())),
                    name=name)  # fmt: skip

    t = Tasklet(lambda d: log.append(("tasklet", k.smp_processor_id(), k.preempt_count())))
    a, b, hi = rec("a"), rec("b"), rec("hi")

    def top(irq: int, dev: object) -> int:
        k.tasklet_schedule(t)
        k.queue_work(k.system_bh_wq, a)
        k.queue_work(k.system_bh_wq, b)
        k.queue_work(k.system_bh_highpri_wq, hi)
        return IRQ_HANDLED

    k.request_irq(24, top, name="eth0")
    k.irq_set_affinity(24, {1})
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    assert [name for name, _, _ in log] == ["hi", "a", "b", "tasklet"]
    assert {cpu for _, cpu, _ in log} == {1}
    assert {pc & ~0xFF for _, _, pc in log} == {0x100}  # softirq context (on idle: 0x101)


def test_bh_work_cannot_sleep_and_remote_queueing_uses_irq_work() -> None:
    """BH items are atomic (sleeping is an oops); queue_work_on another CPU raises the
    vector there with an irq_work IPI (IWI in /proc/interrupts)."""
    k = Kernel(cpus=2)
    ran: list[int] = []
    sleepy = Work(lambda w: k.might_sleep(), name="sleepy")
    remote = Work(lambda w: ran.append(k.smp_processor_id()), name="remote")
    k.kthread_run(lambda k: (k.queue_work(k.system_bh_wq, sleepy),
                             k.queue_work_on(1, k.system_bh_wq, remote)), "q", cpu=0)  # fmt: skip
    k.run(until=MS)
    (oops,) = k.statistics().oopses
    assert oops.exc_type == SleepInAtomicContext.__name__ and oops.where == "bh work sleepy"
    assert ran == [1]
    assert k.statistics().arch["IWI"] == (0, 1)


def test_bh_workqueue_flags_are_checked() -> None:
    """A BH workqueue may only add WQ_HIGHPRI, and max_active must be 0."""
    k = Kernel(cpus=1)
    assert k.alloc_workqueue("mybh", WQ_BH | WQ_HIGHPRI).name == "mybh"
    with pytest.raises(IrqflowError, match="WQ_HIGHPRI"):
        k.alloc_workqueue("bad", WQ_BH, 4)


def _bh_passes(k: Kernel, vec: int) -> list[list[str]]:
    """The BH items each softirq_entry of ``vec`` ran, in order (one list per entry)."""
    passes: list[list[str]] = []
    for e in k.trace.events():
        if e.name == "irq:softirq_entry" and e.fields["vec"] == vec:
            passes.append([])
        elif e.name == "workqueue:workqueue_execute_start" and passes:
            passes[-1].append(e.fields["work"])
    return [p for p in passes if p]


def _burst(k: Kernel, n: int, us: int, wq: Workqueue | None = None, cpu: int = 0) -> list[str]:
    """At 10 us, one interrupt on ``cpu`` queues ``n`` BH items (``w0``, ``w1`` ...) that
    each spin ``us`` microseconds; returns the comm of the task each ran over, in order."""
    comms: list[str] = []
    items = [Work(lambda w: (k.udelay(us), comms.append(k.current().comm)), name=f"w{i:02}")
             for i in range(n)]  # fmt: skip
    bh = wq or k.system_bh_wq
    k.request_irq(24, lambda i, d: ([k.queue_work(bh, w) for w in items], IRQ_HANDLED)[1],
                  name="eth0")  # fmt: skip
    k.irq_set_affinity(24, {cpu})
    k.call_at(10 * US, k.raise_irq, 24)
    return comms


@pytest.mark.parametrize(("highpri", "vec"), [(False, 6), (True, 0)])
def test_a_bh_pass_runs_at_most_10_items_and_reraises_its_softirq(highpri: bool, vec: int) -> None:
    """BH_WORKER_RESTARTS: a bh_worker pass stops after 10 items and re-raises
    TASKLET_SOFTIRQ (HI_SOFTIRQ for highpri), so 25 items queued at once take three
    passes of the same __do_softirq restart loop on the queueing CPU."""
    k = make_kernel(2, config=KernelConfig.preset("6.13"))
    comms = _burst(k, 25, 1, k.system_bh_highpri_wq if highpri else k.system_bh_wq, cpu=1)
    k.run(until=MS)
    assert _bh_passes(k, vec) == [[f"w{n:02}" for n in range(i, min(i + 10, 25))]
                                  for i in (0, 10, 20)]  # fmt: skip
    assert comms == ["swapper/1"] * 25  # all at irq_exit, none left to ksoftirqd


def test_a_bh_pass_keeps_working_on_items_queued_meanwhile() -> None:
    """keep_working: an item queued by a BH item (or by an interrupt) while the pass runs
    is run by the same pass, not left to the next one."""
    k = make_kernel(1, config=KernelConfig.preset("6.13"))
    c = Work(lambda w: k.udelay(1), name="c")
    b = Work(lambda w: k.queue_work(k.system_bh_wq, c), name="b")
    a = Work(lambda w: k.queue_work(k.system_bh_wq, b), name="a")
    k.request_irq(24, lambda i, d: (k.queue_work(k.system_bh_wq, a), IRQ_HANDLED)[1],
                  name="eth0")  # fmt: skip
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    assert _bh_passes(k, 6) == [["a", "b", "c"]]
    assert k.statistics().softirq_raises["TASKLET"] == (1,)  # queueing meanwhile raised nothing


@pytest.mark.parametrize(("hz", "first_pass"), [(250, 3), (1000, 2)])
def test_a_bh_pass_ends_when_jiffies_reach_its_2_ms_end(hz: int, first_pass: int) -> None:
    """BH_WORKER_JIFFIES = msecs_to_jiffies(2): a pass stops at the first item that ends
    at or after jiffies + 1 (HZ=250) or + 2 (HZ=1000); the leftover is re-raised and,
    the softirq's own 2 ms being spent, continues in ksoftirqd."""
    k = make_kernel(1, config=KernelConfig.preset("6.13", hz=hz))
    comms = _burst(k, 6, 1_500)
    k.run(until=50 * MS)
    passes = _bh_passes(k, 6)
    assert len(passes[0]) == first_pass and sum(map(len, passes)) == 6
    assert comms[: first_pass + 1] == ["swapper/0"] * first_pass + ["ksoftirqd/0"]


def test_bh_items_longer_than_2_jiffies_run_one_per_pass() -> None:
    """An item whose udelay exceeds 2 jiffies ends every pass it starts: each runs in
    its own softirq pass, the first at irq_exit, the rest in ksoftirqd."""
    k = make_kernel(1, config=KernelConfig.preset("6.13"))
    assert k.config.msecs_to_jiffies(2) == 1
    comms = _burst(k, 3, 9_000)
    k.run(until=100 * MS)
    assert _bh_passes(k, 6) == [["w00"], ["w01"], ["w02"]]
    assert comms == ["swapper/0", "ksoftirqd/0", "ksoftirqd/0"]
