"""Softirqs: stage 4 of the seed (kernel/softirq.c).

Each CPU has a pending bitmask.  ``__do_softirq`` (here :func:`handle_softirqs`) takes a
snapshot of the mask, clears it *before* enabling interrupts, runs the snapshot's vectors
lowest first, each once, then looks again: it restarts while jiffies have not reached the
start + ``MAX_SOFTIRQ_TIME``, nothing asked for a reschedule and fewer than
``MAX_SOFTIRQ_RESTART`` passes were made; otherwise it wakes ``ksoftirqd/N`` and leaves the
rest to that thread (invariants 10-12).  ksoftirqd is an ordinary nice-0 thread, so the
scheduler shares the CPU between it and everything else (invariant 14).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import (
    HI_SOFTIRQ,
    NR_SOFTIRQS,
    SOFTIRQ_NAMES,
    SOFTIRQ_OFFSET,
    TASKLET_SOFTIRQ,
)
from irqflow.core.cpu import INTERRUPT_MASK, SOFTIRQ, in_interrupt
from irqflow.core.sched import RUNNING

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

#: a vector's kernel action: a function of the kernel and the CPU, run in softirq context
#: on the raising CPU (a driver's ``open_softirq`` action is called with no arguments)
SoftirqFlow = Callable[["KernelBase", "Cpu"], None]

#: SOFTIRQ_NOW_MASK: vectors that the 4.9-6.4 deferral rule never defers
SOFTIRQ_NOW_MASK = (1 << HI_SOFTIRQ) | (1 << TASKLET_SOFTIRQ)


class Softirqs:
    """``softirq_vec[]`` and the limits of ``__do_softirq``.

    A vector's action is the kernel's own (``open_kernel``: tasklets, timers, NET_RX for
    NAPI), a driver's (``open``), or both: the kernel's runs first."""

    def __init__(self, k: KernelBase) -> None:
        cfg = k.config
        #: the kernel's own actions, ``flow(k, cpu)``
        self.flows: list[SoftirqFlow | None] = [None] * NR_SOFTIRQS
        #: drivers' actions (``open_softirq``), called with no arguments
        self.runs: list[Callable[[], Any] | None] = [None] * NR_SOFTIRQS
        #: what the oops record says runs, per vector
        self.wheres = tuple(f"softirq {name}" for name in SOFTIRQ_NAMES)
        self.tick_ns = cfg.tick_period_ns
        #: MAX_SOFTIRQ_TIME in jiffies, MAX_SOFTIRQ_RESTART
        self.time_jiffies = cfg.max_softirq_time_jiffies
        self.max_restart = cfg.softirq_max_restart
        self.lat_raise = [k.lat.hist("softirq raise->entry", nr) for nr in range(NR_SOFTIRQS)]
        self.lat_run = [k.lat.hist("softirq", nr) for nr in range(NR_SOFTIRQS)]

    def open_kernel(self, nr: int, flow: SoftirqFlow) -> None:
        """Install the kernel's own action of vector ``nr``."""
        self.flows[nr] = flow

    def open(self, nr: int, action: Callable[[], Any]) -> None:
        """Install a driver's action of vector ``nr`` (``open_softirq``)."""
        self.runs[nr] = action


def raise_softirq_irqoff(k: KernelBase, c: Cpu, nr: int, *, wake: bool = True) -> None:
    """``raise_softirq_irqoff`` (``wake=False``: ``__raise_softirq_irqoff``).

    Wakes ksoftirqd only when called outside interrupt context (invariant 6): from
    hardirq, softirq or a BH-disabled section the bit waits for irq_exit, the running
    ``__do_softirq`` loop or ``local_bh_enable``.
    """
    if k.tracing:
        k.trace.emit(c, "irq:softirq_raise", {"vec": int(nr)})
    bit = 1 << nr
    if not c.softirq_pending & bit:
        c.softirq_raise_ts[nr] = k.engine.now
    c.softirq_pending |= bit
    c.softirq_raises[nr] += 1
    if wake and not c.preempt_count & INTERRUPT_MASK:
        wakeup_softirqd(k, c, "raised from task context")


def raise_timer_softirq(k: KernelBase, c: Cpu, nr: int) -> None:
    """``raise_timer_softirq`` (hard-IRQ context: the tick, ``hrtimer_interrupt``).
    Under forced threading the bit goes to ``ktimers/N``'s own mask, which ``irq_exit``
    hands to that thread; otherwise it is an ordinary ``__raise_softirq_irqoff``."""
    if c.ktimers is None:
        raise_softirq_irqoff(k, c, nr, wake=False)
        return
    if k.tracing:
        k.trace.emit(c, "irq:softirq_raise", {"vec": int(nr)})
    bit = 1 << nr
    if not (c.pending_timer_softirq | c.softirq_pending) & bit:
        c.softirq_raise_ts[nr] = k.engine.now
    c.pending_timer_softirq |= bit
    c.softirq_raises[nr] += 1


def wake_timersd(k: KernelBase, c: Cpu) -> None:
    """``wake_timersd``: from ``irq_exit`` outside interrupt context, with timer
    softirqs raised for ``ktimers/N``."""
    t = c.ktimers
    if t is not None and t.state != RUNNING:
        k.sched.wake_up_process(t)


