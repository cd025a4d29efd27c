"""The kernel lock: one lock over the core's state, re-entrant per thread, released
around driver code and waits, and the doorbells it rings on the way out."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irqflow.engine.real.context import Tls
    from irqflow.engine.real.engine import CpuState, RealEngine


def ring_now(st: CpuState) -> None:
    """Wake an idle CPU thread (its doorbell is a lock it blocks on)."""
    try:
        st.doorbell.release()
    except RuntimeError:
        pass  # already released: the CPU thread wakes anyway


class KernelLock:
    """The kernel lock as a context manager that a thread may enter again.  Leaving the
    outermost section checks the waiters (what the section changed may end a wait) and
    rings the idle CPUs the section delivered interrupts to."""

    __slots__ = ("_eng", "_lock", "_tls")

    def __init__(self, eng: RealEngine, lock: threading.Lock, tls: Tls) -> None:
        self._eng = eng
        self._lock = lock
        self._tls = tls

    def __enter__(self) -> None:
        tls = self._tls
        if not tls.depth:
            self._lock.acquire()
        tls.depth += 1

    def __exit__(self, *exc: object) -> None:
        tls = self._tls
        try:
            if tls.depth == 1 and self._eng.waiters:
                self._eng.check_waiters()
        finally:
            tls.depth -= 1
            if not tls.depth:
                self._lock.release()
                if tls.rings:
                    flush_rings(tls)

    def unlock(self) -> int:
        """Let go of the lock whatever the depth; returns the depth to restore."""
        tls = self._tls
        depth, tls.depth = tls.depth, 0
        self._lock.release()
        if tls.rings:
            flush_rings(tls)
        return depth

    def relock(self, depth: int) -> None:
        self._lock.acquire()
        self._tls.depth = depth

    def wait(self, cv: threading.Condition, timeout: float) -> None:
        """``cv.wait`` (``cv`` is over this lock), ringing what is due first."""
        if self._tls.rings:
            flush_rings(self._tls)
        cv.wait(timeout)


def flush_rings(tls: Tls) -> None:
    rings = tls.rings
    while rings:
        ring_now(rings.pop())
