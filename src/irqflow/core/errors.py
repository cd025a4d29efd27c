"""Three kinds of error, kept apart.

* Caller misuse: :class:`IrqflowError` subclasses (also ``ValueError``/``TypeError`` where
  that is what the mistake is), with a message that names the object, its state and the fix.
* Faults of the simulated system (a handler raising, an interrupt storm, an unbalanced
  ``enable_irq``): never exceptions; they become kernel-log records (WARN, oops) and the
  machine goes on.  :class:`SleepInAtomicContext` is raised *inside* the offending handler,
  so it ends that handler and is recorded as an oops like any other handler exception.
* irqflow's own bugs: :class:`InternalError`, whose message asks to report it.
"""

from __future__ import annotations

from typing import Any


class IrqflowError(Exception):
    """Base class of every error irqflow raises on purpose."""


class RequestError(IrqflowError):
    """``request_irq`` refused the request; ``errno`` holds the kernel's error name."""

    def __init__(self, errno: str, message: str) -> None:
        super().__init__(f"{errno}: {message}")
        self.errno = errno


class SleepInAtomicContext(IrqflowError):
    """A sleeping call was made where the kernel may not sleep (hardirq, softirq, tasklet,
    IRQs off or BH disabled): the kernel's "BUG: sleeping function called from invalid
    context"."""


class NotOnCpuError(IrqflowError):
    """A CPU-local call (``raise_softirq``, ``local_bh_disable``, ``udelay`` ...) was made from
    outside the machine, where there is no current CPU."""


class InternalError(IrqflowError):
    """irqflow broke one of its own rules. This is a bug in irqflow: please report it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (this is a bug in irqflow; please report it)")


def refuse_async(fn: object, what: str, context: str) -> None:
    """Driver code for atomic context may not be ``async def``: it could never sleep."""
    import inspect

    if inspect.iscoroutinefunction(fn):
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"{what}: {name} is `async def`, but it runs in {context} context, which never "
            "sleeps; make it a plain function and defer what must wait to a work item "
            "(Work) or a threaded handler (request_threaded_irq)"
        )


def claim(obj: Any, k: object, what: str) -> None:
    """Bind a tasklet, timer, NAPI instance or work item to the machine that first uses
    it; using it with another machine is a mistake (its state bits would mix two
    kernels' lists and CPUs)."""
    owner = obj.owner
    if owner is None:
        obj.owner = k
    elif owner is not k:
        raise IrqflowError(
            f"{what}: {obj!r} already belongs to another Kernel; irqflow objects serve one "
            "machine each: make a new one for this machine"
        )
