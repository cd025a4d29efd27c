"""Stopping a real machine: draining, the stop report, joining the threads."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from irqflow.core.errors import IrqflowError
from irqflow.core.sched import RUNNING
from irqflow.engine.real.report import StopReport

if TYPE_CHECKING:
    from irqflow.engine.real.engine import CpuState, RealEngine


def quiet(eng: RealEngine, future_timers: bool = False) -> bool:
    """Nothing pending and nothing running (with the lock held).  Armed timers that are
    not due yet count only with ``future_timers``."""
    jiffies = (1 << 62) if future_timers else eng.now // eng.period
    for c in eng.k.cpus:
        st: CpuState = c.engine_state
        if c.irr or c.softirq_pending or st.owner is not None or st.busy_tasks:
            return False
        if any(
            fire <= jiffies
            for fire, order, t in c.timers
            if t.pending and t.order == order and not t.housekeeping
        ):
            return False
        if future_timers and eng.k.hrtimers.next_event(c) is not None:
            return False
    if eng.timed_sleeps:
        return False
    return not any(t.state == RUNNING for t in eng.tasks)


def pending_summary(eng: RealEngine) -> dict[str, int]:
    """What is still queued (with the lock held), for the stop report."""
    k = eng.k
    out: dict[str, int] = {}

    def add(what: str, n: int) -> None:
        if n:
            out[what] = out.get(what, 0) + n

    for c in k.cpus:
        add("interrupts", sum(1 for v in c.irr if v >= 0))
        add("softirqs", bin(c.softirq_pending).count("1"))
        add("tasklets", len(c.tasklet_vec) + len(c.tasklet_hi_vec))
        add("timers", sum(1 for t in c.timers if t[2].pending))
        add("bh work items", len(c.bh_work[0]) + len(c.bh_work[1]))
    add("work items", k.wq.pending_work_count())
    add("runnable tasks", sum(1 for t in eng.tasks if t.state == RUNNING))
    add("driver calls in progress", sum(c.engine_state.busy_tasks for c in k.cpus))
    add("timed sleeps", eng.timed_sleeps)
    return out


def stop(eng: RealEngine, drain: bool, timeout: float) -> StopReport:
    if not eng.started:
        raise IrqflowError("stop(): the machine was not started (call k.start() first)")
    if eng.stopping:
        raise IrqflowError("stop(): the machine is already stopped")
    eng.stop_requested = True
    for close in reversed(eng.closers):  # the last source made is closed first
        try:
            close()
        except Exception as exc:
            with eng.lock:
                eng.k.log(None, "err", f"irqflow: closing a source failed: {exc!r}")
    deadline = time.monotonic() + timeout
    drained = True
    with eng.lock:
        if drain:
            cv = threading.Condition(eng._kl)
            while not quiet(eng) and eng.panic is None:
                if time.monotonic() >= deadline:
                    drained = False
                    break
                eng.lock.wait(cv, 0.002)
        abandoned = {} if drained and drain else pending_summary(eng)
        if drain and not drained:
            eng.k.log(None, "warn", f"irqflow: the drain timed out after {timeout} s")
        eng.stopping = True
        eng.halted = True
        eng.notify_all()
    me = threading.current_thread()  # stop() from driver code: do not join oneself
    for th in eng.threads:
        if th is not me:
            th.join(max(0.0, deadline - time.monotonic()) + 0.5)
    stuck = tuple(th.name for th in eng.threads if th.is_alive() and th is not me)
    report = StopReport(
        drained=drain and drained,
        abandoned=abandoned,
        stuck_threads=stuck,
        drain_requested=drain,
    )
    with eng.lock:
        eng.k.log(None, "info" if report.clean else "warn", f"irqflow: {report}")
    if eng.panic is not None:
        raise eng.panic
    return report
