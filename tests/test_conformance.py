"""Conformance: the same driver code behaves the same on both engines.

Every test here runs twice, on the sim engine and on the real engine (the ``engine``
fixture, as AnyIO runs its tests on each backend).  They assert orders, contexts and
counts, never times: on the real engine interrupts race for real.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    IRQF_SHARED,
    DelayedWork,
    Napi,
    SleepInAtomicContext,
    SoftIrq,
    Tasklet,
    Timer,
    Work,
)
from support import MS, US, Machine

NET_RX = SoftIrq.NET_RX_SOFTIRQ
BLOCK = SoftIrq.BLOCK_SOFTIRQ


def _context(k: Any) -> tuple[bool, bool, bool, bool]:
    return (k.in_hardirq(), k.in_serving_softirq(), k.in_task(), k.irqs_disabled())


def test_five_stages_top_half_then_softirq_then_tasklet(machine: Machine) -> None:
    """Per interrupt: the top half (IRQs off), its softirq (IRQs on), then its tasklet,
    each in its own context."""
    k = machine.k
    seen: list[tuple[str, tuple[bool, bool, bool, bool]]] = []

    def tasklet(data: Any) -> None:
        seen.append(("tasklet", _context(k)))

    t = Tasklet(tasklet)

    def action() -> None:
        seen.append(("softirq", _context(k)))
        k.tasklet_schedule(t)

    def top(irq: int, dev: Any) -> int:
        seen.append(("top", _context(k)))
        k.raise_softirq(BLOCK)
        return IRQ_HANDLED

    k.open_softirq(BLOCK, action)
    k.request_irq(24, top, name="disk")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    assert seen == [
        ("top", (True, False, False, True)),
        ("softirq", (False, True, False, False)),
        ("tasklet", (False, True, False, False)),
    ]


def test_every_raise_is_handled_or_coalesced(machine: Machine) -> None:
    """Accounting identity: raised == accepted + coalesced + lost, nothing in flight."""
    k = machine.k
    calls = []
    k.request_irq(24, lambda irq, dev: calls.append(irq) or IRQ_HANDLED, name="eth0")
    machine.start()
    for _ in range(200):
        k.raise_irq(24)
    machine.settle()
    s = k.statistics().irqs[24]
    assert s.raised == 200
    assert s.raised == s.accepted + s.coalesced + s.lost
    assert s.in_flight == 0
    assert sum(s.per_cpu) == s.accepted >= 1
    assert len(calls) >= s.accepted  # a replayed edge runs the handler once more


def test_shared_line_runs_every_action_and_counts_unhandled(machine: Machine) -> None:
    k = machine.k
    calls: list[str] = []
    k.request_irq(11, lambda i, d: calls.append("a") or IRQ_NONE, IRQF_SHARED, "a", "a")
    k.request_irq(11, lambda i, d: calls.append("b") or IRQ_NONE, IRQF_SHARED, "b", "b")
    machine.start()
    k.raise_irq(11)
    machine.settle()
    assert calls == ["a", "b"]
    assert k.statistics().irqs[11].unhandled == 1


def test_disabled_line_is_replayed_at_enable(machine: Machine) -> None:
    k = machine.k
    calls = []
    k.request_irq(24, lambda irq, dev: calls.append(irq) or IRQ_HANDLED, name="eth0")
    machine.start()
    k.disable_irq(24)
    k.raise_irq(24)
    machine.settle()
    assert calls == []
    k.enable_irq(24)
    machine.settle()
    assert calls == [24]
    s = k.statistics().irqs[24]
    assert s.raised == s.accepted + s.coalesced + s.lost == 1


def test_tasklet_never_runs_on_two_cpus_at_once(make_machine: Any) -> None:
    """Scheduled from interrupts on both CPUs, a tasklet's runs never overlap."""
    m = make_machine()
    k = m.k
    lock = threading.Lock()
    running = 0
    overlaps = 0
    runs = 0

    def body(data: Any) -> None:
        nonlocal running, overlaps, runs
        with lock:
            running += 1
            overlaps += running > 1
        k.udelay(200)
        with lock:
            running -= 1
            runs += 1

    t = Tasklet(body)
    for irq, cpu in ((30, 0), (31, 1)):
        k.request_irq(irq, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name=f"d{irq}")
        k.irq_set_affinity(irq, {cpu})
    m.start()
    for _ in range(20):
        k.raise_irq(30)
        k.raise_irq(31)
    m.settle()
    assert overlaps == 0
    assert runs >= 1
    assert t.state == 0


