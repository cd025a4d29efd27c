"""Workqueues, the seed's model: one worker thread per CPU (invariants 46-47, 49, 52, 54-57,
59 as they apply to it), and the seed's statements about them."""

from __future__ import annotations

from typing import Any

import pytest

from irqflow import (
    IRQ_HANDLED,
    DelayedWork,
    IrqflowError,
    Kernel,
    KernelConfig,
    SleepInAtomicContext,
    Tasklet,
    Work,
)
from support import MS, US, events, make_kernel

TICK = 4 * MS


def make(cpus: int = 2, model: str = "per-cpu-threads") -> Kernel:
    return make_kernel(cpus, config=KernelConfig(workqueue_model=model))


@pytest.fixture(params=["per-cpu-threads", "cmwq"])
def model(request: pytest.FixtureRequest) -> str:
    """The behaviour both workqueue models share is tested on each."""
    return str(request.param)


def on_cpu(k: Kernel, cpu: int, fn: Any, at: int = 10 * US) -> None:
    """Run ``fn()`` in hard-IRQ context on ``cpu`` at ``at`` (a device line pinned there)."""
    irq = 40 + cpu
    if not k.statistics().irqs.get(irq):
        k.request_irq(irq, lambda i, d: (d[0](), IRQ_HANDLED)[1], 0, f"kick{cpu}", [fn])
        k.irq_set_affinity(irq, {cpu})
    k.call_at(at, k.raise_irq, irq)


def test_seed_default_workqueue_has_one_thread_per_cpu_named_events_n() -> None:
    """Seed: "The default workqueue spawns a set of threads (one per CPU) named events/n"
    (invariant 54: schedule_work queues on system_wq, named events)."""
    k = make(cpus=3)
    comms = sorted(t.comm for t in k.tasks if t.comm.startswith("events"))
    assert comms == ["events/0", "events/1", "events/2"]
    assert k.system_wq.name == "events"
    ran: list[str] = []
    w = Work(lambda w: ran.append(k.current().comm))
    on_cpu(k, 2, lambda: k.schedule_work(w))
    k.run(until=MS)
    assert ran == ["events/2"]  # queued on the submitting CPU's list (invariant 49)


def test_seed_work_may_sleep_but_a_tasklet_may_not(model: str) -> None:
    """Seed: "worker threads process these works, allowing sleeping operations": a work
    item that sleeps is fine; the same sleep in a tasklet is SleepInAtomicContext."""
    k = make(model=model)
    times: list[int] = []

    async def slow(w: Work) -> None:
        k.might_sleep()
        k.kmalloc(4096)
        times.append(k.now())
        await k.msleep(5)
        times.append(k.now())

    w = Work(slow)
    t = Tasklet(lambda d: k.might_sleep(), name="bad")
    on_cpu(k, 0, lambda: (k.schedule_work(w), k.tasklet_schedule(t)))
    k.run(until=20 * MS)
    assert len(times) == 2 and times[1] - times[0] >= 5 * MS
    (oops,) = k.statistics().oopses
    assert oops.exc_type == SleepInAtomicContext.__name__ and oops.where == "tasklet bad"


def test_queue_while_pending_is_refused_and_pending_clears_before_the_call(model: str) -> None:
    """Invariants 46 and 47: queue_work on a pending item returns False and changes
    nothing; PENDING is clear while the function runs, so queueing from inside it gives
    exactly one more run, after the current one."""
    k = make(model=model)
    runs: list[int] = []
    results: list[bool] = []

    def fn(w: Work) -> None:
        runs.append(k.now())
        if len(runs) == 1:
            assert not w.pending
            results.append(k.schedule_work(w))
            results.append(k.schedule_work(w))
        k.udelay(10)

    w = Work(fn)
    on_cpu(k, 0, lambda: results.extend([k.schedule_work(w), k.schedule_work(w)]))
    k.run(until=MS)
    assert results == [True, False, True, False]
    assert len(runs) == 2 and runs[1] >= runs[0] + 10 * US
    assert w.queued == 2 and w.runs == 2


