"""``Kernel``: the public machine, a kernel core plus an engine."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from irqflow.core.config import KernelConfig
from irqflow.core.constants import SOFTIRQ_NAMES
from irqflow.core.errors import IrqflowError
from irqflow.core.kernel import KernelCore
from irqflow.core.observe import LatencySink, TraceSink
from irqflow.stats.latency import LatencyRecorder, LatencyReport
from irqflow.stats.snapshot import Snapshot, take_snapshot
from irqflow.trace.tracer import Tracer

if TYPE_CHECKING:
    from irqflow.engine.real import StopReport

ENGINES = ("sim", "real")


class Kernel(KernelCore):
    """A machine with ``cpus`` CPUs running irqflow's Linux interrupt-handling kernel.

    ``engine="sim"`` runs in deterministic virtual time (``run``/``run_for`` advance it);
    ``seed`` seeds every random choice a scenario makes, so the same seed gives the same
    trace.  ``engine="real"`` runs the same kernel on OS threads in wall-clock time:
    ``start()`` it (or use ``with Kernel(engine="real") as k:``) and ``stop()`` it.
    """

    def __new__(
        cls,
        cpus: int = 2,
        engine: str = "sim",
        config: KernelConfig | None = None,
        seed: int = 0,
    ) -> Kernel:
        if engine == "real" and cls is Kernel:
            return super().__new__(RealKernel)
        return super().__new__(cls)

    def __init__(
        self,
        cpus: int = 2,
        engine: str = "sim",
        config: KernelConfig | None = None,
        seed: int = 0,
    ) -> None:
        if engine == "sim":
            from irqflow.engine.sim import SimEngine

            factory: Any = SimEngine
        elif engine == "real":
            from irqflow.engine.real import RealEngine

            factory = RealEngine
        else:
            raise IrqflowError(f"Kernel(engine={engine!r}): choose one of {ENGINES}")
        self.engine_name = engine
        super().__init__(cpus, config, seed, factory)

    trace: Tracer
    lat: LatencyRecorder

    def _make_observers(self) -> tuple[TraceSink, LatencySink]:
        """The tracepoints (``k.trace``) and the latency histograms (``k.latency()``)."""
        enabled = self.config.latency_histograms
        return Tracer(self), LatencyRecorder(enabled)

    # ------------------------------------------------------------------ observing
    def statistics(self) -> Snapshot:
        """A frozen snapshot of every counter."""
        return take_snapshot(self)

    def latency(self) -> LatencyReport:
        """Latency histograms so far: ``k.latency()["raise->hardirq"]["irq 24 eth0"].p99``;
        ``.table()`` for a summary, ``.text(kind, subject)`` for a log2 histogram."""
        descs = self.genirq.descs
        irqs: dict[object, str] = {n: f"irq {n} {d.name}".rstrip() for n, d in descs.items()}
        vecs: dict[object, str] = dict(enumerate(SOFTIRQ_NAMES))
        return self.lat.report(
            {"raise->hardirq": irqs, "hardirq": irqs, "softirq raise->entry": vecs, "softirq": vecs}
        )

    # ------------------------------------------------------------------ sim: time
    def run(self, until: int | None = None) -> None:
        """*sim*: advance virtual time to ``until`` ns, or until nothing is left to do
        (idle CPUs stop their tick, so a quiet machine ends the run; a thread that never
        sleeps keeps it going: pass ``until``)."""
        self.engine.run(until)

    def run_for(self, ns: int) -> None:
        """*sim*: advance virtual time by ``ns``."""
        if ns < 0:
            raise IrqflowError(f"run_for({ns}): cannot run for a negative time")
        self.engine.run(self.engine.now + ns)

    # ------------------------------------------------------------------ real: lifecycle
    def _real(self, what: str) -> Any:
        if self.engine_name != "real":
            raise IrqflowError(
                f"{what} starts or stops the OS threads of a real machine; this one is "
                'engine="sim", which runs with k.run()/k.run_for()'
            )
        return self.engine

    def start(self) -> Kernel:
        """*real*: start the CPU threads, the task threads and the clock."""
        self._real("start()").start()
        return self

    def stop(self, drain: bool = True, timeout: float = 10.0) -> StopReport:
        """*real*: stop the machine.  With ``drain``, first run everything pending
        (interrupts, softirqs, tasklets, work, timers already due), waiting up to
        ``timeout`` seconds; then stop and join every thread.  Returns a report of what
        was abandoned and of threads stuck in driver code (it always returns)."""
        return self._real("stop()").stop(drain, timeout)  # type: ignore[no-any-return]

    def kthread_should_stop(self) -> bool:
        """True once the machine is stopping: a kernel thread's loop should return."""
        return bool(getattr(self.engine, "stop_requested", False))

    def __enter__(self) -> Kernel:
        eng = self._real("with Kernel(...)")
        if not eng.started:
            eng.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # an exception (Ctrl-C included) stops at once, giving threads busy in driver code
        # a second to return; a normal exit drains first
        if not self._real("with Kernel(...)").stopping:
            if exc_type is None:
                self.stop(drain=True)
            else:
                self.stop(drain=False, timeout=1.0)

    def __repr__(self) -> str:
        return f"<Kernel cpus={len(self.cpus)} engine={self.engine_name} t={self.now()}ns>"


#: public calls that never touch shared kernel state: they read or spin on the caller's
#: own context, so they run without the kernel lock (udelay must not hold it while spinning)
_UNLOCKED = frozenset(
    {
        "current", "smp_processor_id", "preempt_count", "in_hardirq", "in_irq",
        "in_softirq", "in_serving_softirq", "in_interrupt", "in_task", "irqs_disabled",
        "udelay", "ndelay", "might_sleep", "kmalloc", "msecs_to_jiffies", "now",
        "start", "stop", "run", "run_for", "kthread_should_stop",
    }
)  # fmt: skip


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def api(self: Kernel, *args: Any, **kwargs: Any) -> Any:
        with self.engine.lock:
            return fn(self, *args, **kwargs)

    return api


class RealKernel(Kernel):
    """``Kernel(engine="real")``: every public call takes the kernel lock, so any thread
    may call it (see :mod:`irqflow.engine.real`)."""


for _name in dir(Kernel):
    _attr = inspect.getattr_static(Kernel, _name)
    if _name.startswith("_") or _name in _UNLOCKED or not inspect.isfunction(_attr):
        continue
    setattr(RealKernel, _name, _locked(_attr))
