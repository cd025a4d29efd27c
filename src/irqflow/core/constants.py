"""Kernel constants with their kernel names and values (v6.13 unless noted)."""

from __future__ import annotations

import enum

# --- preempt_count layout (include/linux/preempt.h) ------------------------------------
PREEMPT_BITS = 8
SOFTIRQ_BITS = 8
HARDIRQ_BITS = 4
NMI_BITS = 4
PREEMPT_SHIFT = 0
SOFTIRQ_SHIFT = PREEMPT_SHIFT + PREEMPT_BITS  # 8
HARDIRQ_SHIFT = SOFTIRQ_SHIFT + SOFTIRQ_BITS  # 16
NMI_SHIFT = HARDIRQ_SHIFT + HARDIRQ_BITS  # 20

PREEMPT_MASK = 0x000000FF
SOFTIRQ_MASK = 0x0000FF00
HARDIRQ_MASK = 0x000F0000
NMI_MASK = 0x00F00000

PREEMPT_OFFSET = 1 << PREEMPT_SHIFT  # 0x1
SOFTIRQ_OFFSET = 1 << SOFTIRQ_SHIFT  # 0x100: added while softirq handlers run
SOFTIRQ_DISABLE_OFFSET = 2 * SOFTIRQ_OFFSET  # 0x200: added by each local_bh_disable()
HARDIRQ_OFFSET = 1 << HARDIRQ_SHIFT  # 0x10000
NMI_OFFSET = 1 << NMI_SHIFT  # 0x100000


class IrqReturn(enum.IntFlag):
    """``irqreturn_t`` (include/linux/irqreturn.h). The flow layer ORs the results."""

    IRQ_NONE = 0
    IRQ_HANDLED = 1
    IRQ_WAKE_THREAD = 2


IRQ_NONE = IrqReturn.IRQ_NONE
IRQ_HANDLED = IrqReturn.IRQ_HANDLED
IRQ_WAKE_THREAD = IrqReturn.IRQ_WAKE_THREAD

# --- IRQF_* request flags (include/linux/interrupt.h) ----------------------------------
IRQF_TRIGGER_NONE = 0x00000000
IRQF_TRIGGER_RISING = 0x00000001
IRQF_TRIGGER_FALLING = 0x00000002
IRQF_TRIGGER_HIGH = 0x00000004
IRQF_TRIGGER_LOW = 0x00000008
IRQF_TRIGGER_MASK = (
    IRQF_TRIGGER_HIGH | IRQF_TRIGGER_LOW | IRQF_TRIGGER_RISING | IRQF_TRIGGER_FALLING
)
IRQF_SHARED = 0x00000080
IRQF_PROBE_SHARED = 0x00000100
IRQF_PERCPU = 0x00000400
IRQF_NOBALANCING = 0x00000800
IRQF_ONESHOT = 0x00002000
IRQF_NO_THREAD = 0x00010000
IRQF_NO_AUTOEN = 0x00080000
IRQF_NO_DEBUG = 0x00100000
IRQF_COND_ONESHOT = 0x00200000

IRQF_EDGE_MASK = IRQF_TRIGGER_RISING | IRQF_TRIGGER_FALLING
IRQF_LEVEL_MASK = IRQF_TRIGGER_HIGH | IRQF_TRIGGER_LOW


class SoftIrq(enum.IntEnum):
    """Softirq vectors; the index is the priority, lower runs first (include/linux/interrupt.h)."""

    HI_SOFTIRQ = 0
    TIMER_SOFTIRQ = 1
    NET_TX_SOFTIRQ = 2
    NET_RX_SOFTIRQ = 3
    BLOCK_SOFTIRQ = 4
    IRQ_POLL_SOFTIRQ = 5
    TASKLET_SOFTIRQ = 6
    SCHED_SOFTIRQ = 7
    HRTIMER_SOFTIRQ = 8
    RCU_SOFTIRQ = 9

    @property
    def short_name(self) -> str:
        """The name ``/proc/softirqs`` and the ``softirq_*`` tracepoints print ("NET_RX")."""
        return SOFTIRQ_NAMES[self.value]


NR_SOFTIRQS = 10
#: kernel/softirq.c softirq_to_name[]
SOFTIRQ_NAMES: tuple[str, ...] = (
    "HI",
    "TIMER",
    "NET_TX",
    "NET_RX",
    "BLOCK",
    "IRQ_POLL",
    "TASKLET",
    "SCHED",
    "HRTIMER",
    "RCU",
)

HI_SOFTIRQ = SoftIrq.HI_SOFTIRQ
TIMER_SOFTIRQ = SoftIrq.TIMER_SOFTIRQ
NET_TX_SOFTIRQ = SoftIrq.NET_TX_SOFTIRQ
NET_RX_SOFTIRQ = SoftIrq.NET_RX_SOFTIRQ
BLOCK_SOFTIRQ = SoftIrq.BLOCK_SOFTIRQ
IRQ_POLL_SOFTIRQ = SoftIrq.IRQ_POLL_SOFTIRQ
TASKLET_SOFTIRQ = SoftIrq.TASKLET_SOFTIRQ
SCHED_SOFTIRQ = SoftIrq.SCHED_SOFTIRQ
HRTIMER_SOFTIRQ = SoftIrq.HRTIMER_SOFTIRQ
RCU_SOFTIRQ = SoftIrq.RCU_SOFTIRQ

#: kernel/softirq.c: at most this many passes per __do_softirq invocation.
MAX_SOFTIRQ_RESTART = 10
#: kernel/softirq.c: MAX_SOFTIRQ_TIME = msecs_to_jiffies(2).
MAX_SOFTIRQ_TIME_MS = 2

# --- spurious detection (kernel/irq/spurious.c) ------------------------------------------
SPURIOUS_WINDOW = 100_000  # irq_count threshold
SPURIOUS_UNHANDLED_LIMIT = 99_900  # irqs_unhandled must exceed this to disable the line

# --- GFP flags (only the sleeping bit matters here) --------------------------------------
GFP_ATOMIC = 0x0
GFP_KERNEL = 0x1  # __GFP_RECLAIM: may sleep

# --- workqueue flags (include/linux/workqueue.h), used from the process-context issue on --
WQ_BH = 1 << 0
WQ_UNBOUND = 1 << 1
WQ_FREEZABLE = 1 << 2
WQ_MEM_RECLAIM = 1 << 3
WQ_HIGHPRI = 1 << 4
WQ_CPU_INTENSIVE = 1 << 5
