"""Contexts: ``preempt_count`` predicates, the local IRQ flag, bottom-half disabling,
``might_sleep`` and CPU-time charging (include/linux/preempt.h, irqflags.h,
bottom_half.h, kernel/softirq.c ``__local_bh_enable_ip``)."""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from irqflow.core import cpu as cpumod
from irqflow.core.base import KernelBase
from irqflow.core.config import MAX_NS
from irqflow.core.constants import (
    GFP_KERNEL,
    HARDIRQ_MASK,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
)
from irqflow.core.cpu import Cpu
from irqflow.core.errors import (
    IrqflowError,
    SleepInAtomicContext,
)
from irqflow.core.sched import Task
from irqflow.core.softirq import (
    do_softirq,
)

#: the longest busy-wait accepted: irqflow's longest time (far more is a unit mistake)
_MAX_DELAY_NS = MAX_NS + 1
_MAX_DELAY_US = _MAX_DELAY_NS / 1000


class _IrqSave:
    """What ``local_irq_save()`` returns: the saved flag, and a context manager."""

    __slots__ = ("_c", "_k", "was_on")

    def __init__(self, k: ContextApi, c: Cpu) -> None:
        self._k = k
        self._c = c
        self.was_on = c.irqs_on
        c.irqs_on = False

    def __enter__(self) -> _IrqSave:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was_on:
            self._k.irq_enable(self._c)
        else:
            self._c.irqs_on = False


class _BhDisabled:
    __slots__ = ("_k",)

    def __init__(self, k: ContextApi) -> None:
        self._k = k

    def __enter__(self) -> None:
        self._k.local_bh_disable()

    def __exit__(self, *exc: object) -> None:
        self._k.local_bh_enable()


