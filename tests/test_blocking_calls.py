"""Blocking calls awaited from a kernel thread, refused in atomic context, and waited
for from outside the machine (API.md: "From process context inside the machine they are
awaited")."""

from __future__ import annotations

from typing import Any

from irqflow import (
    IRQ_HANDLED,
    IRQ_WAKE_THREAD,
    IrqflowError,
    Kernel,
    Tasklet,
    Timer,
    Work,
)
from support import MS, US


def test_async_kthread_awaits_flush_cancel_synchronize_and_del_timer_sync() -> None:
    """Inside an async kernel thread the blocking calls are awaited: each returns its
    kernel result once the thing it waits for is done, in virtual time."""
    k = Kernel(cpus=2)
    log: list[tuple[str, Any, int]] = []

    async def slow(w: Work) -> None:
        await k.msleep(2)

    async def thread_fn(irq: int, dev: object) -> int:
        await k.msleep(3)
        return IRQ_HANDLED

    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, thread_fn, name="eth0")
    busy = Work(slow, name="busy")
    timer = Timer(lambda d: k.udelay(1_500))

    async def driver(k: Kernel) -> None:
        k.schedule_work(busy)
        await k.msleep(0.1)
        log.append(("flush_work", await k.flush_work(busy), k.now()))
        k.schedule_work(busy)
        await k.msleep(0.1)
        log.append(("cancel_work_sync", await k.cancel_work_sync(busy), k.now()))
        start = k.now()
        k.raise_irq(24)
        await k.msleep(0.1)
        log.append(("synchronize_irq", await k.synchronize_irq(24), k.now() - start))
        k.add_timer(timer, k.jiffies + 1)
        await k.msleep(4.5)
        log.append(("del_timer_sync", await k.del_timer_sync(timer), int(timer.running)))

    k.kthread_run(driver, "driver", cpu=0)
    k.run(until=50 * MS)
    assert [name for name, _, _ in log] == [
        "flush_work", "cancel_work_sync", "synchronize_irq", "del_timer_sync",
    ]  # fmt: skip
    assert log[0][1] is True and log[0][2] >= 2 * MS
    assert log[1][1] is False  # it was running, not pending: waited for it
    assert log[2][1] is None and log[2][2] >= 3 * MS
    assert log[3][1] is False and log[3][2] == 0
    assert k.statistics().oopses == ()


def test_blocking_call_in_atomic_context_is_sleep_in_atomic() -> None:
    """A blocking call that would have to wait, made from a hard IRQ handler, is
    SleepInAtomicContext (recorded as an oops naming the handler)."""
    k = Kernel(cpus=2)

    async def slow(w: Work) -> None:
        await k.msleep(5)

    w = Work(slow)

    def handler(irq: int, dev: object) -> int:
        k.flush_work(w)
        return IRQ_HANDLED

    k.request_irq(24, handler, name="eth0")
    k.kthread_run(lambda k: k.schedule_work(w), "q", cpu=1)
    k.call_at(1 * MS, k.raise_irq, 24)
    k.run(until=20 * MS)
    (oops,) = k.statistics().oopses
    assert oops.exc_type == "SleepInAtomicContext" and "name: eth0" in oops.message


def test_plain_kthread_cannot_wait_in_the_middle() -> None:
    """A plain (not async) kernel thread cannot sleep mid-call: a clear error (an oops)
    saying to make it async and await."""
    k = Kernel(cpus=2)
    t = Tasklet(lambda d: k.udelay(5_000), name="long")
    k.request_irq(24, lambda i, d: (k.tasklet_schedule(t), IRQ_HANDLED)[1], name="eth0")
    k.irq_set_affinity(24, {0})
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=100 * US)
    assert t.running
    k.kthread_run(lambda k: k.tasklet_disable(t), "plain", cpu=1)
    k.run(until=20 * MS)
    (oops,) = k.statistics().oopses
    assert "async def" in oops.message


def test_multi_step_waits_are_outside_only() -> None:
    """tasklet_kill and drain_workqueue wait in several steps: from inside the machine
    they are refused with a clear error."""
    k = Kernel(cpus=1)
    t = Tasklet(lambda d: None)
    errors: list[str] = []

    async def body(k: Kernel) -> None:
        for call in (lambda: k.tasklet_kill(t), lambda: k.drain_workqueue(k.system_wq)):
            try:
                call()
            except IrqflowError as exc:
                errors.append(str(exc))

    k.kthread_run(body, "b", cpu=0)
    k.run(until=MS)
    assert len(errors) == 2 and all("outside the machine" in e for e in errors)
    k.tasklet_kill(t)  # fine from outside
    assert not t.scheduled and not t.running
