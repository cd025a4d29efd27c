"""The sim engine: deterministic virtual time in integer nanoseconds, on greenlets.

Theory of operation
-------------------
**One heap, one order.**  The heap holds everything that happens at a known time: the
end of a CPU's busy time, a device callback (``call_at``), a tick, a timed wake-up.
Entries are ``(time, seq, fn, a, b)``; ``seq`` is a global insertion counter, so the
order is total and documented: *earlier time first, then first scheduled first*.
Nothing else (no hash order, no wall clock) influences a run, so the same scenario and
seed give the same trace, byte for byte.  The loop that pops it, :meth:`SimEngine.run`,
runs in the *hub*: the greenlet that called ``run()``.

**Contexts are greenlets.**  Every task (the idle task of each CPU, ``ksoftirqd/N``,
workers, IRQ threads, kernel threads) is a greenlet running the task's plain body.  A CPU
runs whatever its current task's greenlet is running: process-context code, or interrupt
and softirq code nested on top of it (an interrupt is a plain call from the point the
task was interrupted: the frames below it are stage 1's saved registers).

**Time moves inside the code.**  ``busy(c, ns)`` (``udelay``, the kernel's path costs)
advances the clock in place: if no event is due before its end, ``now`` jumps there and
the code goes on without a switch (the fast path).  Otherwise the CPU records the
segment, pushes its end on the heap and switches to the hub.  When the hub reaches the
end, it switches back and the call returns.  If an interrupt is delivered to the CPU
first and the segment runs with IRQs on, the hub switches back early: the elapsed part is
accounted, the interrupt is taken right there, nested, and the rest of the time is spent
after it.  So ``k.now()`` is exact inside driver code, side effects happen when the code
reaches them, and an interrupt is taken at its arrival time, to the nanosecond.

**Switching tasks** (blocking, preemption) switches greenlets directly on the same CPU;
the hub only ever enters a CPU through its current task.  A CPU with nothing to run halts
in its idle task, which switches to the hub until an interrupt or a wake-up.

CPU time is accounted per category (user, system, irq, softirq, idle) at the end of each
busy segment or its interruption and while halted, so a CPU's categories add up to the
elapsed time exactly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from greenlet import GreenletExit, getcurrent, greenlet

from irqflow.core import cpu as cpumod
from irqflow.core.constants import HARDIRQ_MASK, SOFTIRQ_OFFSET
from irqflow.core.cpu import (
    IDLE,
    IRQ,
    LOCAL_TIMER_VECTOR,
    RESCHEDULE_VECTOR,
    SOFTIRQ,
    SYSTEM,
    USER,
    Cpu,
)
from irqflow.core.entry import take_pending_irqs
from irqflow.core.errors import InternalError, IrqflowError
from irqflow.core.kthread import Marker
from irqflow.core.sched import RUNNING, Task

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

#: later than any time a run reaches: a sentinel that never leaves the heap, so the heap
#: is never empty and ``heap[0]`` needs no check
NEVER = 1 << 62
#: how far ahead of now a blocking call from outside the machine may push virtual time
WAIT_LIMIT_NS = 60 * 1_000_000_000


#: what the hub sends a CPU it switches back into before its busy time is over
INTERRUPTED = Marker("INTERRUPTED")
#: what a task's greenlet returns to the hub when its body has returned
EXITED = Marker("EXITED")


def _never(a: Any, b: Any) -> None:  # pragma: no cover - the sentinel never runs
    raise InternalError("the heap's sentinel event ran")


class SimCpu:
    """The sim engine's per-CPU state."""

    __slots__ = (
        "busy",
        "halted",
        "hr_at",
        "idle_since",
        "lockup_reported",
        "seg_cat",
        "seg_on",
        "seg_start",
        "tick_at",
        "tick_token",
        "token",
        "touched",
    )

    def __init__(self) -> None:
        #: bumped whenever a busy segment ends early: its end event on the heap is stale
        self.token = 0
        #: suspended in ``busy`` (its end is on the heap); with IRQs on (``seg_on``) an
        #: interrupt may cut it short
        self.busy = False
        self.seg_on = False
        self.seg_start = 0
        self.seg_cat = SYSTEM
        #: suspended in ``halt`` (idle)
        self.halted = False
        self.idle_since = 0
        #: when the tick fires next (NEVER: stopped), and the token of that event (an
        #: older tick event on the heap is stale)
        self.tick_at = NEVER
        self.tick_token = 0
        #: when the clock event is programmed for the CPU's hrtimers (NEVER: it is not)
        self.hr_at = NEVER
        #: the last moment the watchdog thread could have run on this CPU: a switch, idle,
        #: or a tick that found the CPU preemptible (the soft-lockup detector)
        self.touched = 0
        self.lockup_reported = False