def ktimers_body(k: KernelBase) -> None:
    """``ktimers/N`` (``run_ktimerd``): SCHED_FIFO 1 under forced threading.  It moves the
    timer softirqs raised for it into the pending mask and runs ``__do_softirq``, which
    runs *every* pending vector, not only TIMER and HRTIMER."""
    c = k._this_cpu("ktimers")
    while True:
        if not c.pending_timer_softirq:
            k.sched.block(c, "S")
            continue
        c.irqs_on = False
        c.softirq_pending |= c.pending_timer_softirq
        c.pending_timer_softirq = 0
        handle_softirqs(k, c, ksirqd=True)
        k.irq_enable(c)
        k.sched.cond_resched(c)


def wakeup_softirqd(k: KernelBase, c: Cpu, reason: str) -> None:
    t = c.ksoftirqd
    if t.state == RUNNING:
        return  # wake_up_process on a runnable task is a no-op
    c.ksoftirqd_wakeups += 1
    if k.tracing:
        k.trace.emit(c, "irqflow:ksoftirqd_wakeup", {"reason": reason})
    k.sched.wake_up_process(t)


def handle_softirqs(k: KernelBase, c: Cpu, ksirqd: bool = False) -> None:
    """``__do_softirq``: entered and left with local IRQs off."""
    engine = k.engine
    sv = k.softirqs
    tick_ns = sv.tick_ns
    end = engine.now // tick_ns + sv.time_jiffies  # jiffies + MAX_SOFTIRQ_TIME
    restart = sv.max_restart
    pass_ns = k.costs.softirq_pass
    lat_raise, lat_run = sv.lat_raise, sv.lat_run
    runs = sv.runs
    flows = sv.flows
    wheres = sv.wheres
    counts = c.softirq_counts
    tracing = k.tracing
    pending = c.softirq_pending
    c.preempt_count += SOFTIRQ_OFFSET
    while True:
        c.softirq_pending = 0  # cleared before IRQs go on (invariant 10)
        # local_irq_enable(): interrupts that waited are taken here (in busy, or at once)
        c.irqs_on = True
        if pass_ns:
            engine.busy(c, pass_ns, SOFTIRQ)
        elif c.irr:
            engine.irqs_enabled(c)
        while pending:
            low = pending & -pending  # the lowest vector first, each once (ffs())
            pending ^= low
            nr = low.bit_length() - 1
            counts[nr] += 1  # once per vector per pass (invariant 18)
            t_entry = engine.now
            lat_raise[nr].add(t_entry - c.softirq_raise_ts[nr])
            if tracing:
                k.trace.emit(c, "irq:softirq_entry", {"vec": nr})
            # a vector runs the kernel's own action, then a driver's (open_softirq)
            flow = flows[nr]
            if flow is not None:
                flow(k, c)
            run = runs[nr]
            if run is not None:
                k._call(c, run, (), wheres[nr])
            elif flow is None:
                k.log(c, "warn", f"softirq {SOFTIRQ_NAMES[nr]} raised but no action is open")
            lat_run[nr].add(engine.now - t_entry)
            if tracing:
                k.trace.emit(c, "irq:softirq_exit", {"vec": nr})
        c.irqs_on = False  # local_irq_disable()
        pending = c.softirq_pending
        if not pending:
            break
        # invariant 12: restart only while time is left, nobody needs the CPU, and
        # passes remain (checked in that order, as the kernel does)
        if engine.now // tick_ns < end:
            if not c.need_resched:
                restart -= 1
                if restart:
                    continue
                reason = "restart limit"
            else:
                reason = "need_resched"
        else:
            reason = "time limit"
        wakeup_softirqd(k, c, reason)
        break
    c.preempt_count -= SOFTIRQ_OFFSET


def invoke_softirq(k: KernelBase, c: Cpu) -> bool:
    """``invoke_softirq`` from irq_exit (IRQs off, softirqs pending, outside interrupt
    context): True if the softirqs run right here (the caller then runs
    :func:`handle_softirqs`), False if they were left to ksoftirqd."""
    cfg = k.config
    if (
        cfg.ksoftirqd_defers
        and c.ksoftirqd.state == RUNNING
        and not c.softirq_pending & SOFTIRQ_NOW_MASK
    ):
        return False  # 4.9-6.4: ksoftirqd is runnable, let it do its job (invariant 16)
    if cfg.threadirqs:
        wakeup_softirqd(k, c, "threadirqs")  # invariant 15
        return False
    return True


def do_softirq(k: KernelBase, c: Cpu) -> None:
    """``do_softirq``: used by ``local_bh_enable``; returns at once in interrupt context."""
    if in_interrupt(c.preempt_count) or not c.softirq_pending:
        return
    cfg = k.config
    if (
        cfg.ksoftirqd_defers
        and c.ksoftirqd.state == RUNNING
        and not c.softirq_pending & SOFTIRQ_NOW_MASK
    ):
        return
    was_on = c.irqs_on
    c.irqs_on = False
    handle_softirqs(k, c, ksirqd=False)
    if was_on:
        k.irq_enable(c)


def ksoftirqd_body(k: KernelBase) -> None:
    """``ksoftirqd/N`` (kernel/smpboot.c loop + ``run_ksoftirqd``)."""
    # the context this thread runs in: the CPU itself in the sim, the thread's own view of
    # it on the real engine (whose context changes must be this thread's, not the CPU's)
    c = k._this_cpu("ksoftirqd")
    while True:
        if not c.softirq_pending:
            k.sched.block(c, "S")  # smpboot_thread_fn: TASK_INTERRUPTIBLE
            continue
        c.irqs_on = False
        if c.softirq_pending:
            handle_softirqs(k, c, ksirqd=True)
        k.irq_enable(c)
        k.sched.cond_resched(c)
