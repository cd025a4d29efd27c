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
from typing import TYPE_CHECKING, Any, cast

from irqflow.core.base import KernelBase
from irqflow.core.cmwq import WQ_DFL_ACTIVE, WQ_MAX_ACTIVE, Cmwq
from irqflow.core.constants import WQ_BH, WQ_HIGHPRI, WQ_MEM_RECLAIM, WQ_UNBOUND
from irqflow.core.cpu import IRQ_WORK_VECTOR
from irqflow.core.errors import IrqflowError, refuse_async
from irqflow.core.kthread import symbol_name
from irqflow.core.softirq import raise_softirq_irqoff
from irqflow.core.timer import Timer, arm

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore
    from irqflow.core.sched import Task

#: 2.6.11 create_workqueue: worker threads at nice -5
WORKER_NICE = -5
WORK_STRUCT_PENDING = 1 << 0


class Work:
    """``struct work_struct``: ``func(work)`` runs in a worker thread (process context)."""

    __slots__ = (
        "cpu", "exec_ts", "func", "name", "pwq", "queue_ts", "queued", "running", "runs", "state",
        "where", "wq",
    )  # fmt: skip

    def __init__(self, func: Callable[[Any], Any], *, name: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Work(func={func!r}): func must be callable as func(work)")
        self.func = func
        self.name = name or symbol_name(func)
        self.where = f"work {self.name}"
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
        self.wq._kernel._insert(self.wq, self, self.wq._kernel._work_cpu())


class Workqueue:
    """A workqueue with its worker threads and per-CPU lists."""

    def __init__(
        self,
        kernel: KernelCore,
        name: str,
        flags: int,
        single: bool,
        *,
        cmwq: bool = False,
        max_active: int = 1,
        ordered: bool = False,
    ) -> None:
        self._kernel = kernel
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
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<Workqueue {self.name} threads={len(self.workers)}>"


def worker_thread(k: KernelCore, wq: Workqueue, i: int) -> None:
    """``worker_thread`` (2.6.11): run the list's items in FIFO order, sleep when empty."""
    lst = wq.lists[i]
    c = k._this_cpu("worker_thread")
    while True:
        if not lst:
            if wq.destroyed:
                return
            k._block(c)
            continue
        w = lst.popleft()
        w.state &= ~WORK_STRUCT_PENDING  # cleared before the call (invariant 47)
        w.running += 1
        k._wq_trace_exec(w, "start")
        k._run_in_task(c, w.func, (w,), w.where)
        k._wq_trace_exec(w, "end")
        w.running -= 1
        w.runs += 1
        wq.finished[i] += 1
        k._cond_resched(c)


class WorkqueueMixin(KernelBase):
    """The workqueue calls of ``KernelCore``."""

    system_wq: Workqueue
    system_bh_wq: Workqueue
    system_bh_highpri_wq: Workqueue
    _workqueues: list[Workqueue]
    _cmwq: Cmwq | None

    def _init_workqueues(self) -> None:
        self._workqueues = []
        self._cmwq = (
            Cmwq(cast("KernelCore", self)) if self.config.workqueue_model == "cmwq" else None
        )
        self.system_wq = (
            self.alloc_workqueue("events") if self._cmwq else self.create_workqueue("events")
        )
        self.system_bh_wq = self.alloc_workqueue("events_bh", WQ_BH)
        self.system_bh_highpri_wq = self.alloc_workqueue("events_bh_highpri", WQ_BH | WQ_HIGHPRI)

    def _new_wq(
        self, name: str, flags: int, single: bool, max_active: int = 0, ordered: bool = False
    ) -> Workqueue:
        if not isinstance(name, str) or not name:
            raise IrqflowError(f"workqueue name {name!r}: give a non-empty string")
        if not isinstance(max_active, int) or max_active < 0:
            raise IrqflowError(f"alloc_workqueue({name!r}, max_active={max_active!r}): use >= 0")
        k = cast("KernelCore", self)
        if self._cmwq is not None:
            active = max_active or WQ_DFL_ACTIVE
            if active > WQ_MAX_ACTIVE:
                self.log(None, "warn", f"workqueue: max_active {active} requested for {name} "
                         f"is out of range, clamping between 1 and {WQ_MAX_ACTIVE}")  # fmt: skip
                active = WQ_MAX_ACTIVE
            wq = Workqueue(k, name, flags, True, cmwq=True, max_active=active, ordered=ordered)
        else:
            wq = Workqueue(k, name, flags, single)
            for i in range(len(wq.lists)):
                comm = name if single else f"{name}/{i}"
                wq.workers.append(
                    k._spawn(comm, i, _worker_body(k, wq, i), nice=WORKER_NICE, start=False)
                )
        self._workqueues.append(wq)
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
        """cmwq: a queue onto the per-CPU (or, with ``WQ_UNBOUND``, unbound) pools with at
        most ``max_active`` items active per pool (0: 1024).  per-cpu-threads model:
        per-CPU threads, or one thread with ``WQ_UNBOUND`` or ``max_active=1``."""
        single = bool(flags & WQ_UNBOUND) or max_active == 1
        return self._new_wq(name, flags, single=single, max_active=max_active)

    def _new_bh_wq(self, name: str, flags: int) -> Workqueue:
        wq = Workqueue(cast("KernelCore", self), name, flags, True)
        self._workqueues.append(wq)
        return wq

    # --- tracepoints shared by both models ----------------------------------------------
    def _wq_trace_queue(self, wq: Workqueue, w: Work, req_cpu: int, cpu: int) -> None:
        w.queue_ts = self.engine.now
        if self.tracing:
            fields = {"work": w.name, "function": symbol_name(w.func), "workqueue": wq.name,
                      "req_cpu": req_cpu, "cpu": cpu}  # fmt: skip
            self.trace.emit(self.engine.current_cpu or self.cpus[0],
                            "workqueue:workqueue_queue_work", fields)  # fmt: skip

    def _wq_trace_activate(self, w: Work) -> None:
        if self.tracing:
            self.trace.emit(self.engine.current_cpu or self.cpus[0],
                            "workqueue:workqueue_activate_work",
                            {"work": w.name, "function": symbol_name(w.func)})  # fmt: skip

    def _wq_trace_exec(self, w: Work, which: str) -> None:
        now = self.engine.now
        wq_name = w.wq.name if w.wq is not None else "?"
        if which == "start":
            self.lat.add("work queue->start", wq_name, now - w.queue_ts)
            w.exec_ts = now
        else:
            self.lat.add("work", wq_name, now - w.exec_ts)
        c = self.engine.current_cpu
        if self.tracing and c is not None:
            self.trace.emit(c, f"workqueue:workqueue_execute_{which}",
                            {"work": w.name, "function": symbol_name(w.func)})  # fmt: skip

    def _work_cpu(self) -> int:
        c = self.engine.current_cpu
        return c.nr if c is not None else 0

    def _check_work(self, w: Any, what: str) -> Work:
        if not isinstance(w, Work):
            raise TypeError(f"{what}: expected an irqflow.Work, got {w!r}")
        return w

    def _insert(self, wq: Workqueue, w: Work, cpu: int) -> None:
        """``__queue_work``: PENDING is already set."""
        if wq.flags & WQ_BH:
            # BH workqueue: the queueing CPU's BH pool, run from TASKLET/HI_SOFTIRQ
            hi = bool(wq.flags & WQ_HIGHPRI)
            c = self.cpus[cpu]
            w.wq, w.cpu = wq, cpu
            w.queued += 1
            wq.inserted[0] += 1
            c.bh_work[hi].append((w, wq))
            self._wq_trace_queue(wq, w, cpu, cpu)
            self._wq_trace_activate(w)
            if self.engine.current_cpu is c:
                raise_softirq_irqoff(cast("KernelCore", self), c, 0 if hi else 6)
            else:  # a remote CPU: irq_work raises it there
                self.engine.call_at(self.engine.now, _raise_on, cast("KernelCore", self), c, hi)
            return
        if self._cmwq is not None:
            self._cmwq.queue(wq, w, cpu)
            return
        i = 0 if wq.single else cpu
        w.wq = wq
        w.cpu = i
        w.queued += 1
        wq.lists[i].append(w)
        wq.inserted[i] += 1
        self._wq_trace_queue(wq, w, cpu, i)
        self._wq_trace_activate(w)
        cast("KernelCore", self)._wake_up_process(wq.workers[i])

    def queue_work_on(self, cpu: int, wq: Workqueue, w: Work) -> bool:
        """Queue ``w`` on ``cpu``'s list of ``wq``; False if it was already pending."""
        self._check_work(w, "queue_work_on")
        if not isinstance(wq, Workqueue) or wq.destroyed:
            raise IrqflowError(f"queue_work({w.name}): {wq!r} is not a live workqueue")
        if not isinstance(cpu, int) or not 0 <= cpu < len(self.cpus):
            raise IrqflowError(f"queue_work_on({cpu!r}): CPUs are 0..{len(self.cpus) - 1}")
        if wq.flags & WQ_BH:
            refuse_async(w.func, f"queue_work({wq.name}, {w.name})", "softirq (a BH workqueue)")
        if w.state & WORK_STRUCT_PENDING:
            return False  # invariant 46: no side effects
        w.state |= WORK_STRUCT_PENDING
        self._insert(wq, w, cpu)
        return True

    def queue_work(self, wq: Workqueue, w: Work) -> bool:
        """Queue on the submitting CPU (CPU 0 from outside the machine)."""
        return self.queue_work_on(self._work_cpu(), wq, w)

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
        c = self.engine.current_cpu or self.cpus[0]
        arm(cast("KernelCore", self), c, dw.timer, cast("KernelCore", self).jiffies + delay)
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
            lst = self.cpus[w.cpu].bh_work[bool(w.wq.flags & WQ_HIGHPRI)]
            for item in list(lst):
                if item[0] is w:
                    lst.remove(item)
                    w.wq.finished[0] += 1
        elif self._cmwq is not None:
            self._cmwq.steal(w)
        elif w.wq is not None and w in w.wq.lists[w.cpu]:
            w.wq.lists[w.cpu].remove(w)
            w.wq.finished[w.cpu] += 1  # it leaves the list: flushes do not wait for it
        w.state &= ~WORK_STRUCT_PENDING
        return True

    def flush_work(self, w: Work) -> Any:
        """Wait until the last queued instance of ``w`` has run; False if it was idle."""
        self._check_work(w, "flush_work")
        if not w.state & WORK_STRUCT_PENDING and not w.running:
            return self._ready(self.engine.current_cpu, False)  # awaitable in async bodies
        return self._wait(
            lambda: not w.state & WORK_STRUCT_PENDING and not w.running,
            f"flush_work({w.name})",
            True,
        )

    def cancel_work_sync(self, w: Work) -> Any:
        """Cancel a pending ``w`` and wait for a running one; returns whether it was
        pending.  On return it is neither pending nor running (invariant 56)."""
        self._check_work(w, "cancel_work_sync")
        was = self._steal(w)
        return self._wait(lambda: not w.running, f"cancel_work_sync({w.name})", was)

    def cancel_delayed_work_sync(self, dw: DelayedWork) -> Any:
        return self.cancel_work_sync(dw)

    def flush_workqueue(self, wq: Workqueue) -> Any:
        """Wait for every item queued on ``wq`` before this call (later ones don't count)."""
        marks = list(wq.inserted)
        return self._wait(
            lambda: all(f >= m for f, m in zip(wq.finished, marks, strict=True)),
            f"flush_workqueue({wq.name})",
        )

    def _pending_work_count(self) -> int:
        """Work items queued or running, over every workqueue."""
        return sum(
            i - f for wq in self._workqueues for i, f in zip(wq.inserted, wq.finished, strict=True)
        )

    def drain_workqueue(self, wq: Workqueue) -> Any:
        """Flush until ``wq`` is empty, including items its own items queue."""
        while any(i != f for i, f in zip(wq.inserted, wq.finished, strict=True)):
            self.flush_workqueue(wq)
        return self._ready(self.engine.current_cpu, None)

    def destroy_workqueue(self, wq: Workqueue) -> None:
        """Drain ``wq`` and stop its threads."""
        if wq is self.system_wq:
            raise IrqflowError("destroy_workqueue(events): the system workqueue stays")
        self.drain_workqueue(wq)
        wq.destroyed = True
        for t in wq.workers:
            cast("KernelCore", self)._wake_up_process(t)


def _worker_body(k: KernelCore, wq: Workqueue, i: int) -> Callable[[], None]:
    return lambda: worker_thread(k, wq, i)


def _raise_on(k: KernelCore, c: Cpu, hi: bool) -> None:
    """irq_work on another CPU: mark the BH pool's vector pending there and send the IPI,
    whose irq_exit runs it."""
    raise_softirq_irqoff(k, c, 0 if hi else 6, wake=False)
    c.irr[IRQ_WORK_VECTOR] = None
    k.engine.deliver(c)
