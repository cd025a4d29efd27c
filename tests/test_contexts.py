"""Execution contexts: preempt_count, the context predicates, the local IRQ flag, and
sleeping in atomic context (kernel-semantics.md sections 1 and 2.2, invariants 1-5).

Every test drives the sim engine with the kernel's own paths costing nothing, so the
only CPU time is what driver code charges with ``udelay``; times are then exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from irqflow import (
    GFP_ATOMIC,
    GFP_KERNEL,
    IRQ_HANDLED,
    IRQF_SHARED,
    Kernel,
    Napi,
    SleepInAtomicContext,
    SoftIrq,
    Tasklet,
    Timer,
    Work,
)
from irqflow.core import constants
from support import NET_RX, handler, make_kernel

IRQ = 10


def ctx(k: Kernel) -> dict[str, Any]:
    """Everything a piece of driver code can ask about the context it runs in."""
    return {
        "pc": k.preempt_count(),
        "hardirq": k.in_hardirq(),
        "softirq": k.in_softirq(),
        "serving": k.in_serving_softirq(),
        "interrupt": k.in_interrupt(),
        "task": k.in_task(),
        "irqs_off": k.irqs_disabled(),
    }


#: ctx() in a hard IRQ handler that interrupted task code (or idle): preempt_count 0x10000
IN_HARDIRQ = {
    "pc": 0x10000,
    "hardirq": True,
    "softirq": False,
    "serving": False,
    "interrupt": True,
    "task": False,
    "irqs_off": True,
}
#: ctx() in a softirq action or tasklet run by __do_softirq from irq_exit or ksoftirqd:
#: preempt_count 0x100 (HARDIRQ_OFFSET already gone), IRQs on
SERVING_SOFTIRQ = {
    "pc": 0x100,
    "hardirq": False,
    "softirq": True,
    "serving": True,
    "interrupt": True,
    "task": False,
    "irqs_off": False,
}


# --- invariant 1: the layout ---------------------------------------------------------------


def test_preempt_count_layout() -> None:
    """Invariant 1: PREEMPT bits 0-7, SOFTIRQ 8-15, HARDIRQ 16-19, NMI 20-23; offsets
    0x1, 0x100, 0x10000, 0x100000 and SOFTIRQ_DISABLE_OFFSET 0x200."""
    assert constants.PREEMPT_MASK == 0x000000FF
    assert constants.SOFTIRQ_MASK == 0x0000FF00
    assert constants.HARDIRQ_MASK == 0x000F0000
    assert constants.NMI_MASK == 0x00F00000
    assert constants.PREEMPT_OFFSET == 0x1
    assert constants.SOFTIRQ_OFFSET == 0x100
    assert constants.SOFTIRQ_DISABLE_OFFSET == 0x200
    assert constants.HARDIRQ_OFFSET == 0x10000
    assert constants.NMI_OFFSET == 0x100000
    # the fields do not overlap and each offset is its field's lowest bit
    masks = [
        constants.PREEMPT_MASK,
        constants.SOFTIRQ_MASK,
        constants.HARDIRQ_MASK,
        constants.NMI_MASK,
    ]
    offsets = [
        constants.PREEMPT_OFFSET,
        constants.SOFTIRQ_OFFSET,
        constants.HARDIRQ_OFFSET,
        constants.NMI_OFFSET,
    ]
    for i, m in enumerate(masks):
        assert m & -m == offsets[i]
        for other in masks[i + 1 :]:
            assert m & other == 0


def test_preempt_count_in_hardirq_from_task_is_hardirq_offset() -> None:
    """Invariant 1: a hard IRQ taken from task context runs with preempt_count 0x10000,
    and current() is the interrupted task."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[tuple[dict[str, Any], str]] = []
    k.request_irq(IRQ, handler(lambda: seen.append((ctx(k), k.current().comm))), 0, "eth0")

    def busy_task(k: Kernel) -> None:
        k.udelay(10)  # the thread occupies CPU 0 from 0 to 10 us

    k.kthread_run(busy_task, "worker", cpu=0)
    k.call_at(5_000, k.raise_irq, IRQ)
    k.run()
    assert seen == [(IN_HARDIRQ, "worker")]


