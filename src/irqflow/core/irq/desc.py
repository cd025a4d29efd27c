"""``irq_desc`` and ``irqaction``: one descriptor per interrupt line.

State bits follow the kernel's split between the public ``IRQD_*`` state and the
core-private ``IRQS_*`` state, flattened into one word here.  Change them only through
the small helpers at the bottom (``set_pending`` ...), which also keep the raise accounting.

Raise accounting (``docs/accounting.md``): every raise ends in exactly one of
``accepted`` (the flow handler took it as a new event: the /proc/interrupts count),
``coalesced`` (merged into a handler run that happened or will happen anyway) or
``lost`` (could never cause a handler run); until then it is ``in_flight``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# --- state bits (legend: kernel name, meaning) -------------------------------------------
DISABLED = 1 << 0  # IRQD_IRQ_DISABLED: logically disabled (depth > 0)
MASKED = 1 << 1  # IRQD_IRQ_MASKED: masked at the controller
INPROGRESS = 1 << 2  # IRQD_IRQ_INPROGRESS: a CPU runs the action chain now
PENDING = 1 << 3  # IRQS_PENDING: an event arrived that still has to be handled
REPLAY = 1 << 4  # IRQS_REPLAY: a resend is in flight; blocks a second one
SPURIOUS_DISABLED = 1 << 5  # IRQS_SPURIOUS_DISABLED: disabled by "nobody cared"
ONESHOT = 1 << 6  # IRQS_ONESHOT: keep masked until the threads finish
POLL_INPROGRESS = 1 << 7  # IRQS_POLL_INPROGRESS: the spurious poller runs the chain

_STATE_NAMES = (
    (DISABLED, "DISABLED"),
    (MASKED, "MASKED"),
    (INPROGRESS, "INPROGRESS"),
    (PENDING, "PENDING"),
    (REPLAY, "REPLAY"),
    (SPURIOUS_DISABLED, "SPURIOUS_DISABLED"),
    (ONESHOT, "ONESHOT"),
    (POLL_INPROGRESS, "POLL_INPROGRESS"),
)

EDGE = "edge"
LEVEL = "level"


def state_names(state: int) -> str:
    """``"DISABLED|MASKED"`` for a state word (``"0"`` when clear)."""
    names = [name for bit, name in _STATE_NAMES if state & bit]
    return "|".join(names) if names else "0"


class IrqAction:
    """One ``request_irq`` registration on a line."""

    __slots__ = (
        "args",
        "dev_id",
        "flags",
        "forced",
        "handler",
        "irq",
        "name",
        "runthread",
        "secondary",
        "stopping",
        "thread",
        "thread_fn",
        "thread_mask",
        "warned_return",
        "warned_wake",
    )

    def __init__(
        self,
        irq: int,
        handler: Callable[[int, Any], Any],
        flags: int,
        name: str,
        dev_id: Any,
        thread_fn: Callable[[int, Any], Any] | None = None,
    ) -> None:
        self.irq = irq
        self.handler = handler
        self.flags = flags
        self.name = name
        self.dev_id = dev_id
        self.thread_fn = thread_fn
        self.warned_wake = False
        #: a bad return value of its handler was reported (once per action)
        self.warned_return = False
        #: the handler's arguments (built once: the hot path allocates nothing)
        self.args = (irq, dev_id)
        # threaded handlers (kernel/irq/manage.c)
        #: the IRQ thread ``irq/N-name`` (a Task), if the action has a thread_fn
        self.thread: Any = None
        #: IRQTF_RUNTHREAD: the thread has to run (further wakes coalesce into it)
        self.runthread = False
        #: this ONESHOT action's bit in ``desc.threads_oneshot``
        self.thread_mask = 0
        #: IRQTF_FORCED_THREAD: forced threading moved the hard handler into the thread
        self.forced = False
        #: forced threading's second action for the original thread_fn (irq/N-s-name)
        self.secondary: IrqAction | None = None
        #: free_irq is stopping the thread
        self.stopping = False

    def __repr__(self) -> str:
        return f"<IrqAction irq={self.irq} name={self.name!r} flags={self.flags:#x}>"


class IrqDesc:
    """One interrupt line: its actions, state, counters and controller pin."""

    __slots__ = (
        "accepted",
        "actions",
        "affinity",
        "asserted",
        "carrier",
        "chip",
        "coalesced",
        "depth",
        "flow",
        "handle_irq",
        "hwirq",
        "in_flight",
        "in_service",
        "inprogress_cpu",
        "irq",
        "irq_count",
        "irqs_unhandled",
        "kstat",
        "last_unhandled",
        "lat_hardirq",
        "lat_raise",
        "latched",
        "lost",
        "raised",
        "requested",
        "rr_next",
        "state",
        "target",
        "threads_active",
        "threads_handled",
        "threads_handled_last",
        "threads_oneshot",
        "trigger",
        "unhandled",
    )

    def __init__(self, irq: int, ncpus: int) -> None:
        self.irq = irq
        self.actions: list[IrqAction] = []
        #: an unrequested line starts disabled and masked (depth 1), as in the kernel
        self.depth = 1
        self.state = DISABLED | MASKED
        self.trigger = EDGE
        #: the flow handler (handle_edge_irq / handle_level_irq), set by request_irq
        self.handle_irq: Any = None
        #: as /proc/interrupts prints the line: controller, pin or MSI index, flow name
        self.chip = "IO-APIC"
        self.hwirq = irq
        self.flow = EDGE
        self.affinity: tuple[int, ...] = tuple(range(ncpus))
        self.rr_next = 0
        #: single delivery: the one CPU the line's vector targets (its effective
        #: affinity), chosen when the line starts up; None while it has no vector
        self.target: int | None = None
        self.inprogress_cpu: int | None = None
        self.kstat = [0] * ncpus
        #: latency histograms of this line (set by the kernel: raise->hardirq, hardirq)
        self.lat_raise: Any = None
        self.lat_hardirq: Any = None
        # accounting
        self.raised = 0
        self.accepted = 0
        self.coalesced = 0
        self.lost = 0
        self.in_flight = 0
        #: the raise whose handling the PENDING flag carries is still in flight
        self.carrier = False
        # controller pin
        self.latched = False  # edge: one event latched while masked
        self.asserted = False  # level: the device holds the line
        self.in_service = False  # level: presented, not yet acked (remote IRR)
        # spurious detector (kernel/irq/spurious.c)
        self.unhandled = 0
        self.irq_count = 0
        self.irqs_unhandled = 0
        self.last_unhandled = 0
        self.requested = False
        # threaded handlers (process-context issue)
        self.threads_oneshot = 0
        self.threads_active = 0
        #: thread runs that returned IRQ_HANDLED, and the spurious detector's last look
        self.threads_handled = 0
        self.threads_handled_last = 0

    @property
    def name(self) -> str:
        """Action names joined as /proc/interrupts prints them."""
        return ", ".join(a.name for a in self.actions)

    def __repr__(self) -> str:
        return (
            f"<IrqDesc {self.irq} {self.trigger} depth={self.depth} "
            f"state={state_names(self.state)} actions={self.name!r}>"
        )

    # --- accounting helpers (the only places that move raise counts) ------------------
    def settle_accepted(self, cpu: int) -> None:
        self.kstat[cpu] += 1
        self.accepted += 1
        self.in_flight -= 1

    def settle_coalesced(self) -> None:
        self.coalesced += 1
        self.in_flight -= 1

    def settle_lost(self) -> None:
        self.lost += 1
        self.in_flight -= 1

    def set_pending(self) -> None:
        """An arrival that cannot run now: it rides on PENDING (or merges into it).

        On a line with no action nobody is owed anything: the arrival is lost, though the
        PENDING bit stays, as in the kernel, and a later first ``request_irq`` replays it
        (as a new, kernel-made raise)."""
        if not self.actions:
            self.settle_lost()
        elif self.carrier:
            self.settle_coalesced()
        else:
            self.carrier = True
        self.state |= PENDING

    def orphan_pending(self) -> None:
        """The last action went away: what PENDING carried can no longer be handled
        (the bit itself stays for a later startup's resend)."""
        if self.carrier:
            self.carrier = False
            self.settle_lost()

    def consume_pending(self) -> None:
        """A replay pass of the edge loop handles what PENDING carried."""
        self.state &= ~PENDING
        if self.carrier:
            self.carrier = False
            self.settle_coalesced()

    def drop_pending(self, *, lost: bool) -> None:
        """PENDING is cleared without a pass of its own."""
        self.state &= ~PENDING
        if self.carrier:
            self.carrier = False
            if lost:
                self.settle_lost()
            else:
                self.settle_coalesced()
