"""Frozen snapshots of every counter the kernel keeps.

A snapshot is taken by ``Kernel.statistics()`` and never changes afterwards; the
``/proc``-style views in :mod:`irqflow.proc` are pure functions of one.

Accounting of raised interrupts (per line), see ``docs/accounting.md``::

    raised == accepted + coalesced + lost + in_flight

``in_flight`` counts raises whose fate is not decided yet (latched by a masked line,
waiting in a CPU's interrupt-request register, or carried by a PENDING flag); it is 0
once the machine is quiet, and then the API's identity ``raised == accepted + coalesced +
lost`` holds exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class IrqStats:
    """One interrupt line: a ``/proc/interrupts`` row plus irqflow's accounting."""

    irq: int
    #: action names joined by ", " as in /proc/interrupts ("" when no action)
    name: str
    #: interrupt controller name printed in /proc/interrupts ("IO-APIC")
    chip: str
    #: hardware interrupt number inside the controller
    hwirq: int
    #: trigger type: "edge" or "level"
    trigger: str
    #: flow handler name ("edge", "level")
    flow: str
    #: accepted events per CPU: the /proc/interrupts columns
    per_cpu: tuple[int, ...]
    raised: int
    accepted: int
    coalesced: int
    lost: int
    in_flight: int
    #: events for which every action returned IRQ_NONE
    unhandled: int
    #: disable depth (0 = enabled)
    depth: int
    spurious_disabled: bool
    #: spurious detector state, as /proc/irq/N/spurious shows it
    irq_count: int
    irqs_unhandled: int
    #: number of registered actions
    actions: int

    @property
    def total(self) -> int:
        """Sum of the per-CPU counts."""
        return sum(self.per_cpu)


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Where one CPU's time went, in nanoseconds (the /proc/stat cpu line, unscaled)."""

    user: int
    nice: int
    system: int
    idle: int
    irq: int
    softirq: int

    @property
    def total(self) -> int:
        return self.user + self.nice + self.system + self.idle + self.irq + self.softirq


@dataclass(frozen=True, slots=True)
class Oops:
    """A handler fault recorded the way the kernel would print an oops; the CPU went on."""

    time_ns: int
    cpu: int
    #: "hardirq", "softirq" or "task"
    context: str
    #: what was running: action name, "tasklet <func>", "softirq NET_RX", thread comm
    where: str
    irq: int | None
    exc_type: str
    message: str
    traceback: str
    #: oopses recorded before this one since boot (the ring keeps the last ones only)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One kernel log (dmesg) line: warnings such as "Unbalanced enable for IRQ 9"."""

    time_ns: int
    cpu: int | None
    #: kernel log level: "emerg", "err", "warn", "info" ...
    level: str
    text: str
    #: records logged before this one since boot (as /dev/kmsg numbers them; the ring
    #: keeps the last ones only, so the first record's ``seq`` counts those dropped)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every counter at one instant."""

    time_ns: int
    jiffies: int
    hz: int
    ncpus: int
    #: number of IRQ numbers the machine has (``nr_irqs``); lines 0..nr_irqs-1
    nr_irqs: int
    #: lines that have or had an action, by number
    irqs: Mapping[int, IrqStats]
    #: per-vector, per-CPU execution counts in vector order, keyed "HI" .. "RCU"
    softirqs: Mapping[str, tuple[int, ...]]
    #: per-vector, per-CPU raise counts (every raise_softirq, as the softirq_raise tracepoint)
    softirq_raises: Mapping[str, tuple[int, ...]]
    cpus: tuple[CpuTimes, ...]
    #: architecture rows of /proc/interrupts, e.g. {"LOC": per-CPU tick counts}
    arch: Mapping[str, tuple[int, ...]]
    context_switches: int
    processes: int
    procs_running: int
    procs_blocked: int
    #: per-CPU ksoftirqd wakeups: a __do_softirq that handed its leftovers over, or a
    #: softirq raised from task context
    ksoftirqd_wakeups: tuple[int, ...]
    #: per-CPU /proc/net/softnet_stat time_squeeze: net_rx_action runs cut short
    time_squeeze: tuple[int, ...] = field(default_factory=tuple)
    #: the last oopses (a bounded ring: ``oopses_dropped`` counts the older ones)
    oopses: tuple[Oops, ...] = field(default_factory=tuple)
    #: the last kernel log records (a bounded ring: ``log_dropped`` counts the older ones)
    log: tuple[LogRecord, ...] = field(default_factory=tuple)

    @property
    def oopses_dropped(self) -> int:
        """Oopses recorded before the oldest one kept."""
        return self.oopses[0].seq if self.oopses else 0

    @property
    def log_dropped(self) -> int:
        """Log records made before the oldest one kept."""
        return self.log[0].seq if self.log else 0
