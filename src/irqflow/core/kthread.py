"""Running driver code in process context: plain callables and ``async def`` coroutines.

A process-context function (a kernel thread's body, a threaded IRQ handler) may be a
plain callable, whose CPU time is what it charges with ``udelay``, or an ``async def``
that awaits irqflow's sleeping primitives (``await k.msleep(10)``).  The coroutine is
stepped inside ``Run`` effects, so the code between two awaits is driver code like any
other (charged, oops-checked), and each awaited effect goes to the engine.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from irqflow.core.effects import COND_RESCHED, FAILED, Run, Sleep, WaitUntil

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

Flow = Generator[Any, Any, Any]


def in_coroutine_step(run: Any) -> bool:
    """True while ``run`` (a CPU's running ``Run``) is a step of an ``async def`` task."""
    return run is not None and getattr(run.fn, "irqflow_coroutine", False)


def _step(send: Callable[[Any], Any], value: Any) -> tuple[bool, Any]:
    try:
        return False, send(value)
    except StopIteration as stop:
        return True, stop.value


_step.irqflow_coroutine = True  # type: ignore[attr-defined]


def _given(coro: Any) -> Any:
    return coro


def run_in_task(k: KernelCore, fn: Callable[..., Any], args: tuple[Any, ...], where: str) -> Flow:
    """Call ``fn(*args)`` in process context; returns its result, or ``FAILED`` if it
    raised (recorded as an oops) or awaited something irqflow cannot wait for."""
    coro: Any = None
    if not inspect.iscoroutinefunction(fn):
        res = yield Run(fn, args, where)
        if not inspect.iscoroutine(res):
            return res
        # a plain callable that returned a coroutine (a lambda around an async def, a
        # method wrapper): run the coroutine, rather than drop it unawaited
        coro = res
    runner = getattr(k.engine, "run_coroutine", None)
    if runner is not None:
        # the engine runs the whole coroutine in one call (real: on the thread's own loop)
        if coro is not None:
            return (yield Run(runner, (_given, (coro,)), where))
        return (yield Run(runner, (fn, args), where))
    it = (coro if coro is not None else fn(*args)).__await__()
    value: Any = None
    while True:
        res = yield Run(_step, (it.send, value), where)
        if res is FAILED:
            return FAILED
        done, eff = res
        if done:
            return eff
        if type(eff) not in (Sleep, WaitUntil) and eff is not COND_RESCHED:
            it.close()
            k.log(
                None,
                "err",
                f"{where} awaited {eff!r}, which irqflow cannot wait for; in a kernel thread "
                "await k.msleep(ms) or k.cond_resched()",
            )
            return FAILED
        value = yield eff
