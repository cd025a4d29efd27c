"""Blocking calls: made from a kernel thread they block it (plain functions and async def
bodies alike), in atomic context they are refused, and from outside the machine the sim
runs virtual time until they are done."""

from __future__ import annotations

from typing import Any

from irqflow import (
    IRQ_HANDLED,
    IRQ_WAKE_THREAD,
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
        await k.usleep_range(2000, 2000)

    async def thread_fn(irq: int, dev: object) -> int:
        await k.usleep_range(3000, 3000)
        return IRQ_HANDLED

    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, thread_fn, name="eth0")
    busy = Work(slow, name="busy")
    timer = Timer(lambda d: k.udelay(1_500))

    async def driver(k: Kernel) -> None:
        k.schedule_work(busy)
        await k.usleep_range(100, 100)
        log.append(("flush_work", await k.flush_work(busy), k.now()))
        k.schedule_work(busy)
        await k.usleep_range(100, 100)
        log.append(("cancel_work_sync", await k.cancel_work_sync(busy), k.now()))
        start = k.now()
        k.raise_irq(24)
        await k.usleep_range(100, 100)
        log.append(("synchronize_irq", await k.synchronize_irq(24), k.now() - start))
        k.add_timer(timer, k.jiffies + 1)
        while k.timer_pending(timer):  # until it fires (its callback: 1.5 ms of CPU)
            await k.usleep_range(100, 100)
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


def test_plain_kthread_blocks_in_the_middle_of_a_call() -> None:
    """A plain (not async) kernel thread sleeps in the middle of its function: here in
    tasklet_disable, until the long tasklet run on the other CPU has finished."""
    k = Kernel(cpus=2)
    t = Tasklet(lambda d: k.udelay(5_000), name="long")
    k.request_irq(24, lambda i, d: (k.tasklet_schedule(t), IRQ_HANDLED)[1], name="eth0")
    k.irq_set_affinity(24, {0})
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=100 * US)
    assert t.running
    seen: list[tuple[bool, int]] = []

    def plain(k: Kernel) -> None:
        k.tasklet_disable(t)
        seen.append((t.running, k.now()))

    k.kthread_run(plain, "plain", cpu=1)
    k.run(until=20 * MS)
    assert k.statistics().oopses == ()
    ((running, when),) = seen
    assert not running and 5 * MS <= when < 6 * MS


def test_multi_step_waits_work_inside_the_machine() -> None:
    """tasklet_kill and drain_workqueue wait in several steps: a kernel thread may call
    them (plain or async), and they return once their conditions hold."""
    k = Kernel(cpus=2)
    t = Tasklet(lambda d: k.udelay(300), name="t")
    chained = Work(lambda w: k.udelay(200), name="second")
    first = Work(lambda w: (k.udelay(100), k.schedule_work(chained)), name="first")
    k.request_irq(24, lambda i, d: (k.tasklet_schedule(t), IRQ_HANDLED)[1], name="eth0")
    k.irq_set_affinity(24, {0})
    done: list[tuple[str, int]] = []

    def body(k: Kernel) -> None:
        k.raise_irq(24)
        k.usleep_range(50, 50)
        k.tasklet_kill(t)
        done.append(("tasklet_kill", k.now()))
        k.schedule_work(first)
        k.drain_workqueue(k.system_wq)
        done.append(("drain_workqueue", k.now()))

    k.kthread_run(body, "b", cpu=1)
    k.run(until=5 * MS)
    assert k.statistics().oopses == ()
    assert [what for what, _ in done] == ["tasklet_kill", "drain_workqueue"]
    assert not t.scheduled and not t.running and t.runs == 1
    assert first.runs == chained.runs == 1  # drain waited for the item the first queued
    assert done[0][1] >= 300 * US and done[1][1] >= done[0][1] + 300 * US


def test_tasklet_kill_of_an_idle_tasklet_from_outside_returns_at_once() -> None:
    k = Kernel(cpus=1)
    t = Tasklet(lambda d: None)
    k.tasklet_kill(t)
    assert not t.scheduled and not t.running and k.now() == 0
