"""The clock thread (``irqflow-clock``): ``call_at`` callbacks, the ticks, the
soft-lockup watchdog and cmwq's wall-time CPU_INTENSIVE marking."""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from irqflow.core import cpu as cpumod
from irqflow.engine.real import signals

if TYPE_CHECKING:
    from irqflow.engine.real.engine import RealEngine

#: how often the clock thread checks waiters and the watchdog, at the least (s)
CHECK_S = 0.01


class Clock:
    """The machine's timers in wall-clock time, and the thread that runs them."""

    def __init__(self, eng: RealEngine) -> None:
        self.eng = eng
        self.cv = threading.Condition(eng.lock)
        #: (time, seq, fn, args, internal): internal entries run under the kernel lock,
        #: the others (device callbacks) outside the machine, without it
        self.timers: list[tuple[int, int, Callable[..., Any], tuple[Any, ...], bool]] = []
        self._seq = 0
        self._reported: set[tuple[int, str]] = set()
        self.softlockups = 0

    def push(self, t: int, fn: Callable[..., Any], args: tuple[Any, ...], internal: bool) -> None:
        """Add a timer (with the kernel lock held)."""
        heapq.heappush(self.timers, (t, self._seq, fn, args, internal))
        self._seq += 1
        if self.timers[0][1] == self._seq - 1:
            self.cv.notify()  # a new earliest timer: the thread must wake sooner

    def notify_all(self) -> None:
        self.cv.notify_all()

    def start(self) -> None:
        self.eng.spawn_thread("irqflow-clock", self._main)

    def _main(self) -> None:
        eng = self.eng
        with eng.lock:
            next_check = eng.now
            while not eng.halted:
                now = eng.now
                if eng.deferred_sigint:
                    signals.deliver_deferred(eng)  # the main thread's section is over
                if now >= next_check:
                    next_check = now + int(CHECK_S * 1e9)
                    eng.check_waiters()
                    self._watchdog()
                timers = self.timers
                if timers and timers[0][0] <= now:
                    _, _, fn, args, internal = heapq.heappop(timers)
                    if internal:
                        fn(*args)
                    else:
                        self._outside_call(fn, args)
                    continue
                wait = next_check - now
                if timers:
                    wait = min(wait, timers[0][0] - now)
                self.cv.wait(max(wait, 0) / 1e9)

    def _outside_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """A device callback (``call_at``): outside the machine, without the lock."""
        eng = self.eng
        state = eng.lock._release_save()
        try:
            fn(*args)
        except Exception as exc:
            with eng.lock:
                eng.k.log(None, "err", f"call_at callback {fn!r} raised {exc!r}")
        finally:
            eng.lock._acquire_restore(state)

    def _watchdog(self) -> None:
        """Report driver code that has run in atomic context for too long (once each), and
        mark work items that hold a cmwq worker too long CPU_INTENSIVE (6.5+): here by wall
        time, so that a work function blocked in plain I/O stops holding its pool back."""
        eng = self.eng
        k = eng.k
        limit = k.config.softlockup_thresh_ns
        now = perf_counter_ns()
        running = list(eng.running.values())
        cm = k.wq.cmwq
        thresh = k.config.wq_cpu_intensive_thresh_ns
        if cm is not None and thresh:
            for since, _, pc, ctx, _, _, _ in running:
                w = ctx.current.wq_worker
                if w is not None and pc < 0 and now - since >= thresh:
                    cm.mark_intensive(w)
        for since, cpu, pc, ctx, where, _, _ in running:
            if pc < 0 and (ctx.preempt_count or not ctx.irqs_on):
                pc = ctx.preempt_count  # a task's own code made itself atomic (BH or IRQs off)
            if pc < 0 or now - since < limit or (since, where) in self._reported:
                continue
            task = ctx.current
            self._reported.add((since, where))
            self.softlockups += 1
            context = cpumod.context_name(pc)
            if context == "task":
                context += " (IRQs off)" if not ctx.irqs_on else " (BH off)"
            k.log(
                k.cpus[cpu],
                "emerg",
                f"watchdog: BUG: soft lockup - CPU#{cpu} stuck for {(now - since) / 1e9:.1f}s! "
                f"[{task.comm}:{task.pid}] in {context} {where}",
            )
