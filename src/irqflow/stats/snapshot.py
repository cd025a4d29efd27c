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
from typing import TYPE_CHECKING

from irqflow.core.constants import SOFTIRQ_NAMES
from irqflow.core.cpu import IDLE, IRQ, SOFTIRQ, SYSTEM, USER
from irqflow.core.irq.desc import SPURIOUS_DISABLED
from irqflow.core.klog import LogRecord, Oops
from irqflow.core.sched import RUNNING

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

__all__ = ["CpuTimes", "IrqStats", "LogRecord", "Oops", "Snapshot"]


@dataclass(frozen=True, slots=True)
class IrqStats:
    """One interrupt line: a ``/proc/interrupts`` row plus irqflow's accounting."""

    irq: int
    #: action names joined by ", " as in /proc/interrupts ("" when no action)
    name: str
    #: interrupt controller name printed in /proc/interrupts ("IO-APIC",
    #: "PCI-MSI-0000:00:1c.0")
    chip: str
    #: hardware interrupt number inside the controller (the IO-APIC pin, the MSI index)
    hwirq: int
    #: trigger type: "edge" or "level"
    trigger: str
    #: flow handler name, /proc/interrupts' ``desc->name`` ("edge", "fasteoi", "level")
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


def take_snapshot(k: KernelCore) -> Snapshot:
    """A frozen snapshot of every counter of ``k`` (``Kernel.statistics()``)."""
    ncpus = len(k.cpus)
    irqs = {}
    for n in sorted(k.genirq.descs):
        d = k.genirq.descs[n]
        if not d.requested and not d.raised:
            continue
        irqs[n] = IrqStats(
            irq=n,
            name=d.name,
            chip=d.chip,
            hwirq=d.hwirq,
            trigger=d.trigger,
            flow=d.flow,
            per_cpu=tuple(d.kstat),
            raised=d.raised,
            accepted=d.accepted,
            coalesced=d.coalesced,
            lost=d.lost,
            in_flight=d.in_flight,
            unhandled=d.unhandled,
            depth=d.depth,
            spurious_disabled=bool(d.state & SPURIOUS_DISABLED),
            irq_count=d.irq_count,
            irqs_unhandled=d.irqs_unhandled,
            actions=len(d.actions),
        )
    softirqs = {
        name: tuple(c.softirq_counts[nr] for c in k.cpus) for nr, name in enumerate(SOFTIRQ_NAMES)
    }
    raises = {
        name: tuple(c.softirq_raises[nr] for c in k.cpus) for nr, name in enumerate(SOFTIRQ_NAMES)
    }
    times = []
    for c in k.cpus:
        t = k.engine.cpu_times(c)
        times.append(
            CpuTimes(
                user=t[USER],
                nice=0,
                system=t[SYSTEM],
                idle=t[IDLE],
                irq=t[IRQ],
                softirq=t[SOFTIRQ],
            )
        )
    arch_names = sorted({k for c in k.cpus for k in c.arch_counts})
    arch = {a: tuple(c.arch_counts.get(a, 0) for c in k.cpus) for a in arch_names}
    live = [t for t in k.sched.tasks if t.state == RUNNING]
    return Snapshot(
        time_ns=k.engine.now,
        jiffies=k.jiffies,
        hz=k.config.hz,
        ncpus=ncpus,
        nr_irqs=k.config.nr_irqs,
        irqs=irqs,
        softirqs=softirqs,
        softirq_raises=raises,
        cpus=tuple(times),
        arch=arch,
        context_switches=sum(c.nr_switches for c in k.cpus),
        processes=len(k.sched.tasks),
        procs_running=len(live),
        procs_blocked=0,
        ksoftirqd_wakeups=tuple(c.ksoftirqd_wakeups for c in k.cpus),
        time_squeeze=tuple(c.time_squeeze for c in k.cpus),
        oopses=tuple(k._oopses),
        log=tuple(k._log),
    )
