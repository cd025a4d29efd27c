"""Spurious-interrupt detection (kernel/irq/spurious.c ``note_interrupt``).

A line whose handlers keep answering ``IRQ_NONE`` is "nobody cared": after a window of
100000 events with more than 99900 unhandled, it is disabled (invariants 43-45).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import (
    IRQF_PERCPU,
    IRQF_SHARED,
    SPURIOUS_UNHANDLED_LIMIT,
    SPURIOUS_WINDOW,
)
from irqflow.core.irq.desc import (
    DISABLED,
    INPROGRESS,
    PENDING,
    POLL_INPROGRESS,
    SPURIOUS_DISABLED,
    IrqDesc,
)
from irqflow.core.kthread import symbol_name

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

#: bit 31 of threads_handled_last: the verdict on a threaded event is deferred
SPURIOUS_DEFERRED = 1 << 31
#: note_interrupt reports at most this many bogus return values system-wide
MAX_BOGUS_REPORTS = 100


def note_interrupt(k: KernelBase, c: Cpu, desc: IrqDesc, ret: int) -> None:
    if ret > 3:
        if k.genirq.bogus_reports < MAX_BOGUS_REPORTS:
            k.genirq.bogus_reports += 1
            report_bad_irq(k, c, desc, ret)
        return
    if ret & 2:
        # threaded handlers: the verdict on this event is the threads' verdict on the
        # previous one (kernel-semantics 7.2); IRQ_HANDLED from a primary settles it now
        if ret == 2:
            handled = desc.threads_handled | SPURIOUS_DEFERRED
            if not desc.threads_handled_last & SPURIOUS_DEFERRED:
                desc.threads_handled_last |= SPURIOUS_DEFERRED
                return
            if handled != desc.threads_handled_last:
                ret = 1
                desc.threads_handled_last = handled
            else:
                ret = 0
        else:
            desc.threads_handled_last &= ~SPURIOUS_DEFERRED
            ret = 1
    if ret == 0:
        desc.unhandled += 1
        jiffies = k.jiffies
        # "more than HZ/10 since the last one": rare strays never add up (invariant 43)
        if jiffies - desc.last_unhandled > k.config.hz // 10:
            desc.irqs_unhandled = 1
        else:
            desc.irqs_unhandled += 1
        desc.last_unhandled = jiffies
    if desc.irqs_unhandled == 0:
        return  # the window only moves while there are unhandled events (invariant 44)
    desc.irq_count += 1
    if desc.irq_count < SPURIOUS_WINDOW:
        return
    desc.irq_count = 0
    if desc.irqs_unhandled > SPURIOUS_UNHANDLED_LIMIT:
        report_bad_irq(k, c, desc, ret)
        k.log(c, "emerg", f"Disabling IRQ #{desc.irq}")
        desc.state |= SPURIOUS_DISABLED | DISABLED
        desc.depth += 1
        if not k.genirq.spurious_poll_armed:
            # mod_timer(&poll_spurious_irq_timer): from now on it polls every HZ/10
            k.genirq.spurious_poll_armed = True
            _arm_poller(k, c)
    desc.irqs_unhandled = 0


def report_bad_irq(k: KernelBase, c: Cpu, desc: IrqDesc, ret: int) -> None:
    """``__report_bad_irq``: the bogus-return message for a value above IRQ_HANDLED |
    IRQ_WAKE_THREAD, else "nobody cared"; then ``handlers:`` and one line per action,
    ``[<%p>] %ps`` of the handler plus `` threaded [<%p>] %ps`` of its thread_fn.
    (The kernel's dump_stack() between them has no equivalent here.)"""
    if ret > 3:
        k.log(c, "err", f"irq event {desc.irq}: bogus return value {ret:x}")
    else:
        k.log(c, "err", f'irq {desc.irq}: nobody cared (try booting with the "irqpoll" option)')
    k.log(c, "err", "handlers:")
    for action in desc.actions:
        text = _function_ref(action.handler)
        if action.thread_fn is not None:
            text += f" threaded {_function_ref(action.thread_fn)}"
        k.log(c, "err", text)


def _function_ref(func: Callable[..., Any]) -> str:
    """``[<%p>] %ps`` of a function: its kernel symbol, and in place of the hashed pointer
    (16 hex digits, the upper 8 zero on 64-bit) a stable one, the CRC-32 of the symbol, so
    one function shows one pointer in every report and run."""
    from irqflow.core.irq.thread import default_primary, forced_secondary

    if func is default_primary:
        symbol = "irq_default_primary_handler"
    elif func is forced_secondary:
        symbol = "irq_forced_secondary_handler"
    elif hasattr(func, "__qualname__") or hasattr(func, "__name__"):
        symbol = symbol_name(func)
    else:  # a callable object: its __call__ is the code that runs
        symbol = f"{type(func).__qualname__.rpartition('<locals>.')[2]}.__call__"
    return f"[<{zlib.crc32(f'function:{symbol}'.encode()):016x}>] {symbol}"


def try_one_irq(k: KernelBase, c: Cpu, desc: IrqDesc) -> None:
    """Run a disabled shared line's actions once, on the poller's behalf (``force``).
    Skipped as the kernel skips them: per-CPU lines, lines without an action, and lines
    whose first action is not IRQF_SHARED (no other device on it could care)."""
    from irqflow.core.irq.flow import handle_irq_event  # flow.py imports this module

    if not desc.actions:
        return
    first = desc.actions[0].flags
    if not first & IRQF_SHARED or first & IRQF_PERCPU:
        return
    if desc.state & INPROGRESS:
        desc.state |= PENDING  # the CPU running it will look again
        return
    desc.state |= POLL_INPROGRESS
    while True:
        handle_irq_event(k, c, desc)
        if not desc.state & PENDING or not desc.actions:
            break
    desc.state &= ~POLL_INPROGRESS


def _arm_poller(k: KernelBase, c: Cpu) -> None:
    """POLL_SPURIOUS_IRQ_INTERVAL (HZ/10) from now; the kernel's own housekeeping, so it
    does not keep a quiet machine's ``run()`` going."""
    k.timers.add_kernel_timer(
        c, k.jiffies + k.config.hz // 10, poll_spurious_irqs, housekeeping=True
    )


def poll_spurious_irqs(k: KernelBase, c: Cpu) -> None:
    """``poll_spurious_irqs``: every HZ/10, run the actions of lines that "nobody cared"
    disabled, so a device sharing the line still gets served (kernel/irq/spurious.c).
    Once started it re-arms itself for ever, whether or not a line is still disabled
    (nothing in the kernel ever stops it); IRQ 0, the timer, is never polled."""
    for irq in sorted(k.genirq.descs):
        desc = k.genirq.descs[irq]
        if not irq or not desc.state & SPURIOUS_DISABLED:
            continue
        c.irqs_on = False  # local_irq_disable()
        try_one_irq(k, c, desc)
        k.irq_enable(c)
    _arm_poller(k, c)
