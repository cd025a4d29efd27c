"""``KernelBase``: state every kernel subsystem shares, and the helpers they all use
(the current CPU, the kernel log, oops records, waiting from outside the machine)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Generator
from typing import Any, Protocol

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig
from irqflow.core.cpu import Cpu
from irqflow.core.effects import FAILED, Run
from irqflow.core.errors import (
    IrqflowError,
    NotOnCpuError,
    SleepInAtomicContext,
)
from irqflow.core.irq.desc import (
    IrqDesc,
)
from irqflow.core.sched import Task
from irqflow.stats.snapshot import LogRecord, Oops
from irqflow.trace.tracer import Tracer

Flow = Generator[Any, Any, None]


class Engine(Protocol):
    """What the core needs from an engine.  Only engines know time and threads."""

    now: int
    current_cpu: Cpu | None

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

    def _wait(self, pred: Callable[[], bool], what: str) -> None:
        if pred():
            return
        c = self.engine.current_cpu
        if c is None:
            self.engine.wait_until(pred, what)
            return
        if cpumod.in_interrupt(c.preempt_count) or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))
        raise IrqflowError(
            f"{what} has to wait, and waiting from inside a kernel thread is not supported "
            "yet; call it from outside the machine (a script or test)"
        )
