"""The sim engine: deterministic virtual time in integer nanoseconds.

Theory of operation
-------------------
One event heap holds everything that happens at a known time: the end of a CPU's busy
segment, a device callback (``call_at``), a tick, a sleeping task's wake-up.  Entries are
``(time, seq, fn, a, b)``; ``seq`` is a global insertion counter, so the order is total
and documented: **earlier time first, then first scheduled first**.  Nothing else (no
hash order, no wall clock) influences a run, so the same scenario and seed give the same
trace, byte for byte.

Each CPU has a stack of frames (generators).  The bottom frame is the current task's
body; taking an interrupt pushes a ``do_irq`` frame on top (the saved context is simply
the frame below, with its remaining CPU time), and the pop when it returns restores it.
A frame's effect is interpreted by :meth:`SimEngine._run_cpu`:

* ``Busy(ns)`` and the CPU time charged by a ``Run`` become *segments*
  ``[ns, category, irqs_on]``.  A segment occupies the CPU; if an interrupt arrives while
  the segment has IRQs on, the segment is split: the elapsed part is accounted, the
  remainder waits under the new frame.  With IRQs off the interrupt waits in the CPU's
  request register until the next boundary where IRQs are on.
* Driver code (``Run``) executes at the *start* of its segment, in zero virtual time; the
  time it charged with ``udelay`` is then replayed as segments.
* Fast path: if a segment ends before the next heap event, nothing can interrupt it, so
  the CPU jumps straight to its end without touching the heap.

CPU time is accounted per category (user, system, irq, softirq, idle) at every segment
end or split and while halted, so the categories of a CPU add up to elapsed time exactly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import (
    BH_ENABLE,
    IDLE,
    INTERRUPT_MASK,
    IRQ,
    LOCAL_TIMER_VECTOR,
    RESCHEDULE_VECTOR,
    SOFTIRQ,
    SYSTEM,
    USER,
    Cpu,
)
from irqflow.core.effects import (
    BLOCK,
    COND_RESCHED,
    IRQS_OFF,
    IRQS_ON,
    Busy,
    Run,
    Sleep,
    WaitUntil,
)
from irqflow.core.effects import IDLE as IDLE_EFFECT
from irqflow.core.entry import do_irq, do_local_timer, do_reschedule_ipi
from irqflow.core.errors import InternalError, IrqflowError
from irqflow.core.sched import RUNNING, SLEEPING, Task
from irqflow.core.softirq import do_softirq

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

Flow = Generator[Any, Any, Any]
TASK, IRQ_FRAME, NESTED = 0, 1, 2
INF = float("inf")
#: how far ahead of now a blocking call from outside the machine may push virtual time
WAIT_LIMIT_NS = 60 * 1_000_000_000


class Frame:
    """One activation on a CPU's stack: a generator plus the busy time it still owes."""

    __slots__ = ("final_on", "final_pc", "gen", "kind", "saved_on", "segs", "value")

    def __init__(self, gen: Flow, kind: int = 0) -> None:
        #: None once an interrupt frame's flow has returned and it pays its exit cost
        self.gen: Flow | None = gen
        self.segs: list[list[Any]] = []
        self.value: Any = None
        #: the IRQ flag and preempt_count once the owed segments are replayed
        self.final_on = True
        self.final_pc = 0
        self.saved_on = True
        #: TASK (a task's body), IRQ (an interrupt: entry/exit cost, iret on pop) or
        #: NESTED (a kernel flow run on top of the current frame, e.g. softirqs at
        #: local_bh_enable)
        self.kind = kind


class SimCpu:
    """The sim engine's per-CPU state."""

    __slots__ = (
        "busy",
        "halted",
        "idle_since",
        "running",
        "seg_start",
        "stack",
        "tick_armed",
        "token",
    )

    def __init__(self) -> None:
        self.stack: list[Frame] = []
        self.token = 0
        self.seg_start = 0
        self.busy = False
        self.idle_since = 0
        self.tick_armed = False
        self.running = False


