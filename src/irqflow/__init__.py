"""irqflow: the Linux kernel's interrupt-handling system, as a Python library.

"Do the important part now, defer the rest": hard IRQ handlers (top halves) with
interrupts off, softirqs and tasklets with interrupts on, ksoftirqd when softirqs
overflow, and process context for work that may sleep.  See README.md.
"""

from irqflow import proc
from irqflow.core.config import KernelConfig
from irqflow.core.constants import (
    GFP_ATOMIC,
    GFP_KERNEL,
    HI_SOFTIRQ,
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_NO_AUTOEN,
    IRQF_NO_THREAD,
    IRQF_ONESHOT,
    IRQF_PERCPU,
    IRQF_PROBE_SHARED,
    IRQF_SHARED,
    IRQF_TRIGGER_FALLING,
    IRQF_TRIGGER_HIGH,
    IRQF_TRIGGER_LOW,
    IRQF_TRIGGER_NONE,
    IRQF_TRIGGER_RISING,
    NET_RX_SOFTIRQ,
    NET_TX_SOFTIRQ,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
    WQ_BH,
    WQ_CPU_INTENSIVE,
    WQ_HIGHPRI,
    WQ_MEM_RECLAIM,
    WQ_UNBOUND,
    IrqReturn,
    SoftIrq,
)
from irqflow.core.errors import (
    InternalError,
    IrqflowError,
    NotOnCpuError,
    RequestError,
    SleepInAtomicContext,
)
from irqflow.core.irq.flow import IrqHandler
from irqflow.core.napi import Napi
from irqflow.core.sched import Task
from irqflow.core.tasklet import Tasklet
from irqflow.core.timer import Timer
from irqflow.core.workqueue import DelayedWork, Work, Workqueue
from irqflow.kernel import Kernel

__version__ = "0.1.0"

__all__ = [
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "HI_SOFTIRQ",
    "IRQF_NO_AUTOEN",
    "IRQF_NO_THREAD",
    "IRQF_ONESHOT",
    "IRQF_PERCPU",
    "IRQF_PROBE_SHARED",
    "IRQF_SHARED",
    "IRQF_TRIGGER_FALLING",
    "IRQF_TRIGGER_HIGH",
    "IRQF_TRIGGER_LOW",
    "IRQF_TRIGGER_NONE",
    "IRQF_TRIGGER_RISING",
    "IRQ_HANDLED",
    "IRQ_NONE",
    "IRQ_WAKE_THREAD",
    "NET_RX_SOFTIRQ",
    "NET_TX_SOFTIRQ",
    "TASKLET_SOFTIRQ",
    "TIMER_SOFTIRQ",
    "WQ_BH",
    "WQ_CPU_INTENSIVE",
    "WQ_HIGHPRI",
    "WQ_MEM_RECLAIM",
    "WQ_UNBOUND",
    "DelayedWork",
    "InternalError",
    "IrqHandler",
    "IrqReturn",
    "IrqflowError",
    "Kernel",
    "KernelConfig",
    "Napi",
    "NotOnCpuError",
    "RequestError",
    "SleepInAtomicContext",
    "SoftIrq",
    "Task",
    "Tasklet",
    "Timer",
    "Work",
    "Workqueue",
    "proc",
]
