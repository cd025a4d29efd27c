"""``/proc/interrupts``, ``/proc/softirqs`` and ``/proc/stat`` as text, from one snapshot.

Every function here is a pure function of a frozen
:class:`~irqflow.stats.snapshot.Snapshot` and lays its text out column for column like
Linux v6.13, so tools that parse the real files parse these too:

* :func:`interrupts` mirrors ``kernel/irq/proc.c`` ``show_interrupts()`` followed by the
  x86 rows of ``arch/x86/kernel/irq.c`` ``arch_show_interrupts()``;
* :func:`softirqs` mirrors ``fs/proc/softirqs.c`` ``show_softirqs()``;
* :func:`stat` mirrors ``fs/proc/stat.c`` ``show_stat()``.

irqflow has no CPU hotplug, so the kernel's "online" and "possible" CPUs are the same set,
``0 .. snap.ncpus - 1``.  A per-CPU tuple shorter than ``ncpus`` reads as zeros for the
missing CPUs (and extra entries are ignored), so the three files always agree with each
other (invariant 64).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from irqflow.core.constants import SOFTIRQ_NAMES
from irqflow.stats.snapshot import CpuTimes, Snapshot

__all__ = ["USER_HZ", "interrupts", "softirqs", "stat"]

#: include/asm-generic/param.h: /proc/stat reports CPU time in ticks of 1/USER_HZ s.
USER_HZ: Final = 100
_NSEC_PER_SEC: Final = 1_000_000_000

#: arch/x86/kernel/irq.c arch_show_interrupts(), v6.13: the rows in the kernel's order as
#: (tag, description, always).  ``always`` rows are printed on every machine whose kernel
#: has the config a typical x86_64 distro kernel has (X86_LOCAL_APIC, SMP,
#: X86_THERMAL_VECTOR, X86_MCE_THRESHOLD, X86_MCE_AMD, X86_MCE, X86_IO_APIC and KVM, the
#: module counting as enabled), with 0 where irqflow counts nothing.  The others are
#: printed only when the snapshot has the row: PLT needs a platform IPI callback, HYP/HRE/
#: HVS a hypervisor vector in use, PMN CONFIG_X86_POSTED_MSI (off by default).
#: ERR and MIS (description None) print one machine-wide total (``"%*s: %10u"``).
_ARCH_ROWS: Final[tuple[tuple[str, str | None, bool], ...]] = (
    ("NMI", "Non-maskable interrupts", True),
    ("LOC", "Local timer interrupts", True),
    ("SPU", "Spurious interrupts", True),
    ("PMI", "Performance monitoring interrupts", True),
    ("IWI", "IRQ work interrupts", True),
    ("RTR", "APIC ICR read retries", True),
    ("PLT", "Platform interrupts", False),
    ("RES", "Rescheduling interrupts", True),
    ("CAL", "Function call interrupts", True),
    ("TLB", "TLB shootdowns", True),
    ("TRM", "Thermal event interrupts", True),
    ("THR", "Threshold APIC interrupts", True),
    ("DFR", "Deferred Error APIC interrupts", True),
    ("MCE", "Machine check exceptions", True),
    ("MCP", "Machine check polls", True),
    ("HYP", "Hypervisor callback interrupts", False),
    ("HRE", "Hyper-V reenlightenment interrupts", False),
    ("HVS", "Hyper-V stimer0 interrupts", False),
    ("ERR", None, True),
    ("MIS", None, True),
    ("PIN", "Posted-interrupt notification event", True),
    ("NPI", "Nested posted-interrupt event", True),
    ("PIW", "Posted-interrupt wakeup event", True),
    ("PMN", "Posted MSI notification event", False),
)
_KNOWN_ARCH_TAGS: Final = frozenset(tag for tag, _, _ in _ARCH_ROWS)
#: Rows that arch_irq_stat_cpu()/arch_irq_stat() leave out of the /proc/stat "intr" total:
#: TLB shootdowns are already counted as function-call IPIs, MIS as device interrupts,
#: and DFR and the posted-interrupt rows are simply not summed there.
_ARCH_NOT_IN_INTR_TOTAL: Final = frozenset({"TLB", "DFR", "MIS", "PIN", "NPI", "PIW", "PMN"})


def interrupts(snap: Snapshot) -> str:
    """``/proc/interrupts``: a header of CPU columns, one row per line with an action,
    then the architecture rows (``NMI``, ``LOC`` ... ``ERR``, ``MIS``, ``PIN`` ...).

    Device rows: ``"%*d:"`` IRQ number, ``" %10u"`` per CPU, a space, ``"%8s"`` chip
    (right-aligned, never cut: ``PCI-MSIX-0000:00:1f.6``; ``-`` for a chip without a
    name), ``" %*lu"`` hwirq, ``"-%-8s"`` flow name (``edge``, ``fasteoi``, ``level``), then
    two spaces and the action names joined by ``", "``.  Architecture rows keep the older
    ``"%*s: "`` + ``"%10u "`` layout, as x86 does in v6.13; both come out 11 characters per
    CPU.
    """
    prec = _irq_prec(snap.nr_irqs)
    ncpus = snap.ncpus
    out = [" " * (prec + 8) + "".join(f"CPU{cpu:<8d}" for cpu in range(ncpus)) + "\n"]
    for irq in sorted(snap.irqs):
        line = snap.irqs[irq]
        if line.actions <= 0:
            continue  # show_interrupts(): "if (!desc->action ...) return 0;"
        row = f"{irq:>{prec}d}:" + "".join(f" {n:10d}" for n in _cells(line.per_cpu, ncpus))
        row += f" {line.chip or '-':>8s} {line.hwirq:>{prec}d}"
        if line.flow:
            row += f"-{line.flow:<8s}"
        out.append(f"{row}  {line.name}\n")
    out.extend(_arch_rows(snap.arch, prec, ncpus))
    return "".join(out)


def softirqs(snap: Snapshot) -> str:
    """``/proc/softirqs``: 20 spaces and ``"CPU%-8d"`` per CPU, then one ``"%12s:"`` row per
    vector in vector order with ``" %10u"`` per CPU.  A count is one per vector execution."""
    ncpus = snap.ncpus
    out = [" " * 20 + "".join(f"CPU{cpu:<8d}" for cpu in range(ncpus)) + "\n"]
    for name in SOFTIRQ_NAMES:
        counts = _cells(snap.softirqs.get(name, ()), ncpus)
        out.append(f"{name:>12s}:" + "".join(f" {n:10d}" for n in counts) + "\n")
    return "".join(out)


def stat(snap: Snapshot) -> str:
    """``/proc/stat``: CPU times in USER_HZ ticks, the ``intr`` line (total, then one count
    for every IRQ number ``0 .. nr_irqs-1``), ``ctxt``, ``btime``, ``processes``,
    ``procs_running``, ``procs_blocked`` and the ``softirq`` line.

    As in the kernel, the aggregate ``cpu`` line converts the nanosecond sums, so it can be
    larger than the sum of the per-CPU tick counts.  ``iowait``, ``steal``, ``guest`` and
    ``guest_nice`` are always 0 and ``btime`` is 0 (the simulated machine boots at the
    epoch).  The ``softirq`` per-vector numbers are the column sums of :func:`softirqs`
    (invariant 64).
    """
    ncpus = snap.ncpus
    total = CpuTimes(
        user=sum(c.user for c in snap.cpus),
        nice=sum(c.nice for c in snap.cpus),
        system=sum(c.system for c in snap.cpus),
        idle=sum(c.idle for c in snap.cpus),
        irq=sum(c.irq for c in snap.cpus),
        softirq=sum(c.softirq for c in snap.cpus),
    )
    out = [f"cpu  {_cpu_columns(total)}\n"]
    out.extend(f"cpu{cpu} {_cpu_columns(times)}\n" for cpu, times in enumerate(snap.cpus))

    # show_stat(): sum = kstat_cpu_irqs_sum() + arch_irq_stat_cpu() per CPU + arch_irq_stat()
    intr_total = sum(sum(_cells(line.per_cpu, ncpus)) for line in snap.irqs.values())
    for tag, counts in snap.arch.items():
        if tag not in _ARCH_NOT_IN_INTR_TOTAL:
            intr_total += sum(counts) if tag == "ERR" else sum(_cells(counts, ncpus))
    per_irq = (
        sum(_cells(snap.irqs[irq].per_cpu, ncpus)) if irq in snap.irqs else 0
        for irq in range(snap.nr_irqs)
    )
    out.append(f"intr {intr_total}" + "".join(f" {n}" for n in per_irq) + "\n")

    out.append(f"ctxt {snap.context_switches}\n")
    out.append("btime 0\n")
    out.append(f"processes {snap.processes}\n")
    out.append(f"procs_running {snap.procs_running}\n")
    out.append(f"procs_blocked {snap.procs_blocked}\n")

    per_vector = [sum(_cells(snap.softirqs.get(name, ()), ncpus)) for name in SOFTIRQ_NAMES]
    out.append(f"softirq {sum(per_vector)}" + "".join(f" {n}" for n in per_vector) + "\n")
    return "".join(out)


# --- helpers -------------------------------------------------------------------------------


def _irq_prec(nr_irqs: int) -> int:
    """Width of the IRQ-number column: 3, plus one per power of ten from 1000 that is
    <= nr_irqs, at most 10 (``for (prec = 3, j = 1000; prec < 10 && j <= nr_irqs; ++prec)``).
    """
    prec, limit = 3, 1000
    while prec < 10 and limit <= nr_irqs:
        prec += 1
        limit *= 10
    return prec


def _cells(counts: Sequence[int], ncpus: int) -> tuple[int, ...]:
    """One count per CPU ``0 .. ncpus-1``; missing CPUs read as 0."""
    return tuple(counts[cpu] if cpu < len(counts) else 0 for cpu in range(ncpus))


def _arch_rows(arch: Mapping[str, Sequence[int]], prec: int, ncpus: int) -> list[str]:
    """The x86 rows after the last IRQ, in arch_show_interrupts() order: every row a
    typical distro kernel prints (0 where the snapshot has no count), the conditional
    ones the snapshot has, then any tag the kernel does not know, in snapshot order and
    without a description."""

    def per_cpu_row(tag: str, text: str) -> str:
        cells = "".join(f"{n:10d} " for n in _cells(arch.get(tag, ()), ncpus))
        return f"{tag:>{prec}s}: {cells}  {text}\n"

    rows = []
    for tag, text, always in _ARCH_ROWS:
        if not always and tag not in arch:
            continue
        if text is None:
            rows.append(f"{tag:>{prec}s}: {sum(arch.get(tag, ())):10d}\n")
        else:
            rows.append(per_cpu_row(tag, text))
    rows.extend(per_cpu_row(tag, "") for tag in arch if tag not in _KNOWN_ARCH_TAGS)
    return rows


def _clock_t(ns: int) -> int:
    """kernel/time/time.c nsec_to_clock_t(): nanoseconds to USER_HZ ticks, truncating."""
    return ns // (_NSEC_PER_SEC // USER_HZ)


def _cpu_columns(t: CpuTimes) -> str:
    """user nice system idle iowait irq softirq steal guest guest_nice, in ticks."""
    values = (t.user, t.nice, t.system, t.idle, 0, t.irq, t.softirq, 0, 0, 0)
    return " ".join(str(_clock_t(ns)) for ns in values)


def mpstat(snap: Snapshot) -> str:
    """An ``mpstat -P ALL``-like table: where each CPU's time went, in percent."""
    rows = ["CPU     %usr    %sys    %irq   %soft   %idle"]

    def row(label: str, times: Sequence[CpuTimes]) -> str:
        total = sum(t.total for t in times) or 1
        parts = (
            sum(t.user + t.nice for t in times),
            sum(t.system for t in times),
            sum(t.irq for t in times),
            sum(t.softirq for t in times),
            sum(t.idle for t in times),
        )
        return f"{label:>3} " + " ".join(f"{100 * p / total:7.2f}" for p in parts)

    rows.append(row("all", snap.cpus))
    rows.extend(row(str(n), [t]) for n, t in enumerate(snap.cpus))
    return "\n".join(rows) + "\n"