def test_per_cpu_list_is_fifo_and_a_sleeping_item_stalls_the_ones_behind_it() -> None:
    """Invariant 49 (FIFO per CPU) and the old design's weakness: one thread per CPU, so a
    sleeping item delays every later item on that CPU's list."""
    k = make()
    order: list[tuple[str, int]] = []

    async def sleeper(w: Work) -> None:
        order.append(("sleeper", k.now()))
        await k.msleep(3)

    items = [Work(sleeper, name="sleeper")] + [
        Work(lambda w: order.append((w.name, k.now())), name=f"w{i}") for i in range(3)
    ]
    on_cpu(k, 0, lambda: [k.schedule_work(w) for w in items])
    k.run(until=10 * MS)
    assert [n for n, _ in order] == ["sleeper", "w0", "w1", "w2"]
    assert order[1][1] >= order[0][1] + 3 * MS


def test_singlethread_and_ordered_queues_run_one_item_at_a_time_in_order(model: str) -> None:
    """Invariant 52: an ordered (single-thread) queue runs at most one item at a time, in
    queueing order, whatever CPU queued them; its thread is named after the queue."""
    k = make(model=model)
    wq = k.alloc_ordered_workqueue("ordered")
    if model == "per-cpu-threads":  # the seed's model: the queue's own thread
        assert [t.comm for t in k.tasks if t.comm == "ordered"] == ["ordered"]
    log: list[tuple[str, str, int]] = []

    def item(name: str) -> Work:
        async def fn(w: Work) -> None:
            log.append(("start", name, k.now()))
            await k.msleep(1)
            log.append(("end", name, k.now()))

        return Work(fn, name=name)

    a, b, c = item("a"), item("b"), item("c")
    on_cpu(k, 1, lambda: (k.queue_work(wq, a), k.queue_work(wq, b)))
    on_cpu(k, 0, lambda: k.queue_work(wq, c), at=20 * US)
    k.run(until=40 * MS)  # msleep(1) lasts one to two ticks of 4 ms
    assert [(e, n) for e, n, _ in log] == [("start", "a"), ("end", "a"), ("start", "b"),
                                           ("end", "b"), ("start", "c"), ("end", "c")]  # fmt: skip
    single = k.create_singlethread_workqueue("single")
    assert len(single.workers) == (1 if model == "per-cpu-threads" else 0)


def test_delayed_work_zero_queues_at_once_else_from_the_timer_never_early(model: str) -> None:
    """Invariant 55: delay 0 queues immediately (no timer); a delay of 3 jiffies queues
    from TIMER_SOFTIRQ no earlier than 3 jiffies later (on 6.13's lazy wheel, which
    rounds level 0 up, at the jiffy after)."""
    k = make(model=model)
    ran: list[tuple[str, int]] = []
    now_w = DelayedWork(lambda w: ran.append(("now", k.jiffies)))
    later = DelayedWork(lambda w: ran.append(("later", k.jiffies)))
    on_cpu(k, 0, lambda: (k.schedule_delayed_work(now_w, 0), k.schedule_delayed_work(later, 3)))
    k.run(until=10 * TICK)
    assert ran == [("now", 0), ("later", 4)]
    queued = events(k, "workqueue:workqueue_queue_work")
    assert [e.fields["work"] for e in queued] == [now_w.name, later.name]
    assert queued[1].ts >= 4 * TICK and queued[1].preempt_count & 0x100  # from the softirq


