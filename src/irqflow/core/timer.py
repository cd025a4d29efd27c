"""Timers on TIMER_SOFTIRQ: the timer wheel (kernel/time/timer.c).

``Timer(func, data)`` is a ``timer_list``: ``k.add_timer(t, expires)`` arms it on the
calling CPU's base (CPU 0 when called from outside the machine) for jiffy ``expires``.
The tick raises TIMER_SOFTIRQ only when a timer is due (invariant 63), and
``run_timer_softirq`` runs every due timer in softirq context on that CPU, never before
its expiry.  An idle CPU's tick is stopped (NO_HZ): the engine wakes it once, at the
next timer's expiry (:meth:`Timers.next_event`).

When a timer fires depends on the wheel (``KernelConfig.timer_wheel``):

* ``"lazy"`` (6.13, the wheel since 4.8): a timer goes into the bucket of level n, whose
  granularity is 8^n jiffies, chosen by how far ahead it expires (level 0 below 63
  jiffies, level 1 below 504 ...), and ``calc_index`` rounds its expiry *up* to the next
  multiple of the granularity, strictly: even at level 0 a timer fires one jiffy after
  ``expires`` (so the sleep of ``schedule_timeout(n)`` is at least n whole jiffies).  A
  1 s timer at HZ=1000 fires up to 64 ms late.  Timers collected at one clock run
  highest level first, and within a bucket newest first (``hlist_add_head``).
* ``"cascading"`` (2.6): a timer fires at the first tick at or after ``expires``, in
  arming order; the seed era's ``msleep`` adds the jiffy itself.

The kernel's own periodic work (the spurious-IRQ poller) uses the same base with a
kernel flow instead of a driver callback; a *housekeeping* timer like it re-arms forever
and does not keep :meth:`Kernel.run` going on a quiet machine.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import TIMER_SOFTIRQ
from irqflow.core.errors import IrqflowError, claim, refuse_async
from irqflow.core.kthread import symbol_name
from irqflow.core.softirq import raise_timer_softirq

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

TimerFlow = Callable[["KernelBase", "Cpu"], None]

# --- the wheel's geometry (kernel/time/timer.c) --------------------------------------------
#: each level is 8 times coarser than the one below
LVL_CLK_SHIFT = 3
#: 64 buckets per level
LVL_BITS = 6
LVL_SIZE = 1 << LVL_BITS


def wheel_depth(hz: int) -> int:
    """LVL_DEPTH: 9 levels when HZ > 100, else 8."""
    return 9 if hz > 100 else 8


def lvl_start(n: int) -> int:
    """LVL_START(n): the smallest delta (jiffies) that goes to level ``n`` (n >= 1)."""
    return (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)


def calc_wheel_index(expires: int, clk: int, depth: int) -> tuple[int, int]:
    """``calc_wheel_index``: (level, bucket expiry) of a timer for jiffy ``expires``
    armed when the base's clock reads ``clk``.  The bucket expiry is the jiffy the timer
    really fires: ``expires`` rounded up, strictly, to the level's granularity; an
    expired timer (``expires < clk``) fires at the next run of the base."""
    delta = expires - clk
    if delta < 0:
        return 0, clk
    cutoff = lvl_start(depth)
    if delta >= cutoff:  # obscenely long: clamp to the wheel's capacity
        expires = clk + cutoff - (1 << ((depth - 1) * LVL_CLK_SHIFT))
        level = depth - 1
    else:
        level = 0
        while level < depth - 1 and delta >= lvl_start(level + 1):
            level += 1
    shift = level * LVL_CLK_SHIFT
    return level, ((expires >> shift) + 1) << shift


class Timer:
    """``struct timer_list``: ``func(data)`` runs in TIMER_SOFTIRQ once its expiry (in
    jiffies) has come.  It must not sleep."""

    __slots__ = (
        "bucket", "cpu", "data", "expires", "flow", "func", "housekeeping", "name", "order",
        "owner", "pending", "running", "seq",
    )  # fmt: skip

    def __init__(
        self,
        func: Callable[[Any], Any] | None,
        data: Any = None,
        *,
        name: str | None = None,
        flow: TimerFlow | None = None,
        housekeeping: bool = False,
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
        #: the jiffy it fires: ``expires`` as the wheel rounds it
        self.bucket = 0
        #: armed and not yet run (timer_pending())
        self.pending = False
        #: the callback runs now (del_timer_sync waits for this)
        self.running = False
        self.cpu = 0
        #: its place in the base's expiry order (an older heap entry is stale)
        self.order = 0
        #: when it was last armed, machine-wide (arming order)
        self.seq = 0
        #: the kernel's own perpetual work: does not keep a quiet machine running
        self.housekeeping = housekeeping
        #: the machine it serves (set on first use)
        self.owner: object = None

    @property
    def function(self) -> str:
        """The callback's symbol, as ``timer_expire_entry`` prints ``function=%ps``."""
        target: Any = self.func if self.func is not None else self.flow
        return symbol_name(target)

    def __repr__(self) -> str:
        state = "pending" if self.pending else "running" if self.running else "idle"
        return f"<Timer {self.name} expires={self.expires} {state}>"