def test_tasklet_disable_holds_it_until_enable(machine: Machine) -> None:
    k = machine.k
    runs: list[Any] = []
    t = Tasklet(runs.append, "data")
    k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="dev")
    machine.start()
    k.tasklet_disable(t)
    k.raise_irq(24)
    # a disabled tasklet goes back on the list and TASKLET_SOFTIRQ is raised again, so
    # the machine keeps cycling (ksoftirqd) instead of settling: look after a while
    machine.run_briefly(5)
    assert runs == []
    k.tasklet_enable(t)
    machine.settle()
    assert runs == ["data"]


def test_softirq_raised_from_task_context_runs_in_ksoftirqd(machine: Machine) -> None:
    k = machine.k
    where: list[str] = []
    k.open_softirq(BLOCK, lambda: where.append(k.current().comm))
    k.kthread_run(lambda k: k.raise_softirq(BLOCK), "raiser", cpu=1)
    machine.settle()
    assert where == ["ksoftirqd/1"]


def test_local_bh_enable_runs_softirqs_raised_meanwhile_in_the_caller(machine: Machine) -> None:
    k = machine.k
    order: list[str] = []
    k.open_softirq(BLOCK, lambda: order.append(f"softirq in {k.current().comm}"))

    def body(k: Any) -> None:
        k.local_bh_disable()
        k.raise_softirq(BLOCK)
        order.append("raised, BH off")
        k.local_bh_enable()
        order.append("after local_bh_enable")

    k.kthread_run(body, "bh-user", cpu=0)
    machine.settle()
    assert order == ["raised, BH off", "softirq in bh-user", "after local_bh_enable"]


def test_handler_that_sleeps_is_an_oops_and_the_machine_goes_on(machine: Machine) -> None:
    k = machine.k
    calls = []

    def top(irq: int, dev: Any) -> int:
        calls.append(irq)
        if len(calls) == 1:
            k.kmalloc(64)  # GFP_KERNEL may sleep: refused in hardirq context
        return IRQ_HANDLED

    k.request_irq(24, top, name="bad")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    k.raise_irq(24)
    machine.settle()
    oopses = k.statistics().oopses
    assert len(oopses) == 1
    assert oopses[0].exc_type == SleepInAtomicContext.__name__
    assert oopses[0].context == "hardirq"
    assert calls == [24, 24]


def test_work_runs_in_process_context_in_fifo_order(machine: Machine) -> None:
    k = machine.k
    done: list[tuple[int, bool, str]] = []
    works = [Work(lambda w, i=i: done.append((i, k.in_task(), k.current().comm))) for i in range(5)]

    def top(irq: int, dev: Any) -> int:
        for w in works:
            k.schedule_work(w)
        return IRQ_HANDLED

    k.request_irq(24, top, name="dev")
    k.irq_set_affinity(24, {0})
    machine.start()
    k.raise_irq(24)
    machine.settle()
    assert [i for i, _, _ in done] == [0, 1, 2, 3, 4]
    assert all(task for _, task, _ in done)
    assert {comm for _, _, comm in done} == {"events/0"}


def test_queue_work_is_false_while_pending_and_flush_waits(machine: Machine) -> None:
    k = machine.k
    runs = []
    w = Work(lambda w: runs.append(1))
    gate = k.completion()

    async def blocker(w: Any) -> None:
        await gate.wait()

    first = Work(blocker)
    results: list[bool] = []

    def top(irq: int, dev: Any) -> int:
        results.append(k.queue_work_on(0, k.system_wq, first))
        results.append(k.queue_work_on(0, k.system_wq, w))
        results.append(k.queue_work_on(0, k.system_wq, w))  # already pending
        return IRQ_HANDLED

    k.request_irq(24, top, name="dev")
    machine.start()
    k.raise_irq(24)
    machine.until(lambda: len(results) == 3)
    assert results == [True, True, False]
    assert runs == []  # queued behind the sleeping item on events/0
    k.call_at(k.now() + 2_000_000, gate.complete)
    assert k.flush_work(w) is True  # it was pending: flush waited for its run
    assert runs == [1]
    assert k.flush_work(w) is False  # idle now


