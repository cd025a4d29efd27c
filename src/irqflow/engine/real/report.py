"""What :meth:`Kernel.stop` reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StopReport:
    """What :meth:`Kernel.stop` did: whether everything pending ran, what was left.

    Every field is a fact the engine checked, never an assumption: ``drained`` means
    that nothing pending and due was left; ``abandoned`` lists, by kind, everything still
    queued when the threads were stopped (``"timers not yet due"`` and ``"delayed work
    items not yet due"`` included: a drain runs what is due, not the future); a name in
    ``stuck_threads`` is a thread that was inside driver code when ``stop()`` returned.
    """

    drained: bool
    #: what was still pending when the threads were stopped, by kind
    abandoned: dict[str, int] = field(default_factory=dict)
    #: threads still running driver code (a call that never returned) when stop() returned
    stuck_threads: tuple[str, ...] = ()
    #: stop(drain=True) was asked for
    drain_requested: bool = True
    #: the drain ran out of time (else a drain that left due work was called from driver
    #: code, which it cannot wait for: see ``caller``)
    timed_out: bool = False
    #: where stop() was called from when it was driver code ("events/0: work shutdown")
    caller: str = ""
    #: threads that did not exit although not in driver code (an irqflow bug: report it)
    lingering_threads: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return (
            not self.abandoned
            and not self.stuck_threads
            and not self.lingering_threads
            and (self.drained or not self.drain_requested)
        )

    def __str__(self) -> str:
        if self.clean:
            if self.drain_requested:
                return "stopped: everything pending ran, every thread joined"
            return "stopped without draining: nothing was pending, every thread joined"
        parts = []
        if self.drain_requested:
            if self.drained:
                parts.append("everything due ran")
            elif self.timed_out:
                parts.append("the drain timed out")
            else:
                parts.append(f"the drain could not run what waits for its caller ({self.caller})")
        else:
            parts.append("not drained")
        if self.abandoned:
            parts.append(
                "abandoned " + ", ".join(f"{n} {what}" for what, n in self.abandoned.items())
            )
        if self.stuck_threads:
            parts.append("threads still running driver code: " + ", ".join(self.stuck_threads))
        if self.lingering_threads:
            parts.append(
                "threads that did not exit (please report): " + ", ".join(self.lingering_threads)
            )
        if not self.stuck_threads and not self.lingering_threads:
            parts.append("every thread joined" + (" but the caller" if self.caller else ""))
        return "stopped: " + "; ".join(parts)
