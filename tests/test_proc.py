"""Golden tests for irqflow.proc: /proc/interrupts, /proc/softirqs and /proc/stat text.

Every expected string is written out by hand from the v6.13 format strings
(kernel/irq/proc.c, arch/x86/kernel/irq.c, fs/proc/softirqs.c, fs/proc/stat.c).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from irqflow.proc import interrupts, softirqs, stat
from irqflow.stats.snapshot import CpuTimes, IrqStats, Snapshot


def line(
    irq: int,
    per_cpu: Sequence[int],
    *,
    name: str = "dev",
    chip: str = "IO-APIC",
    hwirq: int | None = None,
    flow: str = "edge",
    actions: int = 1,
) -> IrqStats:
    total = sum(per_cpu)
    return IrqStats(
        irq=irq,
        name=name,
        chip=chip,
        hwirq=irq if hwirq is None else hwirq,
        trigger="edge",
        flow=flow,
        per_cpu=tuple(per_cpu),
        raised=total,
        accepted=total,
        coalesced=0,
        lost=0,
        in_flight=0,
        unhandled=0,
        depth=0,
        spurious_disabled=False,
        irq_count=0,
        irqs_unhandled=0,
        actions=actions,
    )


def idle_cpu() -> CpuTimes:
    return CpuTimes(user=0, nice=0, system=0, idle=0, irq=0, softirq=0)


def snapshot(
    ncpus: int,
    *,
    nr_irqs: int = 24,
    irqs: Sequence[IrqStats] = (),
    softirq_counts: Mapping[str, tuple[int, ...]] | None = None,
    arch: Mapping[str, tuple[int, ...]] | None = None,
    cpus: Sequence[CpuTimes] | None = None,
    context_switches: int = 0,
    processes: int = 0,
    procs_running: int = 0,
    procs_blocked: int = 0,
) -> Snapshot:
    return Snapshot(
        time_ns=0,
        jiffies=0,
        hz=250,
        ncpus=ncpus,
        nr_irqs=nr_irqs,
        irqs={s.irq: s for s in irqs},
        softirqs=dict(softirq_counts or {}),
        softirq_raises={},
        cpus=tuple(cpus) if cpus is not None else tuple(idle_cpu() for _ in range(ncpus)),
        arch=dict(arch or {}),
        context_switches=context_switches,
        processes=processes,
        procs_running=procs_running,
        procs_blocked=procs_blocked,
        ksoftirqd_wakeups=(0,) * ncpus,
    )


# --- /proc/interrupts ---------------------------------------------------------------------

#: arch_show_interrupts() on one CPU of a typical distro kernel, nothing counted.
ARCH_1CPU = (
    "NMI:          0   Non-maskable interrupts\n"
    "LOC:          0   Local timer interrupts\n"
    "SPU:          0   Spurious interrupts\n"
    "PMI:          0   Performance monitoring interrupts\n"
    "IWI:          0   IRQ work interrupts\n"
    "RTR:          0   APIC ICR read retries\n"
    "RES:          0   Rescheduling interrupts\n"
    "CAL:          0   Function call interrupts\n"
    "TLB:          0   TLB shootdowns\n"
    "TRM:          0   Thermal event interrupts\n"
    "THR:          0   Threshold APIC interrupts\n"
    "DFR:          0   Deferred Error APIC interrupts\n"
    "MCE:          0   Machine check exceptions\n"
    "MCP:          0   Machine check polls\n"
    "ERR:          0\n"
    "MIS:          0\n"
    "PIN:          0   Posted-interrupt notification event\n"
    "NPI:          0   Nested posted-interrupt event\n"
    "PIW:          0   Posted-interrupt wakeup event\n"
)

#: the same on two CPUs: a second count cell on the per-CPU rows, ERR and MIS unchanged
ARCH_2CPUS = ARCH_1CPU.replace(":          0   ", ":          0          0   ")


def test_interrupts_matches_the_rendered_examples_of_show_interrupts() -> None:
    """The memo's rendered 6.13 lines (2 CPUs, prec 3): an IO-APIC level pin with the
    fasteoi flow, an edge pin, and a per-device MSI-X chip whose long name pushes the
    columns (``"%8s"`` never cuts), hwirq the MSI-X index."""
    snap = snapshot(
        2,
        nr_irqs=456,
        irqs=[
            line(1, (9, 0), name="i8042"),
            line(9, (0, 4), name="acpi", flow="fasteoi"),
            line(124, (0, 1234), name="eth0", chip="PCI-MSIX-0000:00:1f.6", hwirq=0),
        ],
    )
    rows = interrupts(snap).splitlines()
    assert rows[1:4] == [
        "  1:          9          0  IO-APIC   1-edge      i8042",
        "  9:          0          4  IO-APIC   9-fasteoi   acpi",
        "124:          0       1234 PCI-MSIX-0000:00:1f.6   0-edge      eth0",
    ]


def test_interrupts_two_cpus_every_arch_row_of_a_distro_kernel() -> None:
    """Two CPUs: the device rows, then every row a typical x86_64 distro kernel prints, in
    arch_show_interrupts() order, with irqflow's counts (LOC, RES, IWI) and 0 for the rows
    it does not count; ERR and MIS are one total each."""
    snap = snapshot(
        2,
        irqs=[
            line(0, (46, 0), name="timer", hwirq=2),
            line(9, (0, 3), name="acpi", flow="fasteoi"),
            line(30, (7, 1), name="nvme0q1", chip="PCI-MSI-0000:00:1c.0", hwirq=1),
        ],
        arch={"RES": (5, 6), "LOC": (1200, 1180), "NMI": (0, 1), "IWI": (2, 0)},
    )
    assert interrupts(snap) == (
        "           CPU0       CPU1       \n"
        "  0:         46          0  IO-APIC   2-edge      timer\n"
        "  9:          0          3  IO-APIC   9-fasteoi   acpi\n"
        " 30:          7          1 PCI-MSI-0000:00:1c.0   1-edge      nvme0q1\n"
        "NMI:          0          1   Non-maskable interrupts\n"
        "LOC:       1200       1180   Local timer interrupts\n"
        "SPU:          0          0   Spurious interrupts\n"
        "PMI:          0          0   Performance monitoring interrupts\n"
        "IWI:          2          0   IRQ work interrupts\n"
        "RTR:          0          0   APIC ICR read retries\n"
        "RES:          5          6   Rescheduling interrupts\n"
        "CAL:          0          0   Function call interrupts\n"
        "TLB:          0          0   TLB shootdowns\n"
        "TRM:          0          0   Thermal event interrupts\n"
        "THR:          0          0   Threshold APIC interrupts\n"
        "DFR:          0          0   Deferred Error APIC interrupts\n"
        "MCE:          0          0   Machine check exceptions\n"
        "MCP:          0          0   Machine check polls\n"
        "ERR:          0\n"
        "MIS:          0\n"
        "PIN:          0          0   Posted-interrupt notification event\n"
        "NPI:          0          0   Nested posted-interrupt event\n"
        "PIW:          0          0   Posted-interrupt wakeup event\n"
    )


def test_interrupts_one_cpu() -> None:
    """One CPU: an 11-character header cell and one 11-character count cell per row; the
    arch rows are all there even on one CPU (a distro kernel is SMP)."""
    snap = snapshot(1, irqs=[line(1, (9,), name="i8042")], arch={"LOC": (250,)})
    assert interrupts(snap) == (
        "           CPU0       \n"
        "  1:          9  IO-APIC   1-edge      i8042\n"
        + ARCH_1CPU.replace("LOC:          0", "LOC:        250")
    )


def test_interrupts_four_cpus_shared_line_and_conditional_arch_rows() -> None:
    """Four CPUs: full-width counts, shared action names, a chip without a name, no flow
    name, ERR as one total, the conditional rows (PLT, HYP, PMN) only when the snapshot has
    them and in their places, and an unknown tag last."""
    snap = snapshot(
        4,
        irqs=[
            line(16, (4294967295, 0, 12, 1), name="ehci_hcd:usb1, eth0", flow="fasteoi", actions=2),
            line(24, (0, 0, 0, 0), name="dummy", chip="", hwirq=0, flow=""),
        ],
        arch={
            "XYZ": (9, 9, 9, 9),
            "PMN": (0, 0, 0, 3),
            "PIN": (0, 0, 0, 1),
            "ERR": (2, 1, 0, 0),
            "HYP": (0, 0, 4, 0),
            "RES": (5, 0, 0, 5),
            "PLT": (1, 0, 0, 0),
            "LOC": (1, 22, 333, 4444),
        },
    )
    zeros = "          0" * 4
    assert interrupts(snap) == (
        "           CPU0       CPU1       CPU2       CPU3       \n"
        " 16: 4294967295          0         12          1  IO-APIC  16-fasteoi   "
        "ehci_hcd:usb1, eth0\n"
        " 24:          0          0          0          0        -   0  dummy\n"
        f"NMI:{zeros}   Non-maskable interrupts\n"
        "LOC:          1         22        333       4444   Local timer interrupts\n"
        f"SPU:{zeros}   Spurious interrupts\n"
        f"PMI:{zeros}   Performance monitoring interrupts\n"
        f"IWI:{zeros}   IRQ work interrupts\n"
        f"RTR:{zeros}   APIC ICR read retries\n"
        "PLT:          1          0          0          0   Platform interrupts\n"
        "RES:          5          0          0          5   Rescheduling interrupts\n"
        f"CAL:{zeros}   Function call interrupts\n"
        f"TLB:{zeros}   TLB shootdowns\n"
        f"TRM:{zeros}   Thermal event interrupts\n"
        f"THR:{zeros}   Threshold APIC interrupts\n"
        f"DFR:{zeros}   Deferred Error APIC interrupts\n"
        f"MCE:{zeros}   Machine check exceptions\n"
        f"MCP:{zeros}   Machine check polls\n"
        "HYP:          0          0          4          0   Hypervisor callback interrupts\n"
        "ERR:          3\n"
        "MIS:          0\n"
        "PIN:          0          0          0          1   Posted-interrupt notification event\n"
        f"NPI:{zeros}   Nested posted-interrupt event\n"
        f"PIW:{zeros}   Posted-interrupt wakeup event\n"
        "PMN:          0          0          0          3   Posted MSI notification event\n"
        "XYZ:          9          9          9          9   \n"
    )


def widened(arch: str, prec: int) -> str:
    """The arch block with its tags right-aligned in ``prec`` columns instead of 3."""
    return "".join(" " * (prec - 3) + row + "\n" for row in arch.splitlines())


@pytest.mark.parametrize(
    ("nr_irqs", "expected"),
    [
        (
            999,
            "           CPU0       \n"
            "  0:          7  IO-APIC   2-edge      timer\n"
            "1003:  123456789  PCI-MSI 524288-edge      nvme0q0\n" + ARCH_1CPU,
        ),
        (
            1000,
            "            CPU0       \n"
            "   0:          7  IO-APIC    2-edge      timer\n"
            "1003:  123456789  PCI-MSI 524288-edge      nvme0q0\n" + widened(ARCH_1CPU, 4),
        ),
        (
            9999,
            "            CPU0       \n"
            "   0:          7  IO-APIC    2-edge      timer\n"
            "1003:  123456789  PCI-MSI 524288-edge      nvme0q0\n" + widened(ARCH_1CPU, 4),
        ),
        (
            10000,
            "             CPU0       \n"
            "    0:          7  IO-APIC     2-edge      timer\n"
            " 1003:  123456789  PCI-MSI 524288-edge      nvme0q0\n" + widened(ARCH_1CPU, 5),
        ),
        (
            10**15,
            "                  CPU0       \n"
            "         0:          7  IO-APIC          2-edge      timer\n"
            "      1003:  123456789  PCI-MSI     524288-edge      nvme0q0\n"
            + widened(ARCH_1CPU, 10),
        ),
    ],
)
def test_interrupts_number_column_grows_with_nr_irqs(nr_irqs: int, expected: str) -> None:
    """prec is 3 below 1000 IRQs, one more per power of ten up to nr_irqs, at most 10; it
    widens the IRQ, hwirq, header and arch-tag columns alike."""
    snap = snapshot(
        1,
        nr_irqs=nr_irqs,
        irqs=[
            line(0, (7,), name="timer", hwirq=2),
            line(1003, (123456789,), name="nvme0q0", chip="PCI-MSI", hwirq=524288),
        ],
    )
    assert interrupts(snap) == expected


def test_interrupts_omits_lines_without_actions() -> None:
    """A line whose actions were all freed has no row, even with non-zero counts."""
    snap = snapshot(
        2,
        irqs=[
            line(0, (46, 0), name="timer", hwirq=2),
            line(1, (5, 6), name="", actions=0),
            line(8, (0, 0), name="rtc0"),
        ],
    )
    assert interrupts(snap) == (
        "           CPU0       CPU1       \n"
        "  0:         46          0  IO-APIC   2-edge      timer\n"
        "  8:          0          0  IO-APIC   8-edge      rtc0\n" + ARCH_2CPUS
    )


def test_interrupts_short_per_cpu_tuple_reads_as_zeros() -> None:
    """A per-CPU tuple shorter than ncpus is padded with zeros, never misaligned."""
    snap = snapshot(2, irqs=[line(3, (4,), name="serial")], arch={"LOC": (1,)})
    assert interrupts(snap) == (
        "           CPU0       CPU1       \n"
        "  3:          4          0  IO-APIC   3-edge      serial\n"
        + ARCH_2CPUS.replace("LOC:          0          0", "LOC:          1          0")
    )


def test_snapshot_reads_chip_hwirq_and_flow_from_the_core() -> None:
    """take_snapshot() renders whatever the core says: the desc's chip, its hwirq when it
    keeps one (else the IRQ number), and its flow name when it keeps one (else the flow
    handler's own name: handle_edge_irq -> edge, handle_level_irq -> level)."""
    from irqflow import IRQ_HANDLED, IRQF_TRIGGER_HIGH, Kernel

    k = Kernel(cpus=2)
    k.request_irq(1, lambda irq, dev: IRQ_HANDLED, name="i8042")
    k.request_irq(9, lambda irq, dev: IRQ_HANDLED, IRQF_TRIGGER_HIGH, name="acpi")
    snap = k.statistics()
    edge, level = snap.irqs[1], snap.irqs[9]
    assert (edge.chip, edge.hwirq, edge.flow) == ("IO-APIC", 1, "edge")
    assert (level.hwirq, level.flow) in {(9, "level"), (9, "fasteoi")}
    assert interrupts(snap).splitlines()[1] == (
        "  1:          0          0  IO-APIC   1-edge      i8042"
    )


# --- /proc/softirqs -----------------------------------------------------------------------


def test_softirqs_one_cpu() -> None:
    """One CPU: 20 spaces of header indent, names right-aligned in 12, vector order."""
    snap = snapshot(1, softirq_counts={"RCU": (7,), "TIMER": (250,), "HI": (1,)})
    assert softirqs(snap) == (
        "                    CPU0       \n"
        "          HI:          1\n"
        "       TIMER:        250\n"
        "      NET_TX:          0\n"
        "      NET_RX:          0\n"
        "       BLOCK:          0\n"
        "    IRQ_POLL:          0\n"
        "     TASKLET:          0\n"
        "       SCHED:          0\n"
        "     HRTIMER:          0\n"
        "         RCU:          7\n"
    )


def test_softirqs_two_cpus_matches_the_spec_example() -> None:
    """Two CPUs: the spec's ``"          HI:          0          3"`` row."""
    counts = {name: (0, 3) for name in ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK")}
    counts |= {name: (0, 3) for name in ("IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU")}
    assert softirqs(snapshot(2, softirq_counts=counts)) == (
        "                    CPU0       CPU1       \n"
        "          HI:          0          3\n"
        "       TIMER:          0          3\n"
        "      NET_TX:          0          3\n"
        "      NET_RX:          0          3\n"
        "       BLOCK:          0          3\n"
        "    IRQ_POLL:          0          3\n"
        "     TASKLET:          0          3\n"
        "       SCHED:          0          3\n"
        "     HRTIMER:          0          3\n"
        "         RCU:          0          3\n"
    )


def test_softirqs_four_cpus() -> None:
    """Four CPUs: one 11-character cell per CPU, missing vectors as zero rows."""
    snap = snapshot(4, softirq_counts={"NET_RX": (1, 22, 333, 4444), "SCHED": (0, 0, 0, 9)})
    assert softirqs(snap) == (
        "                    CPU0       CPU1       CPU2       CPU3       \n"
        "          HI:          0          0          0          0\n"
        "       TIMER:          0          0          0          0\n"
        "      NET_TX:          0          0          0          0\n"
        "      NET_RX:          1         22        333       4444\n"
        "       BLOCK:          0          0          0          0\n"
        "    IRQ_POLL:          0          0          0          0\n"
        "     TASKLET:          0          0          0          0\n"
        "       SCHED:          0          0          0          9\n"
        "     HRTIMER:          0          0          0          0\n"
        "         RCU:          0          0          0          0\n"
    )


# --- /proc/stat ---------------------------------------------------------------------------


def stat_snapshot() -> Snapshot:
    return snapshot(
        2,
        nr_irqs=5,
        irqs=[
            line(0, (46, 0), name="timer", hwirq=2),
            line(3, (2, 5), name="", actions=0),
        ],
        softirq_counts={"TIMER": (100, 90), "NET_RX": (3, 5), "RCU": (1, 0)},
        arch={"LOC": (100, 90), "TLB": (4, 4), "ERR": (1,), "MIS": (2,)},
        cpus=[
            CpuTimes(
                user=1_234_567_890,
                nice=0,
                system=20_000_000,
                idle=5_000_000_000,
                irq=15_000_000,
                softirq=25_000_000,
            ),
            CpuTimes(
                user=15_000_000,
                nice=10_000_000,
                system=9_999_999,
                idle=4_000_000_000,
                irq=15_000_000,
                softirq=5_000_000,
            ),
        ],
        context_switches=42,
        processes=7,
        procs_running=2,
        procs_blocked=0,
    )


def test_stat_two_cpus_golden() -> None:
    """The whole file: cpu lines in ticks, intr with the arch counts in its total (LOC and
    ERR, not TLB or MIS, as arch_irq_stat_cpu()/arch_irq_stat() sum them), one count per IRQ
    number below nr_irqs including gaps and lines without actions, then the rest."""
    assert stat(stat_snapshot()) == (
        "cpu  124 1 2 900 0 3 3 0 0 0\n"
        "cpu0 123 0 2 500 0 1 2 0 0 0\n"
        "cpu1 1 1 0 400 0 1 0 0 0 0\n"
        "intr 244 46 0 0 7 0\n"
        "ctxt 42\n"
        "btime 0\n"
        "processes 7\n"
        "procs_running 2\n"
        "procs_blocked 0\n"
        "softirq 199 0 190 0 8 0 0 0 0 0 1\n"
    )


def test_stat_ticks_truncate_and_the_aggregate_converts_the_sum() -> None:
    """nsec_to_clock_t() truncates to 10 ms ticks; the ``cpu`` line converts the summed ns,
    so 15 ms + 15 ms of user time shows 1 + 1 per CPU but 3 in total."""
    cpu = CpuTimes(user=15_000_000, nice=9_999_999, system=10_000_000, idle=0, irq=0, softirq=0)
    text = stat(snapshot(2, cpus=[cpu, cpu]))
    assert text.splitlines()[:3] == [
        "cpu  3 1 2 0 0 0 0 0 0 0",
        "cpu0 1 0 1 0 0 0 0 0 0 0",
        "cpu1 1 0 1 0 0 0 0 0 0 0",
    ]


def test_stat_intr_lists_every_irq_number_up_to_nr_irqs() -> None:
    """Invariant 64: ``intr`` has the total and then exactly nr_irqs counts, 0 for gaps."""
    snap = snapshot(1, nr_irqs=12, irqs=[line(11, (5,))], arch={"LOC": (3,)})
    intr = next(row for row in stat(snap).splitlines() if row.startswith("intr "))
    assert intr == "intr 8 0 0 0 0 0 0 0 0 0 0 0 5"


def test_stat_softirq_line_equals_proc_softirqs_column_sums() -> None:
    """Invariant 64: the per-vector numbers of the ``softirq`` line are the column sums of
    /proc/softirqs, and its first number is their total."""
    snap = snapshot(
        3,
        softirq_counts={
            "HI": (1, 2, 3),
            "TIMER": (250, 249, 251),
            "NET_RX": (10, 0, 7),
            "TASKLET": (0, 4, 0),
            "RCU": (30, 31, 29),
        },
    )
    sums = [
        sum(int(cell) for cell in row.split(":")[1].split())
        for row in softirqs(snap).splitlines()[1:]
    ]
    softirq_row = stat(snap).splitlines()[-1].split()
    assert softirq_row[0] == "softirq"
    assert [int(n) for n in softirq_row[2:]] == sums
    assert int(softirq_row[1]) == sum(sums)
    assert stat(snap).endswith("softirq 867 6 750 0 17 0 0 4 0 0 90\n")


def test_mpstat_table_splits_each_cpu_into_percentages() -> None:
    """mpstat: per-CPU %usr %sys %irq %soft %idle of that CPU's time, and the 'all' row."""
    from irqflow.proc import mpstat

    snap = snapshot(2, cpus=(CpuTimes(50, 0, 10, 30, 5, 5), CpuTimes(0, 0, 0, 100, 0, 0)))
    assert mpstat(snap) == (
        "CPU     %usr    %sys    %irq   %soft   %idle\n"
        "all   25.00    5.00    2.50    2.50   65.00\n"
        "  0   50.00   10.00    5.00    5.00   30.00\n"
        "  1    0.00    0.00    0.00    0.00  100.00\n"
    )
