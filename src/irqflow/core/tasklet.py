"""Tasklets: stage 5 of the seed (kernel/softirq.c ``tasklet_action_common``).

A tasklet is queued on the *scheduling* CPU's list (FIFO) and run from HI_SOFTIRQ or
TASKLET_SOFTIRQ there.  Two state bits make it safe without re-entrancy: SCHED (queued,
not started: a second schedule is a no-op) and RUN (running: another CPU that reaches it
requeues it instead of running it in parallel).  SCHED is cleared just before the
callback runs, so scheduling it during its own run gives exactly one more run
(invariants 19-26).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import SOFTIRQ
from irqflow.core.errors import refuse_async
from irqflow.core.kthread import symbol_name
from irqflow.core.softirq import raise_softirq_irqoff

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

#: TASKLET_STATE_SCHED: queued and not yet started
TASKLET_STATE_SCHED = 1 << 0
#: TASKLET_STATE_RUN: running on some CPU
TASKLET_STATE_RUN = 1 << 1


class Tasklet:
    """``struct tasklet_struct``: ``func(data)`` runs in softirq context, never on two
    CPUs at once.

    ``Tasklet(func, data=None, name=None, disabled=False)``; ``disabled=True`` is
    ``DECLARE_TASKLET_DISABLED`` (count 1: it needs one ``tasklet_enable``).
    """

    __slots__ = (
        "count",
        "data",
        "func",
        "kill_waiting",
        "lat",
        "name",
        "owner",
        "runs",
        "sched_ts",
        "schedules",
        "state",
        "where",
    )  # fmt: skip

    def __init__(
        self,
        func: Callable[[Any], Any],
        data: Any = None,
        *,
        name: str | None = None,
        disabled: bool = False,
    ) -> None:
        if not callable(func):
            raise TypeError(f"Tasklet(func={func!r}): func must be callable as func(data)")
        refuse_async(func, "Tasklet", "softirq")
        self.func = func
        self.data = data
        self.name = name or symbol_name(func)
        self.where = f"tasklet {self.name}"
        #: the machine it serves (set on first use)
        self.owner: object = None
        self.state = 0
        #: disable count: the tasklet runs only at 0
        self.count = 1 if disabled else 0
        #: times it ran / times tasklet_schedule queued it (coalesced schedules excluded)
        self.runs = 0
        self.schedules = 0
        #: tasklet_kill is waiting to take SCHED from the queued instance
        self.kill_waiting = False
        #: when it was last queued (latency histograms)
        self.sched_ts = 0
        #: (recorder, histogram) of its schedule->run latency, cached for the hot path
        self.lat: tuple[Any, Any] = (None, None)

    @property
    def scheduled(self) -> bool:
        return bool(self.state & TASKLET_STATE_SCHED)

    @property
    def running(self) -> bool:
        return bool(self.state & TASKLET_STATE_RUN)

    @property
    def disabled(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        bits = [n for b, n in ((1, "SCHED"), (2, "RUN")) if self.state & b]
        return f"<Tasklet {self.name} state={'|'.join(bits) or '0'} count={self.count}>"


def tasklet_schedule_on(k: KernelBase, c: Cpu, t: Tasklet, nr: int) -> bool:
    """Queue ``t`` at the tail of this CPU's list; False if it was already SCHED."""
    if t.state & TASKLET_STATE_SCHED:
        return False  # invariant 19: already queued and not started
    t.state |= TASKLET_STATE_SCHED
    t.schedules += 1
    t.sched_ts = k.engine.now
    (c.tasklet_hi_vec if nr == 0 else c.tasklet_vec).append(t)
    raise_softirq_irqoff(k, c, nr)
    return True


def tasklet_action_common(k: KernelBase, c: Cpu, lst: deque[Tasklet], nr: int) -> None:
    if c.bh_work[1 if nr == 0 else 0]:  # 6.9+: the CPU's BH workqueue pool runs first
        k.wq.softirq_action(c, nr == 0)  # (invariant 58)
    items = tuple(lst)  # take the whole list with IRQs off; schedules from now go to the next pass
    lst.clear()
    cost = k.costs.tasklet_dispatch
    busy = k.engine.busy
    tracing = k.tracing
    lat = k.lat
    for t in items:
        if t.state & TASKLET_STATE_RUN or t.count:
            # running on another CPU (trylock failed) or disabled: requeue, no ksoftirqd
            lst.append(t)
            raise_softirq_irqoff(k, c, nr, wake=False)
            continue
        t.state |= TASKLET_STATE_RUN
        if not t.state & TASKLET_STATE_SCHED:
            k.log(c, "warn", f"tasklet SCHED state not set: {t.name}")
            t.state &= ~TASKLET_STATE_RUN
            continue
        t.state &= ~TASKLET_STATE_SCHED  # invariant 22: before the callback
        if t.kill_waiting:
            # tasklet_kill spins on test_and_set(SCHED) and wins it now: schedules from
            # the callback become no-ops and nothing is queued again
            t.kill_waiting = False
            t.state |= TASKLET_STATE_SCHED
        owner, hist = t.lat
        if owner is not lat:
            hist = lat.hist("tasklet schedule->run", t.name)
            t.lat = (lat, hist)
        hist.add(k.engine.now - t.sched_ts)
        if tracing:
            k.trace.emit(c, "irq:tasklet_entry", {"tasklet": t.name, "func": symbol_name(t.func)})
        if cost:
            busy(c, cost, SOFTIRQ)
        k._call(c, t.func, (t.data,), t.where)
        t.runs += 1
        if tracing:
            k.trace.emit(c, "irq:tasklet_exit", {"tasklet": t.name, "func": symbol_name(t.func)})
        t.state &= ~TASKLET_STATE_RUN


def tasklet_action(k: KernelBase, c: Cpu) -> None:
    """TASKLET_SOFTIRQ's action."""
    tasklet_action_common(k, c, c.tasklet_vec, 6)


def tasklet_hi_action(k: KernelBase, c: Cpu) -> None:
    """HI_SOFTIRQ's action."""
    tasklet_action_common(k, c, c.tasklet_hi_vec, 0)