# --- invariants 2 and 3: predicates in each context ----------------------------------------


def test_predicates_in_plain_task_and_bh_disabled_task() -> None:
    """Invariants 2, 3: local_bh_disable adds 0x200 (nesting adds 0x200 more); BH-disabled
    task code is in_softirq and in_interrupt, but not serving and still in_task."""
    k = make_kernel(cpus=1, trace=None)
    seen: dict[str, dict[str, Any]] = {}

    def body(k: Kernel) -> None:
        seen["task"] = ctx(k)
        k.local_bh_disable()
        seen["bh"] = ctx(k)
        k.local_bh_disable()
        seen["bh2"] = ctx(k)
        k.local_bh_enable()
        seen["bh1"] = ctx(k)
        k.local_bh_enable()
        seen["after"] = ctx(k)
        with k.bh_disabled():
            seen["with"] = ctx(k)

    k.kthread_run(body, "t", cpu=0)
    k.run()
    plain = {
        "pc": 0,
        "hardirq": False,
        "softirq": False,
        "serving": False,
        "interrupt": False,
        "task": True,
        "irqs_off": False,
    }
    bh = {
        "pc": 0x200,
        "hardirq": False,
        "softirq": True,
        "serving": False,
        "interrupt": True,
        "task": True,
        "irqs_off": False,
    }
    assert seen["task"] == plain
    assert seen["bh"] == bh
    assert seen["bh2"] == {**bh, "pc": 0x400}
    assert seen["bh1"] == bh
    assert seen["after"] == plain
    assert seen["with"] == bh


def test_predicates_in_softirq_from_irq_exit_and_in_tasklet() -> None:
    """Invariants 2, 3: softirq actions and tasklets run from irq_exit with preempt_count
    0x100 (HARDIRQ_OFFSET already gone), serving softirq, not in_task, IRQs on."""
    k = make_kernel(cpus=1, trace=None)
    seen: dict[str, dict[str, Any]] = {}
    k.open_softirq(NET_RX, lambda: seen.setdefault("softirq", ctx(k)))
    t = Tasklet(lambda data: seen.setdefault("tasklet", ctx(k)), name="rx")

    def top(irq: int, dev_id: Any) -> Any:
        seen["hardirq"] = ctx(k)
        k.raise_softirq(NET_RX)
        k.tasklet_schedule(t)
        return IRQ_HANDLED

    k.request_irq(IRQ, top, 0, "eth0")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert seen["hardirq"] == IN_HARDIRQ
    assert seen["softirq"] == SERVING_SOFTIRQ
    assert seen["tasklet"] == SERVING_SOFTIRQ


def test_predicates_in_softirq_run_by_local_bh_enable() -> None:
    """Invariants 2, 13: softirqs run by the outermost local_bh_enable run right there with
    preempt_count 0x101 (one preempt count kept over the run), then the caller is back
    at 0."""
    k = make_kernel(cpus=1, trace=None)
    order: list[str] = []
    seen: dict[str, Any] = {}

    def action() -> None:
        order.append("softirq")
        seen["softirq"] = ctx(k)
        seen["comm"] = k.current().comm

    k.open_softirq(NET_RX, action)

    def body(k: Kernel) -> None:
        k.local_bh_disable()
        k.raise_softirq(NET_RX)
        order.append("raised")
        k.local_bh_enable()
        order.append("enabled")
        seen["after"] = k.preempt_count()

    k.kthread_run(body, "t", cpu=0)
    k.run()
    assert order == ["raised", "softirq", "enabled"]
    assert seen["softirq"] == {**SERVING_SOFTIRQ, "pc": 0x101}
    assert seen["comm"] == "t"
    assert seen["after"] == 0


