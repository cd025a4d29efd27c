"""genirq management: ``request_irq``, ``free_irq``, ``enable_irq``/``disable_irq`` depth,
resend, affinity, and the hardware side (``raise_irq``, ``set_irq_level``)
(kernel/irq/manage.c, kernel/irq/resend.c)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from irqflow.core import cpu as cpumod
from irqflow.core.base import KernelBase
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
from irqflow.core.cpu import Cpu
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
from irqflow.core.irq.flow import IrqHandler, handle_edge_irq, handle_level_irq
from irqflow.core.irq.thread import (
    default_primary,
    irq_wake_thread,
    setup_forced_threading,
    start_threads,
    stop_threads,
)

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore


class IrqManageMixin(KernelBase):
    """The genirq calls of ``KernelCore``."""

    def _desc(self, irq: int, what: str) -> IrqDesc:
        if not isinstance(irq, int) or isinstance(irq, bool):
            raise TypeError(f"{what}({irq!r}): the IRQ number must be an int")
        if not 0 <= irq < self.config.nr_irqs:
            raise RequestError(
                "EINVAL",
                f"{what}({irq}): IRQ {irq} does not exist; this machine has IRQs "
                f"0..{self.config.nr_irqs - 1} (KernelConfig.nr_irqs)",
            )
        desc = self._descs.get(irq)
        if desc is None:
            desc = self._descs[irq] = IrqDesc(irq, len(self.cpus))
            desc.lat_raise = self.lat.hist("raise->hardirq", irq)
            desc.lat_hardirq = self.lat.hist("hardirq", irq)
        return desc

    def _flow_for(self, desc: IrqDesc) -> Callable[[KernelCore, Cpu, IrqDesc], None]:
        return handle_edge_irq if desc.trigger is EDGE else handle_level_irq

    # ------------------------------------------------------------------ hardware side
    def raise_irq(self, irq: int) -> None:
        """A device signals line ``irq``: one edge, or on a level line, asserts it."""
        desc = self._descs.get(irq) if irq.__class__ is int else None
        if desc is None:
            desc = self._desc(irq, "raise_irq")
        if desc.trigger is EDGE:
            chip.raise_edge(self, desc)
        else:
            desc.asserted = True
            chip.level_check(self, desc)

    def set_irq_level(self, irq: int, asserted: bool) -> None:
        """Drive a level-triggered line: the device holds it until its driver quiets it."""
        desc = self._desc(irq, "set_irq_level")
        if desc.trigger is not LEVEL:
            raise IrqflowError(
                f"set_irq_level({irq}): IRQ {irq} is edge-triggered; request it with "
                "IRQF_TRIGGER_HIGH (or _LOW) to drive it as a level, or use raise_irq"
            )
        desc.asserted = bool(asserted)
        if asserted:
            chip.level_check(self, desc)

    def irq_set_affinity(self, irq: int, cpus: Iterable[int]) -> None:
        """Set the CPUs allowed to take ``irq``."""
        desc = self._desc(irq, "irq_set_affinity")
        chosen = sorted(set(cpus))
        if not chosen or not all(isinstance(n, int) and 0 <= n < len(self.cpus) for n in chosen):
            raise IrqflowError(
                f"irq_set_affinity({irq}, {chosen}): give a non-empty set of CPU numbers "
                f"in 0..{len(self.cpus) - 1}"
            )
        desc.affinity = tuple(chosen)

    # ------------------------------------------------------------------ genirq
    def request_irq(
        self,
        irq: int,
        handler: IrqHandler,
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register ``handler(irq, dev_id) -> IrqReturn`` on line ``irq``.

        Raises :class:`RequestError` with the kernel's errno (``EINVAL``, ``EBUSY``) when
        the request is refused."""
        self._setup_irq(irq, handler, None, flags | IRQF_COND_ONESHOT, name, dev_id)

    def request_threaded_irq(
        self,
        irq: int,
        handler: IrqHandler | None,
        thread_fn: IrqHandler | None,
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register a primary ``handler`` and a ``thread_fn`` run by thread ``irq/N-name``."""
        self._setup_irq(irq, handler, thread_fn, flags, name, dev_id)

    def _setup_irq(
        self,
        irq: int,
        handler: Callable[[int, Any], Any] | None,
        thread_fn: Callable[[int, Any], Any] | None,
        flags: int,
        name: str,
        dev_id: Any,
    ) -> None:
        desc = self._desc(irq, "request_irq")
        what = f"request_irq({irq}, name={name!r})"
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
                flags |= IRQF_ONESHOT
        action = IrqAction(irq, handler, flags, name, dev_id, thread_fn)
        setup_forced_threading(cast("KernelCore", self), action)
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
            desc.handle_irq = self._flow_for(desc)
            desc.state &= ~(SPURIOUS_DISABLED | REPLAY)
            desc.requested = True
            if flags & IRQF_NO_AUTOEN:
                desc.depth = 1
                desc.state |= DISABLED
            else:
                # irq_startup(desc, IRQ_RESEND): enable, and replay an edge left pending
                desc.depth = 0
                desc.state &= ~DISABLED
                chip.unmask(self, desc)
                self._check_irq_resend(desc)
        elif desc.state & SPURIOUS_DISABLED:
            # a new sharer may be the driver that cares: re-enable once (invariant 45)
            desc.state &= ~SPURIOUS_DISABLED
            self._enable(desc)
        desc.irq_count = 0
        desc.irqs_unhandled = 0
        start_threads(cast("KernelCore", self), desc, action)

    def free_irq(self, irq: int, dev_id: Any = None) -> str:
        """Remove the action registered with ``dev_id``; returns its name. Waits (outside
        the machine) until no handler of the line is running."""
        desc = self._desc(irq, "free_irq")
        for action in desc.actions:
            if action.dev_id is dev_id or action.dev_id == dev_id:
                break
        else:
            have = ", ".join(f"{a.name} (dev_id={a.dev_id!r})" for a in desc.actions) or "none"
            raise IrqflowError(
                f"free_irq({irq}, dev_id={dev_id!r}): Trying to free already-free IRQ {irq}: "
                f"no action has that dev_id; registered actions: {have}"
            )
        c = self.engine.current_cpu
        if c is not None and cpumod.in_interrupt(c.preempt_count):
            self.log(c, "warn", f"Trying to free IRQ {irq} from IRQ context!")
        desc.actions.remove(action)
        if not desc.actions:
            desc.depth = 1
            desc.state |= DISABLED
            desc.orphan_pending()
            chip.shutdown(desc)
        stop_threads(cast("KernelCore", self), action)
        if c is None:
            self._wait(
                lambda: not desc.state & INPROGRESS and desc.threads_active == 0,
                f"free_irq({irq})",
            )
        return action.name

    def disable_irq_nosync(self, irq: int) -> None:
        """Disable the line (nested by depth) without waiting for running handlers."""
        desc = self._desc(irq, "disable_irq_nosync")
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
        self._enable(self._desc(irq, "enable_irq"))

    def _enable(self, desc: IrqDesc) -> None:
        if desc.depth == 0:
            self.log(self.engine.current_cpu, "warn", f"Unbalanced enable for IRQ {desc.irq}")
            return
        desc.depth -= 1
        if desc.depth:
            return
        desc.state &= ~DISABLED
        if desc.state & MASKED and desc.actions:
            chip.unmask(self, desc)
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
        chip.present(self, desc)

    def synchronize_irq(self, irq: int) -> Any:
        """Wait until no handler of ``irq`` is running on any CPU (invariant 41)."""
        desc = self._desc(irq, "synchronize_irq")
        return self._wait(
            lambda: not desc.state & INPROGRESS and desc.threads_active == 0,
            f"synchronize_irq({irq})",
        )

    def _irq_wake_thread(self, c: Cpu, desc: IrqDesc, action: IrqAction) -> None:
        irq_wake_thread(cast("KernelCore", self), c, desc, action)

    def irq_state(self, irq: int) -> str:
        """The line's state bits as text, e.g. ``"DISABLED|MASKED"`` (for debugging)."""
        from irqflow.core.irq.desc import state_names

        return state_names(self._desc(irq, "irq_state").state)
