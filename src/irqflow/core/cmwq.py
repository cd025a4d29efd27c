"""Concurrency-managed workqueues (cmwq, since 2.6.36; kernel/workqueue.c as of v6.13).

``KernelConfig(workqueue_model="cmwq")``.  Workqueues no longer own threads: each CPU has
two *worker pools* (normal, and nice -20 for ``WQ_HIGHPRI``) whose workers are named
``kworker/<cpu>:<id>`` (``H`` suffix for highpri); ``WQ_UNBOUND`` queues share unbound
pools whose workers are ``kworker/u<pool>:<id>``.  A queue reaches a pool through a
*pwq*, which enforces ``max_active`` (excess items wait INACTIVE, FIFO; invariant 51).

Concurrency management (invariant 50): a bound pool keeps one worker running per CPU.
Another worker is woken or created only when the worklist is non-empty and no worker of
the pool is running, which happens when the running one *blocks* in its work item (the
scheduler tells the pool: ``wq_worker_sleeping``).  ``WQ_CPU_INTENSIVE`` items do not
count.  Unbound pools are not concurrency-managed: every queued item gets a worker.
An item never runs on two workers at once: queued while it runs, it goes to the pool
where it runs, and within a pool to the worker running it (invariant 48).  Idle workers
beyond two, and beyond a quarter of the busy ones, are reaped after 300 s idle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from irqflow.core.constants import WQ_CPU_INTENSIVE, WQ_HIGHPRI, WQ_UNBOUND
from irqflow.core.timer import add_kernel_timer

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task
    from irqflow.core.workqueue import Work, Workqueue

WQ_DFL_ACTIVE = 1024  # max_active when 0 is asked for
WQ_MAX_ACTIVE = 2048
HIGHPRI_NICE_LEVEL = -20
IDLE_WORKER_TIMEOUT_S = 300
MAX_IDLE_WORKERS_RATIO = 4
WORK_STRUCT_PENDING = 1 << 0


class Worker:
    __slots__ = ("auto_intensive", "current", "die", "exec_start", "id", "idle_since", "pool",
                 "scheduled", "task")  # fmt: skip

    def __init__(self, pool: WorkerPool, wid: int) -> None:
        self.pool = pool
        self.id = wid
        self.task: Task = None  # type: ignore[assignment]
        self.current: Work | None = None
        self.scheduled: deque[tuple[Work, Pwq]] = deque()
        self.idle_since = 0
        self.die = False
        #: the current item was found hogging the CPU and marked CPU_INTENSIVE (6.5+)
        self.auto_intensive = False
        #: the worker task's sum_exec when the current item started
        self.exec_start = 0


class WorkerPool:
    __slots__ = ("busy", "cpu", "highpri", "id", "idle", "next_id", "nr_running", "reaper_armed",
                 "workers", "worklist")  # fmt: skip

    def __init__(self, pid: int, cpu: int | None, highpri: bool) -> None:
        self.id = pid
        self.cpu = cpu  # None: unbound
        self.highpri = highpri
        self.worklist: deque[tuple[Work, Pwq]] = deque()
        self.workers: list[Worker] = []
        self.idle: list[Worker] = []  # LIFO: the most recently idled is woken first
        self.nr_running = 0
        self.next_id = 0
        self.busy: dict[int, Worker] = {}  # id(work) -> the worker running it
        self.reaper_armed = False

    def worker_name(self, w: Worker) -> str:
        if self.cpu is None:
            return f"kworker/u{self.id}:{w.id}"
        return f"kworker/{self.cpu}:{w.id}{'H' if self.highpri else ''}"


class Pwq:
    """pool_workqueue: one queue's link to one pool, with its max_active accounting."""

    __slots__ = ("inactive", "nr_active", "pool", "wq")

    def __init__(self, wq: Workqueue, pool: WorkerPool) -> None:
        self.wq = wq
        self.pool = pool
        self.nr_active = 0
        self.inactive: deque[Work] = deque()