def test_sleeping_work_item_awaits_a_completion_from_a_softirq(machine: Machine) -> None:
    k = machine.k
    done = k.completion()
    log: list[str] = []

    async def waiter(w: Any) -> None:
        await done.wait()
        log.append("woken")

    k.open_softirq(BLOCK, lambda: (log.append("softirq"), done.complete()))
    k.request_irq(24, lambda i, d: k.raise_softirq(BLOCK) or IRQ_HANDLED, name="dev")
    w = Work(waiter)
    machine.start()
    k.schedule_work(w)
    k.raise_irq(24)
    k.flush_work(w)
    assert log == ["softirq", "woken"]


def test_mutex_excludes_between_sleeping_threads(machine: Machine) -> None:
    k = machine.k
    m = k.mutex()
    inside = 0
    worst = 0
    finished = []

    async def body(k: Any) -> None:
        nonlocal inside, worst
        for _ in range(3):
            async with m:
                inside += 1
                worst = max(worst, inside)
                await k.msleep(1)
                inside -= 1
        finished.append(1)

    for i in range(3):
        k.kthread_run(body, f"locker{i}", cpu=i % 2)
    machine.settle()
    assert worst == 1
    assert len(finished) == 3


def test_wait_event_wakes_on_wake_up_from_softirq(machine: Machine) -> None:
    k = machine.k
    wq = k.wait_queue_head("rx")
    queue: list[int] = []
    got: list[int] = []

    async def reader(k: Any) -> None:
        while len(got) < 3:
            await k.wait_event(wq, lambda: bool(queue))
            got.append(queue.pop(0))

    def action() -> None:
        queue.append(len(got) + len(queue))
        k.wake_up(wq)

    k.open_softirq(NET_RX, action)
    k.request_irq(24, lambda i, d: k.raise_softirq(NET_RX) or IRQ_HANDLED, name="eth0")
    k.kthread_run(reader, "reader", cpu=1)
    machine.start()
    for _ in range(3):
        machine.settle()
        k.raise_irq(24)
    machine.settle()
    assert got == [0, 1, 2]


def test_threaded_irq_runs_thread_fn_in_its_thread_with_line_masked(machine: Machine) -> None:
    k = machine.k
    seen: list[tuple[str, bool]] = []

    def thread_fn(irq: int, dev: Any) -> int:
        seen.append((k.current().comm, k.in_task()))
        return IRQ_HANDLED

    k.request_threaded_irq(40, lambda i, d: IRQ_WAKE_THREAD, thread_fn, IRQF_ONESHOT, "sensor")
    machine.start()
    k.raise_irq(40)
    machine.settle()
    assert seen == [("irq/40-sensor", True)]
    k.synchronize_irq(40)


def test_timer_callback_runs_in_timer_softirq_not_early(machine: Machine) -> None:
    k = machine.k
    fired: list[tuple[int, bool]] = []
    t = Timer(lambda data: fired.append((k.jiffies, k.in_serving_softirq())))
    machine.start()
    armed_at = k.jiffies
    k.add_timer(t, armed_at + 2)
    machine.settle()
    assert len(fired) == 1
    assert fired[0][0] >= armed_at + 2
    assert fired[0][1]


def test_delayed_work_runs_after_its_delay(machine: Machine) -> None:
    k = machine.k
    ran: list[int] = []
    dw = DelayedWork(lambda w: ran.append(k.jiffies))
    machine.start()
    start = k.jiffies
    k.schedule_delayed_work(dw, 3)
    machine.settle()
    assert len(ran) == 1 and ran[0] >= start + 3


def test_napi_polls_within_budget_until_done(machine: Machine) -> None:
    k = machine.k
    ring = list(range(150))
    budgets: list[int] = []
    delivered: list[int] = []

    def poll(napi: Napi, budget: int) -> int:
        budgets.append(budget)
        n = 0
        while ring and n < budget:
            delivered.append(ring.pop(0))
            n += 1
        if n < budget:
            k.napi_complete_done(napi, n)
        return n

    n = Napi(poll, weight=64, name="eth0")
    k.request_irq(24, lambda i, d: (k.napi_schedule(n) and IRQ_HANDLED) or IRQ_HANDLED, name="eth0")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    assert delivered == list(range(150))
    assert budgets[:3] == [64, 64, 64]


