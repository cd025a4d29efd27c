"""The kernel lock, and how a thread lets go of it without an asynchronous exception
(Ctrl-C) breaking it.

The lock is a ``threading.RLock`` used directly as a context manager.  In CPython its
``__enter__`` and ``__exit__`` are C functions and the ``with`` statement calls them with
no bytecode boundary between taking the lock and arming its release (the interpreter
runs Python signal handlers only at such boundaries), so a ``KeyboardInterrupt`` can
strike before the lock is taken or after it is given back, never between: the owner and
the recursion count live inside the lock, updated in C.  A Python ``__enter__`` that
acquires and then counts (the first design) leaves the lock held for good when Ctrl-C
lands between the two.

Engine threads let go of the lock around driver code and waits with ``_release_save`` /
``_acquire_restore`` (the C pair ``threading.Condition`` uses): no Python signal handler
runs on them.  The main thread waits through :func:`wait_unlocked`, which keeps the
lock's state whole wherever an exception strikes.
"""

from __future__ import annotations

import threading
from threading import get_ident
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irqflow.engine.real.engine import CpuState, RealEngine


def ring(st: CpuState) -> None:
    """Wake an idle CPU thread: its doorbell is a lock it blocks on."""
    if not st.rung:
        st.rung = True
        try:
            st.doorbell.release()
        except RuntimeError:
            pass  # already released (two raisers rang at once): the thread wakes anyway


def held_by_me(lock: Any) -> int:
    """How deep the calling thread holds ``lock`` (0: not at all)."""
    return int(lock._recursion_count())


def let_go(eng: RealEngine) -> tuple[int, int]:
    """Release the kernel lock whatever this thread's depth in it; returns what
    :func:`take_back` needs.  Ctrl-C waits meanwhile (``eng.handover``, see
    :mod:`.signals`), so none lands between the release and the caller's ``try``."""
    lock = eng.lock
    state = (held_by_me(lock), get_ident())
    eng.handover = True
    try:
        lock._release_save()
    finally:
        eng.handover = False
    return state


def take_back(eng: RealEngine, state: tuple[int, int]) -> None:
    """Hold the kernel lock again at the depth :func:`let_go` released (if an exception
    struck before the release, it is still held: nothing to do)."""
    lock = eng.lock
    eng.handover = True
    try:
        if not lock._is_owned():
            lock._acquire_restore(state)
    finally:
        eng.handover = False


def wait_unlocked(eng: RealEngine, gate: threading.Lock, timeout: float) -> None:
    """Block on ``gate`` for up to ``timeout`` s with the kernel lock released, whatever
    this thread's depth in it; the lock is held again on return, also when an exception
    (Ctrl-C, which may end the wait itself) ends it."""
    state = (held_by_me(eng.lock), get_ident())
    try:
        let_go(eng)
        gate.acquire(True, timeout)
    finally:
        take_back(eng, state)