def test_predicates_in_ksoftirqd() -> None:
    """Invariants 2, 3, 6: a softirq raised from plain task context is run by ksoftirqd/N
    with preempt_count 0x100."""
    k = make_kernel(cpus=1, trace=None)
    seen: dict[str, Any] = {}

    def action() -> None:
        seen["ctx"] = ctx(k)
        seen["comm"] = k.current().comm

    k.open_softirq(NET_RX, action)
    k.kthread_run(lambda k: k.raise_softirq(NET_RX), "raiser", cpu=0)
    k.run()
    assert seen["comm"] == "ksoftirqd/0"
    assert seen["ctx"] == SERVING_SOFTIRQ


def test_predicates_in_hardirq_nested_in_softirq() -> None:
    """Invariants 1, 2: a hard IRQ that interrupts a running softirq sees 0x10100: hardirq
    and (still) serving softirq."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[dict[str, Any]] = []

    def slow_action() -> None:
        k.udelay(20)  # IRQs are on in softirq context: the line below can come in

    k.open_softirq(NET_RX, slow_action)
    k.request_irq(IRQ, handler(lambda: k.raise_softirq(NET_RX)), 0, "eth0")
    k.request_irq(11, handler(lambda: seen.append(ctx(k))), 0, "disk")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(5_000, k.raise_irq, 11)  # softirq runs from 1 us to 21 us
    k.run()
    assert seen == [
        {
            "pc": 0x10100,
            "hardirq": True,
            "softirq": True,
            "serving": True,
            "interrupt": True,
            "task": False,
            "irqs_off": True,
        }
    ]


def test_hardirq_in_bh_disabled_task_and_softirq_deferred_to_bh_enable() -> None:
    """Invariants 1, 2, 8, 13: a hard IRQ that interrupts BH-disabled task code sees
    0x10200; the softirq it raises does not run at irq_exit (in_interrupt) but at the
    task's local_bh_enable, in the task, with 0x101."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[tuple[str, int, dict[str, Any], str]] = []

    def top(irq: int, dev_id: Any) -> Any:
        seen.append(("hardirq", k.now(), ctx(k), k.current().comm))
        k.raise_softirq(NET_RX)
        return IRQ_HANDLED

    k.open_softirq(NET_RX, lambda: seen.append(("softirq", k.now(), ctx(k), k.current().comm)))
    k.request_irq(IRQ, top, 0, "eth0")

    def body(k: Kernel) -> None:
        k.local_bh_disable()
        k.udelay(10)  # BH disabled from 0 to 10 us
        k.local_bh_enable()
        k.udelay(5)

    k.kthread_run(body, "t", cpu=0)
    k.call_at(5_000, k.raise_irq, IRQ)
    k.run()
    assert [(what, comm) for what, _, _, comm in seen] == [("hardirq", "t"), ("softirq", "t")]
    assert seen[0][1] == 5_000
    assert seen[0][2] == {
        "pc": 0x10200,
        "hardirq": True,
        "softirq": True,
        "serving": False,
        "interrupt": True,
        "task": False,
        "irqs_off": True,
    }
    assert 10_000 <= seen[1][1] <= 10_000 + k.config.min_loop_ns
    assert seen[1][2]["pc"] == 0x101
    assert seen[1][2]["serving"] is True


# --- invariant 4: the local IRQ flag ---------------------------------------------------------


def test_local_irq_save_restore_restores_exact_previous_state() -> None:
    """Invariant 4: local_irq_save/restore put back exactly the saved IF state (nesting by
    saved copies, no counter), in task context and in a handler."""
    k = make_kernel(cpus=1, trace=None)
    task: list[bool] = []
    hard: list[bool] = []

    def body(k: Kernel) -> None:
        task.append(k.irqs_disabled())  # False
        outer = k.local_irq_save()
        task.append(k.irqs_disabled())  # True
        inner = k.local_irq_save()
        task.append(k.irqs_disabled())  # True
        k.local_irq_restore(inner)
        task.append(k.irqs_disabled())  # still True: inner saved "off"
        k.local_irq_restore(outer)
        task.append(k.irqs_disabled())  # False again
        with k.local_irq_save():
            task.append(k.irqs_disabled())  # True
        task.append(k.irqs_disabled())  # False

    def top(irq: int, dev_id: Any) -> Any:
        with k.local_irq_save():
            hard.append(k.irqs_disabled())
        hard.append(k.irqs_disabled())  # restored to "off", not turned on
        return IRQ_HANDLED

    k.request_irq(IRQ, top, 0, "eth0")
    k.kthread_run(body, "t", cpu=0)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert task == [False, True, True, True, False, True, False]
    assert hard == [True, True]


