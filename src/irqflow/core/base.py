"""``KernelBase``: state every kernel subsystem shares, and the helpers they all use
(the current CPU, the kernel log, oops records, waiting from outside the machine)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig
from irqflow.core.cpu import Cpu
from irqflow.core.effects import FAILED, Run, WaitUntil
from irqflow.core.errors import (
    IrqflowError,
    NotOnCpuError,
    SleepInAtomicContext,
)
from irqflow.core.irq.desc import (
    IrqDesc,
)
from irqflow.core.kthread import in_coroutine_step
from irqflow.core.sched import Task
from irqflow.stats.latency import LatencyRecorder
from irqflow.stats.snapshot import LogRecord, Oops
from irqflow.trace.tracer import Tracer

Flow = Generator[Any, Any, None]


class Engine(Protocol):
    """What the core needs from an engine.  Only engines know time and threads."""

    #: process-context driver code may block the calling OS thread for real (the real
    #: engine); otherwise a wait in a plain function is an error naming ``async def``
    blocking_tasks: bool
    #: time is the wall clock: a callback asked for a moment that has just passed runs
    #: at once instead of being an error
    wall_clock: bool

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held while the core's state changes: a no-op in the single-threaded sim, the
        kernel lock in the real engine."""
        ...

    @property
    def now(self) -> int: ...
    @property
    def current_cpu(self) -> Cpu | None: ...

    def boot(self) -> None: ...
    def deliver(self, c: Cpu) -> None: ...
    def kick(self, c: Cpu) -> None: ...
    def add_task(self, t: Task) -> None: ...
    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None: ...
    def wait_until(self, pred: Callable[[], bool], what: str) -> None: ...
    def run_inline(self, c: Cpu, flow: Flow) -> None: ...
    def ensure_tick(self, c: Cpu) -> None: ...
    def cpu_times(self, c: Cpu) -> dict[str, int]: ...
    def run(self, until: int | None = None) -> None: ...


class _Wait:
    """What a blocking call returns inside an ``async def`` kernel thread."""

    __slots__ = ("_pred", "_result")

    def __init__(self, pred: Callable[[], bool], result: Any) -> None:
        self._pred = pred
        self._result = result

    def __await__(self) -> Generator[Any, Any, Any]:
        while not self._pred():
            yield WaitUntil(self._pred)
        return self._result


class KernelBase:
    """Attributes and helpers shared by the mixins that make up ``KernelCore``."""

    engine: Engine
    config: KernelConfig
    cpus: list[Cpu]
    tracing: bool
    trace: Tracer
    _descs: dict[int, IrqDesc]
    _log: list[LogRecord]
    _oopses: list[Oops]
    _bogus_reports: int
    lat: LatencyRecorder

    def _atomic_message(self, c: Cpu, what: str) -> str:
        pc = c.preempt_count
        where = c.running.where if c.running is not None else c.current.comm
        return (
            f"BUG: sleeping function called from invalid context at {what} in "
            f"{cpumod.context_name(pc)} context: in_atomic(): {1 if pc else 0}, "
            f"irqs_disabled(): {0 if c.irqs_on else 1}, preempt_count: {pc:#x}, "
            f"pid: {c.current.pid}, name: {where}"
        )

    # ------------------------------------------------------------------ helpers
    def _this_cpu(self, what: str) -> Cpu:
        c = self.engine.current_cpu
        if c is None:
            raise NotOnCpuError(
                f"{what}() acts on the current CPU, and there is none: it was called from "
                "outside the machine. Call it from driver code running on the machine (an "
                "IRQ handler, softirq action, tasklet or a kernel thread started with "
                "k.kthread_run)."
            )
        return c

    def log(self, c: Cpu | None, level: str, text: str) -> None:
        """Append a kernel log (dmesg) line."""
        self._log.append(LogRecord(self.engine.now, None if c is None else c.nr, level, text))

    def dmesg(self) -> list[str]:
        """The kernel log as text lines, ``[   12.345678] text``."""
        return [
            f"[{r.time_ns // 1_000_000_000:5d}.{r.time_ns // 1000 % 1_000_000:06d}] {r.text}"
            for r in self._log
        ]

    def _call_user(self, c: Cpu, run: Run) -> Any:
        """Call driver code; a raised exception becomes an oops and :data:`FAILED`."""
        prev = c.running
        c.running = run
        pc = c.preempt_count
        on = c.irqs_on
        try:
            res = run.fn(*run.args)
        except Exception as exc:
            c.preempt_count = pc
            c.irqs_on = on
            c.running = prev
            self._oops(c, run, exc)
            return FAILED
        c.running = prev
        return res

    def _oops(self, c: Cpu, run: Run, exc: Exception) -> None:
        tb = "".join(traceback.format_exception(exc))
        context = cpumod.context_name(c.preempt_count)
        self._oopses.append(
            Oops(
                self.engine.now, c.nr, context, run.where, run.irq, type(exc).__name__, str(exc), tb
            )
        )
        self.log(
            c, "emerg", f"Oops: {type(exc).__name__}: {exc} in {context} {run.where} on CPU {c.nr}"
        )
        if self.config.panic_on_oops:
            raise exc

    def _outside_only(self, what: str) -> None:
        """For calls that wait in several steps: only from outside the machine for now."""
        if self.engine.current_cpu is not None:
            raise IrqflowError(
                f"{what} waits in several steps and can only be called from outside the "
                "machine (a script or test) in this version"
            )

    def _wait(self, pred: Callable[[], bool], what: str, result: Any = None) -> Any:
        """Block until ``pred()`` holds, then give ``result``.

        From outside the machine the engine runs until then (sim: virtual time).  From an
        ``async def`` kernel thread this returns an awaitable: ``await k.flush_work(w)``.
        From atomic context it is SleepInAtomicContext; from a plain (not async)
        process-context function it is an error saying to make it ``async def``."""
        c = self.engine.current_cpu
        if c is None:
            if not pred():
                self.engine.wait_until(pred, what)
            return result
        if cpumod.in_interrupt(c.preempt_count) or not c.irqs_on:
            if pred():
                return result
            raise SleepInAtomicContext(self._atomic_message(c, what))
        if in_coroutine_step(c.running):
            return _Wait(pred, result)
        if pred():
            return result
        if self.engine.blocking_tasks:
            self.engine.wait_until(pred, what)
            return result
        raise IrqflowError(
            f"{what} has to wait, and {c.current.comm} runs a plain function, which cannot "
            "sleep in the middle; make it `async def` and `await` the call"
        )
