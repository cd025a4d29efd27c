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