def test_local_irq_disable_enable_do_not_nest() -> None:
    """Invariant 4: local_irq_disable/enable are unconditional: two disables are undone by
    one enable, and two enables by one disable."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[bool] = []

    def body(k: Kernel) -> None:
        k.local_irq_disable()
        k.local_irq_disable()
        seen.append(k.irqs_disabled())
        k.local_irq_enable()
        seen.append(k.irqs_disabled())
        k.local_irq_enable()
        k.local_irq_enable()
        k.local_irq_disable()
        seen.append(k.irqs_disabled())
        k.local_irq_enable()
        seen.append(k.irqs_disabled())

    k.kthread_run(body, "t", cpu=0)
    k.run()
    assert seen == [True, False, True, False]


def test_local_irq_save_in_task_holds_off_an_interrupt() -> None:
    """Invariant 4: while a task has IRQs off, a hard IRQ waits; it is taken as soon as
    the saved (enabled) state is restored."""
    k = make_kernel(cpus=1, trace=None)
    taken: list[int] = []
    k.request_irq(IRQ, handler(lambda: taken.append(k.now())), 0, "eth0")

    def body(k: Kernel) -> None:
        with k.local_irq_save():
            k.udelay(10)  # 0 .. 10 us with IRQs off
        k.udelay(10)  # 10 .. 20 us with IRQs on

    k.kthread_run(body, "t", cpu=0)
    k.call_at(3_000, k.raise_irq, IRQ)
    k.run()
    assert taken == [10_000]


# --- invariant 5: handlers run with IRQs off -------------------------------------------------


def test_handlers_run_with_irqs_off_even_when_task_had_them_on() -> None:
    """Invariant 5: every action of a line runs with local IRQs disabled, whatever the
    interrupted context had."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[tuple[str, bool]] = []
    for n, name in enumerate(("a", "b", "c")):
        k.request_irq(
            IRQ,
            handler(lambda name=name: seen.append((name, k.irqs_disabled()))),
            IRQF_SHARED,
            name,
            dev_id=n,
        )

    def body(k: Kernel) -> None:
        k.udelay(10)  # IRQs on

    k.kthread_run(body, "t", cpu=0)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.call_at(20_000, k.raise_irq, IRQ)  # from idle this time
    k.run()
    assert seen == [("a", True), ("b", True), ("c", True)] * 2


def test_handler_that_enables_irqs_warns_and_is_redisabled() -> None:
    """Invariant 5: a handler returning with IRQs on gets "irq N handler X enabled
    interrupts" in the log, and the next action runs with IRQs off again."""
    k = make_kernel(cpus=1, trace=None)
    seen: list[bool] = []
    k.request_irq(IRQ, handler(k.local_irq_enable), IRQF_SHARED, "rogue", dev_id=1)
    k.request_irq(IRQ, handler(lambda: seen.append(k.irqs_disabled())), IRQF_SHARED, "ok", 2)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert seen == [True]
    warnings = [line for line in k.dmesg() if "enabled interrupts" in line]
    assert len(warnings) == 1
    assert f"irq {IRQ} handler rogue enabled interrupts" in warnings[0]
    assert [r.text for r in k.statistics().log if "enabled interrupts" in r.text] == [
        f"irq {IRQ} handler rogue enabled interrupts"
    ]


