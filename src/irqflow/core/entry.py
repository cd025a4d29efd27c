"""Interrupt entry and exit: stage 1 and the seed's conclusion.

``do_irq`` is the frame the engine pushes on a CPU's stack when it takes an interrupt:
the push itself is "save the interrupted context" (the frame below keeps its place and
its remaining CPU time), the argument is the interrupt number, and the pop when the
generator returns is "restore the registers".  Between the two: ``irq_enter``, the
line's flow handler (stages 2-3), then ``irq_exit``, which runs softirqs (stage 4-5)
only when the interrupted context was not already in interrupt context: a nested
interrupt stops after stage 3 (invariants 8, 9).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import HARDIRQ_OFFSET
from irqflow.core.cpu import INTERRUPT_MASK, context_name
from irqflow.core.effects import Busy
from irqflow.core.softirq import handle_softirqs, invoke_softirq
from irqflow.core.timer import run_local_timers

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore

Flow = Generator[Any, Any, None]


def irq_enter(k: KernelCore, c: Cpu, irq: int) -> None:
    if k.tracing:
        interrupted = context_name(c.preempt_count)
        if interrupted == "task" and c.current is c.idle_task:
            interrupted = "idle"
        k.trace.emit(c, "irqflow:irq_entry", {"irq": irq, "interrupted": interrupted})
    c.preempt_count += HARDIRQ_OFFSET


def irq_exit_wants_softirq(c: Cpu) -> bool:
    """First half of ``irq_exit``: drop HARDIRQ_OFFSET, then say whether softirqs run
    here: only if some are pending and we did not interrupt interrupt context."""
    c.preempt_count -= HARDIRQ_OFFSET
    return bool(c.softirq_pending) and not c.preempt_count & INTERRUPT_MASK


def do_irq(k: KernelCore, c: Cpu, irq: int, t_presented: int | None = None) -> Flow:
    """A device interrupt on line ``irq`` (x86 ``common_interrupt``).

    The engine has already charged ``irq_entry_ns`` (vector stub, register save) when it
    pushed this frame, and charges ``irq_exit_ns`` (register restore, iret) when it pops.
    """
    irq_enter(k, c, irq)
    desc = k._descs[irq]
    if t_presented is not None:
        desc.lat_raise.add(k.engine.now - t_presented)
    yield from desc.handle_irq(k, c, desc)
    if irq_exit_wants_softirq(c) and invoke_softirq(k, c):
        yield from handle_softirqs(k, c)
    if k.tracing:
        k.trace.emit(c, "irqflow:irq_restore", {"irq": irq})


def do_local_timer(k: KernelCore, c: Cpu) -> Flow:
    """The tick (x86 ``sysvec_apic_timer_interrupt``): LOC in /proc/interrupts."""
    c.preempt_count += HARDIRQ_OFFSET
    c.arch_counts["LOC"] += 1
    if k.tracing:
        k.trace.emit(c, "irq_vectors:local_timer_entry", {"vector": 236})
    cost = k.config.tick_ns
    if cost:
        yield Busy(cost)
    run_local_timers(k, c)  # update_process_times: timers first, then the scheduler
    k._scheduler_tick(c)
    if k.tracing:
        k.trace.emit(c, "irq_vectors:local_timer_exit", {"vector": 236})
    if irq_exit_wants_softirq(c) and invoke_softirq(k, c):
        yield from handle_softirqs(k, c)


def do_reschedule_ipi(k: KernelCore, c: Cpu, row: str = "RES") -> Flow:
    """An IPI whose work happens on the way out: the reschedule IPI (RES: the preemption
    check on return) or the irq_work IPI (IWI: softirqs raised for this CPU run at its
    irq_exit)."""
    c.preempt_count += HARDIRQ_OFFSET
    c.arch_counts[row] = c.arch_counts.get(row, 0) + 1
    if irq_exit_wants_softirq(c) and invoke_softirq(k, c):
        yield from handle_softirqs(k, c)
