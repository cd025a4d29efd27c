"""High-resolution timers (kernel/time/hrtimer.c): what ``usleep_range`` and ``fsleep``
sleep on.

An hrtimer expires at a nanosecond, not at a tick.  It has a range: a *soft* expiry
(the earliest it may fire) and a *hard* one (the latest).  Arming it programs the CPU's
clock event (the local APIC timer) for the earliest hard expiry of its CPU; the local
timer interrupt that follows runs ``hrtimer_interrupt``, which expires, in hard-expiry
order, every timer whose soft expiry has passed, and stops at the first that has not.
So a sleeper on a quiet CPU wakes at the *end* of its range, and earlier only if some
other interrupt of the local timer (the tick, another hrtimer) falls inside it.

Two bases per CPU, as in the kernel:

* **hard**: the callback runs in the interrupt itself (hard-IRQ context).  On a non-RT
  kernel every sleeper is hard: ``local_timer_entry``, ``hrtimer_expire_entry
  function=hrtimer_wakeup``, the wake-up, ``local_timer_exit``.
* **soft**: the interrupt raises HRTIMER_SOFTIRQ and the callbacks run there.  On
  PREEMPT_RT sleepers are soft (so the softirq runs in ``ktimers/N``) unless the
  sleeping task is a real-time one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

from irqflow.core.constants import HRTIMER_SOFTIRQ
from irqflow.core.softirq import raise_timer_softirq

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

HrtimerFlow = Callable[["KernelBase", "Cpu"], None]


class HrTimer:
    """``struct hrtimer``: ``fn(k, cpu)`` runs once the time reaches ``softexpires`` and
    the local timer interrupts (at the latest at ``expires``)."""

    __slots__ = ("cpu", "expires", "fn", "function", "name", "queued", "seq", "soft",
                 "softexpires")  # fmt: skip

    def __init__(self, fn: HrtimerFlow, *, soft: bool, name: str, function: str) -> None:
        self.fn = fn
        #: on the soft base (expired from HRTIMER_SOFTIRQ) rather than the hard one
        self.soft = soft
        #: the object, as ``hrtimer=%p`` prints it
        self.name = name
        #: the callback's symbol, as ``function=%ps`` prints it
        self.function = function
        self.softexpires = 0
        self.expires = 0
        self.queued = False
        self.seq = 0
        self.cpu = 0


class Hrtimers:
    """The per-CPU hrtimer bases: start, cancel, and the interrupt that expires them."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        self.seq = 0
        #: per CPU: HRTIMER_SOFTIRQ is raised and has not run yet (softirq_activated):
        #: the soft base is left out of the clock event until it has
        self.soft_active = [False] * len(k.cpus)

    def start(self, c: Cpu, t: HrTimer, softexpires: int, expires: int) -> None:
        """``hrtimer_start_range_ns`` (absolute, pinned to ``c``)."""
        self.seq += 1
        t.softexpires, t.expires = softexpires, expires
        t.seq, t.cpu, t.queued = self.seq, c.nr, True
        heapq.heappush(c.hrtimers[1 if t.soft else 0], (expires, t.seq, t))
        self.k.engine.program_event(c, expires)

    def cancel(self, t: HrTimer) -> bool:
        """``hrtimer_try_to_cancel``: True if it was queued (it will not run now)."""
        was = t.queued
        t.queued = False
        return was

    @staticmethod
    def _head(base: list[tuple[int, int, HrTimer]]) -> HrTimer | None:
        while base:
            _, seq, t = base[0]
            if t.queued and t.seq == seq:
                return t
            heapq.heappop(base)  # cancelled or restarted since
        return None

    def next_event(self, c: Cpu) -> int | None:
        """When ``c``'s clock event must fire next for its hrtimers (the earliest hard
        expiry of both bases), None if none is queued."""
        hard = self._head(c.hrtimers[0])
        soft = None if self.soft_active[c.nr] else self._head(c.hrtimers[1])
        times = [t.expires for t in (hard, soft) if t is not None]
        return min(times) if times else None

    def _run_base(self, k: KernelBase, c: Cpu, base: list[tuple[int, int, HrTimer]]) -> None:
        """``__hrtimer_run_queues`` on one base: in hard-expiry order, every timer whose
        soft expiry has passed; stop at the first whose has not."""
        now = k.engine.now
        while True:
            t = self._head(base)
            if t is None or t.softexpires > now:
                return
            heapq.heappop(base)
            t.queued = False
            if k.tracing:
                k.trace.emit(c, "timer:hrtimer_expire_entry",
                             {"hrtimer": t.name, "function": t.function, "now": now})  # fmt: skip
            t.fn(k, c)
            if k.tracing:
                k.trace.emit(c, "timer:hrtimer_expire_exit", {"hrtimer": t.name})

    def interrupt(self, k: KernelBase, c: Cpu) -> None:
        """``hrtimer_interrupt`` (hard-IRQ context, from the local timer interrupt): the
        hard base's due timers run here; due soft ones raise HRTIMER_SOFTIRQ."""
        soft = None if self.soft_active[c.nr] else self._head(c.hrtimers[1])
        if soft is not None and soft.expires <= k.engine.now:
            # softirq_expires_next (a hard expiry) has passed: the soft base's turn
            self.soft_active[c.nr] = True
            raise_timer_softirq(k, c, HRTIMER_SOFTIRQ)
        self._run_base(k, c, c.hrtimers[0])
        nxt = self.next_event(c)
        if nxt is not None:
            k.engine.program_event(c, nxt)

    def run_softirq(self, k: KernelBase, c: Cpu) -> None:
        """HRTIMER_SOFTIRQ's action (``hrtimer_run_softirq``)."""
        self.soft_active[c.nr] = False
        self._run_base(k, c, c.hrtimers[1])
        nxt = self.next_event(c)
        if nxt is not None:
            k.engine.program_event(c, nxt)


def run_hrtimer_softirq(k: KernelBase, c: Cpu) -> None:
    """HRTIMER_SOFTIRQ's kernel action."""
    k.hrtimers.run_softirq(k, c)
