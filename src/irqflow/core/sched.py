"""Tasks and the scheduler: enough of it for kernel threads (kernel/sched/core.c).

The scheduling classes (the per-CPU run queues) are in :mod:`irqflow.core.rq`.
:class:`Scheduler` owns the tasks; the engine switches the stacks (greenlets in the sim;
on the real engine the OS schedules the threads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import IDLE, SYSTEM, USER

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

from irqflow.core.rq import NICE_TO_WEIGHT, bind_run_queues
from irqflow.core.sched_fair import SchedEntity

POLICIES = ("normal", "fifo", "rr", "idle")

RUNNING = "R"
SLEEPING = "S"

#: how a sleeping task sleeps, as ``sched_switch`` prints ``prev_state``: TASK_INTERRUPTIBLE
#: (``S``: an IRQ thread or ksoftirqd waiting for work), TASK_UNINTERRUPTIBLE (``D``:
#: msleep, a completion, a mutex), TASK_IDLE (``I``: an idle kworker)
SLEEP_STATES = ("S", "D", "I")

#: preempt_count offsets of the scheduler's own locking, as its tracepoints see them:
#: ``__schedule`` runs with preemption off and the run-queue lock held (``d..2.``);
#: ``try_to_wake_up`` holds ``p->pi_lock`` at ``sched_waking`` and also the run queue's
#: lock at ``sched_wakeup``
#: (with CONFIG_PREEMPT_COUNT; without it they count nothing)
SWITCH_PC = 2
WAKING_PC = 2
WAKEUP_PC = 3


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
        "se",
        "sleep_state",
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
        #: while ``state`` is SLEEPING: which of SLEEP_STATES (kthread_create leaves a new
        #: thread in TASK_UNINTERRUPTIBLE until it is woken)
        self.sleep_state = "D"
        self.on_rq = False
        self.vruntime = 0
        #: the fair class's state (EEVDF: deadline, lag ...)
        self.se = SchedEntity()
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


class Scheduler:
    """The kernel's tasks: making them, waking them, putting the current one to sleep,
    the scheduler tick, and the bookkeeping of a context switch (``context_switch``; the
    engine switches the stacks)."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        self.tasks: list[Task] = []
        #: pid 1 is init and pid 2 kthreadd on every Linux machine: the kernel threads
        #: irqflow makes come after them, as on a booted system
        self.next_pid = 3
        eng = k.engine
        #: the engine runs this scheduler (False where the OS schedules the threads)
        self.runs = eng.runs_scheduler
        #: kernel code in process context is preempted on return from interrupt (full
        #: preemption); otherwise only code returning to user mode (kthread_run bodies)
        self.preempt_kernel = k.config.preempt_model in ("full", "rt")
        #: 1 where the scheduler's locks count in preempt_count (CONFIG_PREEMPT_COUNT)
        self.lock_pc = 1 if k.config.preempt_count else 0
        bind_run_queues(k)

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
            t.sleep_state = "D"
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
            self._trace_wakeup(k.engine.current_cpu or c, t, c.nr)
        if self.runs and c.rq.wakeup_should_preempt(c.current, t):
            c.need_resched = True
        k.engine.kick(c, t)

    def _trace_wakeup(self, here: Cpu, t: Task, target: int) -> None:
        """``sched_waking`` then ``sched_wakeup``, each in the context try_to_wake_up()
        traces it in: IRQs off, under ``pi_lock`` (and the run queue's lock)."""
        fields = {"comm": t.comm, "pid": t.pid, "prio": t.prio, "target_cpu": target}
        pc, on = here.preempt_count, here.irqs_on
        here.irqs_on = False
        here.preempt_count = pc + WAKING_PC * self.lock_pc
        self.k.trace.emit(here, "sched:sched_waking", fields)
        here.preempt_count = pc + WAKEUP_PC * self.lock_pc
        self.k.trace.emit(here, "sched:sched_wakeup", fields)
        here.preempt_count, here.irqs_on = pc, on

    def block(self, c: Cpu, how: str = "D") -> None:
        """``set_current_state(state); schedule()``: the current task sleeps until
        ``wake_up_process``.  ``how`` is the sleep's kind, one of SLEEP_STATES
        (TASK_UNINTERRUPTIBLE by default)."""
        task = c.current
        task.state = SLEEPING
        task.sleep_state = how
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
                state = "R+"  # preempted
            else:
                state = "X" if prev.state == "X" else prev.sleep_state
            pc, on = c.preempt_count, c.irqs_on
            # schedule() disables preemption, then takes the run queue's lock; the idle
            # loop's own count stands for the first (schedule_idle adds none)
            base = pc - self.lock_pc if prev is c.idle_task else pc
            c.preempt_count, c.irqs_on = base + SWITCH_PC * self.lock_pc, False
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
            c.preempt_count, c.irqs_on = pc, on
        prev.saved_pc = c.preempt_count
        prev.saved_irqs_on = c.irqs_on
        prev.saved_running = c.running
        c.nr_switches += 1
        c.current = nxt
        nxt.exec_start_sum = nxt.sum_exec
        c.preempt_count = nxt.saved_pc
        c.irqs_on = nxt.saved_irqs_on
        c.running = nxt.saved_running
