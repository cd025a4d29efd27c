"""Signals and the main thread: Ctrl-C is delivered where it cannot break the kernel.

Python runs signal handlers in the main thread, between two bytecodes of whatever it is
doing, and the default SIGINT handler raises ``KeyboardInterrupt`` right there.  Inside
a kernel section (a public call holding the kernel lock) that would leave the core's
state half changed: a work item marked PENDING but never queued, a task marked running
but on no run queue.  The kernel's answer to the same problem is to deliver a signal on
the way back to user mode; here, while a real machine runs and SIGINT still has Python's
default handler, :func:`sigint` does the same:

* the main thread is outside any kernel section (or waits in a blocking call): it raises
  ``KeyboardInterrupt`` at once, exactly as the default handler does;
* it holds a kernel lock (or is handing it over): the interrupt is deferred and raised
  as the public call ends (:func:`deliver_here`); for a section entered otherwise (a
  completion's ``complete()`` ...) the clock thread of that machine delivers it again
  (``_thread.interrupt_main``) once it gets the lock: within ``clock.CHECK_S``.

The handler is installed by the first ``start()`` in the main thread and put back (to
``default_int_handler``) once no machine runs, in the main thread.  A SIGINT handler of
the program's own is left alone.

Handlers that must be put back from another thread (``stop()`` there, a
``SignalSource`` closed there) are queued in :data:`PENDING_RESTORES`: the main thread
puts them back the next time it starts or stops a machine, or when that signal arrives.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irqflow.engine.real.engine import RealEngine

#: machines started and not yet stopped (a tuple replaced whole, under ``_WRITING``, so
#: that the handler reads it without a lock the thread it interrupted may hold)
LIVE: tuple[RealEngine, ...] = ()
_WRITING = threading.Lock()
#: (signal number, handler to put back, the handler it replaces): restores owed
PENDING_RESTORES: list[tuple[int, Any, Any]] = []


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def sigint(signum: int, frame: Any) -> None:
    """irqflow's SIGINT handler (see the module docstring)."""
    for eng in LIVE:
        if eng.handover or eng.lock._is_owned():
            if not eng.deferred_sigint:
                eng.deferred_sigint.append(True)  # delivered once the section is over
            return
    if not LIVE and in_main_thread() and signal.getsignal(signal.SIGINT) is sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt


def deliver_here(eng: RealEngine) -> None:
    """At the end of a public call: if it is the main thread's and its kernel section is
    over, raise the Ctrl-C deferred inside it, right here."""
    if in_main_thread() and not eng.lock._is_owned() and _take(eng):
        raise KeyboardInterrupt


def deliver_deferred(eng: RealEngine) -> None:
    """From the clock thread, holding the lock (so the main thread's section is over):
    hand a deferred Ctrl-C to the main thread again."""
    if _take(eng):
        _thread.interrupt_main(signal.SIGINT)


def _take(eng: RealEngine) -> bool:
    try:
        return eng.deferred_sigint.pop()  # atomic: one taker only
    except IndexError:
        return False


def machine_started(eng: RealEngine) -> None:
    global LIVE
    with _WRITING:
        LIVE = (*LIVE, eng)
    if in_main_thread():
        restore_pending()
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, sigint)


def machine_stopped(eng: RealEngine) -> None:
    global LIVE
    with _WRITING:
        LIVE = tuple(e for e in LIVE if e is not eng)
    if in_main_thread():
        if not LIVE and signal.getsignal(signal.SIGINT) is sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        restore_pending()


def restore_handler(signum: int, old: Any, mine: Any) -> None:
    """Put ``old`` back as the handler of ``signum`` if ``mine`` is still installed: at
    once in the main thread, else the next time the main thread can (see the module
    docstring)."""
    if in_main_thread():
        if signal.getsignal(signum) == mine:
            signal.signal(signum, old)
    else:
        PENDING_RESTORES.append((signum, old, mine))


def restore_pending(signum: int | None = None) -> None:
    """In the main thread: put back the handlers owed (those of ``signum`` only, if
    given)."""
    for item in list(PENDING_RESTORES):
        num, old, mine = item
        if signum is not None and num != signum:
            continue
        PENDING_RESTORES.remove(item)
        if signal.getsignal(num) == mine:
            signal.signal(num, old)


def forward(signum: int, frame: Any, old: Any) -> None:
    """Hand a signal that arrived at a closed source's handler to the handler it replaced
    (which is now installed again)."""
    if callable(old):
        handler: Callable[[int, Any], Any] = old
        handler(signum, frame)
    elif old == signal.SIG_DFL:
        signal.raise_signal(signum)  # the default action, now that it is installed