# compiled with mypyc, the class stays open to Python subclasses: irqflow.Kernel extends it
@mypyc_attr(allow_interpreted_subclasses=True)
class ContextApi(KernelBase):
    """The context calls of the public API (``in_hardirq``, ``local_bh_disable``,
    ``udelay`` ...): :class:`KernelCore` derives from this."""

    # ------------------------------------------------------------------ contexts
    def current(self) -> Task:
        """The running task (in interrupt context: the interrupted one, as in the kernel)."""
        return self._this_cpu("current").current

    def smp_processor_id(self) -> int:
        c = self.engine.current_cpu
        return c.nr if c is not None else self._this_cpu("smp_processor_id").nr

    def preempt_count(self) -> int:
        return self._this_cpu("preempt_count").preempt_count

    def in_hardirq(self) -> bool:
        return cpumod.in_hardirq(self._this_cpu("in_hardirq").preempt_count)

    def in_softirq(self) -> bool:
        return cpumod.in_softirq(self._this_cpu("in_softirq").preempt_count)

    def in_serving_softirq(self) -> bool:
        return cpumod.in_serving_softirq(self._this_cpu("in_serving_softirq").preempt_count)

    def in_interrupt(self) -> bool:
        return cpumod.in_interrupt(self._this_cpu("in_interrupt").preempt_count)

    def in_task(self) -> bool:
        return cpumod.in_task(self._this_cpu("in_task").preempt_count)

    def irqs_disabled(self) -> bool:
        return not self._this_cpu("irqs_disabled").irqs_on

    def local_irq_disable(self) -> None:
        self._this_cpu("local_irq_disable").irqs_on = False

    def local_irq_enable(self) -> None:
        """Enable local interrupts; those that arrived meanwhile are taken right here."""
        self.irq_enable(self._this_cpu("local_irq_enable"))

    def local_irq_save(self) -> _IrqSave:
        """Disable local IRQs and remember the old state: ``with k.local_irq_save(): ...``
        or ``flags = k.local_irq_save(); ...; k.local_irq_restore(flags)``."""
        return _IrqSave(self, self._this_cpu("local_irq_save"))

    def local_irq_restore(self, flags: _IrqSave) -> None:
        if not isinstance(flags, _IrqSave):
            raise TypeError(f"local_irq_restore({flags!r}): pass what local_irq_save() returned")
        c = self._this_cpu("local_irq_restore")
        if flags.was_on:
            self.irq_enable(c)
        else:
            c.irqs_on = False

    def local_bh_disable(self) -> None:
        self._this_cpu("local_bh_disable").preempt_count += SOFTIRQ_DISABLE_OFFSET

    def local_bh_enable(self) -> None:
        """Re-enable bottom halves; the outermost enable outside interrupt context runs
        pending softirqs right here, in the caller (invariant 13)."""
        c = self._this_cpu("local_bh_enable")
        pc = c.preempt_count
        if (pc & SOFTIRQ_MASK) < SOFTIRQ_DISABLE_OFFSET:
            raise IrqflowError(
                f"local_bh_enable() on CPU {c.nr} without a matching local_bh_disable() "
                f"(preempt_count={pc:#x})"
            )
        if pc & HARDIRQ_MASK or not c.irqs_on:
            self.log(c, "warn", "local_bh_enable() called in hardirq context or with IRQs off")
        c.preempt_count -= SOFTIRQ_DISABLE_OFFSET - 1  # keep one preempt count while running
        if c.softirq_pending and not cpumod.in_interrupt(c.preempt_count):
            do_softirq(self, c)  # softirqs raised meanwhile run here
        c.preempt_count -= 1

    def bh_disabled(self) -> _BhDisabled:
        """``with k.bh_disabled():`` = local_bh_disable() ... local_bh_enable()."""
        return _BhDisabled(self)

    def might_sleep(self, what: str = "might_sleep()") -> None:
        """Raise :class:`SleepInAtomicContext` if the caller may not sleep here."""
        c = self.engine.current_cpu
        if c is None:
            return
        if c.preempt_count or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))

    def kmalloc(self, size: int, gfp: int = GFP_KERNEL) -> bytearray:
        """Allocate ``size`` bytes; ``GFP_KERNEL`` may sleep, so it is refused in atomic
        context: use ``GFP_ATOMIC`` there."""
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"kmalloc({size!r}): size must be a non-negative int")
        if gfp & GFP_KERNEL:
            self.might_sleep(f"kmalloc({size}, GFP_KERNEL)")
        return bytearray(size)

    def udelay(self, us: float) -> None:
        """Busy-wait ``us`` microseconds.  On the sim engine this is how driver code
        declares its CPU cost: the time passes inside the call (``k.now()`` moves), and
        interrupts that arrive meanwhile are taken if IRQs are on."""
        c = self.engine.current_cpu
        try:
            ok = c is not None and 0 < us < _MAX_DELAY_US
        except TypeError:
            ok = False
        if ok:
            ns = int(us * 1000)
            if ns:
                self.engine.busy(c, ns)  # type: ignore[arg-type]
            return
        self._bad_delay("udelay", us, "microseconds")

    def ndelay(self, ns: int) -> None:
        """Busy-wait ``ns`` nanoseconds (see :meth:`udelay`)."""
        c = self.engine.current_cpu
        try:
            ok = c is not None and 0 < ns < _MAX_DELAY_NS
        except TypeError:
            ok = False
        if ok:
            self.engine.busy(c, int(ns))  # type: ignore[arg-type]
            return
        self._bad_delay("ndelay", ns, "ns")

    def _bad_delay(self, what: str, v: object, unit: str) -> None:
        self._this_cpu(what)
        if v == 0 and not isinstance(v, bool):
            return
        raise ValueError(
            f"{what}({v!r}): give a finite, non-negative number of {unit} (at most "
            f"10**15 ns, irqflow's longest time)"
        )

    def in_irq(self) -> bool:
        """The old name of :meth:`in_hardirq`."""
        return self.in_hardirq()
