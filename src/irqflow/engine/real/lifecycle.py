"""Stopping a real machine: draining, halting, joining the threads, and the report.

What ``stop()`` promises (``docs/real-engine.md``, "Running a service"):

* it returns, within about ``timeout`` + 0.5 s, with a report that is true: ``drained``
  only if everything pending and due ran; every queued thing that did not run is in
  ``abandoned`` (timers and delayed work not yet due included, by kind); a thread still
  inside driver code is in ``stuck_threads``;
* once it returns no driver code of the machine starts again (a thread still inside
  driver code finishes that call only), and calls that would change the machine raise;
* one ``stop()`` per machine: a second one raises ("already stopped");
* it may be called from a signal handler (it lets go of a kernel section the signal
  interrupted, and takes it back before returning) and from driver code (the drain does
  not wait for the caller itself; what only the caller could run is reported).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from irqflow.core.errors import IrqflowError
from irqflow.core.sched import RUNNING
from irqflow.core.workqueue import DelayedWork
from irqflow.engine.real import signals
from irqflow.engine.real.context import TaskCpu
from irqflow.engine.real.lock import held_by_me, let_go, take_back
from irqflow.engine.real.report import StopReport

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task
    from irqflow.engine.real.engine import CpuState, RealEngine

#: how often a drain looks whether the machine is quiet (s)
DRAIN_POLL_S = 0.002
STOPPED = "the machine is stopped: make a new Kernel (a machine runs once)"


@dataclass(frozen=True)
class Caller:
    """What ``stop()`` called from driver code keeps busy: the drain cannot wait for it."""

    #: the CPU whose interrupt context the caller holds (its handler, softirq ...)
    cpu: int | None = None
    #: the caller's own task (a work item, a kernel thread, an IRQ thread)
    task: Task | None = None
    #: the CPU whose busy count includes the caller's own driver call
    busy: CpuState | None = None
    #: work items that only the caller's worker could run, its own included
    work: int = 0
    #: 1 if the caller is a work item (its own item counts as pending work)
    own_work: int = 0
    where: str = ""


def caller(eng: RealEngine) -> Caller:
    ctx: Cpu | None = eng.tls.cpu
    if ctx is None:
        return Caller()
    where = f"{ctx.current.comm}: {ctx.running or '?'}"
    if not isinstance(ctx, TaskCpu):
        return Caller(cpu=ctx.nr, where=where)
    task = ctx.current
    own, behind = _work_behind(eng, task)
    return Caller(
        cpu=ctx.base.nr if ctx.holding else None,
        task=task,
        busy=task.engine_state.busy,
        work=own + behind,
        own_work=own,
        where=where,
    )


def _work_behind(eng: RealEngine, task: Task) -> tuple[int, int]:
    """Work items that wait for ``task``: (the one it runs, those queued behind it on
    its own worker: per-CPU threads its list, cmwq its pool, whose concurrency
    management counts the caller as running)."""
    k = eng.k
    w = task.wq_worker
    if w is not None:
        return int(w.current is not None), len(w.scheduled) + len(w.pool.worklist)
    for wq in k.wq.workqueues:
        if task in wq.workers:
            i = wq.workers.index(task)
            return int(task.engine_state.busy is not None), len(wq.lists[i])
    return 0, 0


def _due_timers(eng: RealEngine, c: Cpu, jiffies: int) -> bool:
    """A timer (not the kernel's perpetual housekeeping) fires by ``jiffies``; with
    ``jiffies`` beyond every expiry, an hrtimer is queued too."""
    if any(
        fire <= jiffies and t.pending and t.order == order and not t.housekeeping
        for fire, order, t in c.timers
    ):
        return True
    return jiffies >= 1 << 62 and eng.k.hrtimers.next_event(c) is not None


def quiet(eng: RealEngine, future_timers: bool = False, me: Caller | None = None) -> bool:
    """Nothing pending and nothing running (with the lock held), leaving out what waits
    for ``me`` (``stop()`` called from driver code).  Armed timers that are not due yet
    count only with ``future_timers``."""
    me = me or Caller()
    jiffies = (1 << 62) if future_timers else eng.now // eng.period
    if eng.inbox or eng.timed_sleeps:
        return False
    for c in eng.k.cpus:
        st: CpuState = c.engine_state
        if st.busy_tasks - (me.busy is st):
            return False
        if c.nr == me.cpu:
            continue  # the caller holds this CPU's interrupt context
        if c.irr or c.softirq_pending or st.owner is not None or _due_timers(eng, c, jiffies):
            return False
    if eng.k.wq.pending_work_count() - me.work > 0:
        return False
    for t in eng.tasks:
        if t is me.task:
            continue
        # runnable, or asleep inside a work item or a threaded handler (kernel threads at
        # rest in their loop are not pending work)
        if t.state == RUNNING or (t.engine_state.busy is not None and t.acct != "user"):
            return False
    return True


def pending_summary(eng: RealEngine, me: Caller | None = None) -> dict[str, int]:
    """What is still queued (with the lock held), for the stop report."""
    me = me or Caller()
    k = eng.k
    jiffies = eng.now // eng.period
    out: dict[str, int] = {}

    def add(what: str, n: int) -> None:
        if n:
            out[what] = out.get(what, 0) + n

    for c in k.cpus:
        add("interrupts", sum(1 for v in c.irr if v >= 0))
        add("softirqs", bin(c.softirq_pending).count("1"))
        add("tasklets", len(c.tasklet_vec) + len(c.tasklet_hi_vec))
        add("bh work items", len(c.bh_work[0]) + len(c.bh_work[1]))
        for exp, order, t in sorted(c.timers, key=_armed):
            if not t.pending or t.order != order or t.flow is not None:
                continue  # stale entries and the kernel's own timers
            what = "delayed work items" if isinstance(_owner(t.func), DelayedWork) else "timers"
            add(what if exp <= jiffies else f"{what} not yet due", 1)
    add("work items", k.wq.pending_work_count() - me.own_work)
    add("runnable tasks", sum(1 for t in eng.tasks if t.state == RUNNING and t is not me.task))
    busy = sum(c.engine_state.busy_tasks for c in k.cpus) - (me.busy is not None)
    add("driver calls in progress", busy)
    add("timed sleeps", eng.timed_sleeps)
    return out


def _armed(entry: tuple[int, int, Any]) -> int:
    """A wheel entry's timer's arming order (the report lists timers in it)."""
    seq: int = entry[2].seq
    return seq


def _owner(fn: Any) -> Any:
    return getattr(fn, "__self__", None)


def stop(eng: RealEngine, drain: bool, timeout: float, again_ok: bool) -> StopReport | None:
    """``Kernel.stop``; ``again_ok`` (``with`` exit): a machine stopped already is fine."""
    held = held_by_me(eng.lock)
    # a signal handler (or an oops callback) that interrupted a kernel section of this
    # thread: the section's hold would keep every other thread out of the drain
    state = let_go(eng) if held else None
    try:
        return _stop(eng, drain, timeout, again_ok, interrupted=state is not None)
    finally:
        if state is not None:
            take_back(eng, state)


def _stop(
    eng: RealEngine, drain: bool, timeout: float, again_ok: bool, interrupted: bool = False
) -> StopReport | None:
    me_thread = threading.current_thread()
    with eng.lock:
        if not eng.started and not eng.stop_requested:
            if again_ok:
                return None
            raise IrqflowError("stop(): the machine was not started (call k.start() first)")
        other: bool | None = None
        if eng.stop_requested:
            if not again_ok:
                busy = "" if eng.stopped.is_set() else " (another stop() call is stopping it)"
                why = eng.refuse if eng.refuse and "fork" in eng.refuse else STOPPED
                raise IrqflowError(f"stop(): the machine is already stopped{busy}; {why}")
            other = eng.stopper is not me_thread
        else:
            eng.stop_requested = eng.stopping = True
            eng.stopper = me_thread
    if other is not None:  # with-exit after another stop(): let that one finish first
        if other:
            eng.stopped.wait(timeout + 1.0)
        return None
    where = caller(eng).where
    for close in reversed(eng.closers):  # the last source made is closed first
        try:
            close()
        except Exception as exc:
            with eng.lock:
                eng.k.log(None, "err", f"irqflow: closing a source failed: {exc!r}")
    deadline = time.monotonic() + timeout
    timed_out = False
    if interrupted:
        # the call the signal interrupted may have queued something and not yet woken
        # its thread: wake every sleeping task once (a spurious wake-up, which every
        # sleeper tolerates, as in the kernel), so the drain does not wait for it
        with eng.lock:
            for t in list(eng.tasks):
                if t.state == "S":
                    eng.k.sched.wake_up_process(t)
    while drain:
        with eng.lock:
            if eng.inbox:
                eng.take_raises()
            if eng.panic is not None or quiet(eng, me=caller(eng)):
                break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(DRAIN_POLL_S)
    with eng.lock:
        if eng.inbox:
            eng.take_raises()
        abandoned = pending_summary(eng, caller(eng))
        if timed_out:
            eng.k.log(None, "warn", f"irqflow: the drain timed out after {timeout} s")
        eng.halted = True  # from here no driver code starts
        eng.refuse = STOPPED
        eng.homes.clear()
        eng.fail_waiters()
        eng.notify_all()
    for th in eng.threads:
        if th is not me_thread:
            th.join(max(0.0, deadline - time.monotonic()) + 0.5)
    with eng.lock:
        in_driver = {ident for ident in eng.running}
    alive = [th for th in eng.threads if th.is_alive() and th is not me_thread]
    due_left = any(not what.endswith("not yet due") for what in abandoned)
    report = StopReport(
        drained=drain and not timed_out and not due_left,
        abandoned=abandoned,
        stuck_threads=tuple(th.name for th in alive if th.ident in in_driver),
        drain_requested=drain,
        timed_out=timed_out,
        caller=where,
        lingering_threads=tuple(th.name for th in alive if th.ident not in in_driver),
    )
    with eng.lock:
        eng.k.log(None, "info" if report.clean else "warn", f"irqflow: {report}")
    signals.machine_stopped(eng)
    eng.stopped.set()
    if eng.panic is not None:
        raise eng.panic
    return report