def test_well_behaved_handler_gives_no_irq_enable_warning() -> None:
    """Invariant 5: a handler that leaves IRQs off (or saves/restores them) is not
    warned about."""
    k = make_kernel(cpus=1, trace=None)

    ran: list[bool] = []

    def polite() -> None:
        with k.local_irq_save():
            ran.append(k.irqs_disabled())

    k.request_irq(IRQ, handler(polite), 0, "polite")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert ran == [True]
    assert not [line for line in k.dmesg() if "enabled interrupts" in line]


# --- sleeping in atomic context ---------------------------------------------------------------


def _oopses(k: Kernel) -> list[Any]:
    return [o for o in k.statistics().oopses if o.exc_type == "SleepInAtomicContext"]


@pytest.mark.parametrize(
    "sleeper",
    [
        pytest.param(lambda k: k.might_sleep(), id="might_sleep"),
        pytest.param(lambda k: k.kmalloc(64, GFP_KERNEL), id="kmalloc-GFP_KERNEL"),
    ],
)
def test_sleeping_in_hardirq_is_an_oops_naming_the_handler(
    sleeper: Callable[[Kernel], Any],
) -> None:
    """Invariant 2 / section 1.2: might_sleep (and GFP_KERNEL) in a hard IRQ handler raises
    SleepInAtomicContext, recorded as an oops naming the handler; the run goes on."""
    k = make_kernel(cpus=1, trace=None)
    after: list[str] = []

    def top(irq: int, dev_id: Any) -> Any:
        sleeper(k)
        after.append("not reached")
        return IRQ_HANDLED

    k.request_irq(IRQ, top, 0, "eth0")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.run()  # does not raise
    assert after == []
    oopses = _oopses(k)
    assert len(oopses) == 2
    o = oopses[0]
    assert o.context == "hardirq"
    assert o.where == "eth0"
    assert o.irq == IRQ
    assert o.cpu == 0
    assert o.time_ns == 1_000
    assert "name: eth0" in o.message
    assert "in_atomic(): 1" in o.message
    assert "irqs_disabled(): 1" in o.message
    assert "sleeping function called from invalid context" in o.message
    assert k.statistics().irqs[IRQ].per_cpu == (2,)  # the machine went on


def _might_sleep_in_net_rx(k: Kernel) -> Callable[[], Any]:
    """NET_RX's action calls might_sleep; returns a top half that raises NET_RX."""
    k.open_softirq(NET_RX, lambda: k.might_sleep())
    return lambda: k.raise_softirq(NET_RX)


def _gfp_kernel_in_tasklet(k: Kernel) -> Callable[[], Any]:
    """Tasklet rx_refill calls kmalloc(GFP_KERNEL); returns a top half that schedules it."""
    t = Tasklet(lambda data: k.kmalloc(128, GFP_KERNEL), name="rx_refill")
    return lambda: k.tasklet_schedule(t)


