"""Threaded interrupt handlers: the seed's "real-time variant" (kernel/irq/manage.c).

``request_threaded_irq`` splits a handler in two.  The primary runs in hard-IRQ context,
quiets the device and returns ``IRQ_WAKE_THREAD``; the thread ``irq/N-name``, a
SCHED_FIFO priority-50 kernel thread, then runs ``thread_fn`` in process context, where it
may sleep.  Wakes that arrive before the thread runs coalesce into one run (invariant
37).  With ``IRQF_ONESHOT`` the line stays masked from the hard handler until every woken
ONESHOT thread of the line has finished (invariant 39).

``KernelConfig(threadirqs=True)`` is the ``threadirqs`` boot option (always on for
PREEMPT_RT): every eligible handler is forced into its thread, runs there with BH and
IRQs disabled, and the softirqs it raises run at its ``local_bh_enable`` (invariant 42).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_NO_THREAD,
    IRQF_ONESHOT,
    IRQF_PERCPU,
    SOFTIRQ_DISABLE_OFFSET,
)
from irqflow.core.cpu import INTERRUPT_MASK, SYSTEM
from irqflow.core.irq import chip
from irqflow.core.irq.desc import DISABLED, MASKED, IrqAction, IrqDesc
from irqflow.core.kthread import FAILED
from irqflow.core.sched import SLEEPING
from irqflow.core.softirq import do_softirq

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu


#: sched_set_fifo(): MAX_RT_PRIO / 2
IRQ_THREAD_RT_PRIORITY = 50
_HANDLED = int(IRQ_HANDLED)
_WAKE = int(IRQ_WAKE_THREAD)


def default_primary(irq: int, dev_id: Any) -> int:
    """``irq_default_primary_handler``: always wake the thread."""
    return _WAKE


def forced_secondary(irq: int, dev_id: Any) -> int:
    """``irq_forced_secondary_handler``: never called in hard-IRQ context."""
    return IRQ_NONE


def setup_forced_threading(k: KernelBase, action: IrqAction) -> None:
    """``irq_setup_forced_threading``: move the hard handler into the thread."""
    if not k.config.threadirqs:
        return
    if action.flags & (IRQF_NO_THREAD | IRQF_PERCPU | IRQF_ONESHOT):
        return
    if action.handler is default_primary:
        return  # already thread-only
    action.flags |= IRQF_ONESHOT
    if action.thread_fn is not None:
        sec = IrqAction(
            action.irq, forced_secondary, action.flags, action.name, action.dev_id,
            action.thread_fn,
        )  # fmt: skip
        action.secondary = sec
    action.forced = True
    action.thread_fn = action.handler
    action.handler = default_primary


def start_threads(k: KernelBase, desc: IrqDesc, action: IrqAction) -> None:
    """Create ``irq/N-name`` (and ``irq/N-s-name`` for a forced secondary)."""
    if action.thread_fn is None:
        return
    for act, comm in ((action, f"irq/{desc.irq}-{action.name}"),
                      (action.secondary, f"irq/{desc.irq}-s-{action.name}")):  # fmt: skip
        if act is not None:
            act.thread = k.sched.spawn(
                comm,
                desc.target if desc.target is not None else desc.affinity[0],
                _thread_body(k, desc, act),
                policy="fifo",
                prio=IRQ_THREAD_RT_PRIORITY,
                acct=SYSTEM,
                start=False,
            )


def _thread_body(k: KernelBase, desc: IrqDesc, action: IrqAction) -> Callable[[], None]:
    return lambda: irq_thread(k, desc, action)


def stop_threads(k: KernelBase, action: IrqAction) -> None:
    """``kthread_stop`` for free_irq: the thread exits once it has no run owed."""
    for act in (action, action.secondary):
        if act is not None and act.thread is not None:
            act.stopping = True
            k.sched.wake_up_process(act.thread)


def irq_wake_thread(k: KernelBase, c: Cpu, desc: IrqDesc, action: IrqAction) -> None:
    """``__irq_wake_thread`` (hard-IRQ context, after the action's exit tracepoint)."""
    if action.thread is None:
        if not action.warned_wake:
            action.warned_wake = True
            k.log(
                c,
                "warn",
                f"IRQ {desc.irq} device {action.name} returned IRQ_WAKE_THREAD but no "
                "thread function available.",
            )
        return
    if action.stopping or action.runthread:
        return  # already due to run: this wake coalesces into that run
    action.runthread = True
    desc.threads_oneshot |= action.thread_mask
    desc.threads_active += 1
    t = action.thread
    if t.state == SLEEPING and t.waiting_irq and c.nr in desc.affinity:
        t.cpu = c.nr  # wake on the CPU that took the interrupt (its affinity allows it)
    k.sched.wake_up_process(t)


def irq_finalize_oneshot(k: KernelBase, desc: IrqDesc, action: IrqAction) -> None:
    if not action.flags & IRQF_ONESHOT or action.handler is forced_secondary:
        return  # ONESHOT only, and never for a forced secondary
    if action.runthread:
        return  # woken again meanwhile: it runs once more, the line stays masked
    desc.threads_oneshot &= ~action.thread_mask
    if not desc.threads_oneshot and not desc.state & DISABLED and desc.state & MASKED:
        chip.unmask(k, desc)


def _forced_thread_fn(k: KernelBase, c: Cpu, desc: IrqDesc, action: IrqAction) -> int:
    """``irq_forced_thread_fn``: the hard handler, with BH and IRQs off, in the thread."""
    c.preempt_count += SOFTIRQ_DISABLE_OFFSET  # local_bh_disable()
    c.irqs_on = False  # local_irq_disable() (non-RT, since 81e2073c175b)
    assert action.thread_fn is not None
    res = k._call(c, action.thread_fn, (desc.irq, action.dev_id), action.name, desc.irq)
    ret = _as_int(res)
    if ret == _HANDLED:
        desc.threads_handled += 1
    irq_finalize_oneshot(k, desc, action)
    k.irq_enable(c)  # local_irq_enable()
    # local_bh_enable(): softirqs the handler raised run here, in the IRQ thread
    c.preempt_count -= SOFTIRQ_DISABLE_OFFSET - 1
    if c.softirq_pending and not c.preempt_count & INTERRUPT_MASK:
        do_softirq(k, c)
    c.preempt_count -= 1
    return ret


def _as_int(res: Any) -> int:
    if res is FAILED or res is None:
        return int(IRQ_NONE)
    try:
        return int(res)
    except (TypeError, ValueError):
        return int(IRQ_NONE)


def irq_thread(k: KernelBase, desc: IrqDesc, action: IrqAction) -> None:
    """The body of ``irq/N-name`` (``irq_thread``)."""
    task = action.thread
    while True:
        c = k._this_cpu("irq_thread")
        while not action.runthread:  # irq_wait_for_interrupt
            if action.stopping:
                return
            task.waiting_irq = True  # the only place a wake may move it to another CPU
            k.sched.block(c, "S")  # TASK_INTERRUPTIBLE
            task.waiting_irq = False
            c = k._this_cpu("irq_thread")
        action.runthread = False
        if action.forced:
            ret = _forced_thread_fn(k, c, desc, action)
        else:
            assert action.thread_fn is not None
            res = k._run_in_task(
                c, action.thread_fn, (desc.irq, action.dev_id), f"irq/{desc.irq}-{action.name}"
            )
            ret = _as_int(res)
            if ret == _HANDLED:
                desc.threads_handled += 1
            irq_finalize_oneshot(k, desc, action)
        if ret == _WAKE and action.secondary is not None:
            irq_wake_thread(k, c, desc, action.secondary)
        desc.threads_active -= 1
