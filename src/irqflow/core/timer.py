"""Timers on TIMER_SOFTIRQ (kernel/time/timer.c, without the wheel).

``Timer(func, data)`` is a ``timer_list``: ``k.add_timer(t, expires)`` arms it on the
calling CPU's base (CPU 0 when called from outside the machine) for jiffy ``expires``;
each CPU keeps its timers in a heap ordered by expiry and arming order.  The tick raises
TIMER_SOFTIRQ only when the earliest timer is due (invariant 63), and
``run_timer_softirq`` runs every due timer in softirq context on that CPU, never before
its expiry.  An idle CPU keeps its tick while it has timers pending (NO_HZ stops it only
when nothing is pending).

Granularity: a timer fires at the first tick at or after ``expires``, i.e. to the jiffy.
The kernel's wheel rounds long timeouts *up* to its level's granule (8^n jiffies at level
n), so a kernel timer set far ahead may fire later than irqflow's; neither ever fires
early.  Within one jiffy, timers fire in arming order (the kernel's bucket order is
reverse insertion: a documented difference).

The kernel's own periodic work (the spurious-IRQ poller) uses the same base with a
kernel flow instead of a driver callback.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import TIMER_SOFTIRQ
from irqflow.core.errors import IrqflowError, claim, refuse_async
from irqflow.core.kthread import symbol_name
from irqflow.core.softirq import raise_softirq_irqoff

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

TimerFlow = Callable[["KernelBase", "Cpu"], None]


class Timer:
    """``struct timer_list``: ``func(data)`` runs in TIMER_SOFTIRQ once its expiry (in
    jiffies) has come.  It must not sleep."""

    __slots__ = (
        "cpu", "data", "expires", "flow", "func", "name", "owner", "pending", "running", "seq",
    )  # fmt: skip

    def __init__(
        self,
        func: Callable[[Any], Any] | None,
        data: Any = None,
        *,
        name: str | None = None,
        flow: TimerFlow | None = None,
    ) -> None:
        if flow is None and not callable(func):
            raise TypeError(f"Timer(func={func!r}): func must be callable as func(data)")
        refuse_async(func, "Timer", "softirq (TIMER_SOFTIRQ)")
        self.func = func
        self.data = data
        self.flow = flow
        target: Callable[..., Any] | None = func if func is not None else flow
        self.name = name or (symbol_name(target) if target is not None else "timer")
        self.expires = 0
        #: armed and not yet run (timer_pending())
        self.pending = False
        #: the callback runs now (del_timer_sync waits for this)
        self.running = False
        self.cpu = 0
        self.seq = 0
        #: the machine it serves (set on first use)
        self.owner: object = None

    def __repr__(self) -> str:
        state = "pending" if self.pending else "running" if self.running else "idle"
        return f"<Timer {self.name} expires={self.expires} {state}>"


class Timers:
    """The timer bases: arming, moving and deleting timers (``add_timer`` ...)."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        #: arming order across the machine: the tie-break between equal expiries
        self.seq = 0

    def arm(self, c: Cpu, t: Timer, expires: int) -> None:
        """Put ``t`` on ``c``'s base for jiffy ``expires`` (an older entry goes stale)."""
        if t.owner is not self.k:
            claim(t, self.k, f"arming timer {t.name}")
        self.seq += 1
        t.seq = self.seq
        t.expires = expires
        t.cpu = c.nr
        t.pending = True
        heapq.heappush(c.timers, (expires, t.seq, t))
        self.k.engine.ensure_tick(c)

    def add_kernel_timer(self, c: Cpu, expires: int, fn: TimerFlow) -> None:
        """Arm the kernel flow ``fn(k, c)`` to run from TIMER_SOFTIRQ on ``c`` at
        ``expires``."""
        self.arm(c, Timer(None, flow=fn), expires)

    def _cpu(self) -> Cpu:
        c = self.k.engine.current_cpu
        return c if c is not None else self.k.cpus[0]

    @staticmethod
    def check(t: Any, what: str, expires: int | None = None) -> Timer:
        if not isinstance(t, Timer):
            raise TypeError(f"{what}: expected an irqflow.Timer, got {t!r}")
        if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
            raise TypeError(
                f"{what}({t.name}, {expires!r}): expires is an absolute time in jiffies "
                "(k.jiffies + k.msecs_to_jiffies(ms))"
            )
        return t

    def add_timer(self, t: Timer, expires: int) -> None:
        self.check(t, "add_timer", expires)
        if t.pending:
            raise IrqflowError(
                f"add_timer({t.name}): the timer is already pending (expires {t.expires}); "
                "use mod_timer to move it"
            )
        self.arm(self._cpu(), t, expires)

    def mod_timer(self, t: Timer, expires: int) -> bool:
        self.check(t, "mod_timer", expires)
        was = t.pending
        if was and t.expires == expires:
            return True  # same expiry: nothing to do
        self.arm(self._cpu(), t, expires)
        return was

    def del_timer(self, t: Timer) -> bool:
        self.check(t, "del_timer")
        was = t.pending
        t.pending = False
        return was


def add_kernel_timer(k: KernelBase, c: Cpu, expires: int, fn: TimerFlow) -> None:
    """Arm the kernel flow ``fn(k, c)`` to run from TIMER_SOFTIRQ on ``c`` at ``expires``."""
    k.timers.add_kernel_timer(c, expires, fn)


def run_local_timers(k: KernelBase, c: Cpu) -> None:
    """From the tick (hardirq): raise TIMER_SOFTIRQ once if a timer is due."""
    timers = c.timers
    if timers and timers[0][0] <= k.jiffies:
        raise_softirq_irqoff(k, c, TIMER_SOFTIRQ, wake=False)


def run_timer_softirq(k: KernelBase, c: Cpu) -> None:
    """TIMER_SOFTIRQ's kernel action: run every due timer, earliest first."""
    timers = c.timers
    now = k.jiffies
    due: list[Timer] = []
    while timers and timers[0][0] <= now:
        _, seq, t = heapq.heappop(timers)
        if t.pending and t.seq == seq:  # else deleted or re-armed since: a stale entry
            due.append(t)
    for t in due:
        if not t.pending:
            continue  # deleted by an earlier callback of this run
        t.pending = False
        t.running = True
        if k.tracing:
            k.trace.emit(c, "timer:timer_expire_entry", {"timer": t.name, "now": now,
                                                          "function": t.name})  # fmt: skip
        if t.flow is not None:
            t.flow(k, c)
        else:
            k._call(c, t.func, (t.data,), f"timer {t.name}")  # type: ignore[arg-type]
        if k.tracing:
            k.trace.emit(c, "timer:timer_expire_exit", {"timer": t.name})
        t.running = False
