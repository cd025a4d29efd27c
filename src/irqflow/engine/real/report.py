"""What :meth:`Kernel.stop` reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StopReport:
    """What :meth:`Kernel.stop` did: whether everything pending ran, what was left."""

    drained: bool
    #: what was still pending when the threads were stopped, by kind (empty when drained)
    abandoned: dict[str, int] = field(default_factory=dict)
    #: threads that did not finish in time (running driver code that never returned)
    stuck_threads: tuple[str, ...] = ()
    #: stop(drain=True) was asked for (then ``drained`` False means it timed out)
    drain_requested: bool = True

    @property
    def clean(self) -> bool:
        return (
            not self.abandoned
            and not self.stuck_threads
            and (self.drained or not self.drain_requested)
        )

    def __str__(self) -> str:
        if self.clean:
            if self.drain_requested:
                return "stopped: everything pending ran, every thread joined"
            return "stopped without draining: nothing was pending, every thread joined"
        parts = []
        if self.drain_requested and not self.drained:
            parts.append("the drain timed out")
        if self.abandoned:
            parts.append(
                "abandoned " + ", ".join(f"{n} {what}" for what, n in self.abandoned.items())
            )
        if self.stuck_threads:
            parts.append("threads still running driver code: " + ", ".join(self.stuck_threads))
        return "stopped: " + "; ".join(parts)