def test_cmwq_starts_another_worker_when_one_sleeps(make_machine: Any) -> None:
    m = make_machine(1, workqueue_model="cmwq")
    k = m.k
    gate = k.completion()
    order: list[str] = []

    async def sleeper(w: Any) -> None:
        order.append("sleeper waits")
        await gate.wait()
        order.append("sleeper done")

    def other(w: Any) -> None:
        order.append("other ran")
        gate.complete()

    a, b = Work(sleeper), Work(other)
    m.start()
    k.schedule_work(a)
    k.schedule_work(b)
    m.settle()
    assert order == ["sleeper waits", "other ran", "sleeper done"]


def test_cancel_work_sync_leaves_it_neither_pending_nor_running(machine: Machine) -> None:
    k = machine.k
    runs = []
    gate = k.completion()

    async def slow(w: Any) -> None:
        await gate.wait()
        runs.append(1)

    w = Work(slow)
    machine.start()
    k.schedule_work(w)
    assert k.schedule_work(w) in (True, False)
    gate.complete()
    k.cancel_work_sync(w)
    assert not k.statistics().oopses
    machine.settle()
    assert runs in ([1], [])


@pytest.mark.parametrize("vec", [SoftIrq.HI_SOFTIRQ, SoftIrq.TASKLET_SOFTIRQ])
def test_tasklet_vectors_are_counted_in_proc_softirqs(machine: Machine, vec: SoftIrq) -> None:
    k = machine.k
    t = Tasklet(lambda d: None)
    schedule = k.tasklet_hi_schedule if vec == SoftIrq.HI_SOFTIRQ else k.tasklet_schedule
    k.request_irq(24, lambda i, d: schedule(t) or IRQ_HANDLED, name="dev")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    name = "HI" if vec == SoftIrq.HI_SOFTIRQ else "TASKLET"
    assert sum(k.statistics().softirqs[name]) == 1


def test_level_line_keeps_interrupting_until_the_driver_quiets_it(machine: Machine) -> None:
    from irqflow import IRQF_TRIGGER_HIGH

    k = machine.k
    calls = []

    def top(irq: int, dev: Any) -> int:
        calls.append(irq)
        if len(calls) == 3:
            k.set_irq_level(9, False)  # the third call finally services the device
        return IRQ_HANDLED

    k.request_irq(9, top, IRQF_TRIGGER_HIGH, "lvl")
    machine.start()
    k.set_irq_level(9, True)
    machine.settle()
    assert calls == [9, 9, 9]


def test_request_irq_errors_carry_the_kernel_errno(machine: Machine) -> None:
    from irqflow import IrqflowError

    k = machine.k
    k.request_irq(5, lambda i, d: IRQ_HANDLED, name="a")
    with pytest.raises(IrqflowError, match="EBUSY"):
        k.request_irq(5, lambda i, d: IRQ_HANDLED, name="b")
    with pytest.raises(IrqflowError, match="EINVAL"):
        k.request_irq(6, lambda i, d: IRQ_HANDLED, IRQF_SHARED, "c")  # shared needs dev_id


def test_free_irq_stops_the_handler_and_later_raises_are_lost(machine: Machine) -> None:
    k = machine.k
    calls = []
    k.request_irq(24, lambda i, d: calls.append(i) or IRQ_HANDLED, name="eth0")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    k.free_irq(24)
    k.raise_irq(24)
    machine.settle()
    s = k.statistics().irqs[24]
    assert calls == [24]
    assert s.raised == 2 and s.raised == s.accepted + s.coalesced + s.lost


def test_affinity_routes_a_line_to_its_cpus(machine: Machine) -> None:
    k = machine.k
    where: list[int] = []
    k.request_irq(24, lambda i, d: where.append(k.smp_processor_id()) or IRQ_HANDLED, name="e")
    k.irq_set_affinity(24, {1})
    machine.start()
    for _ in range(5):
        k.raise_irq(24)
        machine.settle()
    assert where == [1] * 5
    assert k.statistics().irqs[24].per_cpu == (0, 5)


