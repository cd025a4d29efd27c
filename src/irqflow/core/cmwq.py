"""Concurrency-managed workqueues (cmwq, since 2.6.36; kernel/workqueue.c as of v6.13).

``KernelConfig(workqueue_model="cmwq")``.  Workqueues no longer own threads: each CPU has
two *worker pools* (normal, and nice -20 for ``WQ_HIGHPRI``) whose workers are named
``kworker/<cpu>:<id>`` (``H`` suffix for highpri); ``WQ_UNBOUND`` queues share unbound
pools whose workers are ``kworker/u<pool>:<id>``.  A queue reaches a pool through a
*pwq*, which enforces ``max_active`` (excess items wait INACTIVE, FIFO; invariant 51).

Concurrency management (invariant 50) counts a bound pool's running workers in
``nr_running``; a worker does not count while it has a NOT_RUNNING flag (PREP while it
idles or gets ready, CPU_INTENSIVE, UNBOUND).  A kick wakes the most recently idled worker
only when the worklist is non-empty and ``nr_running`` is 0 (``need_more_worker``), and
a running worker goes on taking items while ``nr_running <= 1`` (``keep_working``).  So
a per-CPU pool runs one item at a time until that one *blocks* (the scheduler tells the
pool: ``wq_worker_sleeping``) or hogs the CPU past ``wq_cpu_intensive_thresh_ns`` since
it last woke (``wq_worker_tick``, 6.5+).  Unbound workers always carry WORKER_UNBOUND:
``nr_running`` stays 0, every item that starts kicks the pool for the next, and items
run side by side up to ``max_active``.  A worker that starts working with no idle worker
left in its pool first creates one (the manager's job), so a kick always finds a worker.
An item never runs on two workers at once: queued while it runs, it goes to the pool
where it runs, and within a pool to the worker running it (invariant 48).  Idle workers
beyond two, and beyond a quarter of the busy ones, are reaped after 300 s idle (when
the pool is next used: see ``Cmwq.cull``).

Simplified: a pool's first worker is created when the pool is first kicked (not at
boot), worker creation takes no time and never fails (so no mayday timer and no
rescuer), there is one unbound pool per priority (no NUMA nodes or affinity scopes), and
a woken worker counts again once cmwq sees it running (the kernel: on its return from
schedule(); irqflow's scheduler reports only the wake-up, see ``Cmwq.settle``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from irqflow.core.constants import WQ_CPU_INTENSIVE, WQ_HIGHPRI, WQ_UNBOUND

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task
    from irqflow.core.workqueue import Work, Workqueue

#: include/linux/workqueue.h (6.13): the largest max_active, and the one 0 stands for
WQ_MAX_ACTIVE = 2048
WQ_DFL_ACTIVE = WQ_MAX_ACTIVE // 2
HIGHPRI_NICE_LEVEL = -20
IDLE_WORKER_TIMEOUT_S = 300
MAX_IDLE_WORKERS_RATIO = 4
WORK_STRUCT_PENDING = 1 << 0

# worker flags (kernel/workqueue.c); a worker with any NOT_RUNNING flag is not counted
WORKER_DIE = 1 << 1
WORKER_IDLE = 1 << 2
WORKER_PREP = 1 << 3
WORKER_CPU_INTENSIVE = 1 << 6
WORKER_UNBOUND = 1 << 7
WORKER_NOT_RUNNING = WORKER_PREP | WORKER_CPU_INTENSIVE | WORKER_UNBOUND


class Worker:
    __slots__ = ("current", "current_at", "current_pwq", "flags", "id", "idle_since", "pool",
                 "scheduled", "sleeping", "task", "waking", "woke_sum")  # fmt: skip

    def __init__(self, pool: WorkerPool, wid: int) -> None:
        self.pool = pool
        self.id = wid
        self.task: Task = None  # type: ignore[assignment]
        self.flags = WORKER_PREP | (WORKER_UNBOUND if pool.cpu is None else 0)
        #: it went to sleep while counted in nr_running (wq_worker_sleeping), and has not
        #: returned from schedule() since
        self.sleeping = False
        #: woken from such a sleep, not seen running yet; its sum_exec at the wake-up
        self.waking = False
        self.woke_sum = 0
        self.current: Work | None = None
        self.current_pwq: Pwq | None = None
        #: the task's sum_exec when the current item started or the worker last woke
        self.current_at = 0
        #: items assigned to this worker, run in order after its current one
        self.scheduled: deque[tuple[Work, Pwq]] = deque()
        self.idle_since = 0


class WorkerPool:
    __slots__ = ("busy", "cpu", "highpri", "id", "idle", "next_id", "nr_running", "waking",
                 "workers", "worklist")  # fmt: skip

    def __init__(self, pid: int, cpu: int | None, highpri: bool) -> None:
        self.id = pid
        self.cpu = cpu  # None: unbound
        self.highpri = highpri
        self.worklist: deque[tuple[Work, Pwq]] = deque()
        self.workers: list[Worker] = []
        self.idle: list[Worker] = []  # LIFO: the most recently idled is woken first
        self.nr_running = 0
        #: workers woken from a counted sleep that have not run since (see Cmwq.settle)
        self.waking: list[Worker] = []
        self.next_id = 0
        self.busy: dict[int, Worker] = {}  # id(work) -> the worker running it

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
            self.kick(pool)
        else:
            pwq.inactive.append(w)  # INACTIVE: waits for max_active room, FIFO

    def activate(self, pwq: Pwq, w: Work) -> None:
        """Put ``w`` on its pool's worklist (it counts against max_active from now on)."""
        pwq.nr_active += 1
        self.k.wq.trace_activate(w)
        pwq.pool.worklist.append((w, pwq))

    def steal(self, w: Work) -> bool:
        """Take a queued (not yet started) item off its worklist or inactive list."""
        pwq = w.pwq
        if pwq is None:
            return False
        for i, (item, _) in enumerate(pwq.pool.worklist):
            if item is w:
                del pwq.pool.worklist[i]
                self.finish(pwq)
                self.kick(pwq.pool)  # for an item the finish may have activated
                return True
        if w in pwq.inactive:
            pwq.inactive.remove(w)
            pwq.wq.finished[0] += 1
            return True
        return False

    def finish(self, pwq: Pwq) -> None:
        """``pwq_dec_nr_in_flight``: an active item left; the next inactive one (FIFO)
        becomes active.  No kick: the worker that finished goes on while it should."""
        pwq.nr_active -= 1
        pwq.wq.finished[0] += 1
        if pwq.inactive and pwq.nr_active < pwq.wq.max_active:
            self.activate(pwq, pwq.inactive.popleft())

    # --- workers -------------------------------------------------------------------------
    def need_more_worker(self, pool: WorkerPool) -> bool:
        """Work is waiting and no counted worker is running (always, for unbound pools,
        while work is waiting)."""
        self.settle(pool)
        return bool(pool.worklist) and not pool.nr_running

    def keep_working(self, pool: WorkerPool) -> bool:
        """A running worker takes the next item while it is the only counted one."""
        self.settle(pool)
        return bool(pool.worklist) and pool.nr_running <= 1

    def kick(self, pool: WorkerPool) -> bool:
        """``kick_pool``: if the pool needs a worker, wake the most recently idled one
        (it stays on the idle list until it runs).  True if a worker was woken."""
        if not self.need_more_worker(pool):
            return False
        self.cull(pool)
        if pool.idle:
            self.k.sched.wake_up_process(pool.idle[-1].task)
            return True
        if not pool.workers:
            self.create_worker(pool)  # the pool's first worker (the kernel makes it at boot)
            return True
        return False  # the worker that took the last idle one is making another

    def create_worker(self, pool: WorkerPool) -> Worker:
        """``create_worker``: a new worker starts idle and is woken at once."""
        k = self.k
        w = Worker(pool, pool.next_id)
        pool.next_id += 1
        cpu = pool.cpu if pool.cpu is not None else min(
            k.cpus, key=lambda c: (len(c.rq), c.nr)).nr  # fmt: skip
        w.task = k.sched.spawn(
            pool.worker_name(w), cpu, _worker_body(self, w),
            nice=HIGHPRI_NICE_LEVEL if pool.highpri else 0, start=False,
        )  # fmt: skip
        w.task.wq_worker = w
        pool.workers.append(w)
        self.enter_idle(w)
        k.sched.wake_up_process(w.task)
        return w

    def set_flags(self, w: Worker, flags: int) -> None:
        """``worker_set_flags``: a counted worker that gains a NOT_RUNNING flag stops
        counting.  (Called by the running worker itself.)"""
        self.returned(w)
        if flags & WORKER_NOT_RUNNING and not w.flags & WORKER_NOT_RUNNING:
            w.pool.nr_running -= 1
        w.flags |= flags

    def clr_flags(self, w: Worker, flags: int) -> None:
        """``worker_clr_flags``: a worker that loses its last NOT_RUNNING flag counts.
        (Called by the running worker itself.)"""
        self.returned(w)
        had = w.flags
        w.flags &= ~flags
        if had & WORKER_NOT_RUNNING and not w.flags & WORKER_NOT_RUNNING:
            w.pool.nr_running += 1

    def enter_idle(self, w: Worker) -> None:
        self.cull(w.pool)
        w.flags |= WORKER_IDLE
        w.idle_since = self.k.now()
        w.pool.idle.append(w)

    def leave_idle(self, w: Worker) -> None:
        if w.flags & WORKER_IDLE:
            w.flags &= ~WORKER_IDLE
            w.pool.idle.remove(w)

    def worker_sleeping(self, w: Worker) -> None:
        """``wq_worker_sleeping``: a counted worker blocks (inside its work item): the
        pool may need another."""
        self.returned(w)  # it runs: it is the one going to sleep
        if w.flags & WORKER_NOT_RUNNING or w.sleeping:
            return
        w.sleeping = True
        w.pool.nr_running -= 1
        if self.kick(w.pool) and w.current_pwq is not None:
            w.current_pwq.wq.stats["cm_wakeup"] += 1

    def worker_running(self, w: Worker) -> None:
        """The scheduler woke ``w``.  The kernel's ``wq_worker_running`` runs when the
        worker returns from schedule(), i.e. once it has the CPU again; until then it
        does not count in nr_running.  So here its CPU-hogging clock restarts (its CPU
        time cannot change before it runs) and it waits in ``pool.waking`` for
        :meth:`settle` or its own next step to find it running (:meth:`returned`)."""
        if not w.sleeping or w.waking:
            return
        w.waking = True
        w.woke_sum = w.current_at = w.task.sum_exec
        w.pool.waking.append(w)

    def returned(self, w: Worker) -> None:
        """``wq_worker_running``: ``w``, woken from a counted sleep, runs again."""
        if not w.waking:
            return
        w.waking = False
        w.pool.waking.remove(w)
        if not w.flags & WORKER_NOT_RUNNING:
            w.pool.nr_running += 1
        w.sleeping = False

    def settle(self, pool: WorkerPool) -> None:
        """Count the woken workers that have had the CPU since (each is its CPU's
        current task, or has used CPU time): irqflow's scheduler does not call back when
        a task is switched in."""
        if not pool.waking:
            return
        cpus = self.k.cpus
        for w in list(pool.waking):
            t = w.task
            if cpus[t.cpu].current is t or t.sum_exec != w.woke_sum:
                self.returned(w)

    def worker_tick(self, w: Worker) -> None:
        """``wq_worker_tick``: a counted worker that has used the threshold of CPU time
        since its item started or it last woke is marked CPU_INTENSIVE."""
        self.returned(w)  # running at the tick
        thresh = self.k.config.wq_cpu_intensive_thresh_ns
        if (w.current_pwq is None or not thresh or w.flags & WORKER_NOT_RUNNING or w.sleeping
                or w.task.sum_exec - w.current_at < thresh):  # fmt: skip
            return
        self.mark_intensive(w)

    def mark_intensive(self, w: Worker) -> None:
        """The current item hogs its worker (6.5+, automatic CPU_INTENSIVE): the worker
        stops counting, so the pool can give the next item another worker.  Only for a
        counted worker that is running an item; the flag goes when the item ends."""
        self.returned(w)  # found running (the tick, or the real engine's watchdog)
        pwq = w.current_pwq
        if pwq is None or w.flags & WORKER_NOT_RUNNING or w.sleeping:
            return
        self.set_flags(w, WORKER_CPU_INTENSIVE)
        pwq.wq.stats["cpu_intensive"] += 1
        if self.kick(w.pool):
            pwq.wq.stats["cm_wakeup"] += 1

    def too_many_workers(self, pool: WorkerPool) -> bool:
        nr_idle = len(pool.idle)
        nr_busy = len(pool.workers) - nr_idle
        return nr_idle > 2 and (nr_idle - 2) * MAX_IDLE_WORKERS_RATIO >= nr_busy

    def cull(self, pool: WorkerPool) -> None:
        """``idle_cull_fn``: retire the longest-idle workers, idle for IDLE_WORKER_TIMEOUT,
        while there are too many.  The kernel runs it from the pool's idle timer, which is
        deferrable: it never wakes an idle CPU.  irqflow has no deferrable timers, so it
        culls when the pool is next used (a kick, a worker going idle) after the timeout,
        and a quiet machine stays quiet (``k.run()`` ends)."""
        limit = IDLE_WORKER_TIMEOUT_S * 1_000_000_000
        now = self.k.now()
        while self.too_many_workers(pool) and now - pool.idle[0].idle_since >= limit:
            w = pool.idle[0]
            self.leave_idle(w)
            w.flags |= WORKER_DIE
            pool.workers.remove(w)
            self.k.sched.wake_up_process(w.task)


