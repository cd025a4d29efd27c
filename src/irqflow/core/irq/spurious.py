"""Spurious-interrupt detection (kernel/irq/spurious.c ``note_interrupt``).

A line whose handlers keep answering ``IRQ_NONE`` is "nobody cared": after a window of
100000 events with more than 99900 unhandled, it is disabled (invariants 43-45).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irqflow.core.constants import SPURIOUS_UNHANDLED_LIMIT, SPURIOUS_WINDOW
from irqflow.core.irq.desc import DISABLED, SPURIOUS_DISABLED, IrqDesc

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore

#: note_interrupt reports at most this many bogus return values system-wide
MAX_BOGUS_REPORTS = 100


def note_interrupt(k: KernelCore, c: Cpu, desc: IrqDesc, ret: int) -> None:
    if ret > 3:
        if k._bogus_reports < MAX_BOGUS_REPORTS:
            k._bogus_reports += 1
            k.log(c, "err", f"irq event {desc.irq}: bogus return value {ret:x}")
        return
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
        k.log(c, "err", f'irq {desc.irq}: nobody cared (try booting with the "irqpoll" option)')
        k.log(c, "err", "handlers:")
        for action in desc.actions:
            fn = action.handler
            symbol = getattr(fn, "__qualname__", None) or type(fn).__name__
            k.log(c, "err", f"[<{symbol}>] {action.name}")
        k.log(c, "emerg", f"Disabling IRQ #{desc.irq}")
        desc.state |= SPURIOUS_DISABLED | DISABLED
        desc.depth += 1
    desc.irqs_unhandled = 0
