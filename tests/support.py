"""Helpers shared by the behaviour tests (``from support import ...``).

pytest's default ``prepend`` import mode puts this directory (it has no ``__init__.py``)
on ``sys.path`` before it imports a test module, so the test modules import this one as a
top-level module; the subprocess determinism tests put it on ``sys.path`` themselves.

Timing model: in ``ZERO`` every cost of the kernel's own paths is 0 and only the
``min_loop_ns`` floor is left, so one ``__do_softirq`` pass costs ``PASS_NS`` and every
other nanosecond of CPU time is what driver code charges with ``udelay``/``ndelay``.
Times in the tests are then exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from irqflow import IRQ_HANDLED, Kernel, KernelConfig, SoftIrq
from irqflow.trace.event import TraceEvent

# --- units and preempt_count offsets -----------------------------------------------------------

#: nanoseconds per microsecond / per millisecond
US = 1_000
MS = 1_000_000

#: the CPU cost of one __do_softirq pass (softirq_pass_ns=0, so min_loop_ns: ZERO's floor)
PASS_NS = 100

#: preempt_count while serving a softirq / while in a hard IRQ
SOFTIRQ_OFFSET = 0x100
HARDIRQ_OFFSET = 0x10000

# --- short vector names ------------------------------------------------------------------------

HI = SoftIrq.HI_SOFTIRQ
TIMER = SoftIrq.TIMER_SOFTIRQ
NET_TX = SoftIrq.NET_TX_SOFTIRQ
NET_RX = SoftIrq.NET_RX_SOFTIRQ
BLOCK = SoftIrq.BLOCK_SOFTIRQ
TASKLET = SoftIrq.TASKLET_SOFTIRQ
SCHED = SoftIrq.SCHED_SOFTIRQ
RCU = SoftIrq.RCU_SOFTIRQ

# --- machines ----------------------------------------------------------------------------------

#: the kernel's own paths cost nothing; a kernel loop pass costs the ``PASS_NS`` floor
ZERO = KernelConfig(
    irq_entry_ns=0,
    irq_exit_ns=0,
    softirq_pass_ns=0,
    tasklet_dispatch_ns=0,
    context_switch_ns=0,
    tick_ns=0,
    min_loop_ns=PASS_NS,
)


def make_kernel(
    cpus: int = 2,
    *,
    trace: str | None = "*",
    config: KernelConfig = ZERO,
    **overrides: Any,
) -> Kernel:
    """A sim machine with ``cpus`` CPUs on ``config`` (``ZERO`` unless given) with
    ``overrides`` applied (any ``KernelConfig`` field, e.g. ``hz=1000``).

    ``trace`` is the tracepoint pattern enabled before anything runs (``"*"``: all of
    them); ``None`` leaves tracing off, for tests that enable their own tracepoints or
    run long storms.
    """
    k = Kernel(cpus=cpus, config=dataclasses.replace(config, **overrides))
    if trace is not None:
        k.trace.enable(trace)
    return k


# --- reading the trace -------------------------------------------------------------------------


def events(k: Kernel, name: str, cpu: int | None = None) -> list[TraceEvent]:
    """The recorded events called ``name`` (e.g. ``"irq:softirq_entry"``), oldest first;
    only those of CPU ``cpu`` if it is given."""
    return [e for e in k.trace.events() if e.name == name and (cpu is None or e.cpu == cpu)]


# --- interrupt lines ---------------------------------------------------------------------------


def handler(body: Callable[[], Any]) -> Callable[[int, Any], int]:
    """A hard IRQ handler that runs ``body()`` and returns IRQ_HANDLED."""

    def h(irq: int, dev_id: Any) -> int:
        body()
        return IRQ_HANDLED

    return h


def irq_line(
    k: Kernel,
    irq: int,
    body: Callable[[], Any],
    at: int | Iterable[int] = (),
    cpus: set[int] | None = None,
    flags: int = 0,
) -> None:
    """Request line ``irq`` (device ``dev<irq>``, no flags) with a handler that runs
    ``body()``; pin it to ``cpus`` if given (else it may go to any CPU); raise it at the
    virtual time ``at`` or at each of the times in ``at``."""
    k.request_irq(irq, handler(body), flags, f"dev{irq}", None)
    if cpus is not None:
        k.irq_set_affinity(irq, cpus)
    for t in [at] if isinstance(at, int) else at:
        k.call_at(t, k.raise_irq, irq)
