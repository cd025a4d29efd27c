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
