"""``KernelConfig``: every tunable, with the kernel's defaults and where each comes from."""

from __future__ import annotations

from dataclasses import dataclass, fields

from irqflow.core.errors import IrqflowError

_VALID_HZ = (100, 250, 300, 1000)  # kernel/Kconfig.hz
_WQ_MODELS = ("per-cpu-threads", "cmwq")
#: CONFIG_PREEMPT_NONE / _VOLUNTARY / _PREEMPT (full) / PREEMPT_RT
PREEMPT_MODELS = ("none", "voluntary", "full", "rt")


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Tunables of one machine.  All times are integer nanoseconds.

    The ``*_ns`` costs are the CPU time of the kernel's own paths.  They are
    order-of-magnitude figures for a current x86-64 server core (interrupt entry and exit
    about a microsecond together, a context switch one to a few microseconds, as lmbench's
    ``lat_ctx`` and published IRQ-latency measurements show); set them to 0 for textbook
    experiments where only handler time counts.  ``min_loop_ns`` is irqflow's own floor: a
    kernel loop pass (a softirq pass, a tasklet requeue) takes at least that long even with
    every cost at 0, so a loop that makes no progress still advances virtual time.
    """

    # --- time base -------------------------------------------------------------------
    #: CONFIG_HZ; the tick rate. jiffies advance once per tick.
    hz: int = 250
    #: number of IRQ numbers (nr_irqs); lines 0 .. nr_irqs-1 exist
    nr_irqs: int = 256

    # --- softirq limits (kernel/softirq.c) -------------------------------------------
    #: MAX_SOFTIRQ_RESTART: passes per __do_softirq; trades latency against fairness
    softirq_max_restart: int = 10
    #: MAX_SOFTIRQ_TIME = msecs_to_jiffies(2): rounded up to whole jiffies (1 at HZ=250)
    softirq_max_time_ns: int = 2_000_000
    #: the 4.9-6.4 "let ksoftirqd do its job" rule (commit reverted by d15121be7485 in 6.5)
    ksoftirqd_defers: bool = False
    #: the ``threadirqs`` boot option: force-thread handlers, irq_exit wakes ksoftirqd
    threadirqs: bool = False

    #: the preemption model: "none" and "voluntary" preempt kernel code only where it
    #: offers (cond_resched, sleeping), "full" also on return from interrupt and at
    #: preempt_enable; code returning to user mode (kthread_run bodies) is preemptible in
    #: every model.  "rt" is PREEMPT_RT.
    preempt_model: str = "full"

    # --- workqueues, NAPI, RT throttling (used from the process-context issue on) -------
    #: "per-cpu-threads": the seed's events/N threads (2.6.0-2.6.35); "cmwq": kworker pools
    workqueue_model: str = "per-cpu-threads"
    #: NAPI_POLL_WEIGHT / dev_weight (net/core/hotdata.c)
    napi_weight: int = 64
    #: net.core.netdev_budget
    netdev_budget: int = 300
    #: net.core.netdev_budget_usecs
    netdev_budget_usecs: int = 2000
    #: sched_rt_runtime_us / sched_rt_period_us (kernel/sched/rt.c)
    rt_runtime_ns: int = 950_000_000
    rt_period_ns: int = 1_000_000_000

    # --- CFS (kernel/sched/fair.c base values, before the log2(ncpus) scaling) ---------
    sched_latency_ns: int = 6_000_000
    sched_min_granularity_ns: int = 750_000
    sched_wakeup_granularity_ns: int = 1_000_000

    # --- costs of the kernel's own paths ----------------------------------------------
    #: interrupt entry: vector stub, register save, irq_enter, flow handler lock/ack
    irq_entry_ns: int = 600
    #: interrupt exit: EOI, irq_exit bookkeeping, register restore, iret
    irq_exit_ns: int = 400
    #: one __do_softirq pass: mask snapshot, IRQ enable/disable, loop overhead
    softirq_pass_ns: int = 250
    #: taking one tasklet off the list, trylock, state bits
    tasklet_dispatch_ns: int = 100
    #: one context switch (lmbench lat_ctx order of magnitude)
    context_switch_ns: int = 1_500
    #: the local timer interrupt's own work (scheduler_tick, run_local_timers)
    tick_ns: int = 1_000
    #: irqflow's floor for one pass of a kernel loop (see the class docstring)
    min_loop_ns: int = 100

    # --- observing ----------------------------------------------------------------------
    #: record the latency histograms behind ``k.latency()`` (about 20% of the sim's
    #: per-interrupt work; benchmarks/bench_observe.py measures it)
    latency_histograms: bool = True

    # --- debugging ----------------------------------------------------------------------
    #: re-raise a handler's exception out of ``run()`` instead of recording an oops
    panic_on_oops: bool = False
    #: the ``noirqdebug`` boot option: no spurious-interrupt detection
    noirqdebug: bool = False
    #: cmwq (Linux 6.5+): a work item that has used this much CPU time (on the real
    #: engine: wall time, blocking included) is marked CPU_INTENSIVE and stops holding its
    #: pool back, so other items get a worker.  0: never (the kernel before 6.5)
    wq_cpu_intensive_thresh_ns: int = 10_000_000
    #: *real* engine: report driver code that has run this long in atomic context
    #: (hardirq, softirq, tasklet, or a task with IRQs or BH off) as a soft lockup.  The
    #: kernel's default is 2 x watchdog_thresh = 20 s.
    softlockup_thresh_ns: int = 20_000_000_000

    def __post_init__(self) -> None:
        if self.hz not in _VALID_HZ:
            raise IrqflowError(
                f"KernelConfig(hz={self.hz}) is not a CONFIG_HZ choice; use one of {_VALID_HZ}"
            )
        if self.workqueue_model not in _WQ_MODELS:
            raise IrqflowError(
                f"KernelConfig(workqueue_model={self.workqueue_model!r}) is unknown; "
                f"use one of {_WQ_MODELS}"
            )
        if self.preempt_model not in PREEMPT_MODELS:
            raise IrqflowError(
                f"KernelConfig(preempt_model={self.preempt_model!r}) is unknown; "
                f"use one of {PREEMPT_MODELS}"
            )
        if not 1 <= self.nr_irqs <= 100_000:
            raise IrqflowError(f"KernelConfig(nr_irqs={self.nr_irqs}) must be 1..100000")
        if self.softirq_max_restart < 1:
            raise IrqflowError(
                f"KernelConfig(softirq_max_restart={self.softirq_max_restart}) must be >= 1 "
                "(the kernel's value is 10)"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_ns") and (not isinstance(value, int) or value < 0):
                raise IrqflowError(
                    f"KernelConfig({f.name}={value!r}) must be a non-negative integer "
                    "number of nanoseconds"
                )
        if self.min_loop_ns < 1:
            raise IrqflowError(
                "KernelConfig(min_loop_ns=0) would let a kernel loop that makes no progress "
                "spin forever at one instant; use at least 1"
            )

    @property
    def tick_period_ns(self) -> int:
        """Nanoseconds per jiffy."""
        return 1_000_000_000 // self.hz

    def msecs_to_jiffies(self, ms: int) -> int:
        """include/linux/jiffies.h: rounds up."""
        return -(-ms * self.hz // 1000)

    @property
    def max_softirq_time_jiffies(self) -> int:
        """MAX_SOFTIRQ_TIME in jiffies (rounded up, at least 1)."""
        return max(1, -(-self.softirq_max_time_ns * self.hz // 1_000_000_000))


class PathCosts:
    """The CPU time of the kernel's own paths that the engine spends, in ns: the
    ``KernelConfig`` costs on an engine that models them (the sim), all 0 on the wall
    clock, where the real paths take what they take."""

    __slots__ = ("irq_entry", "irq_exit", "softirq_pass", "switch", "tasklet_dispatch", "tick")

    def __init__(self, cfg: KernelConfig, modelled: bool) -> None:
        on = 1 if modelled else 0
        self.irq_entry = cfg.irq_entry_ns * on
        self.irq_exit = cfg.irq_exit_ns * on
        #: a __do_softirq pass costs at least min_loop_ns, so a loop that makes no
        #: progress still advances virtual time
        self.softirq_pass = max(cfg.softirq_pass_ns, cfg.min_loop_ns) * on
        self.tasklet_dispatch = cfg.tasklet_dispatch_ns * on
        self.tick = cfg.tick_ns * on
        self.switch = cfg.context_switch_ns * on
