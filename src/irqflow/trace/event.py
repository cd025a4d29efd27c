"""One recorded tracepoint hit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """A tracepoint hit, with the kernel's event name and field names.

    ``name`` is ``"<system>:<event>"`` (``"irq:softirq_entry"``); ``fields`` uses the
    kernel's field names (``irq``, ``name``, ``ret``, ``vec`` ...).  The context columns
    that ftrace prints come from ``preempt_count``, ``irqs_off``, ``need_resched`` and
    ``migrate_disable`` (the task's migrate_disable() depth) as they were when the event
    fired.
    """

    name: str
    ts: int
    cpu: int
    comm: str
    pid: int
    fields: dict[str, Any]
    preempt_count: int = 0
    irqs_off: bool = False
    need_resched: bool = False
    migrate_disable: int = 0

    @property
    def event(self) -> str:
        """The event name without its system (``"softirq_entry"``)."""
        return self.name.partition(":")[2]

    @property
    def system(self) -> str:
        """The system part (``"irq"``)."""
        return self.name.partition(":")[0]
