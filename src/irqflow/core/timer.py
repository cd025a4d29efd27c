"""Kernel-internal timers on TIMER_SOFTIRQ (kernel/time/timer.c, reduced).

Each CPU keeps its pending timers in a heap ordered by expiry (in jiffies) and by
arming order.  The tick raises TIMER_SOFTIRQ only when the earliest timer is due
(invariant 63), and ``run_timer_softirq`` runs every due timer's flow in softirq
context, on the CPU that armed it, never before its expiry.  An idle CPU keeps its
tick while it has timers (NO_HZ stops the tick only when nothing is pending).

The kernel uses these for its own periodic work (the spurious-IRQ poller); the public
``Timer`` API builds on the same base.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import TIMER_SOFTIRQ
from irqflow.core.softirq import raise_softirq_irqoff

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore

Flow = Generator[Any, Any, None]
TimerFlow = Callable[["KernelCore", "Cpu"], Flow]


def add_kernel_timer(k: KernelCore, c: Cpu, expires: int, fn: TimerFlow) -> None:
    """Arm ``fn(k, c)`` to run from TIMER_SOFTIRQ on ``c`` at jiffies ``expires``."""
    k._timer_seq += 1
    heapq.heappush(c.timers, (expires, k._timer_seq, fn))
    k.engine.ensure_tick(c)


def run_local_timers(k: KernelCore, c: Cpu) -> None:
    """From the tick (hardirq): raise TIMER_SOFTIRQ once if a timer is due."""
    timers = c.timers
    if timers and timers[0][0] <= k.jiffies:
        raise_softirq_irqoff(k, c, TIMER_SOFTIRQ, wake=False)


def run_timer_softirq(k: KernelCore, c: Cpu) -> Flow:
    """TIMER_SOFTIRQ's kernel action: run every due timer, earliest first."""
    timers = c.timers
    now = k.jiffies
    due = []
    while timers and timers[0][0] <= now:
        due.append(heapq.heappop(timers)[2])
    for fn in due:
        yield from fn(k, c)
