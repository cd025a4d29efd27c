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

#: the seed's era with full preemption: the machine the behaviour tests were written for
SEED = KernelConfig.preset("2.6", preempt_model="full")

#: the kernel's own paths cost nothing; a kernel loop pass costs the ``PASS_NS`` floor.
#: The behaviour tests were written for the seed's era (interrupts sprayed over the CPUs,
#: events/N threads, CFS); they run on that preset, with full preemption.  What 6.13 does
#: differently is tested on the 6.13 preset (the default) in its own tests.
ZERO = KernelConfig.preset(
    "2.6",
    preempt_model="full",
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


# --- the demo ------------------------------------------------------------------------------

#: the stage labels of `irqflow demo`'s annotated trace, one per stage of the seed
DEMO_STAGE_LABELS = (
    "1 entry/save",
    "2 busy elsewhere: PENDING",
    "2 PENDING set: replay",
    "3 handler",
    "4 softirq",
    "4 overflow: ksoftirqd",
    "5 tasklet",
    "6 exit/restore",
    "/proc/interrupts",
)

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


# --- real machines -------------------------------------------------------------------------------


def wait_for(pred: Callable[[], Any], timeout: float = 20.0) -> None:
    """Wait (wall clock, polling) until ``pred()`` holds; fail after ``timeout`` s, a
    limit that a working machine stays far below."""
    import time

    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


# --- one test, both engines ----------------------------------------------------------------------


class Machine:
    """A kernel on either engine, for the conformance tests (``machine`` fixture).

    ``settle()`` lets the machine run until nothing is pending: the sim engine runs
    virtual time until the machine is quiet, the real engine waits (wall clock) until
    nothing is pending or running.  Tests written against it assert orders and counts,
    never exact times.
    """

    def __init__(self, engine: str, cpus: int = 2, **overrides: Any) -> None:
        self.engine = engine
        self.k = Kernel(cpus=cpus, engine=engine, config=dataclasses.replace(SEED, **overrides))
        self.started = False

    @property
    def real(self) -> bool:
        return self.engine == "real"

    def start(self) -> Kernel:
        """Boot the machine (real: start its threads) once drivers are registered."""
        if self.real and not self.started:
            self.k.start()
        self.started = True
        return self.k

    def settle(self, timeout: float = 10.0) -> None:
        """Run until nothing is pending (sim: virtual time; real: wall clock)."""
        self.start()
        if not self.real:
            self.k.run()
            return
        import time

        eng: Any = self.k.engine
        deadline = time.monotonic() + timeout
        calm = 0
        while calm < 3:  # quiet three polls in a row: no callback was about to raise
            with eng.lock:
                quiet = eng.quiet(future_timers=True)
            calm = calm + 1 if quiet else 0
            if time.monotonic() > deadline:
                raise AssertionError(f"the real machine did not settle in {timeout} s")
            time.sleep(0.002)

    def until(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run until ``pred()`` holds (sim: in 0.1 ms steps of virtual time)."""
        self.start()
        import time

        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {timeout} s")
            if self.real:
                time.sleep(0.001)
            else:
                self.k.run_for(100 * US)

    def run_briefly(self, ms: float) -> None:
        """Let ``ms`` milliseconds pass (sim: virtual, real: wall clock)."""
        self.start()
        if self.real:
            import time

            time.sleep(ms / 1000)
        else:
            self.k.run_for(int(ms * MS))

    def close(self) -> Any:
        if self.real and self.started and not self.k.engine.stopping:
            return self.k.stop()
        return None
