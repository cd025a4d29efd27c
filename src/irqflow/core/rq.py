"""Per-CPU run queues (``struct rq``, kernel/sched/core.c): the scheduling classes in
priority order, and the bookkeeping they share.

From the top: the fair server (a deadline entity, 6.12+, only while it runs: see
:mod:`irqflow.core.sched_rt`), real-time (``fifo``/``rr``, rt_priority 1-99, strict
priority, FIFO among equals, RR slices of 100 ms), fair (``normal``, nice -20..19: EEVDF
or CFS, :mod:`irqflow.core.sched_fair`), then the idle task.  ``KernelConfig.fair_class``
picks the fair class and ``KernelConfig.rt_bandwidth`` what limits RT tasks.

The engine charges the running task's CPU time with :meth:`RunQueue.account` as it goes.
As in the kernel, the classes see that time only where ``update_curr`` runs: the
scheduler tick and the scheduler's own events (enqueue, dequeue, pick, wakeup); so a
deadline, an RT budget or the fair server's runtime is checked there, not in between.
(The old CFS class keeps its earlier rule: its virtual runtime advances at every charge.)
A wakeup from outside the CPU sees the running task's time as of the end of its last
busy stretch (the engine charges a stretch when it ends or is interrupted).

Pure state and decisions: :class:`irqflow.core.sched.Scheduler` and the engine call them;
:func:`bind_run_queues` gives them the machine once it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.sched_fair import NICE_0_LOAD, NICE_TO_WEIGHT, Cfs, Eevdf, base_slice_ns
from irqflow.core.sched_rt import RR_TIMESLICE_NS, FairServer, RtBandwidth

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.config import KernelConfig
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task

__all__ = ["NICE_0_LOAD", "NICE_TO_WEIGHT", "RR_TIMESLICE_NS", "RunQueue", "bind_run_queues"]


def bind_run_queues(k: KernelBase) -> None:
    """Connect every CPU's run queue to the machine (its CPU count sets the EEVDF base
    slice; the engine, if it runs the scheduler, carries the bandwidth timers)."""
    cfg = k.config
    rqs = [c.rq for c in k.cpus]
    shared = None
    if cfg.rt_bandwidth == "throttle" and k.engine.runs_scheduler:
        shared = RtBandwidth(rqs, cfg.rt_runtime_ns, cfg.rt_period_ns)
    for c in k.cpus:
        c.rq.bind(k, c, shared)


class RunQueue:
    """Runnable tasks of one CPU (the running one included) and its classes' state."""

    __slots__ = (
        "cfg",
        "cfs",
        "cpu",
        "eevdf",
        "idle_start",
        "k",
        "pending",
        "realized_at",
        "resched",
        "rt_tasks",
        "rt_throttled",
        "rt_time",
        "rtb",
        "running",
        "server",
    )

    def __init__(self, cfg: KernelConfig) -> None:
        self.cfg = cfg
        #: exactly one of the two fair classes
        self.eevdf: Eevdf | None = Eevdf(cfg, 1) if cfg.fair_class == "eevdf" else None
        self.cfs: Cfs | None = Cfs(cfg) if self.eevdf is None else None
        #: the queued RT tasks, in arrival order
        self.rt_tasks: list[Task] = []
        #: the task picked last (None: the idle task); the engine charges it
        self.running: Task | None = None
        #: ns charged to ``running`` since the last ``update_curr``
        self.pending = 0
        #: ``resched_curr()`` was called: the CPU should reschedule
        self.resched = False
        #: RT bandwidth (rt_bandwidth="throttle"): this CPU's ``rt_rq->rt_time`` and
        #: ``rt_throttled``; ``rtb`` is the machine's period timer
        self.rt_time = 0
        self.rt_throttled = False
        self.rtb: RtBandwidth | None = None
        #: the fair server (rt_bandwidth="fair_server")
        self.server: FairServer | None = None
        #: when the idle task was last picked (its ``se.exec_start``)
        self.idle_start = 0
        #: the fair-server timer expiry that has its own event
        self.realized_at = -1
        self.k: KernelBase | None = None
        self.cpu: Cpu | None = None

    def bind(self, k: KernelBase, c: Cpu, rtb: RtBandwidth | None) -> None:
        self.k = k
        self.cpu = c
        if self.eevdf is not None:
            self.eevdf.base_slice = base_slice_ns(len(k.cpus))
        self.rtb = rtb
        if self.cfg.rt_bandwidth == "fair_server" and k.engine.runs_scheduler:
            self.server = FairServer(self)

    # --- services for the classes -------------------------------------------------------
    def _now(self) -> int:
        return self.k.engine.now if self.k is not None else 0

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """An hrtimer: ``fn(*args)`` at ``t_ns`` (outside any CPU)."""
        if self.k is not None:
            self.k.engine.call_at(t_ns, fn, *args)

    def log(self, text: str) -> None:
        if self.k is not None:
            self.k.log(self.cpu, "warn", text)

    def _deliver_resched(self, t: Task | None = None) -> None:
        """``resched_curr()`` from outside the CPU's flow (a timer): set need_resched and
        make the CPU notice."""
        c = self.cpu
        if c is None or self.k is None:
            return
        c.need_resched = True
        self.k.engine.kick(c, t or c.current)

    def rt_unthrottled(self) -> None:
        """``sched_rt_rq_enqueue``: the period timer let this CPU's RT tasks go;
        reschedule if the best of them outranks what runs."""
        c = self.cpu
        best = self._best_rt()
        if c is None or best is None:
            return
        cur = c.current
        if cur is c.idle_task or not cur.is_rt or best.rt_priority > cur.rt_priority:
            self._deliver_resched(best)

    def server_timer_armed(self) -> None:
        """The fair server's timer was (re)armed, or a tick came: if it expires before
        the next tick, give it its own event (see :mod:`irqflow.core.sched_rt`)."""
        srv = self.server
        if srv is None or srv.timer_at is None or srv.timer_at == self.realized_at:
            return
        if srv.timer_at - self._now() <= self.cfg.tick_period_ns:
            self.realized_at = srv.timer_at
            self.call_at(srv.timer_at, self._server_event, srv.timer_at)

    def _server_event(self, expiry: int) -> None:
        srv = self.server
        if srv is None or srv.timer_at != expiry:
            return  # fired already, or cancelled
        self._sync(expiry)
        if self.resched:
            self.resched = False
            self._deliver_resched()

    def fair_nr(self) -> int:
        """Fair tasks queued (``cfs_rq->nr_running``: EEVDF's delayed sleepers too)."""
        if self.eevdf is not None:
            return len(self.eevdf)
        assert self.cfs is not None
        return len(self.cfs.queue)

    # --- update_curr --------------------------------------------------------------------
    def _sync(self, now: int) -> None:
        """Run the bandwidth timers that expired by ``now``."""
        if self.rtb is not None:
            self.rtb.catch_up(now)
        srv = self.server
        if srv is not None and srv.timer_at is not None and srv.timer_at <= now:
            srv.run_timers(now)

    def _update_curr(self, now: int, fair_only: bool = False) -> None:
        """``update_curr``: bring the running task's class up to date with the time
        charged since the last call (``fair_only``: only if it is a fair task, as
        ``update_curr(cfs_rq)`` on an enqueue or wakeup)."""
        self._sync(now)
        delta = self.pending
        t = self.running
        if not delta or t is None:
            self.pending = 0
            return
        if t.is_rt:
            if fair_only:
                return
            self.pending = 0
            rtb = self.rtb
            if rtb is not None:  # update_curr_rt
                self.rt_time += delta
                if rtb.exceeded(self):
                    self.resched = True
            return
        self.pending = 0
        if self.eevdf is not None and self.eevdf.update_curr(delta):
            self.resched = True
        srv = self.server
        if srv is not None and srv.active:
            srv.update(delta, now)

    def _take_resched(self) -> bool:
        r = self.resched
        self.resched = False
        return r

    # --- what the engine and the Scheduler call ---------------------------------------------
    def __len__(self) -> int:
        """Tasks that could be picked: RT ones unless throttled, fair ones unless
        delayed sleepers."""
        if self.eevdf is not None:
            fair = self.eevdf.runnable
        else:
            assert self.cfs is not None
            fair = len(self.cfs.queue)
        return fair + (0 if self.rt_throttled else len(self.rt_tasks))

    def account(self, t: Task, ns: int) -> None:
        """The running task ``t`` used ``ns`` more of the CPU (the engine calls this)."""
        t.sum_exec += ns
        self.pending += ns
        if self.cfs is not None and t.policy == "normal":
            t.vruntime += ns * NICE_0_LOAD // t.weight

    def enqueue(self, t: Task, *, wakeup: bool) -> None:
        """``enqueue_task``: ``t`` is runnable (``wakeup``: woken, else new)."""
        if t.on_rq:
            return
        now = self._now()
        self._sync(now)
        t.on_rq = True
        if t.is_rt:
            self.rt_tasks.append(t)
            if self.rtb is not None:
                self.rtb.start(now)  # inc_rt_group → start_rt_bandwidth
            return
        was = self.fair_nr()
        idle = not was and not self.rt_tasks
        eevdf = self.eevdf
        if eevdf is not None:
            se = t.se
            if se.delayed:
                holder = se.holder
                if holder is eevdf:  # ttwu_runnable: still queued here
                    eevdf.requeue_delayed(t)
                    return
                if isinstance(holder, Eevdf):  # it moved while delayed: leave there first
                    self._drop_delayed_elsewhere(t)
            self._update_curr(now, fair_only=True)
            eevdf.enqueue(t, initial=not wakeup)
        else:
            assert self.cfs is not None
            self.cfs.enqueue(t, wakeup)
        srv = self.server
        if srv is not None and not was:
            if idle and self.running is None:
                srv.update_idle_time(now - self.idle_start)
                self.idle_start = now
            srv.start(now)

    def _drop_delayed_elsewhere(self, t: Task) -> None:
        if self.k is None:
            return
        for c in self.k.cpus:
            rq = c.rq
            if rq.eevdf is not None and t.se.holder is rq.eevdf:
                now = rq._now()
                rq._update_curr(now, fair_only=True)
                rq.eevdf.finish_delayed(t)
                rq._fair_left()

    def _fair_left(self) -> None:
        """A fair task left; if it was the last one, the fair server stops."""
        if self.server is not None and not self.fair_nr():
            self.server.stop()

    def dequeue(self, t: Task) -> None:
        """``dequeue_task``: ``t`` sleeps (``state`` S) or has exited (X)."""
        if not t.on_rq:
            return
        now = self._now()
        t.on_rq = False
        if t.is_rt:
            self._update_curr(now)  # dequeue_task_rt → update_curr_rt
            self.rt_tasks.remove(t)
            return
        self._update_curr(now, fair_only=True)
        if self.eevdf is not None:
            self.eevdf.dequeue(t, sleep=t.state != "X")
        else:
            assert self.cfs is not None
            self.cfs.dequeue(t)
        self._fair_left()

    def _best_rt(self) -> Task | None:
        """Highest RT priority; the earliest queued among equals."""
        best = None
        for t in self.rt_tasks:
            if best is None or t.rt_priority > best.rt_priority:
                best = t
        return best

    def _pick_fair(self) -> Task | None:
        if self.eevdf is None:
            assert self.cfs is not None
            return self.cfs.pick_next()
        was = len(self.eevdf)
        t = self.eevdf.pick_next()
        if was and not len(self.eevdf):
            self._fair_left()  # the last ones were delayed sleepers
        return t

    def pick_next(self) -> Task | None:
        """``pick_next_task``: the fair server's fair task if it is queued, else the
        highest RT task unless throttled, else the fair class's pick; None: idle."""
        now = self._now()
        self._update_curr(now)
        self.resched = False
        prev = self.running
        nxt: Task | None = None
        srv = self.server
        if srv is not None and srv.queued:
            nxt = self._pick_fair()
        if nxt is None and not self.rt_throttled and self.rt_tasks:
            nxt = self._best_rt()
            if self.eevdf is not None:
                self.eevdf.put_prev()
        if nxt is None:
            nxt = self._pick_fair()
        if nxt is None:
            if prev is not None:
                self.idle_start = now  # set_next_task_idle
        elif prev is None and srv is not None:
            srv.update_idle_time(now - self.idle_start)  # put_prev_task_idle
        self.running = nxt
        return nxt

    def requeue_rt_tail(self, t: Task) -> None:
        """Round-robin rotation among equal real-time priorities (sched_yield, rr slice)."""
        if t in self.rt_tasks:
            self.rt_tasks.remove(t)
            self.rt_tasks.append(t)

    def rt_tick(self, now: int) -> bool:
        """The bandwidth side of the tick: expired timers run; True if the CPU should
        reschedule."""
        self._sync(now)
        self.server_timer_armed()
        return self._take_resched()

    def tick_should_preempt(self, curr: Task) -> bool:
        """``sched_tick`` → ``task_tick``: should ``curr`` give up the CPU?"""
        self._update_curr(self._now())
        if curr.is_rt:
            if self._take_resched():
                return True  # out of RT bandwidth
            if curr.policy == "rr" and curr.sum_exec - curr.exec_start_sum >= RR_TIMESLICE_NS:
                peers = [
                    t for t in self.rt_tasks if t is not curr and t.rt_priority == curr.rt_priority
                ]
                if peers:
                    self.requeue_rt_tail(curr)
                    return True
            return False  # fifo runs until it blocks or a higher priority wakes
        if self._take_resched():
            return True
        srv = self.server
        if self.rt_tasks and not self.rt_throttled and not (srv is not None and srv.queued):
            return True  # an RT task waits (its wakeup asked for the CPU already)
        if self.cfs is not None:
            return self.cfs.tick_preempt(curr)
        return False

    def _is_idle_task(self, t: Task) -> bool:
        c = self.cpu
        return t is c.idle_task if c is not None else t.policy == "idle"

    def wakeup_should_preempt(self, curr: Task, woken: Task) -> bool:
        """``wakeup_preempt``: should ``woken`` (just queued) take the CPU from
        ``curr``?"""
        now = self._now()
        self._sync(now)
        if self._take_resched() or self._is_idle_task(curr):
            return True
        if woken.is_rt:
            if self.rt_throttled:
                return False
            if curr.is_rt:
                return woken.rt_priority > curr.rt_priority
            srv = self.server
            return not (srv is not None and srv.queued)  # the server outranks RT
        if curr.is_rt:
            return False
        if self.cfs is not None:
            return self.cfs.wakeup_preempt(curr, woken)
        assert self.eevdf is not None
        self._update_curr(now, fair_only=True)
        return self.eevdf.wakeup_preempt(woken) or self._take_resched()
