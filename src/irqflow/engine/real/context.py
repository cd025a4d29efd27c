"""Per-thread contexts of the real engine: the thread-local state, a task thread's view
of its CPU, busy-waiting, and naming OS threads."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import Cpu

if TYPE_CHECKING:
    from irqflow.core.sched import Task
    from irqflow.engine.real.engine import RealEngine


class Tls(threading.local):
    """What each engine thread knows about itself."""

    #: the context this thread runs in: a CPU (its CPU thread) or a task's view of one
    cpu: Cpu | None = None
    #: the thread's own asyncio loop, for the ``async def`` bodies it runs
    loop: asyncio.AbstractEventLoop | None = None


def spin(ns: int) -> None:
    """Busy-wait ``ns`` nanoseconds, giving the interpreter away at each turn
    (``time.sleep(0)``): a CPU that busy-waits does not stop the others, and a thread
    that spun holding the GIL would stop every thread for up to the switch interval."""
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        time.sleep(0)


_PC = Cpu.__dict__["preempt_count"]
_ON = Cpu.__dict__["irqs_on"]
#: fields a task's context keeps for itself; the rest are the CPU's, shared
_LOCAL = frozenset({"preempt_count", "irqs_on", "running", "current"})


def _context_field(slot: Any) -> property:
    """A context field of a task's view: its own slot, and each change may take or give
    back the CPU's token (:meth:`TaskCpu._sync`)."""

    def get(self: TaskCpu) -> Any:
        return slot.__get__(self)

    def set_(self: TaskCpu, value: Any) -> None:
        slot.__set__(self, value)
        self._sync()

    return property(get, set_)


class TaskCpu(Cpu):
    """A task thread's view of its CPU: its own context (``preempt_count``, the IRQ
    flag, ``current``, the driver code running), the CPU's per-CPU data (softirq mask,
    tasklet lists, request register ...).

    Becoming atomic (``preempt_count`` non-zero or IRQs off) takes the CPU's token;
    returning to plain task context gives it back (see :mod:`irqflow.engine.real`)."""

    __slots__ = ("base", "eng", "holding")

    def __init__(self, base: Cpu, eng: RealEngine, task: Task) -> None:
        self.base = base
        self.eng = eng
        self.holding = False
        _PC.__set__(self, 0)
        _ON.__set__(self, True)
        self.running = None
        self.current = task

    def _sync(self) -> None:
        need = bool(_PC.__get__(self)) or not _ON.__get__(self)
        if need is not self.holding:
            if need:
                self.eng.take_token(self)
            else:
                self.eng.give_token(self)

    preempt_count = _context_field(_PC)
    irqs_on = _context_field(_ON)

    def __repr__(self) -> str:
        return f"<TaskCpu {self.nr} of {self.current.comm} pc={self.preempt_count:#x}>"


def _forward(name: str) -> property:
    return property(
        lambda self: getattr(self.base, name),
        lambda self, value: setattr(self.base, name, value),
    )


for _name in Cpu.__slots__:
    if _name not in _LOCAL:
        setattr(TaskCpu, _name, _forward(_name))


def base_cpu(ctx: Cpu) -> Cpu:
    """The CPU a context belongs to."""
    return ctx.base if isinstance(ctx, TaskCpu) else ctx


@functools.cache
def _libc() -> Any:
    """The C library, found once (``find_library`` may run ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - best effort
        return None


def set_os_thread_name(name: str) -> None:
    """Name the OS thread (``ps -T``, ``top -H``), as Python 3.14 does on its own."""
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is not None:
        try:
            libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        except AttributeError:  # pragma: no cover - best effort
            pass
