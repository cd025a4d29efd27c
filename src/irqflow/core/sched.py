"""Tasks and per-CPU run queues: enough of the scheduler for kernel threads.

Two classes, as in the kernel: real-time (``fifo``/``rr``, rt_priority 1-99, strict
priority) above fair (``normal``, nice -20..19).  The fair class follows CFS's base rules:
virtual runtime advances by ``delta * 1024 / weight`` (weights from the kernel's nice
table), the task with the smallest virtual runtime runs, a running task is preempted at
the tick once it has used its share of ``sched_latency_ns`` (at least
``sched_min_granularity_ns``), and a woken task preempts the current one when its virtual
runtime is smaller by more than ``sched_wakeup_granularity_ns``.  A woken sleeper is
placed at ``min_vruntime - sched_latency_ns / 2`` at the earliest (the kernel's sleeper
credit), so a task that sleeps a lot does not build up an unfair claim.

:class:`Scheduler` owns the tasks; the engine switches the stacks (greenlets in the sim;
on the real engine the OS schedules the threads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import IDLE, SYSTEM, USER

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.config import KernelConfig
    from irqflow.core.cpu import Cpu

#: kernel/sched/core.c sched_prio_to_weight[]: nice -20 .. 19; nice 0 = 1024.
NICE_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_0_LOAD = 1024
#: RR_TIMESLICE: 100 ms (include/linux/sched/rt.h)
RR_TIMESLICE_NS = 100_000_000
POLICIES = ("normal", "fifo", "rr", "idle")

RUNNING = "R"
SLEEPING = "S"


class Task:
    """A schedulable thread: the idle task, ksoftirqd, kernel threads, user work."""

    __slots__ = (
        "acct",
        "body",
        "comm",
        "cpu",
        "engine_state",
        "exec_start_sum",
        "in_coroutine",
        "is_ksoftirqd",
        "nice",
        "on_rq",
        "pid",
        "policy",
        "result",
        "rt_priority",
        "saved_irqs_on",
        "saved_pc",
        "saved_running",
        "state",
        "sum_exec",
        "vruntime",
        "waiting_irq",
        "weight",
        "wq_worker",
    )

    def __init__(
        self,
        pid: int,
        comm: str,
        cpu: int,
        body: Callable[[], Any],
        *,
        policy: str = "normal",
        rt_priority: int = 0,
        nice: int = 0,
        acct: str = SYSTEM,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"task {comm!r}: policy {policy!r} is not one of {POLICIES}")
        if policy in ("fifo", "rr") and not 1 <= rt_priority <= 99:
            raise ValueError(
                f"task {comm!r}: real-time policy {policy!r} needs prio 1..99, got {rt_priority}"
            )
        if not -20 <= nice <= 19:
            raise ValueError(f"task {comm!r}: nice {nice} is outside -20..19")
        self.pid = pid
        #: task comm, cut to 15 characters as TASK_COMM_LEN does
        self.comm = comm[:15]
        self.cpu = cpu
        self.body = body
        self.policy = policy
        self.rt_priority = rt_priority
        self.nice = nice
        self.weight = NICE_TO_WEIGHT[nice + 20]
        self.acct = IDLE if policy == "idle" else acct
        self.state = RUNNING
        self.on_rq = False
        self.vruntime = 0
        self.sum_exec = 0
        self.exec_start_sum = 0
        self.saved_pc = 0
        self.saved_irqs_on = True
        self.saved_running: str | None = None
        #: how many ``async def`` bodies this task is stepping (blocking calls then give
        #: back awaitables)
        self.in_coroutine = 0
        #: an IRQ thread waiting for its interrupt (only then may a wake move it)
        self.waiting_irq = False
        self.is_ksoftirqd = False
        self.result: Any = None
        self.engine_state: Any = None
        #: cmwq: the Worker this task is (concurrency management hooks)
        self.wq_worker: Any = None

    @property
    def is_rt(self) -> bool:
        return self.policy in ("fifo", "rr")

    @property
    def prio(self) -> int:
        """Kernel prio as sched tracepoints print it: 120+nice, or 99-rt_priority."""
        if self.is_rt:
            return 99 - self.rt_priority
        return 120 + self.nice if self.policy == "normal" else 120

    def __repr__(self) -> str:
        return f"<Task {self.comm}-{self.pid} cpu={self.cpu} {self.state}>"


class RunQueue:
    """Runnable tasks of one CPU (the running one included)."""

    __slots__ = ("cfg", "fair", "min_vruntime", "rt", "rt_period_start", "rt_time")

    def __init__(self, cfg: KernelConfig) -> None:
        self.cfg = cfg
        self.fair: list[Task] = []
        self.rt: list[Task] = []
        self.min_vruntime = 0
        #: RT bandwidth (kernel/sched/rt.c): RT time used in the current period
        self.rt_time = 0
        self.rt_period_start = 0

    @property
    def rt_throttled(self) -> bool:
        """RT tasks have used ``rt_runtime_ns`` of this ``rt_period_ns`` while a normal
        task waits: they may not run until the period ends (sched_rt_runtime_us)."""
        return self.rt_time >= self.cfg.rt_runtime_ns and bool(self.fair)

    def rt_tick(self, now: int) -> bool:
        """Start a new RT period when one has passed; True if that unthrottles RT tasks."""
        period = self.cfg.rt_period_ns
        if now - self.rt_period_start < period:
            return False
        was = self.rt_throttled
        self.rt_period_start = now - (now - self.rt_period_start) % period
        self.rt_time = 0
        return was and bool(self.rt)

    def __len__(self) -> int:
        return len(self.fair) + len(self.rt)

    def enqueue(self, t: Task, *, wakeup: bool) -> None:
        if t.on_rq:
            return
        t.on_rq = True
        if t.is_rt:
            self.rt.append(t)
            return
        if wakeup:
            # place_entity(): sleeper credit of half a latency period at most
            floor = self.min_vruntime - self.cfg.sched_latency_ns // 2
            t.vruntime = max(t.vruntime, floor)
        else:
            t.vruntime = max(t.vruntime, self.min_vruntime)
        self.fair.append(t)

    def dequeue(self, t: Task) -> None:
        if not t.on_rq:
            return
        t.on_rq = False
        (self.rt if t.is_rt else self.fair).remove(t)

    def pick_next(self) -> Task | None:
        """Highest real-time priority first (FIFO among equals), else least vruntime."""
        if self.rt and not self.rt_throttled:
            best = self.rt[0]
            for t in self.rt:
                if t.rt_priority > best.rt_priority:
                    best = t
            return best
        if self.fair:
            best = self.fair[0]
            for t in self.fair:
                if (t.vruntime, t.pid) < (best.vruntime, best.pid):
                    best = t
            self.min_vruntime = max(self.min_vruntime, best.vruntime)
            return best
        return None

    def requeue_rt_tail(self, t: Task) -> None:
        """Round-robin rotation among equal real-time priorities (sched_yield, rr slice)."""
        if t in self.rt:
            self.rt.remove(t)
            self.rt.append(t)

    # --- CFS decisions ----------------------------------------------------------------
    def account(self, t: Task, ns: int) -> None:
        """``update_curr``: the task ran ``ns`` more."""
        t.sum_exec += ns
        if t.policy == "normal":
            t.vruntime += ns * NICE_0_LOAD // t.weight
        elif t.policy in ("fifo", "rr"):
            self.rt_time += ns

    def tick_should_preempt(self, curr: Task) -> bool:
        """``check_preempt_tick``: has ``curr`` used its slice while others wait?"""
        if curr.is_rt:
            if self.rt_throttled:
                return True  # out of RT bandwidth: let the normal tasks run
            if curr.policy == "rr" and curr.sum_exec - curr.exec_start_sum >= RR_TIMESLICE_NS:
                peers = [t for t in self.rt if t is not curr and t.rt_priority == curr.rt_priority]
                if peers:
                    self.requeue_rt_tail(curr)
                    return True
            return False  # fifo runs until it blocks or a higher priority wakes
        if curr.policy == "idle":
            return len(self) > 0
        if self.rt:
            return True
        others = [t for t in self.fair if t is not curr]
        if not others:
            return False
        total = sum(t.weight for t in self.fair) + (0 if curr.on_rq else curr.weight)
        ideal = max(
            self.cfg.sched_latency_ns * curr.weight // total,
            self.cfg.sched_min_granularity_ns,
        )
        ran = curr.sum_exec - curr.exec_start_sum
        if ran > ideal:
            return True
        least = min(t.vruntime for t in others)
        return curr.vruntime - least > ideal

    def wakeup_should_preempt(self, curr: Task, woken: Task) -> bool:
        """``check_preempt_wakeup``."""
        if curr.policy == "idle":
            return True
        if woken.is_rt:
            if self.rt_throttled:
                return False
            return not curr.is_rt or woken.rt_priority > curr.rt_priority
        if curr.is_rt:
            return False
        return curr.vruntime - woken.vruntime > self.cfg.sched_wakeup_granularity_ns


class Scheduler:
    """The kernel's tasks: making them, waking them, putting the current one to sleep,
    the scheduler tick, and the bookkeeping of a context switch (``context_switch``; the
    engine switches the stacks)."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        self.tasks: list[Task] = []
        self.next_pid = 1
        eng = k.engine
        #: the engine runs this scheduler (False where the OS schedules the threads)
        self.runs = eng.runs_scheduler
        #: kernel code in process context is preempted on return from interrupt (full
        #: preemption); otherwise only code returning to user mode (kthread_run bodies)
        self.preempt_kernel = k.config.preempt_model in ("full", "rt")

    # --- tasks ----------------------------------------------------------------------
    def spawn(
        self,
        comm: str,
        cpu: int,
        body: Callable[[], Any],
        *,
        policy: str = "normal",
        prio: int = 0,
        nice: int = 0,
        acct: str = SYSTEM,
        start: bool = True,
    ) -> Task:
        """Make a task running ``body()`` on ``cpu``; ``start``: wake it now (else it
        sleeps until woken)."""
        pid = self.next_pid
        self.next_pid += 1
        t = Task(pid, comm, cpu, body, policy=policy, rt_priority=prio, nice=nice, acct=acct)
        self.tasks.append(t)
        self.k.engine.add_task(t)
        if start:
            t.state = RUNNING
            c = self.k.cpus[t.cpu]
            c.rq.enqueue(t, wakeup=False)
            self._after_wake(c, t)
        else:
            t.state = SLEEPING
        return t

    def wake_up_process(self, t: Task) -> bool:
        """``wake_up_process``: False if the task was already runnable (or is dead)."""
        if t.state != SLEEPING:
            return False
        t.state = RUNNING
        c = self.k.cpus[t.cpu]
        c.rq.enqueue(t, wakeup=True)
        if t.wq_worker is not None:
            self.k.wq.worker_running(t)
        self._after_wake(c, t)
        return True

    def _after_wake(self, c: Cpu, t: Task) -> None:
        k = self.k
        if k.tracing:
            here = k.engine.current_cpu or c
            k.trace.emit(
                here,
                "sched:sched_wakeup",
                {"comm": t.comm, "pid": t.pid, "prio": t.prio, "target_cpu": c.nr},
            )
        if self.runs and c.rq.wakeup_should_preempt(c.current, t):
            c.need_resched = True
        k.engine.kick(c, t)

    def block(self, c: Cpu) -> None:
        """``set_current_state(TASK_UNINTERRUPTIBLE); schedule()``: the current task
        sleeps until ``wake_up_process``."""
        task = c.current
        task.state = SLEEPING
        c.rq.dequeue(task)
        if task.wq_worker is not None:
            self.k.wq.worker_sleeping(task)
        self.k.engine.schedule(c)

    def cond_resched(self, c: Cpu) -> None:
        """A voluntary preemption point (where the OS schedules the threads, it always
        gives the others a turn)."""
        if c.need_resched or not self.runs:
            self.k.engine.schedule(c)

    def preempt(self, c: Cpu) -> None:
        """Return from interrupt to task context with ``need_resched`` set: preempt the
        task if the preemption model allows it here."""
        if self.preempt_kernel or c.current.acct is USER:
            self.k.engine.schedule(c)

    def tick(self, c: Cpu) -> None:
        """``scheduler_tick``: time slices, RT periods, and cmwq's CPU_INTENSIVE check."""
        curr = c.current
        if self.runs:
            if c.rq.rt_tick(self.k.engine.now):
                c.need_resched = True  # a new RT period: throttled RT tasks may run again
            if curr is c.idle_task:
                if len(c.rq):
                    c.need_resched = True
                return
            if c.rq.tick_should_preempt(curr):
                c.need_resched = True
        if curr.wq_worker is not None:
            self.k.wq.worker_tick(curr)

    def context_switch(self, c: Cpu, prev: Task, nxt: Task) -> None:
        """The bookkeeping of switching ``c`` from ``prev`` to ``nxt``: the
        ``sched_switch`` tracepoint, and each task's own context (preempt_count, IRQ
        flag, the driver code it was in) saved and restored."""
        k = self.k
        if k.tracing:
            if prev is c.idle_task:
                state = "R"
            elif prev.state == RUNNING:
                state = "R+"
            else:
                state = "X" if prev.state == "X" else "S"
            k.trace.emit(
                c,
                "sched:sched_switch",
                {
                    "prev_comm": prev.comm,
                    "prev_pid": prev.pid,
                    "prev_prio": prev.prio,
                    "prev_state": state,
                    "next_comm": nxt.comm,
                    "next_pid": nxt.pid,
                    "next_prio": nxt.prio,
                },
            )
        prev.saved_pc = c.preempt_count
        prev.saved_irqs_on = c.irqs_on
        prev.saved_running = c.running
        c.nr_switches += 1
        c.current = nxt
        nxt.exec_start_sum = nxt.sum_exec
        c.preempt_count = nxt.saved_pc
        c.irqs_on = nxt.saved_irqs_on
        c.running = nxt.saved_running
