"""Workqueues, the seed's model: one worker thread per CPU per queue (kernel/workqueue.c,
2.6.0-2.6.35 design; ``KernelConfig(workqueue_model="per-cpu-threads")``).

``create_workqueue(name)`` starts a kernel thread ``<name>/<cpu>`` on every CPU (the
default queue ``events`` gives ``events/0``, ``events/1`` ...); a single-thread or ordered
queue has one thread, ``<name>``, using CPU 0's list.  ``queue_work`` appends the item to
the *submitting* CPU's list (FIFO) and wakes that CPU's worker.  The worker clears the
item's PENDING bit and then calls ``func(work)`` in process context, where it may sleep
(``async def`` work functions ``await k.msleep(...)``).  A sleeping item stalls the items
behind it on that CPU's list: there is exactly one thread per CPU, which is what the
concurrency-managed design (cmwq) later fixed.  As in that era, an item requeued on
another CPU while it runs may run there concurrently.

Workers run at nice -5 (2.6.11) and count as system time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.cmwq import WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, Cmwq
from irqflow.core.constants import (
    HI_SOFTIRQ,
    TASKLET_SOFTIRQ,
    WQ_BH,
    WQ_HIGHPRI,
    WQ_MEM_RECLAIM,
    WQ_UNBOUND,
)
from irqflow.core.cpu import IRQ_WORK_VECTOR
from irqflow.core.errors import IrqflowError, claim, refuse_async
from irqflow.core.kthread import symbol_name
from irqflow.core.softirq import raise_softirq_irqoff
from irqflow.core.timer import Timer

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task

#: 2.6.11 create_workqueue: worker threads at nice -5
WORKER_NICE = -5
WORK_STRUCT_PENDING = 1 << 0
#: include/linux/workqueue.h: the "any CPU" of queue_work() (NR_CPUS; 8192 on distro
#: kernels), traced as workqueue_queue_work's req_cpu
WORK_CPU_UNBOUND = 8192
#: kernel/workqueue.c bh_worker: at most this many items per pass, and for at most
#: msecs_to_jiffies(BH_WORKER_MSECS) jiffies
BH_WORKER_RESTARTS = 10
BH_WORKER_MSECS = 2


class Work:
    """``struct work_struct``: ``func(work)`` runs in a worker thread (process context)."""

    __slots__ = (
        "cpu",
        "exec_ts",
        "func",
        "name",
        "owner",
        "pwq",
        "queue_ts",
        "queued",
        "running",
        "runs",
        "state",
        "where",
        "wq",
    )  # fmt: skip

    def __init__(self, func: Callable[[Any], Any], *, name: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Work(func={func!r}): func must be callable as func(work)")
        self.func = func
        self.name = name or symbol_name(func)
        self.where = f"work {self.name}"
        #: the machine it serves (set on first use)
        self.owner: object = None
        self.state = 0
        #: how many instances are running right now (more than 1 only across CPUs)
        self.running = 0
        self.runs = 0
        #: times it was queued (a queue while PENDING is not counted)
        self.queued = 0
        self.wq: Workqueue | None = None
        self.cpu = 0
        #: cmwq: the pool_workqueue it was last queued through
        self.pwq: Any = None
        #: when it was last queued and last started (latency histograms)
        self.queue_ts = 0
        self.exec_ts = 0

    @property
    def pending(self) -> bool:
        return bool(self.state & WORK_STRUCT_PENDING)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pending={self.pending} running={self.running}>"


class DelayedWork(Work):
    """``struct delayed_work``: a work item queued by a timer ``delay`` jiffies later."""

    __slots__ = ("timer",)

    def __init__(self, func: Callable[[Any], Any], *, name: str | None = None) -> None:
        super().__init__(func, name=name)
        self.timer = Timer(self._fire, name=f"delayed_work_timer_fn {self.name}")

    def _fire(self, data: Any) -> None:
        # delayed_work_timer_fn: queue on the CPU the timer ran on (set by the kernel)
        assert self.wq is not None
        self.wq.kernel.wq.insert(self.wq, self, WORK_CPU_UNBOUND)


class Workqueue:
    """A workqueue with its worker threads and per-CPU lists."""

    def __init__(
        self,
        kernel: KernelBase,
        name: str,
        flags: int,
        single: bool,
        *,
        cmwq: bool = False,
        max_active: int = 1,
        ordered: bool = False,
    ) -> None:
        self.kernel = kernel
        self.name = name
        self.flags = flags
        self.single = single or cmwq
        #: cmwq: the limit of active items per pool_workqueue, and strict ordering
        self.cmwq = cmwq
        self.max_active = max_active
        self.ordered = ordered
        self.pwqs: dict[int, Any] = {}
        n = 1 if self.single else len(kernel.cpus)
        self.lists: list[deque[Work]] = [deque() for _ in range(n)]
        #: per list: items inserted / finished (flush_workqueue waits on these)
        self.inserted = [0] * n
        self.finished = [0] * n
        self.workers: list[Task] = []
        #: per list: its thread sleeps on ``more_work`` (waiting for an item), the only
        #: sleep queue_work wakes it from (not one inside a work function: an msleep);
        #: a new thread waits for its first item
        self.waiting = [True] * n
        self.destroyed = False
        #: what tools/workqueue/wq_monitor.py shows: items started and completed, items
        #: marked CPU_INTENSIVE for hogging a CPU (cmwq), and workers woken by concurrency
        #: management (a counted worker slept or was marked)
        self.stats = {"started": 0, "completed": 0, "cpu_intensive": 0, "cm_wakeup": 0}

    def __repr__(self) -> str:
        return f"<Workqueue {self.name} threads={len(self.workers)}>"


def worker_thread(k: KernelBase, wq: Workqueue, i: int) -> None:
    """``worker_thread`` (2.6.11): run the list's items in FIFO order, sleep when empty."""
    lst = wq.lists[i]
    c = k._this_cpu("worker_thread")
    while True:
        if not lst:
            if wq.destroyed:
                return
            wq.waiting[i] = True
            k.sched.block(c, "S")  # 2.6 worker_thread: TASK_INTERRUPTIBLE on more_work
            continue
        w = lst.popleft()
        w.state &= ~WORK_STRUCT_PENDING  # cleared before the call (invariant 47)
        w.running += 1
        wq.stats["started"] += 1
        k.wq.trace_exec(w, "start")
        k._run_in_task(c, w.func, (w,), w.where)
        k.wq.trace_exec(w, "end")
        w.running -= 1
        w.runs += 1
        wq.stats["completed"] += 1
        wq.finished[i] += 1
        k.sched.cond_resched(c)