class SimTask:
    """The sim engine's per-task state: its greenlet and its pending timed wake-up."""

    __slots__ = ("glet", "sleep_token")

    def __init__(self, glet: greenlet) -> None:
        self.glet = glet
        self.sleep_token = 0


class SimEngine:
    """Virtual time.  See the module docstring."""

    wall_clock = False
    models_path_costs = True
    runs_scheduler = True
    #: the core calls driver code directly (nothing to release around it)
    direct_calls = True

    def __init__(self, kernel: KernelCore) -> None:
        #: one thread drives the whole machine: nothing to lock
        self.lock: AbstractContextManager[Any] = nullcontext()
        self.k = kernel
        self.now = 0
        #: the CPU whose code runs now (None in the hub: between events, callbacks)
        self.current_cpu: Cpu | None = None
        self._heap: list[tuple[int, int, Callable[[Any, Any], None], Any, Any]] = [
            (NEVER, -1, _never, None, None)
        ]
        self._seq = 0
        #: how far the running run() may go; -1 hands control back to the hub at once
        #: (an outside wait has ended)
        self._until = NEVER - 1
        self._running = False
        #: (predicate, wake-up): checked wherever state may have changed before time moves
        self._waiters: list[tuple[Callable[[], bool], Callable[[], object]]] = []
        self._hub: greenlet | None = None
        self._tasks: list[Task] = []
        self._period = kernel.config.tick_period_ns
        self._lockup_ns = kernel.config.softlockup_thresh_ns
        #: the tick's event function, bound once so that heap entries can be told by
        #: identity (each ``self._tick`` access makes a new bound method)
        self._tick_evt = self._tick

    # ------------------------------------------------------------------ setup
    def add_task(self, t: Task) -> None:
        glet = greenlet(run=lambda *_: self._task_main(t))
        if self._hub is not None:
            glet.parent = self._hub
        t.engine_state = SimTask(glet)
        self._tasks.append(t)

    def boot(self) -> None:
        for c in self.k.cpus:
            st = SimCpu()
            st.halted = True
            c.engine_state = st
            if len(c.rq):
                self._push(self.now, self._resume, c, None)

    def _push(self, t: int, fn: Callable[[Any, Any], None], a: Any, b: Any) -> None:
        heapq.heappush(self._heap, (t, self._seq, fn, a, b))
        self._seq += 1

    def _become_hub(self, what: str) -> None:
        if self._running:
            raise IrqflowError(
                f"{what} was called from inside the machine (driver code or a call_at "
                "callback); call it between runs, from the script that drives the machine"
            )
        hub = getcurrent()
        if hub is not self._hub:
            self._hub = hub
            self._tasks = [t for t in self._tasks if t.state != "X"]
            for t in self._tasks:
                glet = t.engine_state.glet
                if not glet.dead:
                    glet.parent = hub
        self._running = True

    # ------------------------------------------------------------------ driving
    def run(self, until: int | None = None) -> None:
        """Advance virtual time to ``until`` (or until nothing is left to do)."""
        if until is not None and (
            not isinstance(until, int) or isinstance(until, bool) or until < self.now
        ):
            bad = "that is in the past" if isinstance(until, int) else "give an int of ns"
            raise IrqflowError(f"run(until={until!r}): {bad} (now is {self.now} ns)")
        self._become_hub("run()")
        self._until = NEVER - 1 if until is None else until
        heap = self._heap
        tick = self._tick_evt
        try:
            while heap[0][0] <= self._until:
                if until is None and heap[0][2] is tick and self._quiet():
                    break  # only housekeeping is left: the machine is quiet
                t, _, fn, a, b = heapq.heappop(heap)
                self.now = t
                fn(a, b)
            if until is not None:
                self.now = until
        finally:
            self._running = False
            self._until = NEVER - 1

    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """Advance virtual time until ``pred()`` holds (a blocking call from outside).
        The CPUs check it wherever the machine's state may change, so the call returns
        at the moment it came true."""
        self._become_hub(what)
        deadline = self.now + WAIT_LIMIT_NS
        heap = self._heap
        waiter = (pred, self._outside_done)
        self._waiters.append(waiter)
        try:
            while not pred():
                if heap[0][0] == NEVER or (heap[0][2] is self._tick_evt and self._quiet()):
                    raise IrqflowError(
                        f"{what} can never finish: at t={self.now} ns the machine is idle and "
                        "nothing else is scheduled"
                    )
                if heap[0][0] > deadline:
                    raise IrqflowError(
                        f"{what} did not finish within {WAIT_LIMIT_NS // 10**9} s of virtual "
                        f"time (now {self.now} ns)"
                    )
                t, _, fn, a, b = heapq.heappop(heap)
                self.now = t
                fn(a, b)
        finally:
            self._until = NEVER - 1
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._running = False

    def _outside_done(self) -> None:
        self._until = -1  # CPUs take their slow path and hand control back at once

    def add_waiter(self, pred: Callable[[], bool], wake: Callable[[], object]) -> None:
        self._waiters.append((pred, wake))

    def _check_waiters(self) -> None:
        waiters = self._waiters
        ready = [w for w in waiters if w[0]()]
        if ready:
            self._waiters = [w for w in waiters if w not in ready]
            for _, wake in ready:
                wake()

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        self._push(t_ns, self._callback, fn, args)

    def _callback(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        fn(*args)
        if self._waiters:
            self._check_waiters()  # the outside world (a device) may have ended a wait

    # ------------------------------------------------------------------ entering a CPU
    def _enter(self, c: Cpu, signal: Marker | None) -> None:
        """Hub side: let CPU ``c`` run (its current task's greenlet) until it waits."""
        self.current_cpu = c
        try:
            r = c.current.engine_state.glet.switch(signal)
            while True:
                if r is EXITED:  # the task's body returned: the CPU runs its next task
                    prev = c.current
                    nxt = c.rq.pick_next() or c.idle_task
                    c.need_resched = False
                    self._switch_prep(c, prev, nxt)
                    r = nxt.engine_state.glet.switch(None)
                elif r.__class__ is Task:  # schedule() asks the hub to start a task
                    r = r.engine_state.glet.switch(None)
                else:
                    break
        finally:
            self.current_cpu = None

    def _task_main(self, t: Task) -> Any:
        c = self.current_cpu
        assert c is not None
        if t is c.idle_task:
            self._leave_idle(c, c.engine_state)
        else:
            self._switched_in(c)
        t.result = t.body()
        c = self.current_cpu
        assert c is not None
        t.state = "X"
        c.rq.dequeue(t)
        return EXITED

    # ------------------------------------------------------------------ the contract
    def busy(self, c: Cpu, ns: int, cat: str | None = None) -> None:
        if self._waiters:
            self._check_waiters()
        if cat is None:
            pc = c.preempt_count
            cat = IRQ if pc & HARDIRQ_MASK else SOFTIRQ if pc & SOFTIRQ_OFFSET else c.current.acct
        if c.irr and c.irqs_on:
            take_pending_irqs(self.k, c)
        end = self.now + ns
        if end < self._heap[0][0] and end <= self._until:
            # nothing can happen before this time is over: jump to its end
            self.now = end
            c.times[cat] += ns
            if cat is not IRQ and (cat is not SOFTIRQ or c.current.is_ksoftirqd):
                cur = c.current
                if cur is not c.idle_task:
                    c.rq.account(cur, ns)
            return
        self._busy_wait(c, ns, cat)

    def _busy_wait(self, c: Cpu, ns: int, cat: str) -> None:
        """The slow path of :meth:`busy`: something is due before the time is over, so
        the CPU waits in the hub until its end (or an interrupt, then the rest)."""
        hub = self._hub
        if hub is None or self.current_cpu is not c:
            raise GreenletExit  # a greenlet being collected: unwind without time
        st: SimCpu = c.engine_state
        heap = self._heap
        while True:
            end = self.now + ns
            if end < heap[0][0] and end <= self._until:
                self._account(c, cat, ns)
                self.now = end
                return
            st.token += 1
            heapq.heappush(heap, (end, self._seq, self._seg_end, c, st.token))
            self._seq += 1
            start = self.now
            st.seg_start = start
            st.seg_cat = cat
            st.seg_on = c.irqs_on
            st.busy = True
            signal = hub.switch()
            st.busy = False
            elapsed = self.now - start
            self._account(c, cat, elapsed)
            ns -= elapsed
            if signal is not INTERRUPTED:
                return
            if c.irr and c.irqs_on:
                take_pending_irqs(self.k, c)
            if ns <= 0:
                return

    def irqs_enabled(self, c: Cpu) -> None:
        take_pending_irqs(self.k, c)

    def halt(self, c: Cpu) -> None:
        if self._waiters:
            self._check_waiters()
        st: SimCpu = c.engine_state
        if not c.irr:
            hub = self._hub
            if hub is None or self.current_cpu is not c:
                raise GreenletExit
            c.halted = st.halted = True
            st.idle_since = st.touched = self.now
            st.lockup_reported = False
            hub.switch()
            c.halted = st.halted = False  # _leave_idle(), inlined
            now = self.now
            c.times[IDLE] += now - st.idle_since
            st.touched = now
            if st.tick_at - now > self._period:
                self.ensure_tick(c)  # the tick was stopped: restart it on its grid
        take_pending_irqs(self.k, c)

    def _leave_idle(self, c: Cpu, st: SimCpu) -> None:
        c.halted = st.halted = False
        c.times[IDLE] += self.now - st.idle_since
        st.touched = self.now
        self.ensure_tick(c)

    def schedule(self, c: Cpu) -> None:
        if self._waiters:
            self._check_waiters()
        prev = c.current
        nxt = c.rq.pick_next() or c.idle_task
        c.need_resched = False
        if nxt is prev:
            if prev.state != RUNNING and prev is not c.idle_task:
                raise InternalError(f"schedule(): {prev.comm} is asleep but was picked")
            return
        if self._hub is None or self.current_cpu is not c:
            raise GreenletExit
        self._switch_prep(c, prev, nxt)
        glet = nxt.engine_state.glet
        if glet:
            glet.switch(None)
        else:
            # its first run starts from the hub: a greenlet begins with the recursion
            # depth of the greenlet that starts it, and a chain of tasks each started by
            # the one before would add up to RecursionError
            self._hub.switch(nxt)
        # picked again, on this CPU or (an IRQ thread) another one
        here = self.current_cpu
        assert here is not None
        self._switched_in(here)

    def _switch_prep(self, c: Cpu, prev: Task, nxt: Task) -> None:
        """Switch ``c`` from ``prev`` to ``nxt``: the kernel's bookkeeping, and the
        watchdog's note that the CPU scheduled."""
        self.k.sched.context_switch(c, prev, nxt)
        st: SimCpu = c.engine_state
        st.touched = self.now
        st.lockup_reported = False

    def _switched_in(self, c: Cpu) -> None:
        """The task switched to pays the context switch."""
        cost = self.k.costs.switch
        if cost:
            self.busy(c, cost, SYSTEM)

    def sleep_until(self, c: Cpu, t_ns: int) -> None:
        task = c.current
        ts: SimTask = task.engine_state
        ts.sleep_token += 1
        self._push(t_ns, self._timeout, task, ts.sleep_token)
        self.k.sched.block(c)

    def _timeout(self, task: Task, token: int) -> None:
        if task.engine_state.sleep_token == token:
            self.k.sched.wake_up_process(task)

    def call_driver(self, c: Cpu, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return fn(*args)

    # ------------------------------------------------------------------ hub events
    def deliver(self, c: Cpu) -> None:
        """An interrupt was put in ``c``'s request register."""
        if self.current_cpu is c:
            return  # the CPU's own code takes it at its next boundary with IRQs on
        # Always through the heap: a CPU run may jump time forward (the fast path), and
        # the caller (a device callback, another CPU) must not see its clock move.
        self._push(self.now, self._deliver_evt, c, None)

    def _deliver_evt(self, c: Cpu, _: Any) -> None:
        st: SimCpu = c.engine_state
        if not c.irr:
            return
        if st.halted:
            self._enter(c, None)
        elif st.busy and st.seg_on:
            st.token += 1  # its end on the heap is stale now
            self._enter(c, INTERRUPTED)
        # else: IRQs are off; it is taken where they go back on

    def kick(self, c: Cpu, t: Task) -> None:
        """A task became runnable on ``c`` (and maybe set need_resched)."""
        if self.current_cpu is c:
            return  # its idle loop or the return from interrupt sees it
        st: SimCpu = c.engine_state
        if st.halted:
            self._push(self.now, self._resume, c, None)
        elif c.need_resched and RESCHEDULE_VECTOR not in c.irr:
            c.irr[RESCHEDULE_VECTOR] = None  # the reschedule IPI
            self.deliver(c)

    def _resume(self, c: Cpu, _: Any) -> None:
        st: SimCpu = c.engine_state
        if st.halted:
            self._enter(c, None)

    def _seg_end(self, c: Cpu, token: int) -> None:
        st: SimCpu = c.engine_state
        if token == st.token and st.busy:
            self._enter(c, None)

    def ensure_tick(self, c: Cpu) -> None:
        """Keep ``c``'s tick running (it left idle, or a timer was armed on it): the next
        tick on the grid of the period, unless one comes sooner."""
        st: SimCpu = c.engine_state
        at = (self.now // self._period + 1) * self._period
        if at < st.tick_at:
            self._arm_tick(st, c, at)

    def _arm_tick(self, st: SimCpu, c: Cpu, at: int) -> None:
        st.tick_token += 1
        st.tick_at = at
        self._push(at, self._tick_evt, c, st.tick_token)

    def _tick(self, c: Cpu, token: int) -> None:
        """The tick (``tick_sched_timer``).  On an idle CPU it is stopped (NO_HZ): the
        clock event is programmed for the CPU's next timer instead, and the interrupt
        comes only when that timer is due."""
        st: SimCpu = c.engine_state
        if token != st.tick_token:
            return  # re-armed since
        st.tick_at = NEVER
        if st.halted:
            nxt = self.k.timers.next_event(c)
            if nxt is None:
                return  # nothing to wake for: the tick stays stopped
            at = nxt * self._period
            if at > self.now:
                self._arm_tick(st, c, at)  # tick_nohz_stop_tick: the next timer's jiffy
                return
        else:
            self._watchdog(c, st)
        self._arm_tick(st, c, self.now + self._period)
        c.tick_due = True
        c.irr[LOCAL_TIMER_VECTOR] = None
        self._deliver_evt(c, None)

    def program_event(self, c: Cpu, t_ns: int) -> None:
        """Program ``c``'s clock event for its hrtimers (the earliest request wins)."""
        st: SimCpu = c.engine_state
        if t_ns < st.hr_at:
            st.hr_at = t_ns
            self._push(t_ns, self._hrtimer_evt, c, t_ns)

    def _hrtimer_evt(self, c: Cpu, at: int) -> None:
        st: SimCpu = c.engine_state
        if st.hr_at != at:
            return  # programmed earlier since; that interrupt programs the next one
        st.hr_at = NEVER
        nxt = self.k.hrtimers.next_event(c)
        if nxt is None:
            return  # its timers were cancelled (hrtimer_cancel reprograms the device)
        if nxt > self.now:
            self.program_event(c, nxt)
            return
        c.irr[LOCAL_TIMER_VECTOR] = None
        self._deliver_evt(c, None)

    def _quiet(self) -> bool:
        """``run()`` without ``until`` stops here: every CPU idles and nothing is left
        but stopped ticks that wake for the kernel's perpetual housekeeping timers."""
        if not all(c.engine_state.halted for c in self.k.cpus):
            return False
        tick = self._tick_evt
        if any(e[2] is not tick and e[0] != NEVER for e in self._heap):
            return False
        return not self.k.timers.busy()

    def _watchdog(self, c: Cpu, st: SimCpu) -> None:
        """The soft-lockup detector.  The kernel's watchdog thread (SCHED_FIFO 99) runs
        whenever the CPU is preemptible; a CPU that stays unpreemptible (atomic context,
        or kernel code that never yields under preempt_model none/voluntary) for
        ``softlockup_thresh_ns`` is stuck: report it once per stuck stretch."""
        k = self.k
        if not c.preempt_count and c.irqs_on and (k.sched.preempt_kernel or c.current.acct is USER):
            st.touched = self.now  # the watchdog thread could run here
            st.lockup_reported = False
            return
        stuck = self.now - st.touched
        if stuck < self._lockup_ns or st.lockup_reported:
            return
        st.lockup_reported = True
        task = c.current
        context = cpumod.context_name(c.preempt_count)
        if context == "task" and (c.preempt_count or not c.irqs_on):
            context += " (IRQs off)" if not c.irqs_on else " (preemption or BH off)"
        where = c.running or task.comm
        self.k.log(
            c,
            "emerg",
            f"watchdog: BUG: soft lockup - CPU#{c.nr} stuck for {stuck / 1e9:.1f}s! "
            f"[{task.comm}:{task.pid}] in {context} {where}",
        )

    # ------------------------------------------------------------------ accounting
    def _account(self, c: Cpu, cat: str, ns: int) -> None:
        c.times[cat] += ns
        if cat is not IRQ and (cat is not SOFTIRQ or c.current.is_ksoftirqd):
            cur = c.current
            if cur is not c.idle_task:
                c.rq.account(cur, ns)

    def cpu_times(self, c: Cpu) -> dict[str, int]:
        times = dict(c.times)
        st: SimCpu = c.engine_state
        if st.halted:
            times[IDLE] += self.now - st.idle_since
        elif st.busy:
            times[st.seg_cat] += self.now - st.seg_start
        return times
