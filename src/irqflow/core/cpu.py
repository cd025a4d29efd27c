"""Per-CPU state: ``preempt_count``, the interrupt flag, the softirq pending mask, the
tasklet lists, the interrupt-request register and the run queue.

The context predicates (``in_hardirq`` ...) are pure functions of ``preempt_count`` with
the kernel's bit layout (include/linux/preempt.h); see :mod:`irqflow.core.constants`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

from irqflow.core.constants import (
    HARDIRQ_MASK,
    NMI_MASK,
    NR_SOFTIRQS,
    SOFTIRQ_MASK,
    SOFTIRQ_OFFSET,
)

if TYPE_CHECKING:
    from irqflow.core.rq import RunQueue
    from irqflow.core.sched import Task
    from irqflow.core.tasklet import Tasklet

# CPU-time accounting categories (the /proc/stat columns irqflow fills).
USER = "user"
SYSTEM = "system"
IRQ = "irq"
SOFTIRQ = "softirq"
IDLE = "idle"
CATEGORIES = (USER, SYSTEM, IRQ, SOFTIRQ, IDLE)

#: The local APIC timer (the tick) in a CPU's interrupt-request register. It is a
#: system vector, not a genirq line: it shows as LOC in /proc/interrupts.
LOCAL_TIMER_VECTOR = -1
#: The reschedule IPI (RES): only its return path matters (preemption).
RESCHEDULE_VECTOR = -2
#: The irq_work IPI (IWI): raises work on another CPU, e.g. a remote BH workqueue kick.
IRQ_WORK_VECTOR = -3


def in_hardirq(pc: int) -> bool:
    return bool(pc & HARDIRQ_MASK)


def in_serving_softirq(pc: int) -> bool:
    return bool(pc & SOFTIRQ_OFFSET)


def in_softirq(pc: int) -> bool:
    """Serving softirqs *or* BH disabled."""
    return bool(pc & SOFTIRQ_MASK)


#: preempt_count bits that make in_interrupt() true (hot paths test the mask directly)
INTERRUPT_MASK = NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK


def in_interrupt(pc: int) -> bool:
    return bool(pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK))


def in_task(pc: int) -> bool:
    """True in task context, including BH-disabled task code (invariant 3)."""
    return not pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET)


def context_name(pc: int) -> str:
    """ "hardirq", "softirq" or "task" (BH-disabled task code is "task")."""
    if pc & HARDIRQ_MASK:
        return "hardirq"
    if pc & SOFTIRQ_OFFSET:
        return "softirq"
    return "task"


# compiled with mypyc, the class stays open to Python subclasses (the real engine's TaskCpu)
@mypyc_attr(allow_interpreted_subclasses=True)
class Cpu:
    """One CPU's kernel state.  Engines keep their own scheduling state in ``engine_state``."""

    __slots__ = (
        "arch_counts",
        "bh_work",
        "current",
        "engine_state",
        "halted",
        "hrtimers",
        "idle_task",
        "in_net_rx_action",
        "irqs_on",
        "irr",
        "ksoftirqd",
        "ksoftirqd_wakeups",
        "ktimers",
        "need_resched",
        "nr",
        "nr_switches",
        "pending_timer_softirq",
        "poll_list",
        "preempt_count",
        "rq",
        "running",
        "softirq_counts",
        "softirq_pending",
        "softirq_raise_ts",
        "softirq_raises",
        "tasklet_hi_vec",
        "tasklet_vec",
        "tick_due",
        "time_squeeze",
        "timers",
        "times",
    )

    def __init__(self, nr: int) -> None:
        self.nr = nr
        self.preempt_count = 0
        #: the IF flag: True when local interrupts are enabled
        self.irqs_on = True
        self.need_resched = False
        #: __softirq_pending: bit n set = vector n pending on this CPU
        self.softirq_pending = 0
        #: /proc/softirqs column: executions per vector
        self.softirq_counts = [0] * NR_SOFTIRQS
        self.softirq_raises = [0] * NR_SOFTIRQS
        #: when each vector last went from not pending to pending (latency histograms)
        self.softirq_raise_ts = [0] * NR_SOFTIRQS
        #: per-CPU tasklet lists (TASKLET_SOFTIRQ and HI_SOFTIRQ), FIFO
        self.tasklet_vec: deque[Tasklet] = deque()
        self.tasklet_hi_vec: deque[Tasklet] = deque()
        #: interrupt-request register: lines delivered to this CPU, not yet taken, in
        #: arrival order, each with the time it was presented (None for IPIs and the tick)
        self.irr: dict[int, int | None] = {}
        #: ns per accounting category
        self.times: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        #: the driver code running now in this context ("tasklet rx", "irq 24 eth0" ...),
        #: for oops records and error messages; saved and restored across task switches
        self.running: str | None = None
        self.current: Task = None  # type: ignore[assignment]  # set at boot
        self.idle_task: Task = None  # type: ignore[assignment]
        self.ksoftirqd: Task = None  # type: ignore[assignment]
        self.rq: RunQueue = None  # type: ignore[assignment]
        self.arch_counts: dict[str, int] = {"LOC": 0}
        #: softnet_data: NAPIs scheduled here, and whether net_rx_action runs now
        self.poll_list: deque[Any] = deque()
        self.in_net_rx_action = False
        #: /proc/net/softnet_stat column 3: net_rx_action runs cut short by budget or time
        self.time_squeeze = 0
        #: BH workqueue pools of this CPU (6.9+): [normal, highpri] lists of work items
        self.bh_work: tuple[deque[Any], deque[Any]] = (deque(), deque())
        #: the timer wheel of this CPU: heap of (fire jiffy, expiry order, Timer)
        self.timers: list[tuple[int, int, Any]] = []
        #: the hrtimer bases of this CPU: [hard, soft] heaps of (expires ns, seq, HrTimer)
        self.hrtimers: tuple[list[Any], list[Any]] = ([], [])
        #: the engine's tick is what raised the local timer vector now (not only an
        #: hrtimer's clock event): the LOC handler runs the tick's work
        self.tick_due = False
        #: forced threading: TIMER/HRTIMER softirqs raised for ``ktimers/N``
        #: (``pending_timer_softirq``), kept out of softirq_pending until it runs
        self.pending_timer_softirq = 0
        self.ktimers: Task | None = None
        self.ksoftirqd_wakeups = 0
        #: context switches on this CPU (/proc/stat ctxt)
        self.nr_switches = 0
        self.engine_state: Any = None
        #: set by the engine while the CPU sits in its idle loop with nothing to do
        self.halted = True

    # --- context --------------------------------------------------------------------
    def category(self) -> str:
        """Accounting category of CPU time spent right now."""
        pc = self.preempt_count
        if pc & HARDIRQ_MASK:
            return IRQ
        if pc & SOFTIRQ_OFFSET:
            return SOFTIRQ
        return self.current.acct

    def __repr__(self) -> str:
        comm = self.current.comm if self.current else None
        return (
            f"<Cpu {self.nr} pc={self.preempt_count:#x} irqs={'on' if self.irqs_on else 'off'}"
            f" pending={self.softirq_pending:#05x} current={comm}>"
        )
