"""The lock-free raise path: ``raise_irq`` on an edge line from any thread, without the
kernel lock.

A raise bumps its line's counter (``next()`` of an ``itertools.count``: one C call, so
no two raises are ever counted as one) and marks the line in the machine's ``inbox``
set; then, only if a CPU thread of the line's affinity sleeps, it rings that CPU's
doorbell.  Whoever holds the kernel lock next and sees the inbox (the CPU thread when it
wakes or finishes a driver call, any public call, ``statistics()``) hands the raises to
the core with :func:`take_raises`: each goes through the interrupt controller as if it
had been raised then, so the accounting is exact, and a snapshot counts a raise that
waits here as raised and in flight.  Memory stays constant however fast the producers
are: a storm is a number, not a queue.

The counter is read with ``next()`` too: the read takes one number for itself, which
is not a raise (``taken`` remembers where the last read left off).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from irqflow.core.irq.desc import EDGE, MASKED, PENDING

if TYPE_CHECKING:
    from irqflow.engine.real.engine import CpuState, RealEngine


class Line:
    """One edge line's raises not yet handed to the core."""

    __slots__ = ("counter", "cpus", "irq", "taken")

    def __init__(self, irq: int, cpus: tuple[CpuState, ...]) -> None:
        self.irq = irq
        self.counter = itertools.count()
        #: the counter's value just after the last read: raises before it are taken
        self.taken = 0
        #: the CPUs of the line's affinity, whose sleeping thread a raise rings
        self.cpus = cpus

    def take(self) -> int:
        """How many raises came since the last take (with the lock held)."""
        seen = next(self.counter)  # this read's own number is not a raise
        n = seen - self.taken
        self.taken = seen + 1
        return n


def home(eng: RealEngine, irq: int) -> None:
    """Open (or refresh) the lock-free path for ``irq`` if it is an edge line, or close it
    (with the lock held).  A line keeps its counter for good, so a raise that found the
    path just before it closed is still counted."""
    desc = eng.k.genirq.descs.get(irq)
    if desc is None or desc.trigger is not EDGE or eng.refuse is not None:
        eng.homes.pop(irq, None)
        return
    # single delivery: the vector's one CPU; spray: any CPU of the affinity
    where = desc.affinity if desc.target is None else (desc.target,)
    cpus = tuple(eng.k.cpus[n].engine_state for n in where)
    line = eng.lines.get(irq)
    if line is None:
        line = eng.lines[irq] = Line(irq, cpus)
    line.cpus = cpus
    eng.homes[irq] = line


def take_raises(eng: RealEngine) -> None:
    """Hand the raises waiting in the inbox to the core (with the lock held).

    Each goes through the controller (``KernelCore.raise_irq``) until the rest of the
    batch can only end one way, which is then counted directly: nothing else runs while
    the batch is taken, so every further raise of the line meets the same state
    (:func:`_settled`).  A storm of any size costs a few raises' worth of work."""
    inbox = eng.inbox
    lines = eng.lines
    raise_irq = eng.core_raise
    descs = eng.k.genirq.descs
    while inbox:
        try:
            irq = inbox.pop()
        except KeyError:  # taken by another thread meanwhile
            break
        n = lines[irq].take()
        while n:
            raise_irq(irq)
            n -= 1
            if n and _settled(eng, descs[irq], n):
                break


def _settled(eng: RealEngine, desc: Any, n: int) -> bool:
    """If the next ``n`` raises of edge line ``desc`` all end alike, count them so and
    say True.  They do (``chip.raise_edge``, ``present``, ``route``) when the line has
    no action (each is lost); when it is masked with an event latched or PENDING owed
    (each coalesces); or when its vector already waits in the request register of its
    target CPU (single delivery) or of every CPU of its affinity (spray: each coalesces,
    after ``route`` has moved its round-robin on by one, as the CPUs are no longer
    idle)."""
    if not desc.actions:
        desc.raised += n
        desc.lost += n
        return True
    if desc.state & MASKED:
        if desc.latched or desc.state & PENDING:
            desc.raised += n
            desc.coalesced += n
            return True
        return False
    cpus = eng.k.cpus
    irq = desc.irq
    if desc.target is not None:  # single delivery: one CPU's request register
        if irq not in cpus[desc.target].irr:
            return False
        desc.raised += n
        desc.coalesced += n
        return True
    aff = desc.affinity
    for nr in aff:
        if irq not in cpus[nr].irr:
            return False
    desc.raised += n
    desc.coalesced += n
    if len(aff) > 1:
        desc.rr_next += n
    return True
