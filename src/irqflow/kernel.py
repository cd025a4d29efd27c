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
        """*real*: start the CPU threads, the task threads and the clock.  A machine
        runs once: after ``stop()`` make a new Kernel."""
        self._real("start()").start()
        return self

    def stop(self, drain: bool = True, timeout: float = 10.0) -> StopReport:
        """*real*: stop the machine.  With ``drain``, first run everything pending and
        due (interrupts, softirqs, tasklets, work, timers already due), waiting up to
        ``timeout`` seconds; then stop and join every thread.  From then on no driver
        code of the machine starts, and calls that would change it raise.  Returns a
        :class:`~irqflow.engine.real.StopReport` that says what ran, what was abandoned
        (timers not yet due included) and which threads are stuck in driver code (it
        always returns).  A second ``stop()`` raises ("already stopped")."""
        report = self._real("stop()").stop(drain, timeout)
        assert report is not None
        return report  # type: ignore[no-any-return]

    def kthread_should_stop(self) -> bool:
        """True once the machine is stopping: a kernel thread's loop should return."""
        return bool(getattr(self.engine, "stop_requested", False))

    def __enter__(self) -> Kernel:
        self._real("with Kernel(...)").start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # an exception (Ctrl-C included) stops at once, giving threads busy in driver code
        # a second to return; a normal exit drains first.  A stop() already made (by a
        # signal handler, another thread, driver code) is not repeated.
        eng = self._real("with Kernel(...)")
        if exc_type is None:
            eng.stop(True, 10.0, again_ok=True)
        else:
            eng.stop(False, 1.0, again_ok=True)

    def __repr__(self) -> str:
        return f"<Kernel cpus={len(self.cpus)} engine={self.engine_name} t={self.now()}ns>"


#: public calls that never touch shared kernel state: they read or spin on the caller's
#: own context, so they run without the kernel lock (udelay must not hold it while spinning)
_UNLOCKED = frozenset(
    {
        "current", "smp_processor_id", "preempt_count", "in_hardirq", "in_irq",
        "in_softirq", "in_serving_softirq", "in_interrupt", "in_task", "irqs_disabled",
        "udelay", "ndelay", "might_sleep", "kmalloc", "msecs_to_jiffies", "now",
        "start", "stop", "run", "run_for", "kthread_should_stop", "raise_irq",
    }
)  # fmt: skip
#: public calls that only read the machine: they still work once it is stopped
_OBSERVING = frozenset({"statistics", "dmesg", "log", "latency", "timer_pending"})


def _locked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A public call of a real machine: under the kernel lock (entered with ``with`` so
    that Ctrl-C cannot break it, see :mod:`irqflow.engine.real.lock`), after handing the
    queued raises to the core (a call sees every raise made before it), checking the
    waiters on the way out (what it changed may end a wait); refused once the machine is
    stopped."""
    name = fn.__name__

    @functools.wraps(fn)
    def api(self: Kernel, *args: Any, **kwargs: Any) -> Any:
        eng: Any = self.engine
        if eng.refuse is not None:
            eng.refused(name)
        with eng.lock:
            if eng.inbox:
                eng.take_raises()
            res = fn(self, *args, **kwargs)
            if eng.waiters:
                eng.check_waiters()
        if eng.deferred_sigint:  # a Ctrl-C that struck inside the section: now
            eng.sigint_now()
        return res

    return api


def _observing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A public call that reads the machine: locked, and allowed once it is stopped."""

    @functools.wraps(fn)
    def api(self: Kernel, *args: Any, **kwargs: Any) -> Any:
        eng: Any = self.engine
        with eng.lock:
            if eng.inbox:
                eng.take_raises()  # queued raises count as raised (and in flight)
            res = fn(self, *args, **kwargs)
        if eng.deferred_sigint:
            eng.sigint_now()
        return res

    return api


class RealKernel(Kernel):
    """``Kernel(engine="real")``: every public call takes the kernel lock, so any thread
    may call it (see :mod:`irqflow.engine.real`), except ``raise_irq`` on an edge line,
    which queues the raise without the lock."""

    def raise_irq(self, irq: int) -> None:
        """A device signals line ``irq``, from any thread.  On an edge line this takes no
        lock: it counts the raise and rings an idle CPU of the line's affinity (the first
        raise of a line, and a level line, take the locked path); the core takes the
        raises under the lock, so the accounting is exact (``statistics()`` counts one
        not taken yet as raised and in flight).  See :mod:`irqflow.engine.real.raises`."""
        eng: Any = self.engine
        line = eng.homes.get(irq)
        if line is None:
            return self._raise_locked(irq)
        next(line.counter)
        eng.inbox.add(irq)
        for st in line.cpus:
            if st.sleeping:
                if not st.rung:
                    eng.ring(st)
                return
        return None

    def _raise_locked(self, irq: int) -> None:
        eng: Any = self.engine
        if eng.refuse is not None:
            eng.refused("raise_irq")
        with eng.lock:
            if eng.inbox:
                eng.take_raises()
            KernelCore.raise_irq(self, irq)
            eng.home(irq)
        if eng.deferred_sigint:
            eng.sigint_now()

    def _rehome(self, irq: Any) -> None:
        eng: Any = self.engine
        with eng.lock:
            if eng.homes.pop(irq, None) is not None:
                eng.home(irq)


for _name in dir(Kernel):
    _attr = inspect.getattr_static(Kernel, _name)
    if _name.startswith("_") or _name in _UNLOCKED or not inspect.isfunction(_attr):
        continue
    setattr(RealKernel, _name, (_observing if _name in _OBSERVING else _locked)(_attr))


def _rehoming(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A call that may change a line's trigger or affinity: the raise path's idea of
    where the line goes is refreshed."""

    @functools.wraps(fn)
    def api(self: RealKernel, irq: int, *args: Any, **kwargs: Any) -> Any:
        res = fn(self, irq, *args, **kwargs)
        self._rehome(irq)
        return res

    return api


for _name in ("request_irq", "request_threaded_irq", "free_irq", "irq_set_affinity"):
    setattr(RealKernel, _name, _rehoming(getattr(RealKernel, _name)))
