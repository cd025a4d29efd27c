"""Sleeping primitives for process context: completions, mutexes and wait queues.

All three are awaited from ``async def`` kernel threads (work items, threaded handlers,
``kthread_run`` bodies); waiting from atomic context is SleepInAtomicContext.  Waking
is allowed from any context (a softirq delivering a packet wakes the reader).  A wait
queue sleeper re-checks its condition only when it is woken, as in the kernel: changing
the condition without ``wake_up`` leaves it asleep (the lost-wakeup bug is reproduced,
not hidden).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from irqflow.core.effects import WaitUntil
from irqflow.core.errors import IrqflowError

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore
    from irqflow.core.sched import Task


class _Waiter:
    __slots__ = ("task", "woken")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.woken = False


class WaitQueueHead:
    """``wait_queue_head_t``: tasks sleeping until ``wake_up``."""

    def __init__(self, k: KernelCore, name: str = "") -> None:
        self._k = k
        self.name = name
        self._waiters: list[_Waiter] = []

    def _prepare(self, what: str) -> _Waiter:
        """Queue the calling task as a sleeper (call with the engine lock held, in the same
        critical section that found the condition false, so no wake-up falls between)."""
        k = self._k
        k.might_sleep(what)
        c = k.engine.current_cpu
        if c is None:
            raise IrqflowError(f"{what}: await it from an async kernel thread")
        waiter = _Waiter(c.current)
        self._waiters.append(waiter)
        return waiter

    def wake_up(self) -> int:
        """Wake every sleeper; returns how many."""
        with self._k.engine.lock:
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                w.woken = True
        return len(waiters)

    def __len__(self) -> int:
        return len(self._waiters)


def _sleep_on(waiter: _Waiter) -> Generator[Any, Any, None]:
    """Sleep until ``waiter`` is woken (the caller then re-checks its condition)."""
    yield WaitUntil(lambda: waiter.woken)


class _WaitEvent:
    __slots__ = ("_cond", "_head")

    def __init__(self, head: WaitQueueHead, cond: Callable[[], bool]) -> None:
        self._head = head
        self._cond = cond

    def __await__(self) -> Generator[Any, Any, None]:
        lock = self._head._k.engine.lock
        while True:
            with lock:
                if self._cond():
                    return
                waiter = self._head._prepare("wait_event()")
            yield from _sleep_on(waiter)


class Completion:
    """``struct completion``: ``complete()`` from any context, ``await wait()`` in a
    thread.  Each ``complete()`` lets one waiter through; ``complete_all()`` all."""

    def __init__(self, k: KernelCore) -> None:
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

    async def wait(self) -> None:
        """``wait_for_completion``."""
        while True:
            with self._lock:
                if self.done:
                    self.done -= 1
                    return
                waiter = self._wq._prepare("wait_for_completion()")
            await _Once(waiter)

    def reinit(self) -> None:
        self.done = 0


class _Once:
    __slots__ = ("_waiter",)

    def __init__(self, waiter: _Waiter) -> None:
        self._waiter = waiter

    def __await__(self) -> Generator[Any, Any, None]:
        yield from _sleep_on(self._waiter)


class Mutex:
    """``struct mutex``: ``await m.lock()`` / ``m.unlock()``, or ``async with m:``.  Only
    the owner may unlock; locking it twice from one task is a deadlock, reported."""

    def __init__(self, k: KernelCore) -> None:
        self._k = k
        self._wq = WaitQueueHead(k, "mutex")
        self.owner: Task | None = None

    async def lock(self) -> None:
        k = self._k
        k.might_sleep("mutex_lock()")
        c = k.engine.current_cpu
        me = c.current if c is not None else None
        if me is not None and self.owner is me:
            raise IrqflowError(f"mutex_lock: {me.comm} already holds this mutex (deadlock)")
        while True:
            with k.engine.lock:
                if self.owner is None:
                    self.owner = me
                    return
                waiter = self._wq._prepare("mutex_lock()")
            await _Once(waiter)

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

    async def __aenter__(self) -> Mutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unlock()