class Workqueues:
    """Every workqueue, the worker threads or pools behind them, and the calls that queue,
    flush and cancel work."""

    system_wq: Workqueue
    system_bh_wq: Workqueue
    system_bh_highpri_wq: Workqueue

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        self.workqueues: list[Workqueue] = []
        #: the concurrency-managed pools (``workqueue_model="cmwq"``), else None
        self.cmwq = Cmwq(k) if k.config.workqueue_model == "cmwq" else None
        #: the BH pools, as (cpu, highpri), whose bh_worker pass is under way
        self.bh_running: set[tuple[int, bool]] = set()

    def boot(self) -> None:
        """The system workqueues (``workqueue_init_early``)."""
        self.system_wq = (
            self.alloc_workqueue("events") if self.cmwq else self.create_workqueue("events")
        )
        self.system_bh_wq = self.alloc_workqueue("events_bh", WQ_BH)
        self.system_bh_highpri_wq = self.alloc_workqueue("events_bh_highpri", WQ_BH | WQ_HIGHPRI)

    def _new_wq(
        self, name: str, flags: int, single: bool, max_active: int = 0, ordered: bool = False
    ) -> Workqueue:
        if not isinstance(name, str) or not name:
            raise IrqflowError(f"workqueue name {name!r}: give a non-empty string")
        if (not isinstance(max_active, int) or isinstance(max_active, bool)
                or not 0 <= max_active <= WQ_MAX_ACTIVE):  # fmt: skip
            raise IrqflowError(
                f"alloc_workqueue({name!r}, max_active={max_active!r}): max_active is out of "
                f"range; give 1..{WQ_MAX_ACTIVE} (WQ_MAX_ACTIVE), or 0 for the default "
                f"{WQ_DFL_ACTIVE} (WQ_DFL_ACTIVE).  The kernel would clamp it with a warning; "
                "irqflow refuses it"
            )
        k = self.k
        if self.cmwq is not None:
            active = max_active or WQ_DFL_ACTIVE
            wq = Workqueue(k, name, flags, True, cmwq=True, max_active=active, ordered=ordered)
        else:
            wq = Workqueue(k, name, flags, single)
            for i in range(len(wq.lists)):
                comm = name if single else f"{name}/{i}"
                wq.workers.append(
                    k.sched.spawn(comm, i, _worker_body(k, wq, i), nice=WORKER_NICE, start=False)
                )
        self.workqueues.append(wq)
        return wq

    def create_workqueue(self, name: str) -> Workqueue:
        """Per-CPU threads ``<name>/<cpu>`` (per-cpu-threads model); under cmwq the legacy
        macro: max_active 1 per CPU."""
        return self._new_wq(name, WQ_MEM_RECLAIM, single=False, max_active=1)

    def create_singlethread_workqueue(self, name: str) -> Workqueue:
        """One worker thread, ``<name>``, for all CPUs (cmwq: an ordered queue): items run
        one at a time, in order."""
        return self.alloc_ordered_workqueue(name)

    def alloc_ordered_workqueue(self, name: str, flags: int = 0) -> Workqueue:
        """At most one item at a time, in queueing order (invariant 52)."""
        return self._new_wq(name, flags | WQ_UNBOUND, single=True, max_active=1, ordered=True)

    def alloc_workqueue(self, name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
        if flags & WQ_BH:
            if flags & ~(WQ_BH | WQ_HIGHPRI) or max_active:
                raise IrqflowError(
                    f"alloc_workqueue({name!r}, WQ_BH): a BH workqueue may only add "
                    "WQ_HIGHPRI, and max_active must be 0"
                )
            return self._new_bh_wq(name, flags)
        # cmwq: a queue onto the per-CPU (or, with WQ_UNBOUND, unbound) pools with at most
        # max_active items active per CPU (WQ_UNBOUND: in all), 0 meaning 1024.  The
        # per-cpu-threads model: per-CPU threads, or one thread with WQ_UNBOUND or
        # max_active=1.
        single = bool(flags & WQ_UNBOUND) or max_active == 1
        return self._new_wq(name, flags, single=single, max_active=max_active)

    def _new_bh_wq(self, name: str, flags: int) -> Workqueue:
        wq = Workqueue(self.k, name, flags, True)
        self.workqueues.append(wq)
        return wq

    # --- BH workqueues (6.9+) ------------------------------------------------------------
    def _kick_bh(self, c: Cpu, hi: bool) -> None:
        """``kick_pool`` of a BH pool: raise its softirq (by irq_work on another CPU),
        unless its bh_worker pass is under way: that pass takes the item."""
        if (c.nr, hi) in self.bh_running:
            return
        k = self.k
        if k.engine.current_cpu is c:
            raise_softirq_irqoff(k, c, HI_SOFTIRQ if hi else TASKLET_SOFTIRQ)
        else:
            k.engine.call_at(k.engine.now, _raise_on, k, c, hi)

    def softirq_action(self, c: Cpu, hi: bool) -> None:
        """``workqueue_softirq_action``: the start of ``tasklet_action`` (``hi``:
        ``tasklet_hi_action``) runs the CPU's BH pool, ``bh_worker``: items in queueing
        order, including those queued meanwhile, while fewer than BH_WORKER_RESTARTS have
        run and jiffies has not reached msecs_to_jiffies(2) past the start.  Leftover
        work re-raises the softirq, which goes on in the restart loop or in ksoftirqd."""
        bh = c.bh_work[hi]
        if not bh:
            return
        k = self.k
        key = (c.nr, hi)
        restarts = BH_WORKER_RESTARTS
        end = k.jiffies + k.config.msecs_to_jiffies(BH_WORKER_MSECS)
        self.bh_running.add(key)
        try:
            while True:
                w, wq = bh.popleft()
                w.state &= ~WORK_STRUCT_PENDING
                w.running += 1
                wq.stats["started"] += 1
                self.trace_exec(w, "start")
                k._call(c, w.func, (w,), f"bh work {w.name}")
                self.trace_exec(w, "end")
                w.running -= 1
                w.runs += 1
                wq.stats["completed"] += 1
                wq.finished[0] += 1
                restarts -= 1
                if not (bh and restarts and k.jiffies < end):
                    break
        finally:
            self.bh_running.discard(key)
        if bh:
            self._kick_bh(c, hi)

    # --- the scheduler's hooks (cmwq concurrency management) -----------------------------
    def worker_running(self, t: Task) -> None:
        """``wq_worker_running``: a worker task woke up."""
        if self.cmwq is not None:
            self.cmwq.worker_running(t.wq_worker)

    def worker_sleeping(self, t: Task) -> None:
        """``wq_worker_sleeping``: a worker task is going to sleep."""
        if self.cmwq is not None:
            self.cmwq.worker_sleeping(t.wq_worker)

    def worker_tick(self, t: Task) -> None:
        """``wq_worker_tick``: a worker task was running at the tick."""
        if self.cmwq is not None:
            self.cmwq.worker_tick(t.wq_worker)

    # --- tracepoints shared by both models ----------------------------------------------
    def trace_queue(self, wq: Workqueue, w: Work, req_cpu: int, cpu: int) -> None:
        w.queue_ts = self.k.engine.now
        if self.k.tracing:
            fields = {"work": w.name, "function": symbol_name(w.func), "workqueue": wq.name,
                      "req_cpu": req_cpu, "cpu": cpu}  # fmt: skip
            self.k.trace.emit(self.k.engine.current_cpu or self.k.cpus[0],
                            "workqueue:workqueue_queue_work", fields)  # fmt: skip

    def trace_activate(self, w: Work) -> None:
        if self.k.tracing:
            self.k.trace.emit(self.k.engine.current_cpu or self.k.cpus[0],
                            "workqueue:workqueue_activate_work",
                            {"work": w.name, "function": symbol_name(w.func)})  # fmt: skip

    def trace_exec(self, w: Work, which: str) -> None:
        now = self.k.engine.now
        wq_name = w.wq.name if w.wq is not None else "?"
        if which == "start":
            self.k.lat.hist("work queue->start", wq_name).add(now - w.queue_ts)
            w.exec_ts = now
        else:
            self.k.lat.hist("work", wq_name).add(now - w.exec_ts)
        c = self.k.engine.current_cpu
        if self.k.tracing and c is not None:
            self.k.trace.emit(c, f"workqueue:workqueue_execute_{which}",
                            {"work": w.name, "function": symbol_name(w.func)})  # fmt: skip

    def work_cpu(self) -> int:
        c = self.k.engine.current_cpu
        return c.nr if c is not None else 0

    def _check_work(self, w: Any, what: str) -> Work:
        if not isinstance(w, Work):
            raise TypeError(f"{what}: expected an irqflow.Work, got {w!r}")
        return w

    def insert(self, wq: Workqueue, w: Work, req_cpu: int) -> None:
        """``__queue_work``: PENDING is already set.  ``req_cpu`` is the CPU asked for,
        or WORK_CPU_UNBOUND for the current one (CPU 0 from outside the machine)."""
        cpu = self.work_cpu() if req_cpu == WORK_CPU_UNBOUND else req_cpu
        if wq.flags & WQ_BH:
            # BH workqueue: the queueing CPU's BH pool, run from TASKLET/HI_SOFTIRQ
            hi = bool(wq.flags & WQ_HIGHPRI)
            c = self.k.cpus[cpu]
            w.wq, w.cpu = wq, cpu
            w.queued += 1
            wq.inserted[0] += 1
            self.trace_queue(wq, w, req_cpu, cpu)
            self.trace_activate(w)
            c.bh_work[hi].append((w, wq))
            self._kick_bh(c, hi)
            return
        if self.cmwq is not None:
            self.cmwq.queue(wq, w, cpu, req_cpu)
            return
        i = 0 if wq.single else cpu
        w.wq = wq
        w.cpu = i
        w.queued += 1
        wq.lists[i].append(w)
        wq.inserted[i] += 1
        self.trace_queue(wq, w, req_cpu, i)
        self.trace_activate(w)
        if wq.waiting[i]:
            wq.waiting[i] = False  # wake_up(&cwq->more_work) takes it off the wait queue
            self.k.sched.wake_up_process(wq.workers[i])

    def queue_work_on(self, cpu: int, wq: Workqueue, w: Work) -> bool:
        """Queue ``w`` on ``cpu``'s list of ``wq``; False if it was already pending."""
        self._check_work(w, "queue_work_on")
        if not isinstance(wq, Workqueue) or wq.destroyed:
            raise IrqflowError(f"queue_work({w.name}): {wq!r} is not a live workqueue")
        if wq.kernel is not self.k:
            raise IrqflowError(
                f"queue_work({wq.name}, {w.name}): the workqueue belongs to another Kernel; "
                "queue on this machine's own (k.system_wq, k.alloc_workqueue(...))"
            )
        if w.owner is not self.k:
            claim(w, self.k, f"queue_work({wq.name}, {w.name})")
        if cpu != WORK_CPU_UNBOUND and (
            not isinstance(cpu, int) or not 0 <= cpu < len(self.k.cpus)
        ):
            raise IrqflowError(
                f"queue_work_on({cpu!r}, {wq.name}, {w.name}): this machine's CPUs are "
                f"0..{len(self.k.cpus) - 1}; give one of them, or queue_work() (or "
                f"WORK_CPU_UNBOUND, {WORK_CPU_UNBOUND}) for the current CPU"
            )
        if wq.flags & WQ_BH:
            refuse_async(w.func, f"queue_work({wq.name}, {w.name})", "softirq (a BH workqueue)")
        if w.state & WORK_STRUCT_PENDING:
            return False  # invariant 46: no side effects
        w.state |= WORK_STRUCT_PENDING
        self.insert(wq, w, cpu)
        return True

    def queue_work(self, wq: Workqueue, w: Work) -> bool:
        """Queue on the submitting CPU (CPU 0 from outside the machine); traced with
        ``req_cpu`` WORK_CPU_UNBOUND, as the kernel's queue_work() does."""
        return self.queue_work_on(WORK_CPU_UNBOUND, wq, w)

    def schedule_work(self, w: Work) -> bool:
        """``queue_work(system_wq, w)``: the ``events`` queue."""
        return self.queue_work(self.system_wq, w)

    def queue_delayed_work(self, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
        """Queue ``dw`` ``delay`` jiffies from now (0: at once); False if already pending."""
        if not isinstance(dw, DelayedWork):
            raise TypeError(f"queue_delayed_work: expected an irqflow.DelayedWork, got {dw!r}")
        if not isinstance(delay, int) or delay < 0:
            raise IrqflowError(f"queue_delayed_work({dw.name}, {delay!r}): delay is jiffies >= 0")
        if dw.state & WORK_STRUCT_PENDING:
            return False
        if delay == 0:
            return self.queue_work(wq, dw)  # invariant 55: no timer for delay 0
        dw.state |= WORK_STRUCT_PENDING
        dw.wq = wq
        c = self.k.engine.current_cpu or self.k.cpus[0]
        self.k.timers.arm(c, dw.timer, self.k.jiffies + delay)
        return True

    def schedule_delayed_work(self, dw: DelayedWork, delay: int) -> bool:
        return self.queue_delayed_work(self.system_wq, dw, delay)

    def mod_delayed_work(self, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
        """Re-arm ``dw`` (pending or not) ``delay`` jiffies from now; True if it was pending."""
        was = self._steal(dw)
        self.queue_delayed_work(wq, dw, delay)
        return was

    def _steal(self, w: Work) -> bool:
        """Take PENDING away: off its timer or its list.  True if it was pending."""
        if not w.state & WORK_STRUCT_PENDING:
            return False
        if isinstance(w, DelayedWork) and w.timer.pending:
            w.timer.pending = False
        elif w.wq is not None and w.wq.flags & WQ_BH:
            lst = self.k.cpus[w.cpu].bh_work[bool(w.wq.flags & WQ_HIGHPRI)]
            for item in list(lst):
                if item[0] is w:
                    lst.remove(item)
                    w.wq.finished[0] += 1
        elif self.cmwq is not None:
            self.cmwq.steal(w)
        elif w.wq is not None and w in w.wq.lists[w.cpu]:
            w.wq.lists[w.cpu].remove(w)
            w.wq.finished[w.cpu] += 1  # it leaves the list: flushes do not wait for it
        w.state &= ~WORK_STRUCT_PENDING
        return True

    def flush_work(self, w: Work) -> Any:
        """Wait until the last queued instance of ``w`` has run; False if it was idle."""
        self._check_work(w, "flush_work")
        if not w.state & WORK_STRUCT_PENDING and not w.running:
            return self.k._ready(self.k.engine.current_cpu, False)
        return self.k._wait(
            lambda: not w.state & WORK_STRUCT_PENDING and not w.running,
            f"flush_work({w.name})",
            True,
        )

    def cancel_work_sync(self, w: Work) -> Any:
        """Cancel a pending ``w`` and wait for a running one; returns whether it was
        pending.  On return it is neither pending nor running (invariant 56)."""
        self._check_work(w, "cancel_work_sync")
        was = self._steal(w)
        return self.k._wait(lambda: not w.running, f"cancel_work_sync({w.name})", was)

    def cancel_delayed_work_sync(self, dw: DelayedWork) -> Any:
        return self.cancel_work_sync(dw)

    def flush_workqueue(self, wq: Workqueue) -> Any:
        """Wait for every item queued on ``wq`` before this call (later ones don't count)."""
        marks = list(wq.inserted)
        return self.k._wait(
            lambda: all(f >= m for f, m in zip(wq.finished, marks, strict=True)),
            f"flush_workqueue({wq.name})",
        )

    def pending_work_count(self) -> int:
        """Work items queued or running, over every workqueue."""
        return sum(
            i - f for wq in self.workqueues for i, f in zip(wq.inserted, wq.finished, strict=True)
        )

    def drain_workqueue(self, wq: Workqueue) -> Any:
        """Flush until ``wq`` is empty, including items its own items queue."""
        while any(i != f for i, f in zip(wq.inserted, wq.finished, strict=True)):
            self.flush_workqueue(wq)
        return self.k._ready(self.k.engine.current_cpu, None)

    def destroy_workqueue(self, wq: Workqueue) -> None:
        """Drain ``wq`` and stop its threads."""
        if wq is self.system_wq:
            raise IrqflowError("destroy_workqueue(events): the system workqueue stays")
        self.drain_workqueue(wq)
        wq.destroyed = True
        for i, t in enumerate(wq.workers):
            if wq.waiting[i]:
                wq.waiting[i] = False
                self.k.sched.wake_up_process(t)


def _worker_body(k: KernelBase, wq: Workqueue, i: int) -> Callable[[], None]:
    return lambda: worker_thread(k, wq, i)


def _raise_on(k: KernelBase, c: Cpu, hi: bool) -> None:
    """irq_work on another CPU: mark the BH pool's vector pending there and send the IPI,
    whose irq_exit runs it."""
    raise_softirq_irqoff(k, c, HI_SOFTIRQ if hi else TASKLET_SOFTIRQ, wake=False)
    c.irr[IRQ_WORK_VECTOR] = None
    k.engine.deliver(c)
