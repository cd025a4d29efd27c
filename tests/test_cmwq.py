"""Concurrency-managed workqueues (invariants 48, 50-53) and a hypothesis property:
random queue/flush/cancel interleavings from several CPUs never run one item twice at
once, never lose a queued item, and cancel_work_sync leaves the item idle."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqflow import (
    IRQ_HANDLED,
    WQ_CPU_INTENSIVE,
    WQ_HIGHPRI,
    WQ_UNBOUND,
    Kernel,
    Work,
)
from support import MS, SEED, US, make_kernel


def make(cpus: int = 2, trace: str | None = "*") -> Kernel:
    return make_kernel(cpus, trace=trace, config=dataclasses.replace(SEED, workqueue_model="cmwq"))


def kick(k: Kernel, cpu: int, fn: Any, at: int) -> None:
    """Run ``fn()`` in hard-IRQ context on ``cpu`` at ``at``."""
    irq = 40 + cpu
    if irq not in k.statistics().irqs:
        k.request_irq(irq, lambda i, d: (d[0](), IRQ_HANDLED)[1], 0, f"kick{cpu}", [None])
        k.irq_set_affinity(irq, {cpu})
    slot = k.genirq.descs[irq].actions[0].dev_id
    k.call_at(at, lambda: (slot.__setitem__(0, fn), k.raise_irq(irq)))


def test_workers_are_named_kworker_and_highpri_gets_h() -> None:
    """Invariant 53: kworker/<cpu>:<id>, an H suffix for highpri pools, kworker/u<pool>:<id>
    for unbound ones; highpri workers run at nice -20."""
    k = make()
    hi = k.alloc_workqueue("hi", WQ_HIGHPRI)
    ub = k.alloc_workqueue("ub", WQ_UNBOUND)
    comms: dict[str, str] = {}
    items = [Work(lambda w: comms.__setitem__(w.name, k.current().comm), name=n)
             for n in ("normal", "highpri", "unbound")]  # fmt: skip
    kick(k, 1, lambda: (k.schedule_work(items[0]), k.queue_work(hi, items[1]),
                        k.queue_work(ub, items[2])), at=10 * US)  # fmt: skip
    k.run(until=MS)
    assert comms["normal"] == "kworker/1:0" and comms["highpri"] == "kworker/1:0H"
    assert comms["unbound"].startswith("kworker/u") and comms["unbound"].endswith(":0")
    (h,) = [t for t in k.tasks if t.comm == "kworker/1:0H"]
    assert h.nice == -20


def test_a_second_worker_starts_only_when_the_running_one_blocks() -> None:
    """Invariant 50: CPU-bound items share one worker; an item that sleeps lets the pool
    start another worker for the rest."""
    k = make(cpus=1)
    ran: list[tuple[str, str]] = []

    def busy(w: Work) -> None:
        ran.append((w.name, k.current().comm))
        k.udelay(100)

    async def sleeper(w: Work) -> None:
        ran.append((w.name, k.current().comm))
        await k.msleep(5)

    items = [Work(busy, name=f"b{i}") for i in range(3)]
    kick(k, 0, lambda: [k.schedule_work(w) for w in items], at=10 * US)
    k.run(until=2 * MS)
    assert {comm for _, comm in ran} == {"kworker/0:0"}
    s, after = Work(sleeper, name="sleeper"), Work(busy, name="after")
    kick(k, 0, lambda: (k.schedule_work(s), k.schedule_work(after)), at=3 * MS)
    k.run(until=4 * MS)
    (_, sleeper_comm), (after, after_comm) = ran[-2:]
    assert after == "after" and after_comm != sleeper_comm


def test_cpu_intensive_items_do_not_hold_back_the_pool() -> None:
    """WQ_CPU_INTENSIVE: a long CPU-bound item leaves the concurrency count, so a normal
    item queued behind it starts on another worker without waiting."""
    k = make(cpus=1)
    heavy_wq = k.alloc_workqueue("crunch", WQ_CPU_INTENSIVE)
    start: dict[str, int] = {}

    def crunch(w: Work) -> None:
        start["crunch"] = k.now()
        k.udelay(20_000)

    def quick(w: Work) -> None:
        start["quick"] = k.now()

    kick(k, 0, lambda: (k.queue_work(heavy_wq, Work(crunch)), k.schedule_work(Work(quick))),
         at=10 * US)  # fmt: skip
    k.run(until=50 * MS)
    assert start["quick"] < start["crunch"] + 10 * MS


def test_max_active_keeps_excess_items_inactive_in_fifo_order() -> None:
    """Invariant 51: with max_active=2, at most two items of the queue run at once on a
    pool; the rest wait INACTIVE and start in queueing order."""
    k = make(cpus=1)
    wq = k.alloc_workqueue("limited", 0, 2)
    active = [0]
    peak = [0]
    order: list[str] = []

    async def item(w: Work) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        order.append(w.name)
        await k.msleep(1)
        active[0] -= 1

    items = [Work(item, name=f"i{n}") for n in range(6)]
    kick(k, 0, lambda: [k.queue_work(wq, w) for w in items], at=10 * US)
    k.run(until=20 * MS)
    assert peak[0] == 2 and order == [f"i{n}" for n in range(6)]
    activates = [e for e in k.trace.events() if e.name == "workqueue:workqueue_activate_work"]
    assert len(activates) == 6  # two at queueing time, four when room appeared


def test_requeue_while_running_goes_to_the_running_pool_never_concurrent() -> None:
    """Invariant 48: an item requeued from another CPU while it runs goes to the pool
    where it runs and runs again only afterwards."""
    k = make()
    spans: list[tuple[int, int, str]] = []

    async def slow(w: Work) -> None:
        t0 = k.now()
        await k.msleep(2)
        spans.append((t0, k.now(), k.current().comm))

    w = Work(slow)
    kick(k, 0, lambda: k.schedule_work(w), at=10 * US)
    kick(k, 1, lambda: k.schedule_work(w), at=500 * US)
    k.run(until=20 * MS)
    assert len(spans) == 2
    assert spans[1][0] >= spans[0][1]
    assert all(comm.startswith("kworker/0:") for _, _, comm in spans)


def test_idle_workers_beyond_the_ratio_are_reaped_after_300_s() -> None:
    """Too many idle workers (more than 2, and idle-2 >= busy/4) are culled once idle for
    300 s; two stay.  Six items that sleep take six workers, and the sixth, finding no
    idle worker left when it started, made a seventh in reserve (manage_workers).  The
    kernel's idle timer is deferrable (it never wakes an idle CPU): irqflow culls when the
    pool is next used, and a quiet machine ends its run."""
    k = make(cpus=1, trace=None)

    async def sleeper(w: Work) -> None:
        await k.msleep(1)

    def alive() -> int:
        return len([t for t in k.tasks if t.comm.startswith("kworker/0:") and t.state != "X"])

    items = [Work(sleeper, name=f"s{i}") for i in range(6)]
    kick(k, 0, lambda: [k.schedule_work(w) for w in items], at=10 * US)
    k.run()
    assert alive() == 7 and k.now() < 100 * MS
    kick(k, 0, lambda: k.schedule_work(items[0]), at=200_000 * MS)
    k.run()
    assert alive() == 7  # idle for 200 s only
    kick(k, 0, lambda: k.schedule_work(items[0]), at=400_000 * MS)
    k.run()
    assert alive() == 2


OPS = st.lists(
    st.tuples(
        st.sampled_from(["queue", "queue", "queue", "flush", "cancel", "run"]),
        st.integers(0, 2),  # item
        st.integers(0, 1),  # cpu
        st.integers(0, 3),  # sleep ms / run ms
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(OPS)
def test_random_interleavings_never_run_an_item_twice_at_once_or_lose_it(ops: list[Any]) -> None:
    """Hypothesis: queue from CPU 0/1, flush and cancel_work_sync from outside, in any
    order: no item ever runs on two workers at once, every successful queue is followed by
    a run that starts after it (or a cancel that took it), and cancel_work_sync returns
    with the item neither pending nor running."""
    k = make(trace=None)
    running = [0, 0, 0]
    overlap: list[int] = []
    starts: list[list[int]] = [[], [], []]
    sleeps = [0, 0, 0]

    def body(n: int) -> Any:
        async def fn(w: Work) -> None:
            running[n] += 1
            if running[n] > 1:
                overlap.append(n)
            starts[n].append(k.now())
            if sleeps[n]:
                await k.msleep(sleeps[n])
            k.udelay(50)
            running[n] -= 1

        return fn

    items = [Work(body(n), name=f"w{n}") for n in range(3)]
    owed: list[tuple[int, int]] = []  # (item, queue time) of successful queues
    t = 10 * US
    for op, n, cpu, ms in ops:
        if op == "queue":
            sleeps[n] = ms

            def q(n: int = n) -> None:
                if k.schedule_work(items[n]):
                    owed.append((n, k.now()))

            kick(k, cpu, q, at=t)
            t += 30 * US
        elif op == "run":
            k.run(until=t)
            t = k.now() + ms * MS + 10 * US
        elif op == "flush":
            k.run(until=t)
            k.flush_work(items[n])
            assert not items[n].pending and not items[n].running
            t = k.now() + 10 * US
        else:
            k.run(until=t)
            if k.cancel_work_sync(items[n]):
                owed[:] = [(m, q) for m, q in owed if m != n]  # its queued run was taken
            assert not items[n].pending and not items[n].running
            t = k.now() + 10 * US
    k.run(until=t)
    k.flush_workqueue(k.system_wq)
    k.run(until=k.now() + 20 * MS)
    assert overlap == []
    for n, queued_at in owed:
        assert any(s >= queued_at for s in starts[n]), (n, queued_at, starts[n])
    assert all(not w.pending and not w.running for w in items)


@pytest.mark.parametrize(("thresh", "waits_for_hog"), [(0, True), (10_000_000, False)])
def test_a_cpu_hogging_item_is_marked_intensive_and_stops_holding_the_pool(
    thresh: int, waits_for_hog: bool
) -> None:
    """Linux 6.5+: an item that has used wq_cpu_intensive_thresh_ns of CPU is marked
    CPU_INTENSIVE at a tick, so the next item gets a worker; 0 is the old behaviour."""
    k = make_kernel(1, workqueue_model="cmwq", wq_cpu_intensive_thresh_ns=thresh)
    started: list[int] = []
    k.schedule_work(Work(lambda w: k.udelay(30_000)))  # 30 ms of CPU
    k.schedule_work(Work(lambda w: started.append(k.now())))
    k.run()
    assert len(started) == 1
    if waits_for_hog:
        assert started[0] >= 30 * MS
    else:
        assert 10 * MS <= started[0] < 20 * MS  # the first tick past 10 ms of CPU
    assert all(p.nr_running == 0 for p in k.wq.cmwq.pools)