class Cmwq:
    """The kernel-wide cmwq state: the pools."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        self.pools: list[WorkerPool] = []
        self.cpu_pools = [(self._pool(c.nr, False), self._pool(c.nr, True)) for c in k.cpus]
        self.unbound = (self._pool(None, False), self._pool(None, True))

    def _pool(self, cpu: int | None, highpri: bool) -> WorkerPool:
        pool = WorkerPool(len(self.pools), cpu, highpri)
        self.pools.append(pool)
        return pool

    # --- queueing ----------------------------------------------------------------------
    def pool_for(self, wq: Workqueue, cpu: int) -> WorkerPool:
        hi = bool(wq.flags & WQ_HIGHPRI)
        return self.unbound[hi] if wq.flags & WQ_UNBOUND else self.cpu_pools[cpu][hi]

    def queue(self, wq: Workqueue, w: Work, cpu: int, req_cpu: int) -> None:
        """``__queue_work`` (PENDING already taken) onto ``cpu``'s pool of ``wq``;
        ``req_cpu`` is what the caller asked for (WORK_CPU_UNBOUND or a CPU)."""
        k = self.k
        pool = self.pool_for(wq, cpu)
        last = w.pwq.pool if w.pwq is not None else None
        if (last is not None and last is not pool and id(w) in last.busy
                and not wq.ordered):  # fmt: skip
            pool = last  # non-reentrancy: follow the pool where it runs
        pwq = wq.pwqs.get(pool.id)
        if pwq is None:
            pwq = wq.pwqs[pool.id] = Pwq(wq, pool)
        w.wq, w.pwq = wq, pwq
        w.queued += 1
        wq.inserted[0] += 1
        k.wq.trace_queue(wq, w, req_cpu, -1 if pool.cpu is None else pool.cpu)
        if not pwq.inactive and pwq.nr_active < wq.max_active:
            self.activate(pwq, w)
        else:
            pwq.inactive.append(w)  # INACTIVE: waits for max_active room, FIFO

    def activate(self, pwq: Pwq, w: Work) -> None:
        pwq.nr_active += 1
        pwq.pool.worklist.append((w, pwq))
        self.k.wq.trace_activate(w)
        self.kick(pwq.pool)

    def steal(self, w: Work) -> bool:
        """Take a queued (not yet started) item off its worklist or inactive list."""
        pwq = w.pwq
        if pwq is None:
            return False
        for i, (item, _) in enumerate(pwq.pool.worklist):
            if item is w:
                del pwq.pool.worklist[i]
                self.finish(pwq)
                return True
        if w in pwq.inactive:
            pwq.inactive.remove(w)
            pwq.wq.finished[0] += 1
            return True
        return False

    def finish(self, pwq: Pwq) -> None:
        """An active item left: activate the next inactive one (FIFO)."""
        pwq.nr_active -= 1
        pwq.wq.finished[0] += 1
        if pwq.inactive and pwq.nr_active < pwq.wq.max_active:
            self.activate(pwq, pwq.inactive.popleft())

    # --- workers -------------------------------------------------------------------------
    def kick(self, pool: WorkerPool) -> None:
        """``kick_pool``: wake (or create) a worker if the pool needs more."""
        if not pool.worklist:
            return
        if pool.cpu is not None and pool.nr_running:
            return  # concurrency management: one running worker is enough
        if any(wk.task.state == "R" and wk.current is None and wk not in pool.idle
               for wk in pool.workers):  # fmt: skip
            return  # a woken (or new) worker is on its way and will take the item
        if pool.idle:
            w = pool.idle.pop()
            self.k.sched.wake_up_process(w.task)
            return
        self.create_worker(pool)

    def create_worker(self, pool: WorkerPool) -> Worker:
        k = self.k
        w = Worker(pool, pool.next_id)
        pool.next_id += 1
        cpu = pool.cpu if pool.cpu is not None else min(
            k.cpus, key=lambda c: (len(c.rq), c.nr)).nr  # fmt: skip
        w.task = k.sched.spawn(
            pool.worker_name(w), cpu, _worker_body(self, w),
            nice=HIGHPRI_NICE_LEVEL if pool.highpri else 0,
        )  # fmt: skip
        w.task.wq_worker = w
        pool.workers.append(w)
        return w

    def worker_sleeping(self, w: Worker) -> None:
        """``wq_worker_sleeping``: a running worker blocked inside its work item."""
        pool = w.pool
        if pool.cpu is None or w.current is None or _intensive(w):
            return
        pool.nr_running -= 1
        if pool.worklist and pool.nr_running == 0:
            self.kick(pool)

    def worker_running(self, w: Worker) -> None:
        """``wq_worker_running``: it woke up again inside its work item."""
        if w.pool.cpu is not None and w.current is not None and not _intensive(w):
            w.pool.nr_running += 1

    def mark_intensive(self, w: Worker) -> None:
        """``wq_worker_tick``: the current item has run past the threshold: it no longer
        counts as running for concurrency management (6.5+, automatic CPU_INTENSIVE)."""
        pool = w.pool
        if pool.cpu is None or w.current is None or _intensive(w) or w.task.state != "R":
            return  # unbound, idle, already intensive, or asleep (then it is not counted)
        w.auto_intensive = True
        pool.nr_running -= 1
        self.kick(pool)

    def hogging(self, w: Worker) -> bool:
        """Has the current item used more CPU than the threshold (sim: task CPU time)?"""
        thresh = self.k.config.wq_cpu_intensive_thresh_ns
        return bool(thresh) and w.current is not None and (w.task.sum_exec - w.exec_start >= thresh)

    def too_many_workers(self, pool: WorkerPool) -> bool:
        nr_idle = len(pool.idle)
        nr_busy = len(pool.workers) - nr_idle
        return nr_idle > 2 and (nr_idle - 2) * MAX_IDLE_WORKERS_RATIO >= nr_busy

    def arm_reaper(self, pool: WorkerPool) -> None:
        """Arm the idle timer for when the longest-idle worker reaches the timeout."""
        if pool.reaper_armed or not pool.idle:
            return
        pool.reaper_armed = True
        k = self.k
        c = k.cpus[pool.cpu if pool.cpu is not None else 0]
        due_ns = pool.idle[0].idle_since + IDLE_WORKER_TIMEOUT_S * 1_000_000_000
        expires = -(-due_ns // k.config.tick_period_ns)  # first jiffy at or after
        add_kernel_timer(k, c, expires, lambda k, c: self._reap(pool))

    def _reap(self, pool: WorkerPool) -> None:
        """``idle_cull_fn``: retire the longest-idle workers while there are too many."""
        pool.reaper_armed = False
        limit = IDLE_WORKER_TIMEOUT_S * 1_000_000_000
        while self.too_many_workers(pool) and self.k.now() - pool.idle[0].idle_since >= limit:
            w = pool.idle.pop(0)
            w.die = True
            pool.workers.remove(w)
            self.k.sched.wake_up_process(w.task)
        if self.too_many_workers(pool):
            self.arm_reaper(pool)


def _intensive(w: Worker) -> bool:
    return w.auto_intensive or (w.current is not None and w.current.pwq is not None and bool(
        w.current.pwq.wq.flags & WQ_CPU_INTENSIVE))  # fmt: skip


def _worker_body(cm: Cmwq, w: Worker) -> Callable[[], None]:
    return lambda: worker_thread(cm, w)


def worker_thread(cm: Cmwq, w: Worker) -> None:
    k = cm.k
    pool = w.pool
    counted = pool.cpu is not None
    c = k._this_cpu("worker_thread")
    while True:
        if not pool.worklist and not w.scheduled:
            if w.die:
                return
            w.idle_since = k.now()
            pool.idle.append(w)
            if cm.too_many_workers(pool):
                cm.arm_reaper(pool)
            k.sched.block(c, "I")  # worker_thread: TASK_IDLE
            if w in pool.idle:
                pool.idle.remove(w)  # woken by something other than kick
            continue
        if counted:
            pool.nr_running += 1
        while pool.worklist or w.scheduled:
            if w.scheduled:
                item, pwq = w.scheduled.popleft()
            else:
                item, pwq = pool.worklist.popleft()
                owner = pool.busy.get(id(item))
                if owner is not None and owner is not w:
                    owner.scheduled.append((item, pwq))  # it runs there, after the current
                    continue
            process_one_work(cm, c, w, item, pwq)
            if counted and not (pool.nr_running <= 1 or w.scheduled):
                break  # keep_working: others are running; let this one rest
        if counted:
            pool.nr_running -= 1
        k.sched.cond_resched(c)


def process_one_work(cm: Cmwq, c: Cpu, w: Worker, item: Work, pwq: Pwq) -> None:
    k = cm.k
    pool = w.pool
    pool.busy[id(item)] = w
    w.current = item
    intensive = bool(pwq.wq.flags & WQ_CPU_INTENSIVE) and pool.cpu is not None
    if intensive:
        pool.nr_running -= 1  # CPU_INTENSIVE items don't hold the pool back
        cm.kick(pool)
    item.state &= ~WORK_STRUCT_PENDING  # invariant 47
    item.running += 1
    w.exec_start = w.task.sum_exec
    k.wq.trace_exec(item, "start")
    k._run_in_task(c, item.func, (item,), item.where)
    k.wq.trace_exec(item, "end")
    if intensive:
        pool.nr_running += 1
    if w.auto_intensive:
        w.auto_intensive = False
        pool.nr_running += 1
    item.running -= 1
    item.runs += 1
    w.current = None
    del pool.busy[id(item)]
    cm.finish(pwq)
