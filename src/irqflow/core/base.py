"""``KernelBase``: state every kernel subsystem shares, and the helpers they all use
(the current CPU, the kernel log, calling driver code, oops records, sleeping and
waiting)."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig
from irqflow.core.cpu import Cpu
from irqflow.core.engine import Engine
from irqflow.core.errors import (
    NotOnCpuError,
    SleepInAtomicContext,
)
from irqflow.core.irq.desc import IrqDesc
from irqflow.core.kthread import FAILED, Ready, step_coroutine
from irqflow.core.sched import RUNNING, SLEEPING
from irqflow.stats.latency import LatencyRecorder
from irqflow.stats.snapshot import LogRecord, Oops
from irqflow.trace.tracer import Tracer

T = TypeVar("T")


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
    #: driver code is called directly (sim); else through ``engine.call_driver``
    _direct_calls: bool

    def _atomic_message(self, c: Cpu, what: str) -> str:
        pc = c.preempt_count
        where = c.running if c.running is not None else c.current.comm
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

    # ------------------------------------------------------------------ driver code
    def _call(
        self,
        c: Cpu,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        where: str,
        irq: int | None = None,
    ) -> Any:
        """Call driver code in context ``c``; an exception it raises becomes an oops and
        the result is :data:`FAILED` (the machine goes on, as the kernel does after an
        oops in an interrupt handler)."""
        prev = c.running
        c.running = where
        pc = c.preempt_count
        on = c.irqs_on
        try:
            res = fn(*args) if self._direct_calls else self.engine.call_driver(c, fn, args)
        except Exception as exc:
            c.preempt_count = pc
            c.irqs_on = on
            c.running = prev
            self._oops(c, where, irq, exc)
            return FAILED
        c.running = prev
        return res

    def _oops(self, c: Cpu, where: str, irq: int | None, exc: Exception) -> None:
        tb = "".join(traceback.format_exception(exc))
        context = cpumod.context_name(c.preempt_count)
        self._oopses.append(
            Oops(self.engine.now, c.nr, context, where, irq, type(exc).__name__, str(exc), tb)
        )
        self.log(
            c, "emerg", f"Oops: {type(exc).__name__}: {exc} in {context} {where} on CPU {c.nr}"
        )
        if self.config.panic_on_oops:
            raise exc

    def _run_in_task(
        self, c: Cpu, fn: Callable[..., Any], args: tuple[Any, ...], where: str
    ) -> Any:
        """Call process-context driver code (a work function, a thread function, a kernel
        thread's body): a plain function, which may block, or an ``async def`` (or a
        callable returning a coroutine), which is run to its end."""
        res = self._call(c, fn, args, where)
        if res is FAILED or not inspect.iscoroutine(res):
            return res
        return self._run_coroutine(c, res, where)

    def _run_coroutine(self, c: Cpu, coro: Any, where: str) -> Any:
        runner = getattr(self.engine, "run_coroutine", None)
        task = c.current
        task.in_coroutine += 1
        try:
            if runner is not None:
                return self._call(c, runner, (c, coro, where), where)
            res = self._call(c, step_coroutine, (coro,), where)
            if res is FAILED:
                return FAILED
            done, value = res
            if done:
                return value
            coro.close()
            self.log(
                c,
                "err",
                f"{where} awaited {value!r}, which irqflow cannot wait for: on the sim engine "
                "an async def body may await irqflow's calls only (k.msleep, completions, "
                "flush_work ...); plain calls block too",
            )
            return FAILED
        finally:
            task.in_coroutine -= 1

    # ------------------------------------------------------------------ sleeping
    def _may_sleep(self, c: Cpu, what: str) -> None:
        if c.preempt_count or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))

    def _block(self, c: Cpu) -> None:
        """``set_current_state(TASK_(UN)INTERRUPTIBLE); schedule()``: the current task
        sleeps until ``wake_up_process``."""
        task = c.current
        task.state = SLEEPING
        c.rq.dequeue(task)
        if task.wq_worker is not None:
            self._wq_worker_sleeping(task)
        self.engine.schedule(c)

    def _wq_worker_sleeping(self, task: Any) -> None:  # overridden by the workqueue mixin
        pass

    def _ready(self, c: Cpu | None, value: T) -> T:
        """What a blocking call gives back once it has waited: ``value``, or inside an
        ``async def`` body an awaitable of it, so that ``await k.flush_work(w)`` works."""
        if c is not None and c.current.in_coroutine:
            return Ready(value)  # type: ignore[return-value]
        return value

    def _wait(self, pred: Callable[[], bool], what: str, result: Any = None) -> Any:
        """Block until ``pred()`` holds, then give ``result``.

        From outside the machine the engine runs until then (sim: virtual time; real: the
        caller blocks).  In process context the task sleeps (plain functions and ``async
        def`` bodies alike); in atomic context it is SleepInAtomicContext."""
        c = self.engine.current_cpu
        if c is None:
            if not pred():
                self.engine.wait_until(pred, what)
            return result
        if pred():
            return self._ready(c, result)
        self._may_sleep(c, what)
        task = c.current
        while not pred():
            self.engine.add_waiter(pred, lambda: self._wake_up_process(task))
            self._block(c)
            c = self._this_cpu(what)  # an IRQ thread may have moved
        return self._ready(c, result)

    def _wake_up_process(self, t: Any) -> bool:  # defined by KernelCore
        raise NotImplementedError

    @staticmethod
    def _is_running(t: Any) -> bool:
        return bool(t.state == RUNNING)