def test_hi_tasklets_run_before_ordinary_tasklets(machine: Machine) -> None:
    k = machine.k
    order: list[str] = []
    lo, hi = Tasklet(lambda d: order.append("lo")), Tasklet(lambda d: order.append("hi"))

    def top(irq: int, dev: Any) -> int:
        k.tasklet_schedule(lo)
        k.tasklet_hi_schedule(hi)
        return IRQ_HANDLED

    k.request_irq(24, top, name="dev")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    assert order == ["hi", "lo"]


def test_softirq_vectors_run_in_number_order_in_one_pass(machine: Machine) -> None:
    k = machine.k
    order: list[str] = []
    k.open_softirq(NET_RX, lambda: order.append("NET_RX"))
    k.open_softirq(BLOCK, lambda: order.append("BLOCK"))
    k.open_softirq(SoftIrq.NET_TX_SOFTIRQ, lambda: order.append("NET_TX"))

    def top(irq: int, dev: Any) -> int:
        k.raise_softirq(BLOCK)
        k.raise_softirq(NET_RX)
        k.raise_softirq(SoftIrq.NET_TX_SOFTIRQ)
        return IRQ_HANDLED

    k.request_irq(24, top, name="dev")
    machine.start()
    k.raise_irq(24)
    machine.settle()
    assert order == ["NET_TX", "NET_RX", "BLOCK"]


def test_del_timer_sync_cancels_a_pending_timer(machine: Machine) -> None:
    k = machine.k
    fired: list[int] = []
    t = Timer(lambda d: fired.append(1))
    machine.start()
    k.add_timer(t, k.jiffies + 50)
    assert k.timer_pending(t)
    assert k.del_timer_sync(t) is True
    machine.settle()
    assert fired == [] and not k.timer_pending(t)


def test_ordered_workqueue_runs_one_item_at_a_time_in_order(make_machine: Any) -> None:
    m = make_machine(2, workqueue_model="cmwq")
    k = m.k
    wq = k.alloc_ordered_workqueue("ordered")
    lock = threading.Lock()
    active = 0
    worst = 0
    order: list[int] = []

    async def item(w: Any, i: int) -> None:
        nonlocal active, worst
        with lock:
            active += 1
            worst = max(worst, active)
        await k.msleep(1)
        order.append(i)
        with lock:
            active -= 1

    m.start()
    for i in range(5):
        k.queue_work(wq, Work(lambda w, i=i: item(w, i)))
    m.settle()
    assert order == [0, 1, 2, 3, 4]
    assert worst == 1


def test_synchronize_irq_waits_for_a_running_handler(machine: Machine) -> None:
    k = machine.k
    done: list[int] = []

    def top(irq: int, dev: Any) -> int:
        k.udelay(3000)  # 3 ms in the handler
        done.append(irq)
        return IRQ_HANDLED

    k.request_irq(24, top, name="slow")
    machine.start()
    k.raise_irq(24)
    machine.until(lambda: k.statistics().irqs[24].accepted == 1)
    k.synchronize_irq(24)
    assert done == [24]


def test_a_callable_that_returns_a_coroutine_is_awaited(machine: Machine) -> None:
    """Work(lambda w: some_async_fn(w, x)) runs the coroutine instead of dropping it."""
    k = machine.k
    ran: list[str] = []

    async def job(w: Any, tag: str) -> None:
        await k.msleep(1)
        ran.append(tag)

    machine.start()
    k.schedule_work(Work(lambda w: job(w, "lambda")))
    k.kthread_run(lambda k: job(None, "kthread"), "coro-thread")
    machine.settle()
    assert sorted(ran) == ["kthread", "lambda"]


# --- the execution model: plain functions run in time and may block (issue 10) -----------------


def test_a_loop_that_waits_for_the_clock_ends(machine: Machine) -> None:
    """k.now() moves inside driver code: a thread spinning until a deadline ends."""
    k = machine.k
    ends: list[int] = []

    def hog(k_: Any) -> None:
        deadline = k.now() + 2 * MS
        while k.now() < deadline:
            k.udelay(100)
        ends.append(k.now() - deadline)

    k.kthread_run(hog, "hog", cpu=0)
    machine.until(lambda: bool(ends))
    assert ends[0] >= 0


