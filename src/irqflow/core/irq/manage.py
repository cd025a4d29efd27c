"""genirq management: ``request_irq``, ``free_irq``, ``enable_irq``/``disable_irq`` depth,
resend, affinity, and the hardware side (``raise_irq``, ``set_irq_level``)
(kernel/irq/manage.c, kernel/irq/resend.c)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from irqflow.core import cpu as cpumod
from irqflow.core.constants import (
    IRQF_COND_ONESHOT,
    IRQF_EDGE_MASK,
    IRQF_LEVEL_MASK,
    IRQF_NO_AUTOEN,
    IRQF_ONESHOT,
    IRQF_PERCPU,
    IRQF_SHARED,
    IRQF_TRIGGER_MASK,
)
from irqflow.core.errors import (
    IrqflowError,
    RequestError,
    refuse_async,
)
from irqflow.core.irq import chip
from irqflow.core.irq.desc import (
    DISABLED,
    EDGE,
    INPROGRESS,
    LEVEL,
    MASKED,
    ONESHOT,
    PENDING,
    REPLAY,
    SPURIOUS_DISABLED,
    IrqAction,
    IrqDesc,
)
from irqflow.core.irq.flow import handle_edge_irq, handle_fasteoi_irq, handle_level_irq
from irqflow.core.irq.thread import (
    default_primary,
    setup_forced_threading,
    start_threads,
    stop_threads,
)

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase


#: the IO-APIC's pins (one 24-pin IO-APIC): x86's dynamic (MSI) IRQ numbers start here
LEGACY_IOAPIC_PINS = 24


class Genirq:
    """The interrupt descriptors and the genirq calls (``request_irq`` ...)."""

    def __init__(self, k: KernelBase) -> None:
        self.k = k
        #: irq_desc[], made on first use of a line
        self.descs: dict[int, IrqDesc] = {}
        #: note_interrupt reports at most MAX_BOGUS_REPORTS bogus return values
        self.bogus_reports = 0
        #: the spurious-IRQ poller's timer is armed
        self.spurious_poll_armed = False
        #: device vectors allocated per CPU (single delivery); CPU 0 holds the legacy
        #: timer's (IRQ 0 keeps vector 0x30 there), so the first line goes to CPU 1
        self.vectors = [0] * len(k.cpus)
        self.vectors[0] = 1

    def desc(self, irq: int, what: str) -> IrqDesc:
        if not isinstance(irq, int) or isinstance(irq, bool):
            raise TypeError(f"{what}({irq!r}): the IRQ number must be an int")
        if not 0 <= irq < self.k.config.nr_irqs:
            raise RequestError(
                "EINVAL",
                f"{what}({irq}): IRQ {irq} does not exist; this machine has IRQs "
                f"0..{self.k.config.nr_irqs - 1} (KernelConfig.nr_irqs)",
            )
        desc = self.descs.get(irq)
        if desc is None:
            desc = self.descs[irq] = IrqDesc(irq, len(self.k.cpus))
            desc.lat_raise = self.k.lat.hist("raise->hardirq", irq)
            desc.lat_hardirq = self.k.lat.hist("hardirq", irq)
        return desc

    def _setup_chip(self, desc: IrqDesc) -> None:
        """The controller behind the line and its flow handler.  ``irq_chips="x86"``
        (6.13): pins below 24 are an IO-APIC's (``handle_edge_irq``, level pins
        ``handle_fasteoi_irq``); edge lines from 24 are PCI MSI vectors, numbered after
        the IO-APIC's pins (x86's first dynamic IRQ), one device function each.
        ``"generic"`` (the seed's era): every line "IO-APIC", ``handle_edge_irq`` or
        ``handle_level_irq``."""
        irq = desc.irq
        desc.chip, desc.hwirq = "IO-APIC", irq
        if desc.trigger is LEVEL:
            if self.k.config.irq_chips == "x86":
                desc.flow, desc.handle_irq = "fasteoi", handle_fasteoi_irq
            else:
                desc.flow, desc.handle_irq = "level", handle_level_irq
            return
        desc.flow, desc.handle_irq = "edge", handle_edge_irq
        if self.k.config.irq_chips == "x86" and irq >= LEGACY_IOAPIC_PINS:
            n = irq - LEGACY_IOAPIC_PINS
            desc.chip, desc.hwirq = f"PCI-MSI-0000:00:{1 + n // 8:02x}.{n % 8}", 0

    # --- vectors (arch/x86/kernel/apic/vector.c, kernel/irq/matrix.c) -------------------
    def _assign_vector(self, desc: IrqDesc, cpus: tuple[int, ...]) -> None:
        """Single delivery: give the line a vector on the allowed CPU with the most free
        vectors, the lowest-numbered on a tie (``matrix_find_best_cpu``); so successive
        lines spread over the CPUs."""
        if self.k.config.irq_delivery != "single":
            return
        if desc.target is not None:
            self.vectors[desc.target] -= 1
        vectors = self.vectors
        desc.target = min(cpus, key=lambda n: (vectors[n], n))
        vectors[desc.target] += 1

    def _release_vector(self, desc: IrqDesc) -> None:
        if desc.target is not None:
            self.vectors[desc.target] -= 1
            desc.target = None

    # ------------------------------------------------------------------ hardware side
    def raise_irq(self, irq: int) -> None:
        """A device signals line ``irq``: one edge, or on a level line, asserts it."""
        desc = self.descs.get(irq) if irq.__class__ is int else None
        if desc is None:
            desc = self.desc(irq, "raise_irq")
        if desc.trigger is EDGE:
            chip.raise_edge(self.k, desc)
        else:
            desc.asserted = True
            chip.level_check(self.k, desc)

    def set_irq_level(self, irq: int, asserted: bool) -> None:
        """Drive a level-triggered line: the device holds it until its driver quiets it."""
        desc = self.desc(irq, "set_irq_level")
        if desc.trigger is not LEVEL:
            raise IrqflowError(
                f"set_irq_level({irq}): IRQ {irq} is edge-triggered; request it with "
                "IRQF_TRIGGER_HIGH (or _LOW) to drive it as a level, or use raise_irq"
            )
        desc.asserted = bool(asserted)
        if asserted:
            chip.level_check(self.k, desc)

    def irq_set_affinity(self, irq: int, cpus: Iterable[int]) -> None:
        """Set the CPUs allowed to take ``irq``."""
        desc = self.desc(irq, "irq_set_affinity")
        ncpus = len(self.k.cpus)
        try:
            chosen = sorted(set(cpus))
        except TypeError:
            chosen = []
        if not chosen or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < ncpus for n in chosen
        ):
            raise IrqflowError(
                f"irq_set_affinity({irq}, {cpus!r}): give a non-empty set of CPU numbers "
                f"in 0..{ncpus - 1}, e.g. {{{ncpus - 1}}}"
            )
        desc.affinity = tuple(chosen)
        if desc.target is not None and desc.target not in chosen:
            # a new vector on an allowed CPU (immediate, as with interrupt remapping;
            # without it x86 moves the vector the next time the line fires)
            self._assign_vector(desc, desc.affinity)

    # ------------------------------------------------------------------ genirq
    def setup_irq(
        self,
        irq: int,
        handler: Callable[[int, Any], Any] | None,
        thread_fn: Callable[[int, Any], Any] | None,
        flags: int,
        name: str,
        dev_id: Any,
        *,
        cond_oneshot: bool = False,
    ) -> None:
        """``__setup_irq``: add an action to the line (request_irq, request_threaded_irq;
        ``cond_oneshot``: request_irq's IRQF_COND_ONESHOT)."""
        desc = self.desc(irq, "request_irq")
        what = f"request_irq({irq}, name={name!r})"
        if not isinstance(name, str):
            raise TypeError(
                f"{what}: the name is the text /proc/interrupts shows (a str), not {name!r}"
            )
        if not isinstance(flags, int) or isinstance(flags, bool) or flags < 0:
            raise TypeError(
                f"{what}: flags={flags!r}; flags is an int of IRQF_* bits, e.g. "
                "IRQF_SHARED | IRQF_TRIGGER_HIGH, or 0"
            )
        if cond_oneshot:
            flags |= IRQF_COND_ONESHOT
        if flags & IRQF_SHARED and flags & IRQF_NO_AUTOEN:
            raise RequestError(
                "EINVAL",
                f"{what}: IRQF_SHARED with IRQF_NO_AUTOEN: a shared line is enabled by its "
                "first user, so other sharers cannot keep it off; drop IRQF_NO_AUTOEN and "
                "use disable_irq",
            )
        if flags & IRQF_SHARED and dev_id is None:
            raise RequestError(
                "EINVAL",
                f"{what}: IRQF_SHARED needs a dev_id, the cookie that tells the actions of a "
                "shared line apart in free_irq; pass dev_id=<your device object>",
            )
        if handler is None and thread_fn is None:
            raise RequestError("EINVAL", f"{what}: give a handler, a thread_fn, or both")
        if handler is None:
            if not flags & IRQF_ONESHOT:
                raise RequestError(
                    "EINVAL",
                    f"{what}: threaded irq requested with handler=None and without "
                    "IRQF_ONESHOT; the line would re-fire before the thread runs. "
                    "Add IRQF_ONESHOT",
                )
            handler = default_primary
        if not callable(handler):
            raise TypeError(f"{what}: handler {handler!r} is not callable as handler(irq, dev_id)")
        refuse_async(handler, what, "hardirq")
        if thread_fn is not None and not callable(thread_fn):
            raise TypeError(
                f"{what}: thread_fn {thread_fn!r} is not callable as thread_fn(irq, dev_id)"
            )
        name = name or getattr(handler, "__name__", f"irq{irq}")
        action = IrqAction(irq, handler, flags, name, dev_id, thread_fn)
        # threadirqs moves the handler into a thread first, adding IRQF_ONESHOT, and only
        # then are the sharers' flags compared (__setup_irq): so a forced-threaded line
        # takes further forced-threaded sharers, and refuses an IRQF_NO_THREAD one
        setup_forced_threading(self.k, action)
        flags = action.flags
        if desc.actions:
            old = desc.actions[0]
            oldf = old.flags
            mismatch = None
            if not (oldf & flags & IRQF_SHARED):
                mismatch = "both requests must pass IRQF_SHARED to share a line"
            elif flags & IRQF_TRIGGER_MASK and (flags ^ oldf) & IRQF_TRIGGER_MASK:
                mismatch = "the trigger types differ"
            elif (flags ^ oldf) & IRQF_ONESHOT and not (
                flags & IRQF_COND_ONESHOT and oldf & IRQF_ONESHOT
            ):
                mismatch = "IRQF_ONESHOT differs"
            elif (flags ^ oldf) & IRQF_PERCPU:
                mismatch = "IRQF_PERCPU differs"
            if mismatch:
                raise RequestError(
                    "EBUSY",
                    f"Flags mismatch irq {irq}. {flags:08x} ({name}) vs. {oldf:08x} "
                    f"({desc.name}): {mismatch}",
                )
            if flags & IRQF_COND_ONESHOT and oldf & IRQF_ONESHOT:
                action.flags = flags = flags | IRQF_ONESHOT
        if action.flags & IRQF_ONESHOT:
            used = 0
            for other in desc.actions:
                used |= other.thread_mask
            bit = 1
            while used & bit:
                bit <<= 1
            action.thread_mask = bit
            desc.state |= ONESHOT
        flags = action.flags
        first = not desc.actions
        desc.actions.append(action)  # appended at the tail: called in this order (inv. 27)
        if first:
            if flags & IRQF_LEVEL_MASK:
                desc.trigger = LEVEL
            elif flags & IRQF_EDGE_MASK:
                desc.trigger = EDGE
            self._setup_chip(desc)
            self._assign_vector(desc, desc.affinity)  # irq_activate, irq_setup_affinity
            desc.state &= ~(SPURIOUS_DISABLED | REPLAY)
            desc.requested = True
            if flags & IRQF_NO_AUTOEN:
                desc.depth = 1
                desc.state |= DISABLED
            else:
                # irq_startup(desc, IRQ_RESEND): enable, and replay an edge left pending
                desc.depth = 0
                desc.state &= ~DISABLED
                chip.unmask(self.k, desc)
                self._check_irq_resend(desc)
        elif desc.state & SPURIOUS_DISABLED:
            # a new sharer may be the driver that cares: re-enable once (invariant 45)
            desc.state &= ~SPURIOUS_DISABLED
            self._enable(desc)
        desc.irq_count = 0
        desc.irqs_unhandled = 0
        start_threads(self.k, desc, action)

    def free_irq(self, irq: int, dev_id: Any = None) -> str:
        """Remove the action registered with ``dev_id``; returns its name. Waits (outside
        the machine) until no handler of the line is running."""
        desc = self.desc(irq, "free_irq")
        for action in desc.actions:
            if action.dev_id is dev_id or action.dev_id == dev_id:
                break
        else:
            have = ", ".join(f"{a.name} (dev_id={a.dev_id!r})" for a in desc.actions) or "none"
            raise IrqflowError(
                f"free_irq({irq}, dev_id={dev_id!r}): Trying to free already-free IRQ {irq}: "
                f"no action has that dev_id; registered actions: {have}"
            )
        c = self.k.engine.current_cpu
        if c is not None and cpumod.in_interrupt(c.preempt_count):
            self.k.log(c, "warn", f"Trying to free IRQ {irq} from IRQ context!")
        desc.actions.remove(action)
        if not desc.actions:
            desc.depth = 1
            desc.state |= DISABLED
            desc.orphan_pending()
            chip.shutdown(desc)
            self._release_vector(desc)
        stop_threads(self.k, action)
        if c is None:
            self.k._wait(
                lambda: not desc.state & INPROGRESS and desc.threads_active == 0,
                f"free_irq({irq})",
            )
        return action.name

    def disable_irq_nosync(self, irq: int) -> None:
        """Disable the line (nested by depth) without waiting for running handlers."""
        desc = self.desc(irq, "disable_irq_nosync")
        if desc.depth == 0:
            desc.state |= DISABLED  # lazy disable: the pin stays unmasked until it fires
        desc.depth += 1

    def disable_irq(self, irq: int) -> Any:
        """Disable the line and wait until no handler of it is running (invariant 30)."""
        self.disable_irq_nosync(irq)
        return self.synchronize_irq(irq)

    def enable_irq(self, irq: int) -> None:
        """Undo one ``disable_irq``; at depth 1 -> 0 the line is enabled and an edge that
        arrived meanwhile is replayed once (invariants 29, 34)."""
        self._enable(self.desc(irq, "enable_irq"))

    def _enable(self, desc: IrqDesc) -> None:
        if desc.depth == 0:
            self.k.log(self.k.engine.current_cpu, "warn", f"Unbalanced enable for IRQ {desc.irq}")
            return
        desc.depth -= 1
        if desc.depth:
            return
        desc.state &= ~DISABLED
        if desc.state & MASKED and desc.actions:
            chip.unmask(self.k, desc)
        self._check_irq_resend(desc)

    def _check_irq_resend(self, desc: IrqDesc) -> None:
        """kernel/irq/resend.c: replay a pending edge through the controller."""
        if desc.trigger is LEVEL:
            desc.drop_pending(lost=False)  # the device still holds the line: no replay
            return
        if desc.state & REPLAY or not desc.state & PENDING:
            return
        desc.state &= ~PENDING
        desc.state |= REPLAY
        if desc.carrier:
            desc.carrier = False  # the carried raise moves to the replayed presentation
        else:
            desc.raised += 1
            desc.in_flight += 1
        if not desc.actions:
            desc.settle_lost()
            return
        chip.present(self.k, desc)

    def synchronize_irq(self, irq: int) -> Any:
        """Wait until no handler of ``irq`` is running on any CPU (invariant 41)."""
        desc = self.desc(irq, "synchronize_irq")
        return self.k._wait(
            lambda: not desc.state & INPROGRESS and desc.threads_active == 0,
            f"synchronize_irq({irq})",
        )

    def irq_state(self, irq: int) -> str:
        """The line's state bits as text, e.g. ``"DISABLED|MASKED"`` (for debugging)."""
        from irqflow.core.irq.desc import state_names

        return state_names(self.desc(irq, "irq_state").state)