@pytest.mark.parametrize(
    ("setup", "name"),
    [
        pytest.param(_might_sleep_in_net_rx, "NET_RX", id="might_sleep-in-softirq-action"),
        pytest.param(_gfp_kernel_in_tasklet, "rx_refill", id="kmalloc-GFP_KERNEL-in-tasklet"),
    ],
)
def test_sleeping_in_softirq_context_is_an_oops_naming_the_action(
    setup: Callable[[Kernel], Callable[[], Any]], name: str
) -> None:
    """Invariant 2 / section 1.2: might_sleep in a softirq action, and kmalloc(GFP_KERNEL)
    in a tasklet, are refused (in_atomic) and recorded as an oops in softirq context naming
    the vector or the tasklet."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, handler(setup(k)), 0, "eth0")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    oopses = _oopses(k)
    assert len(oopses) == 1
    o = oopses[0]
    assert o.context == "softirq"
    assert name in o.where
    assert "in_atomic(): 1" in o.message
    assert name in o.message.partition("name: ")[2]


def test_sleeping_is_fine_in_a_kernel_thread() -> None:
    """Section 1.2: plain task context (preempt_count 0, IRQs on) may sleep: might_sleep
    and kmalloc(GFP_KERNEL) from a kthread raise nothing."""
    k = make_kernel(cpus=1, trace=None)
    done: list[int] = []

    def body(k: Kernel) -> None:
        k.might_sleep()
        done.append(len(k.kmalloc(100, GFP_KERNEL)))

    k.kthread_run(body, "worker", cpu=0)
    k.run()
    assert done == [100]
    assert k.statistics().oopses == ()


def test_sleeping_refused_in_bh_disabled_or_irqs_off_task_code() -> None:
    """Invariant 2: task code with BH disabled or IRQs off is atomic (in_atomic or
    irqs_disabled), so might_sleep raises there, and not once they are re-enabled."""
    k = make_kernel(cpus=1, trace=None)
    outcome: list[str] = []

    def attempt() -> None:
        try:
            k.might_sleep()
            outcome.append("ok")
        except SleepInAtomicContext:
            outcome.append("refused")

    def body(k: Kernel) -> None:
        with k.bh_disabled():
            attempt()
        with k.local_irq_save():
            attempt()
        attempt()

    k.kthread_run(body, "t", cpu=0)
    k.run()
    assert outcome == ["refused", "refused", "ok"]


def test_gfp_atomic_is_fine_everywhere() -> None:
    """Section 1.2: kmalloc(GFP_ATOMIC) never sleeps: fine in hardirq, softirq, tasklet,
    BH-disabled and plain task context."""
    k = make_kernel(cpus=1, trace=None)
    sizes: list[tuple[str, int]] = []

    def alloc(where: str) -> None:
        sizes.append((where, len(k.kmalloc(32, GFP_ATOMIC))))

    k.open_softirq(NET_RX, lambda: alloc("softirq"))
    t = Tasklet(lambda data: alloc("tasklet"), name="t")

    def top(irq: int, dev_id: Any) -> Any:
        alloc("hardirq")
        k.raise_softirq(NET_RX)
        k.tasklet_schedule(t)
        return IRQ_HANDLED

    def body(k: Kernel) -> None:
        alloc("task")
        with k.bh_disabled():
            alloc("bh-disabled")

    k.request_irq(IRQ, top, 0, "eth0")
    k.kthread_run(body, "t", cpu=0)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert sorted(sizes) == sorted(
        [("task", 32), ("bh-disabled", 32), ("hardirq", 32), ("softirq", 32), ("tasklet", 32)]
    )
    assert k.statistics().oopses == ()


def test_panic_on_oops_propagates_out_of_run() -> None:
    """Section 1.2 / KernelConfig.panic_on_oops: the SleepInAtomicContext from a hard IRQ
    handler propagates out of k.run() instead of being recorded."""
    k = make_kernel(cpus=1, trace=None, panic_on_oops=True)
    k.request_irq(IRQ, handler(k.might_sleep), 0, "eth0")
    k.call_at(1_000, k.raise_irq, IRQ)
    with pytest.raises(SleepInAtomicContext, match="name: eth0"):
        k.run()


@pytest.mark.parametrize(
    "make",
    [
        lambda k, f: k.request_irq(3, f, name="x"),
        lambda k, f: k.open_softirq(SoftIrq.BLOCK_SOFTIRQ, f),
        lambda k, f: Tasklet(f),
        lambda k, f: Timer(f),
        lambda k, f: Napi(f),
        lambda k, f: k.queue_work(k.system_bh_wq, Work(f)),
    ],
    ids=["hardirq", "softirq", "tasklet", "timer", "napi", "bh-work"],
)
def test_async_driver_code_for_atomic_context_is_refused(make: Any) -> None:
    """Code that runs in interrupt context can never sleep: `async def` there is a
    TypeError at registration, naming the context and the way out."""
    k = make_kernel(1)

    async def f(*args: Any) -> None:
        pass

    with pytest.raises(TypeError, match=r"is `async def`, but it runs in .*never sleeps"):
        make(k, f)
