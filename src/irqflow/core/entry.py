"""Interrupt entry and exit: stage 1 and the seed's conclusion.

:func:`take_pending_irqs` is what a CPU does at a boundary where interrupts are on and
its request register is not empty (both engines call it): for each pending vector the
interrupt gate clears IF, the entry stub runs (``irq_entry_ns``), then the vector's
handler, then the exit path (``irq_exit_ns``) and ``iret`` restores the interrupted
context's IF.  Taking the interrupt is a plain nested call: the frames below it are the
interrupted context, saved where they stand (stage 1's "push the registers"), and the
return is the seed's "restore the registers".

``do_irq`` is a device interrupt: ``irq_enter``, the line's flow handler (stages 2-3),
then ``irq_exit``, which runs softirqs (stages 4-5) only when the interrupted context was
not already in interrupt context: a nested interrupt stops after stage 3 (invariants 8, 9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irqflow.core.constants import HARDIRQ_MASK, HARDIRQ_OFFSET
from irqflow.core.cpu import (
    INTERRUPT_MASK,
    IRQ,
    LOCAL_TIMER_VECTOR,
    RESCHEDULE_VECTOR,
    context_name,
)
from irqflow.core.softirq import handle_softirqs, invoke_softirq, wake_timersd
from irqflow.core.timer import run_local_timers

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu


def take_pending_irqs(k: KernelBase, c: Cpu) -> None:
    """Take every interrupt pending for ``c`` while its IRQs are on, in arrival order,
    each nested on the running context; then preempt the interrupted task if it should
    be (preemption on return from interrupt)."""
    irr = c.irr
    eng = k.engine
    entry_ns, exit_ns = k.costs.irq_entry, k.costs.irq_exit
    while irr and c.irqs_on:
        vector = next(iter(irr))
        t_presented = irr.pop(vector)
        c.irqs_on = False  # the interrupt gate clears IF
        if entry_ns:
            eng.busy(c, entry_ns, IRQ)  # vector stub and register save
        if vector >= 0:
            do_irq(k, c, vector, t_presented)
        elif vector == LOCAL_TIMER_VECTOR:
            do_local_timer(k, c)
        else:
            do_ipi(k, c, "RES" if vector == RESCHEDULE_VECTOR else "IWI")
        if exit_ns:
            eng.busy(c, exit_ns, IRQ)  # EOI, register restore
        c.irqs_on = True  # iret: the interrupted context had IRQs on, or we were not here
    if c.need_resched and not c.preempt_count and c.current is not c.idle_task:
        k.sched.preempt(c)


def irq_enter(k: KernelBase, c: Cpu, irq: int) -> None:
    if k.tracing:
        interrupted = context_name(c.preempt_count)
        if interrupted == "task" and c.current is c.idle_task:
            interrupted = "idle"
        k.trace.emit(c, "irqflow:irq_entry", {"irq": irq, "interrupted": interrupted})
    c.preempt_count += HARDIRQ_OFFSET


def irq_exit(k: KernelBase, c: Cpu) -> None:
    """Drop HARDIRQ_OFFSET; run softirqs here only if some are pending and we did not
    interrupt interrupt context (invariants 8, 9); under forced threading, wake
    ``ktimers/N`` for the timer softirqs raised for it (unless still in hard IRQ)."""
    c.preempt_count -= HARDIRQ_OFFSET
    if c.softirq_pending and not c.preempt_count & INTERRUPT_MASK and invoke_softirq(k, c):
        handle_softirqs(k, c)
    if c.pending_timer_softirq and not c.preempt_count & HARDIRQ_MASK:
        wake_timersd(k, c)


def do_irq(k: KernelBase, c: Cpu, irq: int, t_presented: int | None = None) -> None:
    """A device interrupt on line ``irq`` (x86 ``common_interrupt``)."""
    tracing = k.tracing
    if tracing:
        irq_enter(k, c, irq)
    else:
        c.preempt_count += HARDIRQ_OFFSET  # irq_enter() without its tracepoint
    desc = k.genirq.descs[irq]
    if t_presented is not None:
        desc.lat_raise.add(k.engine.now - t_presented)
    desc.handle_irq(k, c, desc)
    irq_exit(k, c)
    if tracing:
        k.trace.emit(c, "irqflow:irq_restore", {"irq": irq})


def do_local_timer(k: KernelBase, c: Cpu) -> None:
    """The local APIC timer interrupt (x86 ``sysvec_apic_timer_interrupt``, LOC in
    /proc/interrupts): ``hrtimer_interrupt`` expires the due hrtimers, and when the
    engine's tick is what fired (``c.tick_due``), the tick's work runs: timers, then the
    scheduler (``update_process_times``)."""
    c.preempt_count += HARDIRQ_OFFSET
    c.arch_counts["LOC"] += 1
    if k.tracing:
        k.trace.emit(c, "irq_vectors:local_timer_entry", {"vector": 236})
    cost = k.costs.tick
    if cost:
        k.engine.busy(c, cost)
    hard, soft = c.hrtimers
    if hard or soft:
        k.hrtimers.interrupt(k, c)
    if c.tick_due:
        c.tick_due = False
        run_local_timers(k, c)
        k.sched.tick(c)
        k.lat.fold()  # observers' housekeeping: latency samples into their buckets
    if k.tracing:
        k.trace.emit(c, "irq_vectors:local_timer_exit", {"vector": 236})
    irq_exit(k, c)


def do_ipi(k: KernelBase, c: Cpu, row: str = "RES") -> None:
    """An IPI whose work happens on the way out: the reschedule IPI (RES: the preemption
    check on return) or the irq_work IPI (IWI: softirqs raised for this CPU run at its
    irq_exit)."""
    c.preempt_count += HARDIRQ_OFFSET
    c.arch_counts[row] = c.arch_counts.get(row, 0) + 1
    irq_exit(k, c)