class Timers:
    """The timer bases: arming, moving and deleting timers (``add_timer`` ...).

    Each CPU keeps its timers in ``c.timers``, a heap of ``(fire jiffy, order, timer)``
    in the wheel's expiry order; an entry whose timer was deleted or re-armed since is
    stale and skipped."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        cfg = k.config
        self.lazy = cfg.timer_wheel == "lazy"
        self.depth = wheel_depth(cfg.hz)
        #: arming order across the machine
        self.seq = 0
        #: per CPU: run_timer_softirq is expiring timers (the base's clock is a jiffy ahead)
        self.expiring = [False] * len(k.cpus)

    def arm(self, c: Cpu, t: Timer, expires: int) -> None:
        """Put ``t`` on ``c``'s base for jiffy ``expires`` (an older entry goes stale)."""
        if t.owner is not self.k:
            claim(t, self.k, f"arming timer {t.name}")
        self.seq += 1
        seq = self.seq
        if self.lazy:
            # forward_timer_base: the base's clock is jiffies, one ahead while it expires
            clk = self.k.jiffies + (1 if self.expiring[c.nr] else 0)
            level, bucket = calc_wheel_index(expires, clk, self.depth)
            # one clock's timers: the highest level first, newest first in a bucket
            order = -((level << 48) + seq)
        else:
            bucket, order = expires, seq
        t.expires = expires
        t.bucket = bucket
        t.order = order
        t.seq = seq
        t.cpu = c.nr
        t.pending = True
        heapq.heappush(c.timers, (bucket, order, t))
        self.k.engine.ensure_tick(c)

    def add_kernel_timer(
        self, c: Cpu, expires: int, fn: TimerFlow, *, housekeeping: bool = False
    ) -> Timer:
        """Arm the kernel flow ``fn(k, c)`` to run from TIMER_SOFTIRQ on ``c`` at
        ``expires``."""
        t = Timer(None, flow=fn, housekeeping=housekeeping)
        self.arm(c, t, expires)
        return t

    def next_event(self, c: Cpu) -> int | None:
        """The jiffy ``c``'s next timer fires (``get_next_timer_interrupt``), None if it
        has none: what a CPU whose tick is stopped programs its clock event for."""
        timers = c.timers
        while timers:
            _, order, t = timers[0]
            if t.pending and t.order == order:
                bucket: int = t.bucket
                return bucket
            heapq.heappop(timers)  # stale: deleted or re-armed
        return None

    def busy(self) -> bool:
        """A timer other than the kernel's perpetual housekeeping is pending."""
        return any(
            t.pending and t.order == order and not t.housekeeping
            for c in self.k.cpus
            for _, order, t in c.timers
        )

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
    """From the tick (hardirq): raise TIMER_SOFTIRQ once if a timer is due (for
    ``ktimers/N`` under forced threading)."""
    timers = c.timers
    if timers and timers[0][0] <= k.jiffies:
        raise_timer_softirq(k, c, TIMER_SOFTIRQ)


def run_timer_softirq(k: KernelBase, c: Cpu) -> None:
    """TIMER_SOFTIRQ's kernel action: run every due timer in the wheel's order."""
    timers = c.timers
    now = k.jiffies
    due: list[tuple[int, Timer]] = []
    while timers and timers[0][0] <= now:
        entry = heapq.heappop(timers)
        if entry[2].pending and entry[2].order == entry[1]:  # else deleted or re-armed
            due.append((entry[1], entry[2]))
    base = k.timers
    base.expiring[c.nr] = True
    try:
        for order, t in due:
            if not t.pending or t.order != order:
                continue  # deleted or re-armed by an earlier callback of this run
            t.pending = False
            t.running = True
            if k.tracing:
                k.trace.emit(c, "timer:timer_expire_entry",
                             {"timer": t.name, "function": t.function, "now": now,
                              "baseclk": t.bucket})  # fmt: skip
            if t.flow is not None:
                t.flow(k, c)
            else:
                k._call(c, t.func, (t.data,), f"timer {t.name}")  # type: ignore[arg-type]
            if k.tracing:
                k.trace.emit(c, "timer:timer_expire_exit", {"timer": t.name})
            t.running = False
    finally:
        base.expiring[c.nr] = False
