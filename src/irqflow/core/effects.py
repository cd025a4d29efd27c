"""Effects: what a kernel flow asks of the engine.

Kernel control flow (``do_IRQ``, the flow handlers, ``__do_softirq``, ``tasklet_action``,
``ksoftirqd``) is written as generator functions.  Wherever a flow needs CPU time or the
scheduler it yields one of the objects below; the engine interprets it and resumes the
generator, sending back a value where the effect has one.

==============  ===============================================================
effect          meaning
==============  ===============================================================
``Busy(ns)``    the kernel's own code occupies this CPU for ``ns`` (entry/exit,
                a softirq pass, tasklet dispatch); interruptible iff IRQs are on
``Run(...)``    call driver code (a handler, a softirq action, a tasklet, a thread
                body) in the current context; the CPU time is what it charged with
                ``udelay``/``ndelay``. Sends back the callable's result, or
                :data:`FAILED` if it raised (the fault is recorded as an oops)
``IRQS_OFF``    ``local_irq_disable()`` (flows may also clear ``cpu.irqs_on``
                directly: the engine takes pending interrupts at the boundary
                before it resumes a flow, so disabling needs no boundary)
``IRQS_ON``     ``local_irq_enable()``: pending interrupts are taken right here
``BLOCK``       process context only: sleep until woken (``wake_up_process``)
``Sleep(ns)``   process context only: sleep for ``ns``
``WaitUntil(p)`` process context only: sleep until ``p()`` holds
``COND_RESCHED`` process context only: ``cond_resched()``, switch if need_resched
``IDLE``        the idle task has nothing to do: halt until an interrupt
==============  ===============================================================

Singletons are used for the argument-less effects so that the hot path allocates
nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


def symbol_name(func: Callable[..., Any]) -> str:
    """A kernel-symbol-like name for driver code, as tracepoints print functions:
    ``Class.method`` or ``function`` (enclosing functions' ``<locals>`` dropped)."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name.rpartition("<locals>.")[2] if name else repr(func)


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


IRQS_OFF: Final = _Marker("IRQS_OFF")
IRQS_ON: Final = _Marker("IRQS_ON")
BLOCK: Final = _Marker("BLOCK")
COND_RESCHED: Final = _Marker("COND_RESCHED")
IDLE: Final = _Marker("IDLE")
#: What ``Run`` sends back when the driver code raised.
FAILED: Final = _Marker("FAILED")


@dataclass(slots=True)
class WaitUntil:
    """Process context only: sleep until ``pred()`` is true (a blocking kernel call such as
    ``flush_work`` awaited from a kernel thread).  The engine checks waiting predicates
    after every event."""

    pred: Callable[[], bool]


@dataclass(slots=True)
class Sleep:
    """Process context only: sleep for ``ns`` (``msleep``, ``schedule_timeout``)."""

    ns: int


@dataclass(slots=True)
class Busy:
    """The kernel's own code keeps the CPU busy for ``ns`` nanoseconds.

    ``irqs_on`` (optional) sets the local IRQ flag first, as ``local_irq_enable(); ...``
    would, saving a separate ``IRQS_ON`` effect on hot paths.  Busy objects are never
    mutated by the engine, so a flow may yield the same one again and again.
    """

    ns: int
    irqs_on: bool | None = None
    #: accounting category ("softirq" ...); None: derived from the context when it runs
    cat: str | None = None


@dataclass(slots=True)
class Run:
    """Call driver code in the current context.

    ``where`` names the code for oops records and error messages ("eth0",
    "tasklet rx_action"); ``irq`` is the line for hardirq actions; ``cost`` is kernel-path
    time charged before the call (tasklet dispatch), saving an effect.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    where: str
    irq: int | None = None
    cost: int = 0


Effect = Busy | Run | Sleep | WaitUntil | _Marker
