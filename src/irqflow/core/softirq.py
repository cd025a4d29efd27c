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
from typing import TYPE_CHECKING

from irqflow.core.constants import HI_SOFTIRQ, SOFTIRQ_NAMES, SOFTIRQ_OFFSET, TASKLET_SOFTIRQ
from irqflow.core.cpu import INTERRUPT_MASK, SOFTIRQ, in_interrupt
from irqflow.core.sched import RUNNING

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore

#: a vector's kernel action: a function of the kernel and the CPU, run in softirq context
#: on the raising CPU (a driver's ``open_softirq`` action is called with no arguments)
SoftirqFlow = Callable[["KernelCore", "Cpu"], None]

#: SOFTIRQ_NOW_MASK: vectors that the 4.9-6.4 deferral rule never defers
SOFTIRQ_NOW_MASK = (1 << HI_SOFTIRQ) | (1 << TASKLET_SOFTIRQ)


def raise_softirq_irqoff(k: KernelCore, c: Cpu, nr: int, *, wake: bool = True) -> None:
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


def wakeup_softirqd(k: KernelCore, c: Cpu, reason: str) -> None:
    t = c.ksoftirqd
    if t.state == RUNNING:
        return  # wake_up_process on a runnable task is a no-op
    c.ksoftirqd_wakeups += 1
    if k.tracing:
        k.trace.emit(c, "irqflow:ksoftirqd_wakeup", {"reason": reason})
    k._wake_up_process(t)


def handle_softirqs(k: KernelCore, c: Cpu, ksirqd: bool = False) -> None:
    """``__do_softirq``: entered and left with local IRQs off."""
    engine = k.engine
    tick_ns = k._tick_ns
    end = engine.now // tick_ns + k._softirq_time_jiffies  # jiffies + MAX_SOFTIRQ_TIME
    restart = k.config.softirq_max_restart
    pass_ns = k._softirq_pass_ns
    lat_raise, lat_run = k._lat_softirq_raise, k._lat_softirq
    runs = k._softirq_run
    flows = k._softirq_flow
    wheres = k._softirq_where
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


def invoke_softirq(k: KernelCore, c: Cpu) -> bool:
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


def do_softirq(k: KernelCore, c: Cpu) -> None:
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


def ksoftirqd_body(k: KernelCore) -> None:
    """``ksoftirqd/N`` (kernel/smpboot.c loop + ``run_ksoftirqd``)."""
    # the context this thread runs in: the CPU itself in the sim, the thread's own view of
    # it on the real engine (whose context changes must be this thread's, not the CPU's)
    c = k._this_cpu("ksoftirqd")
    while True:
        if not c.softirq_pending:
            k._block(c)
            continue
        c.irqs_on = False
        if c.softirq_pending:
            handle_softirqs(k, c, ksirqd=True)
        k.irq_enable(c)
        k._cond_resched(c)
