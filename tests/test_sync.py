"""Sleeping primitives: completions, mutexes, wait queues (process context only)."""

from __future__ import annotations

from collections import deque
from typing import Any

from irqflow import IRQ_HANDLED, NET_RX_SOFTIRQ, Kernel, SleepInAtomicContext
from support import MS, US


def test_softirq_delivering_a_packet_wakes_the_reader_through_a_wait_queue() -> None:
    """wake_up works from softirq context; the reader sleeps in wait_event until the
    queue is non-empty and runs in its own thread afterwards."""
    k = Kernel(cpus=1)
    sockq: deque[int] = deque()
    wq = k.wait_queue_head("sk_sleep")
    got: list[tuple[int, str, int]] = []

    def net_rx() -> None:
        sockq.append(k.now())
        k.wake_up(wq)

    async def reader(k: Kernel) -> None:
        for _ in range(2):
            await k.wait_event(wq, lambda: bool(sockq))
            got.append((sockq.popleft(), k.current().comm, k.now()))

    k.open_softirq(NET_RX_SOFTIRQ, net_rx)
    k.request_irq(24, lambda i, d: (k.raise_softirq(NET_RX_SOFTIRQ), IRQ_HANDLED)[1], name="eth0")
    k.kthread_run(reader, "reader", cpu=0)
    k.call_at(1 * MS, k.raise_irq, 24)
    k.call_at(2 * MS, k.raise_irq, 24)
    k.run(until=5 * MS)
    assert [comm for _, comm, _ in got] == ["reader", "reader"]
    assert all(0 <= t_run - t_in < 100 * US for t_in, _, t_run in got)
    assert [t_in for t_in, _, _ in got] == sorted(t_in for t_in, _, _ in got)


def test_a_condition_changed_without_wake_up_is_a_lost_wakeup() -> None:
    """As in the kernel, wait_event re-checks only when woken: a condition set without
    wake_up leaves the sleeper asleep until the next wake_up."""
    k = Kernel(cpus=1)
    wq = k.wait_queue_head()
    flag = [False]
    woke: list[int] = []

    async def sleeper(k: Kernel) -> None:
        await k.wait_event(wq, lambda: flag[0])
        woke.append(k.now())

    k.kthread_run(sleeper, "s", cpu=0)
    k.call_at(1 * MS, lambda: flag.__setitem__(0, True))
    k.call_at(3 * MS, k.wake_up, wq)
    k.run(until=5 * MS)
    assert len(woke) == 1 and woke[0] >= 3 * MS


def test_completion_lets_one_waiter_through_per_complete() -> None:
    """complete() releases one waiter; complete_all() every one."""
    k = Kernel(cpus=2)
    done = k.completion()
    order: list[str] = []

    def waiter(name: str) -> Any:
        async def fn(k: Kernel) -> None:
            await done.wait()
            order.append(name)

        return fn

    for i, name in enumerate(("a", "b", "c")):
        k.kthread_run(waiter(name), name, cpu=i % 2)
    k.call_at(1 * MS, done.complete)
    k.run(until=2 * MS)
    assert len(order) == 1
    k.call_at(3 * MS, done.complete_all)
    k.run(until=4 * MS)
    assert sorted(order) == ["a", "b", "c"]
    done.reinit()  # reinit_completion: waiters block again
    k.kthread_run(waiter("d"), "d", cpu=0)
    k.run(until=6 * MS)
    assert "d" not in order


def test_mutex_excludes_and_only_the_owner_unlocks() -> None:
    """Two threads on two CPUs never hold the mutex at once; each critical section may
    sleep."""
    k = Kernel(cpus=2)
    m = k.mutex()
    inside = [0]
    peak = [0]

    async def worker(k: Kernel) -> None:
        for _ in range(3):
            async with m:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                await k.msleep(1)
                inside[0] -= 1

    k.kthread_run(worker, "w0", cpu=0)
    k.kthread_run(worker, "w1", cpu=1)
    k.run(until=100 * MS)  # six msleep(1) in turn, each one or two ticks of 4 ms
    assert peak[0] == 1 and not m.locked
    assert k.statistics().oopses == ()


def test_waiting_in_atomic_context_is_refused() -> None:
    """Awaiting a completion from a tasklet cannot happen: the call itself raises
    SleepInAtomicContext in softirq context (recorded as an oops)."""
    k = Kernel(cpus=1)
    done = k.completion()
    wq = k.wait_queue_head()

    def handler(irq: int, dev: object) -> int:
        k.wait_event(wq, lambda: False).__await__().send(None)
        return IRQ_HANDLED

    k.request_irq(24, handler, name="eth0")
    k.call_at(1 * MS, k.raise_irq, 24)
    k.run(until=2 * MS)
    (oops,) = k.statistics().oopses
    assert oops.exc_type == SleepInAtomicContext.__name__ and "name: eth0" in oops.message
    assert done.done == 0