def _worker_body(cm: Cmwq, w: Worker) -> Callable[[], None]:
    return lambda: worker_thread(cm, w)


def worker_thread(cm: Cmwq, w: Worker) -> None:
    """``worker_thread``: on each wake-up, if the pool needs a worker, make sure an idle
    one is left (else create it), start counting, and take items while
    ``keep_working``; then idle again in TASK_IDLE."""
    k = cm.k
    pool = w.pool
    c = k._this_cpu("worker_thread")
    while True:
        if w.flags & WORKER_DIE:
            return
        cm.leave_idle(w)
        while cm.need_more_worker(pool) and not pool.idle:
            cm.create_worker(pool)  # manage_workers: keep a worker in reserve, recheck
        if cm.need_more_worker(pool):
            cm.clr_flags(w, WORKER_PREP)
            while True:
                item, pwq = pool.worklist.popleft()
                if assign_work(w, item, pwq):
                    while w.scheduled:  # process_scheduled_works
                        process_one_work(cm, c, w, *w.scheduled.popleft())
                if not cm.keep_working(pool):
                    break
            cm.set_flags(w, WORKER_PREP)
        cm.enter_idle(w)
        k.sched.block(c, "I")  # worker_thread: TASK_IDLE


def assign_work(w: Worker, item: Work, pwq: Pwq) -> bool:
    """Give ``item`` to ``w``, unless another worker of the pool is running it: then it
    goes to that worker's scheduled list, to run after its current run (invariant 48)."""
    owner = w.pool.busy.get(id(item))
    if owner is not None and owner is not w:
        owner.scheduled.append((item, pwq))
        return False
    w.scheduled.append((item, pwq))
    return True


def process_one_work(cm: Cmwq, c: Cpu, w: Worker, item: Work, pwq: Pwq) -> None:
    k = cm.k
    pool = w.pool
    pool.busy[id(item)] = w
    w.current, w.current_pwq = item, pwq
    w.current_at = w.task.sum_exec
    if pwq.wq.flags & WQ_CPU_INTENSIVE:
        cm.set_flags(w, WORKER_CPU_INTENSIVE)  # the scheduler's business, not the pool's
    cm.kick(pool)  # a worker that does not count chains the next item to another
    item.state &= ~WORK_STRUCT_PENDING  # invariant 47
    item.running += 1
    pwq.wq.stats["started"] += 1
    k.wq.trace_exec(item, "start")
    k._run_in_task(c, item.func, (item,), item.where)
    cm.returned(w)  # back from the item: it runs
    k.wq.trace_exec(item, "end")
    k.sched.cond_resched(c)
    cm.clr_flags(w, WORKER_CPU_INTENSIVE)
    item.running -= 1
    item.runs += 1
    pwq.wq.stats["completed"] += 1
    w.current = w.current_pwq = None
    del pool.busy[id(item)]
    cm.finish(pwq)
