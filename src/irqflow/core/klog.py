"""The kernel log's records: dmesg lines and oopses (faults of driver code)."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One kernel log (dmesg) line: warnings such as "Unbalanced enable for IRQ 9"."""

    time_ns: int
    cpu: int | None
    #: "warn", "err", "info"
    level: str
    text: str
