"""Process-context helpers: what driver code gets back from blocking calls, and how an
``async def`` body is stepped.

Process-context driver code (a kernel thread's body, a work function, a threaded IRQ
handler) is a plain function that may block: ``k.msleep(5)``, ``wait_for_completion``,
``flush_work`` ... block the task on both engines (the sim suspends the task's greenlet,
the real engine its OS thread).  An ``async def`` body keeps working: the same calls block
inside it and hand back an awaitable that is already done (:class:`Ready`), so
``await k.msleep(5)`` reads as before.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Final, Generic, TypeVar

T = TypeVar("T")


def symbol_name(func: Callable[..., Any]) -> str:
    """A kernel-symbol-like name for driver code, as tracepoints print functions:
    ``Class.method`` or ``function`` (enclosing functions' ``<locals>`` dropped)."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name.rpartition("<locals>.")[2] if name else repr(func)


class Marker:
    """A named singleton (``FAILED`` ...)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: What a driver call gives back when the driver code raised (the oops is recorded).
FAILED: Final = Marker("FAILED")


class Ready(Generic[T]):
    """The result of a blocking call that has already returned.

    The call blocked the task where it was made; awaiting this gives ``value`` at once,
    so ``await k.msleep(5)`` in an ``async def`` body behaves as it always did.  Truth
    follows ``value`` (``if k.flush_work(w):`` inside an ``async def`` works too)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, T]:
        yield from ()  # a generator that never suspends
        return self.value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __repr__(self) -> str:
        return f"Ready({self.value!r})"


#: what the None-returning blocking calls give back (``await k.msleep(5)``)
DONE: Final[Ready[None]] = Ready(None)


def step_coroutine(coro: Any) -> tuple[bool, Any]:
    """Run ``coro`` until it ends (``(True, result)``) or suspends on something that is
    not irqflow's (``(False, what it awaited)``).  irqflow's blocking calls never suspend
    a coroutine: they block the task itself."""
    try:
        return False, coro.send(None)
    except StopIteration as stop:
        return True, stop.value
