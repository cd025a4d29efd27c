"""``KernelConfig``: every tunable, with the kernel's defaults and where each comes from.

Every field is checked when a config is made, by one data-driven rule per field: the
field's annotation gives its type (an ``int`` field takes an ``int`` and no ``bool``,
``float`` or ``str``; a ``bool`` field takes ``True`` or ``False``; a ``str`` field takes
a ``str``), and :class:`Rule` (in ``field(metadata=...)``, made with :func:`setting`) gives
its range or its choices.  A field without a rule gets the default for its kind: an
``int`` is ``0 .. INT_MAX``, and a ``*_ns`` time is ``0 .. MAX_NS``.  A new field is thus
checked as soon as it is declared; give it ``setting(...)`` for anything narrower.  A
value that breaks a rule raises :class:`ConfigError`, which names the field, the value and
the fix (the scenario loader maps it back to the ``machine.config`` key).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields
from typing import Any

from irqflow.core.errors import IrqflowError

_VALID_HZ = (100, 250, 300, 1000)  # kernel/Kconfig.hz
_WQ_MODELS = ("per-cpu-threads", "cmwq")
#: CONFIG_PREEMPT_NONE / _VOLUNTARY / _PREEMPT (full) / PREEMPT_RT
PREEMPT_MODELS = ("none", "voluntary", "full", "rt")
#: "single": each line's vector targets one CPU (x86 since the vector matrix allocator);
#: "spray": lowest idle CPU of the affinity set, else round-robin (the seed's era)
IRQ_DELIVERIES = ("single", "spray")
#: "x86": IO-APIC pins (edge, and fasteoi for level) below 24, PCI-MSI edge lines from
#: 24; "generic": every line "IO-APIC" with handle_edge_irq / handle_level_irq
IRQ_CHIPS = ("x86", "generic")
#: the fair class: EEVDF (6.6+) or CFS (before)
FAIR_CLASSES = ("eevdf", "cfs")
#: what keeps RT tasks from starving the rest: the 6.12+ fair server (a deadline server
#: giving fair tasks 50 ms per second when they wait), classic RT throttling
#: (rt_runtime_ns per rt_period_ns; before 6.12, or CONFIG_RT_GROUP_SCHED), or nothing
RT_BANDWIDTHS = ("fair_server", "throttle", "none")
#: the timer wheel: "lazy" (4.8+: an expiry rounds up to its level's granularity, at
#: least one jiffy) or "cascading" (before 4.8: exact to the jiffy)
TIMER_WHEELS = ("lazy", "cascading")

#: the longest time any setting may name: 10**15 ns (about 11.6 days).  Times this long
#: still convert to and from float exactly enough, and keep every sum of times an int.
MAX_NS = 10**15
#: counts and sizes are C ints in the kernel (sysctls, struct fields)
INT_MAX = 2**31 - 1

#: the annotation of each kind of field, and what it accepts
_KINDS: dict[str, type] = {"int": int, "bool": bool, "str": str}


class ConfigError(IrqflowError):
    """A ``KernelConfig`` field has a value it does not take: ``field`` names it."""

    def __init__(self, name: str, value: Any, message: str) -> None:
        super().__init__(f"KernelConfig({name}={reprlib.repr(value)}): {message}")
        self.field = name
        self.value = value
        #: the message without the ``KernelConfig(field=value)`` prefix
        self.reason = message


@dataclass(frozen=True)
class Rule:
    """What a field takes beyond its annotated type: ``minimum``/``maximum`` (ints) or one
    of ``choices``; ``hint`` is added to the error (the kernel's value, why)."""

    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[Any, ...] = ()
    hint: str = ""


def setting(default: Any, **rule: Any) -> Any:
    """A field with a :class:`Rule` (``minimum``, ``maximum``, ``choices``, ``hint``)."""
    return field(default=default, metadata={"rule": Rule(**rule)})


def rule_of(name: str, annotation: str, metadata: Any) -> Rule:
    """The rule a field is checked by: its own, else the default for its kind."""
    own: Rule | None = metadata.get("rule")
    default = Rule()
    if annotation == "int":
        default = Rule(0, MAX_NS if name.endswith("_ns") else INT_MAX)
    if own is None:
        return default
    if annotation != "int" or own.choices:
        return own
    lo = own.minimum if own.minimum is not None else default.minimum
    hi = own.maximum if own.maximum is not None else default.maximum
    return Rule(lo, hi, own.choices, own.hint)


def _problem(name: str, annotation: str, rule: Rule, value: Any) -> str | None:
    """Why ``value`` does not fit the field, with the fix; None if it fits."""
    kind = _KINDS.get(annotation)
    if kind is None:
        return f"irqflow cannot check a field annotated {annotation!r}; add it to _KINDS"
    hint = f" ({rule.hint})" if rule.hint else ""
    if type(value) is not kind:  # exact: a bool is not an int here, nor an int a bool
        what = {"int": "an integer", "bool": "true or false", "str": "a string"}[annotation]
        unit = " (nanoseconds)" if name.endswith("_ns") else ""
        found = type(value).__name__
        if rule.choices:
            return f"expected one of {rule.choices}, found {found}{hint}"
        return f"expected {what}{unit}, found {found}; give {what}{hint}"
    if rule.choices and value not in rule.choices:
        return f"not one of {rule.choices}; use one of them{hint}"
    lo, hi = rule.minimum, rule.maximum
    if isinstance(value, int) and (
        (lo is not None and value < lo) or (hi is not None and value > hi)
    ):
        span = f"{lo:_}..{hi:_}" if lo is not None and hi is not None else f">= {lo}"
        return f"out of range; give {span}{hint}"
    return None


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
    hz: int = setting(250, choices=_VALID_HZ, hint="the CONFIG_HZ choices of kernel/Kconfig.hz")
    #: number of IRQ numbers (nr_irqs); lines 0 .. nr_irqs-1 exist
    nr_irqs: int = setting(256, minimum=1, maximum=100_000)

    # --- softirq limits (kernel/softirq.c) -------------------------------------------
    #: MAX_SOFTIRQ_RESTART: passes per __do_softirq; trades latency against fairness
    softirq_max_restart: int = setting(10, minimum=1, hint="the kernel's value is 10")
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
    preempt_model: str = setting(
        "voluntary",
        choices=PREEMPT_MODELS,
        hint="6.13 x86_64_defconfig and most distributions boot Dynamic Preempt: voluntary",
    )
    #: how a line's interrupts reach the CPUs (IRQ_DELIVERIES)
    irq_delivery: str = setting("single", choices=IRQ_DELIVERIES)
    #: the interrupt controllers' naming and flow handlers (IRQ_CHIPS)
    irq_chips: str = setting("x86", choices=IRQ_CHIPS)
    #: the fair scheduling class (FAIR_CLASSES)
    fair_class: str = setting("eevdf", choices=FAIR_CLASSES)
    #: RT bandwidth control (RT_BANDWIDTHS)
    rt_bandwidth: str = setting("fair_server", choices=RT_BANDWIDTHS)
    #: the timer wheel (TIMER_WHEELS)
    timer_wheel: str = setting("lazy", choices=TIMER_WHEELS)
    #: msleep adds a jiffy to its timeout, as every kernel before 6.13 did (6.13 relies
    #: on the lazy wheel's rounding up instead)
    msleep_extra_jiffy: bool = False
    #: CONFIG_PREEMPT_COUNT (every PREEMPT_DYNAMIC kernel): the idle loop runs with
    #: preempt_count 1 (an interrupt on an idle CPU traces as ``d.h1.``) and the
    #: scheduler's own locks show in its tracepoints (``sched_switch`` at ``d..2.``).
    #: Off (the 2.6 era's voluntary builds) both count 0.  irqflow's preempt_disable()
    #: and spinlocks count either way, so in_atomic() works for driver checks.
    preempt_count: bool = True

    # --- workqueues, NAPI, RT throttling (used from the process-context issue on) -------
    #: "per-cpu-threads": the seed's events/N threads (2.6.0-2.6.35); "cmwq": kworker pools
    workqueue_model: str = setting("cmwq", choices=_WQ_MODELS)
    #: NAPI_POLL_WEIGHT / dev_weight (net/core/hotdata.c)
    napi_weight: int = setting(64, minimum=1, hint="NAPI_POLL_WEIGHT is 64")
    #: net.core.netdev_budget
    netdev_budget: int = setting(300, minimum=1, hint="the kernel's default is 300")
    #: net.core.netdev_budget_usecs; -1: the kernel's default, 2 * USEC_PER_SEC / HZ
    #: (net/core/hotdata.c: 8000 at HZ=250)
    netdev_budget_usecs: int = setting(-1, minimum=-1, hint="-1 means 2 * USEC_PER_SEC / HZ")
    #: sched_rt_runtime_us / sched_rt_period_us (kernel/sched/rt.c)
    #: (at most rt_period_ns, as sched_rt_handler() requires)
    rt_runtime_ns: int = 950_000_000
    rt_period_ns: int = setting(1_000_000_000, minimum=1, hint="the kernel's default is 1 s")

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
    min_loop_ns: int = setting(
        100,
        minimum=1,
        hint="at 0 a kernel loop that makes no progress would spin forever at one instant",
    )

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
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _problem(f.name, str(f.type), rule_of(f.name, str(f.type), f.metadata), value)
            if problem is not None:
                raise ConfigError(f.name, value, problem)
        if self.rt_runtime_ns > self.rt_period_ns:
            raise ConfigError(
                "rt_runtime_ns",
                self.rt_runtime_ns,
                f"more than rt_period_ns ({self.rt_period_ns}); give at most the period "
                "(the kernel refuses a larger runtime)",
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> KernelConfig:
        """The configuration of a kernel era, with ``overrides`` on top: ``"2.6"`` (the
        seed article's kernel), ``"4.9"``, ``"6.13"`` (the default) or ``"6.13-rt"``
        (PREEMPT_RT).  See ``docs/kernel-map.md`` for what each models."""
        if name not in PRESETS:
            raise ConfigError("preset", name, f"not one of {tuple(PRESETS)}; use one of them")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def netdev_budget_us(self) -> int:
        """``netdev_budget_usecs`` in effect (its -1 default resolved for this HZ)."""
        if self.netdev_budget_usecs < 0:
            return 2_000_000 // self.hz
        return self.netdev_budget_usecs

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


#: the fields each era sets (everything else keeps its default, the 6.13 value)
PRESETS: dict[str, dict[str, Any]] = {
    # the seed article's kernel (2.6.x): interrupts sprayed over the CPUs, the generic
    # level flow, events/N threads, CFS with classic RT throttling, the cascading wheel,
    # no PREEMPT_COUNT; softirqs run at irq_exit whatever ksoftirqd does
    "2.6": {
        "irq_delivery": "spray",
        "irq_chips": "generic",
        "workqueue_model": "per-cpu-threads",
        "fair_class": "cfs",
        "rt_bandwidth": "throttle",
        "timer_wheel": "cascading",
        "preempt_model": "voluntary",
        "preempt_count": False,
        "msleep_extra_jiffy": True,
        "ksoftirqd_defers": False,
        "netdev_budget_usecs": 2000,
    },
    # 4.9-6.4: irq_exit leaves softirqs to a running ksoftirqd (commit 4cd13c21b207)
    "4.9": {
        "msleep_extra_jiffy": True,
        "fair_class": "cfs",
        "rt_bandwidth": "throttle",
        "ksoftirqd_defers": True,
        "netdev_budget_usecs": 2000,
    },
    "6.13": {},
    # PREEMPT_RT: forced-threaded handlers that stay preemptible, softirqs in task
    # context under a per-CPU BH lock, ktimers/N, sleeping spinlocks
    "6.13-rt": {"preempt_model": "rt", "threadirqs": True},
}


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
