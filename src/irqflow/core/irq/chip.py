"""The interrupt controller: pins, masking, latching and routing to CPUs.

Hardware line model (kernel-semantics.md, appendix A):

* **Edge** pins: ``raise_irq`` is one event.  While the pin is masked because the flow
  handler recorded PENDING (the line is busy on another CPU, or lazily disabled), further
  events merge into the replay that PENDING already owes: an x86 IO-APIC edge pin drops
  masked events, and this is what makes N arrivals during one run cost exactly one
  extra pass (invariant 32).  Masked for any other reason, the pin latches one event (an
  MSI pending bit) and presents it on unmask; a second one merges into it.  A line with
  no action is shut down: its events are lost.
* **Level** pins: the device holds the line asserted until its driver quiets it
  (``set_irq_level(irq, False)``).  The controller presents an asserted, unmasked line
  once and not again until the flow handler acks it (the IO-APIC's remote IRR), and again
  on unmask while it is still asserted.  Each presentation counts as one raise.

Routing rule (``route``).  Single delivery (``KernelConfig(irq_delivery="single")``, x86
since the vector matrix allocator): the line's vector targets one CPU, ``desc.target``,
chosen by :class:`irqflow.core.irq.manage.Genirq` when the line starts up and moved by
``irq_set_affinity``.  Spray (the seed's era): among the CPUs in the line's affinity, the
lowest-numbered idle one (halted in its idle loop, no interrupt waiting); if none is
idle, round-robin over the affinity set, per line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from irqflow.core.irq.desc import EDGE, MASKED, PENDING, IrqDesc

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu


def route(k: KernelBase, desc: IrqDesc) -> Cpu:
    cpus = k.cpus
    target = desc.target
    if target is not None:
        return cpus[target]  # single delivery: the vector's one CPU
    aff = desc.affinity
    if len(aff) == 1:
        return cpus[aff[0]]
    for n in aff:
        c = cpus[n]
        if c.halted and not c.irr:
            return c
    n = aff[desc.rr_next % len(aff)]
    desc.rr_next += 1
    return cpus[n]


def present(k: KernelBase, desc: IrqDesc) -> None:
    """Signal the line to a CPU. The raise it carries is already counted in flight."""
    target = desc.target
    c = k.cpus[target] if target is not None else route(k, desc)
    irr = c.irr
    if desc.irq in irr:
        desc.settle_coalesced()  # the CPU's request register holds one per line
        return
    irr[desc.irq] = k.engine.now
    k.engine.deliver(c)


def raise_edge(k: KernelBase, desc: IrqDesc) -> None:
    desc.raised += 1
    desc.in_flight += 1
    if not desc.actions:
        desc.settle_lost()  # shut down: nobody will ever look
        return
    if desc.state & MASKED:
        if desc.latched or desc.state & PENDING:
            desc.settle_coalesced()  # the owed replay (or the latched event) covers it
        else:
            desc.latched = True
        return
    present(k, desc)


def level_check(k: KernelBase, desc: IrqDesc) -> None:
    """Present a level line if it is asserted, unmasked and not already in service."""
    if desc.asserted and not desc.state & MASKED and not desc.in_service and desc.actions:
        desc.raised += 1
        desc.in_flight += 1
        desc.in_service = True
        present(k, desc)


def eoi(k: KernelBase, desc: IrqDesc) -> None:
    """End of interrupt (fasteoi): the line is serviced; still asserted and unmasked, it
    is presented again."""
    desc.in_service = False
    level_check(k, desc)


def mask(desc: IrqDesc) -> None:
    desc.state |= MASKED


def mask_ack(desc: IrqDesc) -> None:
    desc.state |= MASKED
    desc.in_service = False


def unmask(k: KernelBase, desc: IrqDesc) -> None:
    desc.state &= ~MASKED
    if desc.trigger is EDGE:
        if desc.latched:
            desc.latched = False
            present(k, desc)
    else:
        level_check(k, desc)


def shutdown(desc: IrqDesc) -> None:
    """Last action freed: mask the pin; a latched event can no longer be handled."""
    desc.state |= MASKED
    if desc.latched:
        desc.latched = False
        desc.settle_lost()
    desc.in_service = False