def test_mod_and_cancel_delayed_work(model: str) -> None:
    """mod_delayed_work moves a pending item; cancel_delayed_work_sync stops it."""
    k = make(model=model)
    ran: list[int] = []
    dw = DelayedWork(lambda w: ran.append(k.jiffies))
    on_cpu(k, 0, lambda: k.schedule_delayed_work(dw, 2))
    k.run(until=TICK)
    assert k.mod_delayed_work(k.system_wq, dw, 5) is True
    k.run(until=20 * TICK)
    assert ran == [7]  # re-armed at jiffy 1 for 5 more: expires 6, the lazy wheel runs it at 7
    on_cpu(k, 0, lambda: k.schedule_delayed_work(dw, 2), at=21 * TICK)
    k.run(until=21 * TICK + MS)
    assert k.cancel_delayed_work_sync(dw) is True
    k.run(until=40 * TICK)
    assert ran == [7]


def test_cancel_work_sync_returns_pending_and_leaves_the_item_idle(model: str) -> None:
    """Invariant 56: cancel_work_sync returns whether the item was pending, waits for a
    running instance, and on return the item is neither pending nor running."""
    k = make(cpus=1, model=model)

    async def slow(w: Work) -> None:
        await k.msleep(2)

    wq = k.alloc_ordered_workqueue("one-at-a-time")  # so "queued" waits in both models
    busy, queued = Work(slow, name="busy"), Work(lambda w: None, name="queued")
    on_cpu(k, 0, lambda: (k.queue_work(wq, busy), k.queue_work(wq, queued)))
    k.run(until=MS)
    assert busy.running == 1 and queued.pending
    assert k.cancel_work_sync(queued) is True and queued.runs == 0
    assert k.cancel_work_sync(busy) is False
    assert k.now() >= 2 * MS and not busy.running and not busy.pending


def test_flush_work_waits_for_the_last_instance_and_is_false_when_idle(model: str) -> None:
    """Invariant 57: flush_work returns False for an idle item; otherwise it returns once
    the queued instance has run."""
    k = make(model=model)
    idle = Work(lambda w: None)
    assert k.flush_work(idle) is False

    async def slow(w: Work) -> None:
        await k.msleep(4)

    w = Work(slow)
    on_cpu(k, 1, lambda: k.schedule_work(w))
    k.run(until=100 * US)
    assert k.flush_work(w) is True
    assert k.now() >= 4 * MS and w.runs == 1


def test_flush_and_drain_and_destroy_workqueue() -> None:
    """flush_workqueue waits for items queued before it on every CPU; drain_workqueue also
    for items they queue; destroy_workqueue stops the threads."""
    k = make()
    wq = k.create_workqueue("mydrv")
    log: list[str] = []
    chained = Work(lambda w: log.append("chained"))

    async def first(w: Work) -> None:
        await k.msleep(1)
        log.append("first")
        k.queue_work(wq, chained)

    a, b = Work(first), Work(lambda w: log.append("b"))
    on_cpu(k, 0, lambda: k.queue_work(wq, a))
    on_cpu(k, 1, lambda: k.queue_work(wq, b))
    k.run(until=100 * US)
    k.drain_workqueue(wq)
    assert sorted(log) == ["b", "chained", "first"]
    k.destroy_workqueue(wq)
    k.run(until=10 * MS)
    assert {t.state for t in k.tasks if t.comm.startswith("mydrv/")} == {"X"}
    with pytest.raises(IrqflowError):
        k.queue_work(wq, Work(lambda w: None))


def test_tracepoints_follow_queue_activate_start_end(model: str) -> None:
    """Invariant 59: queue_work -> activate_work -> execute_start -> execute_end."""
    k = make(model=model)
    w = Work(lambda w: k.udelay(5), name="traced")
    on_cpu(k, 0, lambda: k.schedule_work(w))
    k.run(until=MS)
    names = [e.name.split(":")[1] for e in k.trace.events() if e.name.startswith("workqueue:")]
    assert names == ["workqueue_queue_work", "workqueue_activate_work",
                     "workqueue_execute_start", "workqueue_execute_end"]  # fmt: skip
    (q,) = events(k, "workqueue:workqueue_queue_work")
    assert q.fields["workqueue"] == "events" and q.fields["cpu"] == 0