def test_plain_work_function_blocks_in_msleep_and_blocking_calls(machine: Machine) -> None:
    """A plain (not async) work function may sleep and wait: msleep, a completion, a
    mutex, wait_event, flush_work.  Each returns once its condition holds."""
    k = machine.k
    done = k.completion()
    lock = k.mutex()
    wq = k.wait_queue_head("w")
    flag: list[bool] = []
    order: list[str] = []
    helper = Work(lambda w: (k.msleep(1), order.append("helper")), name="helper")

    def fn(w: Any) -> None:
        start = k.now()
        k.msleep(2)
        assert k.now() - start >= 2 * MS
        order.append("slept")
        done.wait()
        order.append("completed")
        with lock:
            order.append("locked")
        k.wait_event(wq, lambda: bool(flag))
        order.append("woken")
        k.queue_work(k.alloc_workqueue("other"), helper)
        k.flush_work(helper)
        order.append("flushed")

    def signaller(k_: Any) -> None:
        k.msleep(3)
        done.complete()
        k.msleep(1)
        flag.append(True)
        k.wake_up(wq)

    k.schedule_work(Work(fn, name="sleeper"))
    k.kthread_run(signaller, "signaller", cpu=1)
    machine.until(lambda: "flushed" in order)
    assert order == ["slept", "completed", "locked", "woken", "helper", "flushed"]
    assert k.statistics().oopses == ()


def test_tasklet_kill_and_drain_workqueue_work_from_a_kernel_thread(machine: Machine) -> None:
    k = machine.k
    t = Tasklet(lambda d: k.udelay(200), name="t")
    chained = Work(lambda w: k.udelay(100), name="chained")
    first = Work(lambda w: k.schedule_work(chained), name="first")
    k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="dev")
    done: list[str] = []

    def body(k_: Any) -> None:
        k.raise_irq(24)
        k.msleep(1)
        k.tasklet_kill(t)
        done.append("killed")
        k.schedule_work(first)
        k.drain_workqueue(k.system_wq)
        done.append("drained")

    k.kthread_run(body, "b", cpu=1)
    machine.until(lambda: len(done) == 2)
    assert not t.scheduled and not t.running and t.runs == 1
    assert first.runs == chained.runs == 1


def test_awaiting_blocking_calls_in_an_async_body_still_works(machine: Machine) -> None:
    """The async style: ``await k.msleep``, ``await k.flush_work`` (even on an idle item,
    which returns False at once), ``await done.wait()``."""
    k = machine.k
    idle = Work(lambda w: None, name="idle")
    done = k.completion()
    log: list[Any] = []

    async def body(k_: Any) -> None:
        await k.msleep(1)
        log.append(await k.flush_work(idle))
        k.call_at(k.now() + MS, done.complete)
        await done.wait()
        log.append("completed")

    k.kthread_run(body, "async", cpu=0)
    machine.until(lambda: len(log) == 2)
    assert log == [False, "completed"]
    assert k.statistics().oopses == ()


def test_a_handlers_side_effects_follow_its_own_delay(machine: Machine) -> None:
    """A softirq raised after udelay in a handler is raised when the code gets there:
    the softirq's entry is at least the handler's delay after the handler's entry."""
    k = machine.k
    seen: dict[str, int] = {}

    def top(irq: int, dev: Any) -> int:
        seen["entry"] = k.now()
        k.udelay(300)
        k.raise_softirq(NET_RX)
        return IRQ_HANDLED

    k.open_softirq(NET_RX, lambda: seen.setdefault("softirq", k.now()))
    k.request_irq(24, top, name="dev")
    machine.start()
    k.raise_irq(24)
    machine.until(lambda: "softirq" in seen)
    assert seen["softirq"] - seen["entry"] >= 300 * US


def test_await_flush_work_on_an_idle_item_gives_false(machine: Machine) -> None:
    """``await k.flush_work(w)`` in an async body, as the README shows it, also when
    there is nothing to wait for (it used to be ``await False``: a TypeError)."""
    k = machine.k
    idle = Work(lambda w: None)
    busy = Work(lambda w: None)
    got: list[bool] = []

    async def body(k: Any) -> None:
        got.append(await k.flush_work(idle))
        k.schedule_work(busy)
        got.append(await k.flush_work(busy))

    k.kthread_run(body, "flusher")
    machine.start()
    machine.until(lambda: len(got) == 2)
    assert got == [False, True]
    assert not k.statistics().oopses
