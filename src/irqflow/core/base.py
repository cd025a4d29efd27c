"""``KernelBase``: the kernel every subsystem sees.

It declares the kernel's shared state (the CPUs, the engine, the configuration and path
costs, the observers, and the subsystems, each owning its own state: the scheduler,
softirqs, timers, genirq, workqueues) and implements the services they all use: the
kernel log, calling driver code (a fault becomes an oops), running process-context
code, sleeping and waiting.  Kernel flows take a ``KernelBase``; :class:`KernelCore`
adds the public, kernel-named API.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from greenlet import GreenletExit
from mypy_extensions import mypyc_attr

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig, PathCosts
from irqflow.core.cpu import Cpu
from irqflow.core.engine import Engine
from irqflow.core.errors import NotOnCpuError, SleepInAtomicContext
from irqflow.core.klog import LogRecord, Oops
from irqflow.core.kthread import FAILED, Ready, step_coroutine
from irqflow.core.observe import LatencySink, TraceSink

if TYPE_CHECKING:
    from irqflow.core.hrtimer import Hrtimers
    from irqflow.core.irq.manage import Genirq
    from irqflow.core.sched import Scheduler
    from irqflow.core.softirq import Softirqs
    from irqflow.core.timer import Timers
    from irqflow.core.workqueue import Workqueues

T = TypeVar("T")

#: the kernel log goes to this logger too, at the level its kernel level maps to
logger = logging.getLogger("irqflow")
_LEVELS = {
    "emerg": logging.CRITICAL, "alert": logging.CRITICAL, "crit": logging.CRITICAL,
    "err": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
    "notice": logging.INFO, "info": logging.INFO, "debug": logging.DEBUG,
}  # fmt: skip
#: records the log ring keeps (the kernel's ring buffer is log_buf_len bytes, 128 KiB
#: with CONFIG_LOG_BUF_SHIFT=17: about 2,000 lines of 60 characters); older ones are
#: dropped and counted (a record's ``seq`` says how many came before it)
LOG_BUF_RECORDS = 2048
#: oops records kept, the same way
OOPS_BUF_RECORDS = 256

OopsCallback = Callable[[Oops, BaseException], object]


class Unwind(BaseException):
    """Raised by an engine to unwind a context it gives up (the real engine's
    ``Stopped``): never a fault of the driver code it passes through."""


def _unwinding(exc: BaseException) -> bool:
    """An engine's (or Python's) way of unwinding a stack, not a fault: a greenlet
    being thrown away, a coroutine being closed, an engine stopping."""
    return isinstance(exc, Unwind | GreenletExit | GeneratorExit)


# compiled with mypyc, the class stays open to Python subclasses: irqflow.Kernel extends it
@mypyc_attr(allow_interpreted_subclasses=True)
class KernelBase:
    """The kernel's shared state and services (see the module docstring)."""

    engine: Engine
    config: KernelConfig
    cpus: list[Cpu]
    costs: PathCosts
    #: tracepoints are on (the trace sink sets it); hooks test it before building fields
    tracing: bool
    trace: TraceSink
    lat: LatencySink
    sched: Scheduler
    softirqs: Softirqs
    timers: Timers
    hrtimers: Hrtimers
    genirq: Genirq
    wq: Workqueues
    _log: deque[LogRecord]
    _oopses: deque[Oops]
    #: records made so far (the next one's ``seq``)
    _log_seq: int
    _oops_seq: int
    _oops_callbacks: tuple[OopsCallback, ...]
    #: driver code is called directly (sim); else through ``engine.call_driver``
    _direct_calls: bool

    # ------------------------------------------------------------------ time
    def now(self) -> int:
        """Current time in ns (virtual in sim, monotonic since start in real)."""
        return self.engine.now

    @property
    def jiffies(self) -> int:
        """Ticks since boot."""
        return self.engine.now // self.config.tick_period_ns

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

    def log(self, c: Cpu | None, level: str, text: str, exc: BaseException | None = None) -> None:
        """Append a kernel log (dmesg) line to the ring and hand it to the ``irqflow``
        logger (an oops with its exception's traceback)."""
        seq = self._log_seq
        self._log_seq = seq + 1
        self._log.append(LogRecord(self.engine.now, None if c is None else c.nr, level, text, seq))
        logger.log(_LEVELS.get(level, logging.WARNING), "%s", text, exc_info=exc)

    def dmesg(self) -> list[str]:
        """The kernel log as text lines, ``[   12.345678] text``; the ring keeps the
        last ``LOG_BUF_RECORDS``, and a first line counts those dropped before them, as
        the kernel's console does."""
        lines = [
            f"[{r.time_ns // 1_000_000_000:5d}.{r.time_ns // 1000 % 1_000_000:06d}] {r.text}"
            for r in self._log
        ]
        dropped = self._log[0].seq if self._log else 0
        if dropped:
            lines.insert(0, f"** {dropped} printk messages dropped **")
        return lines

    def on_oops(self, callback: OopsCallback) -> OopsCallback:
        """Call ``callback(oops, exc)`` for each oops from now on: the record
        (``statistics().oopses``) and the exception driver code raised.  It runs where
        the fault happened, right after it is recorded (on the real engine with the
        kernel lock held: keep it short and do not block).  Returns ``callback``, so it
        works as a decorator."""
        if not callable(callback):
            raise TypeError(f"on_oops({callback!r}): give a callable taking (oops, exc)")
        self._oops_callbacks = (*self._oops_callbacks, callback)
        return callback

    def irq_enable(self, c: Cpu) -> None:
        """``local_irq_enable()`` on context ``c``: the IRQ-enable boundary, where
        interrupts that arrived meanwhile are taken."""
        c.irqs_on = True
        if c.irr:
            self.engine.irqs_enabled(c)

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
        oops in an interrupt handler).

        A ``BaseException`` (``sys.exit()``, Ctrl-C during the call) is an oops too, with
        the context restored; where the driver code runs in the thread that drives the
        machine (sim: ``k.run()``) it then propagates, so that Ctrl-C and ``sys.exit()``
        still reach the program; on an engine thread of its own (real) nobody else could
        take it, and the call fails like any oops.  An engine's own unwinding passes."""
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
        except BaseException as exc:
            c.preempt_count = pc
            c.irqs_on = on
            c.running = prev
            if _unwinding(exc):
                raise
            self._oops(c, where, irq, exc)
            if self._direct_calls:
                raise
            return FAILED
        c.running = prev
        return res

    def _oops(self, c: Cpu, where: str, irq: int | None, exc: BaseException) -> None:
        tb = "".join(traceback.format_exception(exc))
        context = cpumod.context_name(c.preempt_count)
        seq = self._oops_seq
        self._oops_seq = seq + 1
        name = type(exc).__name__
        oops = Oops(self.engine.now, c.nr, context, where, irq, name, str(exc), tb, seq)
        self._oopses.append(oops)
        self.log(c, "emerg", f"Oops: {name}: {exc} in {context} {where} on CPU {c.nr}", exc)
        for callback in self._oops_callbacks:
            try:
                callback(oops, exc)
            except Exception as cb_exc:  # a failing callback must not fault the kernel
                self.log(c, "err", f"irqflow: the oops callback {callback!r} raised {cb_exc!r}")
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
    def _atomic_message(self, c: Cpu, what: str) -> str:
        pc = c.preempt_count
        where = c.running if c.running is not None else c.current.comm
        return (
            f"BUG: sleeping function called from invalid context at {what} in "
            f"{cpumod.context_name(pc)} context: in_atomic(): {1 if pc else 0}, "
            f"irqs_disabled(): {0 if c.irqs_on else 1}, preempt_count: {pc:#x}, "
            f"pid: {c.current.pid}, name: {where}"
        )

    def _may_sleep(self, c: Cpu, what: str) -> None:
        if c.preempt_count or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))

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
        wake = self.sched.wake_up_process
        while not pred():
            self.engine.add_waiter(pred, lambda: wake(task))
            self.sched.block(c)
            c = self._this_cpu(what)  # an IRQ thread may have moved
        return self._ready(c, result)
