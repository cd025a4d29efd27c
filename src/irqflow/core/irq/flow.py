"""Flow handlers (kernel/irq/chip.c) and ``handle_irq_event`` (kernel/irq/handle.c).

Stage 2 of the seed is here: the INPROGRESS state serializes one line across CPUs, and
the PENDING flag makes the CPU that is already running the line replay it.  Stage 3 is
``handle_irq_event``: every action of the line, in registration order, with local
interrupts off.

``handle_edge_irq`` keeps the "loop while PENDING" shape of the old ``__do_IRQ``: any
number of arrivals during one run collapse into one extra pass (invariant 32).
``handle_level_irq`` masks first and never sets PENDING for a line busy elsewhere: the
still-asserted line fires again when the other CPU unmasks it (invariant 33).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from irqflow.core.constants import IRQ_HANDLED, IRQ_NONE, IRQ_WAKE_THREAD, IrqReturn
from irqflow.core.irq import chip
from irqflow.core.irq.desc import (
    DISABLED,
    INPROGRESS,
    MASKED,
    ONESHOT,
    PENDING,
    POLL_INPROGRESS,
    REPLAY,
    IrqAction,
    IrqDesc,
)
from irqflow.core.irq.spurious import note_interrupt
from irqflow.core.irq.thread import irq_wake_thread
from irqflow.core.kthread import FAILED, symbol_name

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

IRQ_WAKE = int(IRQ_WAKE_THREAD)


class IrqHandler(Protocol):
    """A top half or a threaded handler: ``handler(irq, dev_id) -> IrqReturn``.

    ``request_irq`` is typed with it, so a type checker flags a handler that can return
    ``None`` (a forgotten ``return IRQ_HANDLED``; at run time it counts as IRQ_NONE, said
    once, see :func:`_check_return`)."""

    def __call__(self, irq: int, dev_id: Any, /) -> IrqReturn | int: ...


def _defer(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    """The line cannot run here now: record PENDING and mask it (edge and disabled paths)."""
    desc.set_pending()
    chip.mask_ack(desc)
    if k.tracing:
        k.trace.emit(
            c,
            "irqflow:irq_pending",
            {
                "irq": desc.irq,
                "inprogress_cpu": -1 if desc.inprogress_cpu is None else desc.inprogress_cpu,
            },
        )


def handle_edge_irq(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    desc.state &= ~REPLAY
    if desc.state & INPROGRESS:  # !irq_may_run(): running on another CPU
        _defer(k, c, desc)
        return
    if desc.state & DISABLED or not desc.actions:
        _defer(k, c, desc)
        return
    desc.settle_accepted(c.nr)  # kstat_incr_irqs_this_cpu: once per accepted event
    replay = False
    while True:
        if not desc.actions:
            chip.mask(desc)
            return
        if desc.state & PENDING and desc.state & MASKED and not desc.state & DISABLED:
            chip.unmask(k, desc)  # a second edge masked it; let further edges in
        if replay and k.tracing:
            k.trace.emit(c, "irqflow:irq_replay", {"irq": desc.irq})
        handle_irq_event(k, c, desc)
        if not desc.state & PENDING or desc.state & DISABLED:
            return
        replay = True


def handle_level_irq(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    chip.mask_ack(desc)
    if desc.state & INPROGRESS:
        # left masked, no PENDING: the other CPU unmasks and the line fires again
        desc.settle_coalesced()
        if k.tracing:
            k.trace.emit(
                c, "irqflow:irq_pending", {"irq": desc.irq, "inprogress_cpu": desc.inprogress_cpu}
            )
        return
    desc.state &= ~REPLAY
    if desc.state & DISABLED or not desc.actions:
        desc.set_pending()
        return
    desc.settle_accepted(c.nr)
    handle_irq_event(k, c, desc)
    # cond_unmask_irq
    if not desc.state & DISABLED and desc.state & MASKED and desc.threads_oneshot == 0:
        chip.unmask(k, desc)


def handle_fasteoi_irq(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    """x86 IO-APIC level pins (6.13): no ack-and-mask up front; the EOI at the end tells
    the IO-APIC the line is serviced (its remote IRR clears), and a still-asserted line
    fires again.  A delivery that finds the line running on another CPU is EOI'd and
    dropped, not replayed (x86 sets no PENDING here; only GIC-ITS asks for a resend)."""
    if desc.state & INPROGRESS:  # !irq_may_run()
        desc.settle_coalesced()  # the running pass serves the still-asserted line
        chip.eoi(k, desc)
        return
    desc.state &= ~REPLAY
    if desc.state & DISABLED or not desc.actions:
        desc.set_pending()
        chip.mask(desc)
        chip.eoi(k, desc)
        return
    desc.settle_accepted(c.nr)
    oneshot = desc.state & ONESHOT
    if oneshot:
        chip.mask(desc)
    handle_irq_event(k, c, desc)
    # cond_unmask_eoi_irq: a ONESHOT line stays masked while a thread still has to run
    chip.eoi(k, desc)
    if oneshot and not desc.threads_oneshot and desc.state & MASKED and not desc.state & DISABLED:
        chip.unmask(k, desc)


def handle_irq_event(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    """Run every action of the line with local IRQs off; OR their results.  INPROGRESS
    is cleared however the chain ends (a ``BaseException`` from a handler, Ctrl-C in the
    sim, propagates after its oops: the line must not stay busy for good)."""
    if desc.state & PENDING:
        desc.consume_pending()
    desc.state |= INPROGRESS
    desc.inprogress_cpu = c.nr
    irq = desc.irq
    start = k.engine.now
    ret = 0
    try:
        for action in tuple(desc.actions):
            if k.tracing:
                k.trace.emit(c, "irq:irq_handler_entry", {"irq": irq, "name": action.name})
            res = k._call(c, action.handler, action.args, action.name, irq)
            if res.__class__ is not int:
                res = 1 if res is IRQ_HANDLED else _check_return(k, c, action, irq, res)
            if c.irqs_on:
                k.log(c, "warn", f"irq {irq} handler {action.name} enabled interrupts")
                c.irqs_on = False  # invariant 5: re-disabled
            if k.tracing:
                k.trace.emit(c, "irq:irq_handler_exit", {"irq": irq, "ret": res})
            if res == IRQ_WAKE:  # only an exact IRQ_WAKE_THREAD wakes it (switch (res))
                irq_wake_thread(k, c, desc, action)
            ret |= res
        # note_interrupt returns at once for a handled event on a line with no unhandled ones
        if (
            (ret != 1 or desc.irqs_unhandled)
            and not k.config.noirqdebug
            and not desc.state & POLL_INPROGRESS
        ):
            note_interrupt(k, c, desc, ret)
        desc.lat_hardirq.add(k.engine.now - start)
    finally:
        desc.state &= ~INPROGRESS
        desc.inprogress_cpu = None


def _check_return(k: KernelBase, c: Cpu, action: IrqAction, irq: int, res: Any) -> int:
    if res.__class__ is IrqReturn:
        return int(res._value_)  # plain int from here on (IntFlag operators are slow)
    if res is FAILED:
        return IRQ_NONE  # the oops is recorded; nobody handled this event
    if isinstance(res, int) and not isinstance(res, bool) and res >= 0:
        return int(res)
    # Counted as IRQ_NONE, as the kernel does; said once per handler, at the first one
    # (a Python None is nearly always a forgotten ``return IRQ_HANDLED``, which would
    # otherwise end in "nobody cared" after 100,000 events, with a warning for each).
    if not action.warned_return:
        action.warned_return = True
        hint = " (forgot `return IRQ_HANDLED`?)" if res is None else ""
        k.log(
            c,
            "warn",
            f"irq {irq} handler {action.name} ({symbol_name(action.handler)}) returned "
            f"{res!r}{hint}; a handler must return IRQ_HANDLED, IRQ_NONE or IRQ_WAKE_THREAD. "
            "Counted as IRQ_NONE: a line whose events go unhandled is disabled after "
            '99,900 of 100,000 ("nobody cared"). Said once for this handler.',
        )
    return IRQ_NONE