class SimEngine:
    """Virtual time.  See the module docstring."""

    #: a wait in a plain process-context function cannot suspend it: make it async def
    blocking_tasks = False
    wall_clock = False
    #: one thread drives the whole machine: nothing to lock
    lock: AbstractContextManager[Any] = nullcontext()

    def __init__(self, kernel: KernelCore) -> None:
        self.k = kernel
        self.now = 0
        self.current_cpu: Cpu | None = None
        self._heap: list[tuple[int, int, Callable[[Any, Any], None], Any, Any]] = []
        self._seq = 0
        self._until: float = INF
        self._running = False
        #: kernel threads waiting in a blocking call: (predicate, task)
        self._waiters: list[tuple[Callable[[], bool], Task]] = []
        self._period = kernel.config.tick_period_ns
        self._entry_ns = kernel.config.irq_entry_ns
        self._exit_ns = kernel.config.irq_exit_ns

    # ------------------------------------------------------------------ setup
    def add_task(self, t: Task) -> None:
        t.engine_state = Frame(t.body())

    def boot(self) -> None:
        for c in self.k.cpus:
            st = SimCpu()
            st.stack.append(c.idle_task.engine_state)
            c.engine_state = st
            if len(c.rq):
                self._push(self.now, self._resume, c, None)

    def _push(self, t: int, fn: Callable[[Any, Any], None], a: Any, b: Any) -> None:
        heapq.heappush(self._heap, (t, self._seq, fn, a, b))
        self._seq += 1

    # ------------------------------------------------------------------ driving
    def run(self, until: int | None = None) -> None:
        """Advance virtual time to ``until`` (or until nothing is left to do)."""
        if self._running:
            raise IrqflowError("run() was called from inside the machine (a handler or callback)")
        if until is not None and until < self.now:
            raise IrqflowError(f"run(until={until}): that is in the past (now is {self.now} ns)")
        self._running = True
        self._until = INF if until is None else until
        heap = self._heap
        try:
            while heap and heap[0][0] <= self._until:
                t, _, fn, a, b = heapq.heappop(heap)
                self.now = t
                fn(a, b)
            if until is not None:
                self.now = until
        finally:
            self._running = False
            self._until = INF

    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """Advance virtual time until ``pred()`` holds (a blocking call from outside)."""
        if self._running:
            raise IrqflowError(
                f"{what} would block inside run() (called from a call_at callback); "
                "call it between runs"
            )
        deadline = self.now + WAIT_LIMIT_NS
        heap = self._heap
        self._running = True
        try:
            while not pred():
                if not heap:
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
                fn(a, b)  # waiters are checked where code runs, as in run()
        finally:
            self._running = False

    def _check_waiters(self) -> None:
        ready = [w for w in self._waiters if w[0]()]
        if ready:
            self._waiters = [w for w in self._waiters if w not in ready]
            for _, task in ready:
                self.k._wake_up_process(task)

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        self._push(t_ns, self._callback, fn, args)

    def _callback(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        fn(*args)
        if self._waiters:
            self._check_waiters()  # the outside world (a device) may have ended a wait

    # ------------------------------------------------------------------ CPU wakeups
    def deliver(self, c: Cpu) -> None:
        """An interrupt was put in ``c``'s request register."""
        st: SimCpu = c.engine_state
        if st.running:
            return  # the CPU's own loop sees it at its next boundary with IRQs on
        # Always through the heap: a CPU run may jump time forward (the fast path), and
        # the caller (a device callback, another CPU) must not see its clock move.
        self._push(self.now, self._deliver_evt, c, None)

    def _deliver_evt(self, c: Cpu, _: Any) -> None:
        st: SimCpu = c.engine_state
        if st.running or not c.irr:
            return
        if c.halted:
            self._leave_idle(c, st)
            self._run_cpu(c)
        elif st.busy:
            f = st.stack[-1]
            seg = f.segs[0]
            if seg[2]:  # the running segment has IRQs on: split it
                elapsed = self.now - st.seg_start
                self._account(c, seg[1], elapsed)
                seg[0] -= elapsed
                st.token += 1
                st.busy = False
                self._run_cpu(c)

    def kick(self, c: Cpu) -> None:
        """A task became runnable on ``c`` (and maybe set need_resched)."""
        st: SimCpu = c.engine_state
        if st.running:
            return
        if c.halted:
            self._push(self.now, self._resume, c, None)
        elif c.need_resched and RESCHEDULE_VECTOR not in c.irr:
            c.irr[RESCHEDULE_VECTOR] = None  # the reschedule IPI
            self.deliver(c)

    def _resume(self, c: Cpu, _: Any) -> None:
        st: SimCpu = c.engine_state
        if st.running or not c.halted:
            return
        self._leave_idle(c, st)
        self._run_cpu(c)

    def _leave_idle(self, c: Cpu, st: SimCpu) -> None:
        c.halted = False
        c.times[IDLE] += self.now - st.idle_since
        self.ensure_tick(c)

    def ensure_tick(self, c: Cpu) -> None:
        """Keep ``c``'s tick running (a timer was armed on it)."""
        st: SimCpu = c.engine_state
        if not st.tick_armed:
            st.tick_armed = True
            self._push((self.now // self._period + 1) * self._period, self._tick, c, None)

    def _tick(self, c: Cpu, _: Any) -> None:
        st: SimCpu = c.engine_state
        if c.halted and not c.timers:
            st.tick_armed = False  # NO_HZ idle: the tick stops on an idle CPU
            return
        self._push(self.now + self._period, self._tick, c, None)
        c.irr[LOCAL_TIMER_VECTOR] = None
        self._deliver_evt(c, None)

    def _seg_end(self, c: Cpu, token: int) -> None:
        st: SimCpu = c.engine_state
        if token != st.token:
            return  # the segment was split by an interrupt; this end is stale
        st.busy = False
        f = st.stack[-1]
        seg = f.segs.pop(0)
        self._account(c, seg[1], seg[0])
        if not f.segs:
            c.irqs_on = f.final_on
            c.preempt_count = f.final_pc
        self._run_cpu(c)

    # ------------------------------------------------------------------ accounting
    def _account(self, c: Cpu, cat: str, ns: int) -> None:
        c.times[cat] += ns
        if cat in (USER, SYSTEM) or (cat == SOFTIRQ and c.current.is_ksoftirqd):
            cur = c.current
            if cur is not c.idle_task:
                c.rq.account(cur, ns)

    def cpu_times(self, c: Cpu) -> dict[str, int]:
        times = dict(c.times)
        st: SimCpu = c.engine_state
        if c.halted:
            times[IDLE] += self.now - st.idle_since
        elif st.busy:
            seg = st.stack[-1].segs[0]
            times[seg[1]] += self.now - st.seg_start
        return times

    # ------------------------------------------------------------------ the interpreter
    def _run_cpu(self, c: Cpu) -> None:
        st: SimCpu = c.engine_state
        st.running = True
        outer = self.current_cpu
        self.current_cpu = c
        try:
            self._interpret(c, st)
        finally:
            st.running = False
            self.current_cpu = outer

    def _interpret(self, c: Cpu, st: SimCpu) -> None:
        k = self.k
        stack = st.stack
        heap = self._heap
        account = self._account
        times = c.times
        while True:
            if c.irqs_on and c.irr:
                self._take_irq(c, st)
                continue
            f = stack[-1]
            segs = f.segs
            if segs:
                seg = segs[0]
                on = seg[2]
                c.preempt_count = seg[3]
                if on is not c.irqs_on:
                    c.irqs_on = on
                    if on and c.irr:
                        continue
                if not seg[0]:
                    self._marker(c, st, f, seg)
                    continue
                end = self.now + seg[0]
                if end <= self._until and (not heap or end < heap[0][0]):
                    # nothing can happen before this segment ends: jump to its end
                    cat = seg[1]
                    if cat == IRQ or (cat == SOFTIRQ and not c.current.is_ksoftirqd):
                        times[cat] += seg[0]  # interrupt time: no task runtime to update
                    else:
                        account(c, cat, seg[0])
                    self.now = end
                    del segs[0]
                    if not segs:
                        c.irqs_on = f.final_on
                        c.preempt_count = f.final_pc
                    continue
                st.token += 1
                st.seg_start = self.now
                st.busy = True
                heapq.heappush(heap, (end, self._seq, self._seg_end, c, st.token))
                self._seq += 1
                return
            gen = f.gen
            if gen is None:
                self._pop(c, st, f, None)
                continue
            try:
                eff = gen.send(f.value)
            except StopIteration as stop:
                if f.kind == IRQ_FRAME and self._exit_ns:
                    # register restore and iret: the exit cost, then the pop
                    f.gen = None
                    f.segs = [[self._exit_ns, IRQ, False, c.preempt_count]]
                    f.final_on = False
                    f.final_pc = c.preempt_count
                    continue
                self._pop(c, st, f, stop.value)
                continue
            f.value = None
            if self._waiters:
                # the flow (or the driver code it ran) may have ended a wait: wake the
                # waiter now, not at the next heap event, so that when a run is cut into
                # slices (run_for steps) the machine still does exactly the same
                self._check_waiters()
            tp = type(eff)
            if tp is Run:
                charges: list[list[Any]] = []
                c.charges = charges
                if eff.cost:
                    c.charge(eff.cost)
                f.value = k._call_user(c, eff)
                if self._waiters:
                    self._check_waiters()  # at the time the code ran
                if charges:
                    f.final_on = c.irqs_on
                    f.final_pc = c.preempt_count
                    c.irqs_on = charges[0][2]
                    c.preempt_count = charges[0][3]
                    f.segs = charges
            elif tp is Busy:
                if eff.irqs_on is not None:
                    c.irqs_on = eff.irqs_on
                if eff.ns > 0:
                    pc = c.preempt_count
                    f.segs = [[eff.ns, eff.cat or c.category(), c.irqs_on, pc]]
                    f.final_on = c.irqs_on
                    f.final_pc = pc
            elif eff is IRQS_ON:
                c.irqs_on = True
            elif eff is IRQS_OFF:
                c.irqs_on = False
            elif eff is IDLE_EFFECT:
                if c.need_resched or c.rq.fair or c.rq.rt:
                    self._schedule(c, st)
                    continue
                c.halted = True
                st.idle_since = self.now
                return
            elif eff is BLOCK:
                self._sleep(c, st)
            elif eff is COND_RESCHED:
                if c.need_resched:
                    self._schedule(c, st)
            elif tp is Sleep:
                task = c.current
                self._push(self.now + eff.ns, self._timeout, task, None)
                self._sleep(c, st)
            elif tp is WaitUntil:
                # a wake-up may have come while the step's CPU time was replayed: like
                # schedule() after a wake_up that set the task running again, do not sleep
                if not eff.pred():
                    self._waiters.append((eff.pred, c.current))
                    self._sleep(c, st)
            else:
                raise InternalError(f"a kernel flow yielded {eff!r}, which is not an effect")

    def _marker(self, c: Cpu, st: SimCpu, f: Frame, seg: list[Any]) -> None:
        """A 0-ns segment: a ``local_bh_enable`` inside replayed driver code."""
        del f.segs[0]
        if not f.segs:
            c.irqs_on = f.final_on
            c.preempt_count = f.final_pc
        if seg[1] == BH_ENABLE and c.softirq_pending and not seg[3] & INTERRUPT_MASK:
            nested = Frame(do_softirq(self.k, c), NESTED)
            nested.final_on = c.irqs_on  # what the frame below continues with
            nested.final_pc = c.preempt_count
            c.preempt_count = seg[3]  # local_bh_enable still holds one preempt count
            st.stack.append(nested)

    def _take_irq(self, c: Cpu, st: SimCpu) -> None:
        irr = c.irr
        vector = next(iter(irr))
        t_presented = irr.pop(vector)
        k = self.k
        if vector >= 0:
            gen = do_irq(k, c, vector, t_presented)
        elif vector == LOCAL_TIMER_VECTOR:
            gen = do_local_timer(k, c)
        else:
            gen = do_reschedule_ipi(k, c, "RES" if vector == RESCHEDULE_VECTOR else "IWI")
        f = Frame(gen, IRQ_FRAME)
        f.saved_on = c.irqs_on
        f.final_on = False
        f.final_pc = c.preempt_count
        if self._entry_ns:
            # vector stub and register save: the CPU's cost of taking the interrupt
            f.segs = [[self._entry_ns, IRQ, False, c.preempt_count]]
        c.irqs_on = False  # the interrupt gate clears IF
        st.stack.append(f)

    def _pop(self, c: Cpu, st: SimCpu, f: Frame, value: Any) -> None:
        stack = st.stack
        if f.kind == NESTED:
            stack.pop()
            c.irqs_on = f.final_on
            c.preempt_count = f.final_pc
            return
        if f.kind == IRQ_FRAME:
            stack.pop()
            c.irqs_on = f.saved_on  # iret restores the interrupted context's flag
            if len(stack) == 1 and c.need_resched and c.preempt_count == 0 and c.irqs_on:
                self._schedule(c, st)  # preemption on return from interrupt
            return
        task = c.current
        if task is c.idle_task:
            raise InternalError("the idle task returned")
        task.state = "X"
        task.result = value
        c.rq.dequeue(task)
        self._schedule(c, st)

    def _sleep(self, c: Cpu, st: SimCpu) -> None:
        if len(st.stack) != 1:
            raise InternalError("a task tried to sleep from interrupt context")
        task = c.current
        task.state = SLEEPING
        c.rq.dequeue(task)
        if task.wq_worker is not None:
            self.k._wq_worker_sleeping(task)
        self._schedule(c, st)

    def _timeout(self, task: Task, _: Any) -> None:
        self.k._wake_up_process(task)

    def _schedule(self, c: Cpu, st: SimCpu) -> None:
        prev = c.current
        rq = c.rq
        nxt = rq.pick_next() or c.idle_task
        c.need_resched = False
        if nxt is prev:
            return
        k = self.k
        if k.tracing:
            if prev is c.idle_task:
                state = "R"
            elif prev.state == RUNNING:
                state = "R+"
            else:
                state = "X" if prev.state == "X" else "S"
            k.trace.emit(
                c,
                "sched:sched_switch",
                {
                    "prev_comm": prev.comm,
                    "prev_pid": prev.pid,
                    "prev_prio": prev.prio,
                    "prev_state": state,
                    "next_comm": nxt.comm,
                    "next_pid": nxt.pid,
                    "next_prio": nxt.prio,
                },
            )
        prev.saved_pc = c.preempt_count
        prev.saved_irqs_on = c.irqs_on
        c.nr_switches += 1
        c.current = nxt
        nxt.exec_start_sum = nxt.sum_exec
        frame: Frame = nxt.engine_state
        st.stack[0] = frame
        c.preempt_count = nxt.saved_pc
        c.irqs_on = nxt.saved_irqs_on
        cost = k.config.context_switch_ns
        if cost:
            if not frame.segs:
                frame.final_on = c.irqs_on
                frame.final_pc = c.preempt_count
            frame.segs.insert(0, [cost, SYSTEM, c.irqs_on, c.preempt_count])

    # ------------------------------------------------------------------ inline flows
    def run_inline(self, c: Cpu, flow: Flow) -> None:
        """Run a kernel flow inside the driver call that triggered it (``local_bh_enable``
        running softirqs): its CPU time is charged to that call."""
        k = self.k
        value: Any = None
        while True:
            try:
                eff = flow.send(value)
            except StopIteration:
                return
            value = None
            tp = type(eff)
            if tp is Busy:
                if eff.irqs_on is not None:
                    c.irqs_on = eff.irqs_on
                c.charge(eff.ns)
            elif tp is Run:
                if eff.cost:
                    c.charge(eff.cost)
                value = k._call_user(c, eff)
                if self._waiters:
                    self._check_waiters()
            elif eff is IRQS_ON:
                c.irqs_on = True
            elif eff is IRQS_OFF:
                c.irqs_on = False
            else:
                raise InternalError(f"{eff!r} cannot run inline")
