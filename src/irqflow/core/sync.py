"""Sleeping primitives for process context: completions, mutexes and wait queues.

Waiting blocks the calling task (kernel threads, work items, threaded handlers), from a
plain function or an ``async def`` body alike (there the call gives back an awaitable
that is already done, so ``await done.wait()`` reads as before); waiting from atomic
context is SleepInAtomicContext.  Waking is allowed from any context (a softirq
delivering a packet wakes the reader).  A wait queue sleeper re-checks its condition only
when it is woken, as in the kernel: changing the condition without ``wake_up`` leaves it
asleep (the lost-wakeup bug is reproduced, not hidden).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from irqflow.core.errors import IrqflowError
from irqflow.core.kthread import DONE, Ready

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task


class _Waiter:
    __slots__ = ("task", "woken")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.woken = False


class WaitQueueHead:
    """``wait_queue_head_t``: tasks sleeping until ``wake_up``."""

    def __init__(self, k: KernelBase, name: str = "") -> None:
        self._k = k
        self.name = name
        self._waiters: list[_Waiter] = []

    def _prepare(self, c: Cpu) -> _Waiter:
        """Queue the calling task as a sleeper (with the engine lock held, in the same
        critical section that found the condition false, so no wake-up falls between)."""
        waiter = _Waiter(c.current)
        self._waiters.append(waiter)
        return waiter

    def wake_up(self) -> int:
        """Wake every sleeper; returns how many."""
        k = self._k
        with k.engine.lock:
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                w.woken = True
                k.sched.wake_up_process(w.task)
        return len(waiters)

    def __len__(self) -> int:
        return len(self._waiters)


def _sleeper(k: KernelBase, what: str) -> Cpu:
    """The calling task's context, checked: process context, allowed to sleep."""
    c = k.engine.current_cpu
    if c is None:
        raise IrqflowError(
            f"{what} sleeps, and it was called from outside the machine; call it from "
            "process context (a kernel thread, a work item, a threaded handler)"
        )
    k._may_sleep(c, what)
    return c


def _sleep_on(k: KernelBase, c: Cpu, waiter: _Waiter) -> Cpu:
    """Sleep until ``waiter`` is woken (the caller then re-checks its condition).  Called
    with the engine lock held, which the sleep releases."""
    while not waiter.woken:
        k.sched.block(c)
        c = k._this_cpu("wait")
    return c


def wait_event(k: KernelBase, h: WaitQueueHead, cond: Callable[[], bool]) -> Ready[None]:
    """Sleep on ``h`` until ``cond()`` is true, re-checked each time ``h`` is woken."""
    with k.engine.lock:
        while not cond():
            c = _sleeper(k, "wait_event()")
            _sleep_on(k, c, h._prepare(c))
    return DONE


class Completion:
    """``struct completion``: ``complete()`` from any context, ``wait()`` in process
    context.  Each ``complete()`` lets one waiter through; ``complete_all()`` all."""

    def __init__(self, k: KernelBase) -> None:
        self._k = k
        self._lock = k.engine.lock
        self._wq = WaitQueueHead(k, "completion")
        self.done = 0

    def complete(self) -> None:
        with self._lock:
            self.done += 1
            self._wq.wake_up()

    def complete_all(self) -> None:
        with self._lock:
            self.done = 1 << 62
            self._wq.wake_up()

    def wait(self) -> Ready[None]:
        """``wait_for_completion``: block until completed (``await done.wait()`` in an
        ``async def`` body works too)."""
        k = self._k
        with self._lock:
            while not self.done:
                c = _sleeper(k, "wait_for_completion()")
                _sleep_on(k, c, self._wq._prepare(c))
            self.done -= 1
        return DONE

    def reinit(self) -> None:
        self.done = 0


class Mutex:
    """``struct mutex``: ``m.lock()`` / ``m.unlock()``, or ``with m:`` (``await m.lock()``
    and ``async with m:`` in an ``async def`` body).  Only the owner may unlock; locking
    it twice from one task is a deadlock, reported."""

    def __init__(self, k: KernelBase) -> None:
        self._k = k
        self._wq = WaitQueueHead(k, "mutex")
        self.owner: Task | None = None

    def lock(self) -> Ready[None]:
        k = self._k
        c = _sleeper(k, "mutex_lock()")
        me = c.current
        if self.owner is me:
            raise IrqflowError(f"mutex_lock: {me.comm} already holds this mutex (deadlock)")
        with k.engine.lock:
            while self.owner is not None:
                c = _sleep_on(k, c, self._wq._prepare(c))
            self.owner = me
        return DONE

    def unlock(self) -> None:
        c = self._k.engine.current_cpu
        me = c.current if c is not None else None
        with self._k.engine.lock:
            if self.owner is None or self.owner is not me:
                holder = self.owner.comm if self.owner is not None else "nobody"
                raise IrqflowError(
                    f"mutex_unlock by a task that does not hold it (held by {holder})"
                )
            self.owner = None
            self._wq.wake_up()

    @property
    def locked(self) -> bool:
        return self.owner is not None

    def __enter__(self) -> Mutex:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    async def __aenter__(self) -> Mutex:
        self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unlock()
