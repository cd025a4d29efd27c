"""``RealEngine``: the engine contract on OS threads, in wall-clock time.

See the package docstring (:mod:`irqflow.engine.real`) for the theory of operation.
This module holds the contract's members, the CPU and task threads, parking and the
per-CPU token; the clock thread is in :mod:`.clock`, stopping in :mod:`.lifecycle`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from threading import get_ident
from time import perf_counter_ns
from typing import Any

from irqflow.core.base import Unwind
from irqflow.core.cpu import IDLE, LOCAL_TIMER_VECTOR, Cpu
from irqflow.core.entry import take_pending_irqs
from irqflow.core.errors import InternalError, IrqflowError
from irqflow.core.kernel import KernelCore
from irqflow.core.sched import RUNNING, Task
from irqflow.engine.real import signals
from irqflow.engine.real.clock import Clock
from irqflow.engine.real.context import TaskCpu, Tls, base_cpu, set_os_thread_name
from irqflow.engine.real.lock import ring, wait_unlocked
from irqflow.engine.real.raises import Line, home, take_raises
from irqflow.engine.real.report import StopReport

#: how often waiting threads re-check their condition even without a notification
POLL_S = 0.05
#: a CPU thread that has taken this many rounds of interrupts back to back (no sleep
#: between) lets go of the kernel lock and the interpreter once, so that a caller
#: waiting for the lock (statistics(), stop()) is not starved by an interrupt storm
STORM_ROUNDS = 64


class Stopped(Unwind):
    """Raised inside engine threads to unwind them when the machine stops.  Not an
    ``Exception``: driver code that catches ``Exception`` must not swallow it."""


class CpuState:
    """The real engine's per-CPU state."""

    def __init__(self, lock: Any) -> None:
        #: the context running atomic code for this CPU now (see the package docstring)
        self.owner: Cpu | None = None
        #: the idle CPU thread blocks on this locked lock; a delivery releases it once
        #: (:func:`.lock.ring`)
        self.doorbell = threading.Lock()
        self.doorbell.acquire()
        self.sleeping = False
        self.rung = False
        #: tasks waiting for the token
        self.token_cv = threading.Condition(lock)
        self.token_waiters = 0
        self.tick_armed = False
        #: task threads of this CPU running driver code in plain task context
        self.busy_tasks = 0


class TaskState:
    __slots__ = ("busy", "cv", "deadline", "parked", "slept_ns", "view")

    def __init__(self, lock: Any) -> None:
        self.cv = threading.Condition(lock)
        self.parked = False
        self.view: TaskCpu | None = None
        #: the CPU whose busy_tasks counts this task's driver call in progress
        self.busy: CpuState | None = None
        #: time spent asleep inside driver calls (blocking calls)
        self.slept_ns = 0
        #: the end of a timed sleep (``sleep_until``), for the next park
        self.deadline: int | None = None


@dataclass(slots=True, eq=False)
class Waiter:
    pred: Callable[[], bool]
    wake: Callable[[], object]
    #: called (lock held) if the machine stops first: the waiter must not wait forever
    on_stop: Callable[[], object] | None = None


#: started machines, for the child side of fork()
_STARTED: weakref.WeakSet[RealEngine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    parent = os.getppid()
    for eng in list(_STARTED):
        eng.forked(parent)


os.register_at_fork(after_in_child=_after_fork_in_child)


class RealEngine:
    """Wall-clock time on OS threads.  See the package docstring."""

    wall_clock = True
    models_path_costs = False
    runs_scheduler = False
    #: driver code is called through :meth:`call_driver` (it releases the kernel lock)
    direct_calls = False
    ring = staticmethod(ring)

    def __init__(self, kernel: KernelCore) -> None:
        self.k = kernel
        #: the kernel lock (see :mod:`.lock`): a C RLock, taken with ``with``
        self.lock: Any = threading.RLock()
        self.tls = Tls()
        self.waiters: list[Waiter] = []
        self._t0 = time.monotonic_ns()
        self.period = kernel.config.tick_period_ns
        self.started = False
        #: stop() was called: kthread_should_stop() is true from here on
        self.stop_requested = False
        #: the threads were told to stop: no driver code starts from here on
        self.halted = False
        self.stopping = False
        #: the thread whose stop() runs, and the end of it
        self.stopper: threading.Thread | None = None
        self.stopped = threading.Event()
        #: why public calls are refused (the machine stopped, or this is a fork child)
        self.refuse: str | None = None
        #: the main thread is handing the lock over: a Ctrl-C now waits (:mod:`.signals`)
        self.handover = False
        #: a Ctrl-C that struck inside a kernel section, to deliver once it is over (a
        #: list: whoever pops it delivers it, so it is delivered once)
        self.deferred_sigint: list[bool] = []
        #: the lock-free raise path (:mod:`.raises`): the lines with raises not yet taken
        #: by the core, each edge line's counter, and those open to the path now
        self.inbox: set[int] = set()
        self.lines: dict[int, Line] = {}
        self.homes: dict[int, Line] = {}
        self.core_raise = functools.partial(KernelCore.raise_irq, kernel)
        self.threads: list[threading.Thread] = []
        self.tasks: list[Task] = []
        #: driver calls in progress, by thread: (start, cpu, preempt_count or -1 in
        #: plain task context, the calling context, where, time category, the task's
        #: slept_ns at the start), for the watchdog and for CPU times of calls under way
        self.running: dict[int, tuple[int, int, int, Cpu, str, str, int]] = {}
        self.panic: BaseException | None = None
        #: tasks in a timed sleep (msleep): the machine is not quiet while one sleeps
        self.timed_sleeps = 0
        self.closers: list[Callable[[], None]] = []
        self.clock = Clock(self)

    @property
    def softlockups(self) -> int:
        """Soft lockups the watchdog has reported."""
        return self.clock.softlockups

    # ------------------------------------------------------------------ contract: time
    @property
    def now(self) -> int:
        return time.monotonic_ns() - self._t0

    @property
    def current_cpu(self) -> Cpu | None:
        return self.tls.cpu

    def boot(self) -> None:
        for c in self.k.cpus:
            c.engine_state = CpuState(self.lock)
            c.halted = True

    def add_task(self, t: Task) -> None:
        t.engine_state = TaskState(self.lock)
        if t.policy == "idle":
            return  # the idle task is the CPU thread itself
        self.tasks.append(t)
        if self.started and not self.halted:
            self._start_task_thread(t)

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            self.clock.push(t_ns, fn, args, False)

    # ------------------------------------------------------------------ raises
    def take_raises(self) -> None:
        """Hand the raises of the lock-free path to the core (lock held): :mod:`.raises`."""
        take_raises(self)

    def home(self, irq: int) -> None:
        """Open or refresh the lock-free raise path of ``irq`` (lock held)."""
        home(self, irq)

    def ensure_tick(self, c: Cpu) -> None:
        st: CpuState = c.engine_state
        if not st.tick_armed:
            st.tick_armed = True
            self.clock.push((self.now // self.period + 1) * self.period, self._tick, (c,), True)

    def _tick(self, c: Cpu) -> None:
        st: CpuState = c.engine_state
        if self.k.timers.next_event(c) is None:
            st.tick_armed = False  # NO_HZ: no timer armed, no tick
            return
        self.clock.push(self.now + self.period, self._tick, (c,), True)
        c.tick_due = True
        c.irr[LOCAL_TIMER_VECTOR] = None
        self.deliver(c)

    def program_event(self, c: Cpu, t_ns: int) -> None:
        """The clock event for ``c``'s hrtimers: a local timer interrupt at ``t_ns``."""
        self.clock.push(t_ns, self._hrtimer_evt, (c,), True)

    def _hrtimer_evt(self, c: Cpu) -> None:
        nxt = self.k.hrtimers.next_event(c)
        if nxt is None or nxt > self.now:
            return  # cancelled since, or a later head, whose own request is queued
        c.irr[LOCAL_TIMER_VECTOR] = None
        self.deliver(c)

    # ------------------------------------------------------------------ contract: CPUs
    def busy(self, c: Cpu, ns: int, cat: str | None = None) -> None:
        """``udelay``: spin, taking the CPU's pending interrupts meanwhile when this
        context holds the CPU (the CPU thread, or a task that is atomic) with IRQs on."""
        base = base_cpu(c)
        st: CpuState = base.engine_state
        if base.irr and c.irqs_on and st.owner is c:
            with self.lock:
                take_pending_irqs(self.k, c)
        end = perf_counter_ns() + ns
        while perf_counter_ns() < end:
            time.sleep(0)
            if (base.irr or self.inbox) and c.irqs_on and st.owner is c:
                with self.lock:
                    if self.inbox:
                        self.take_raises()
                    if base.irr:
                        take_pending_irqs(self.k, c)

    def irqs_enabled(self, c: Cpu) -> None:
        st: CpuState = base_cpu(c).engine_state
        if st.owner is c:
            take_pending_irqs(self.k, c)
        # else: the CPU thread takes them (it is rung when the token is free)

    def halt(self, c: Cpu) -> None:
        raise InternalError("the idle task does not run on the real engine")

    def deliver(self, c: Cpu) -> None:
        st: CpuState = c.engine_state
        if st.owner is None and st.sleeping:
            ring(st)
        # else: the holder takes it at its next boundary with IRQs on, or on release

    def kick(self, c: Cpu, t: Task) -> None:
        ts: TaskState = t.engine_state
        if ts.parked:
            ts.cv.notify()

    def schedule(self, c: Cpu) -> None:
        """The calling task thread gives way: if it is asleep, park it until woken (or
        its timed sleep ends); if it is runnable, let other threads have the interpreter."""
        task = c.current
        if task.state == RUNNING:
            lock = self.lock
            state = lock._release_save()
            time.sleep(0)
            lock._acquire_restore(state)
            return
        ts: TaskState = task.engine_state
        deadline, ts.deadline = ts.deadline, None
        self.park(task, deadline)

    def sleep_until(self, c: Cpu, t_ns: int) -> None:
        c.current.engine_state.deadline = t_ns
        self.k.sched.block(c)

    def call_driver(self, c: Cpu, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Call driver code with the kernel lock released, timed for the CPU-time
        accounting and the watchdog; then take the interrupts that arrived meanwhile if
        this context holds the CPU with IRQs on (the boundary after a driver call).
        Once the machine is halted no driver code starts: the thread unwinds instead."""
        if self.halted:
            raise Stopped
        pc = c.preempt_count
        on = c.irqs_on
        is_task = c.__class__ is TaskCpu
        base = c.base if is_task else c  # type: ignore[attr-defined]
        atomic = not is_task or bool(pc) or not on
        cat = c.category()
        busy: CpuState | None = None
        task_st: TaskState = c.current.engine_state
        if not atomic:
            busy = base.engine_state
            busy.busy_tasks += 1
            base.halted = False
            outer_busy, task_st.busy = task_st.busy, busy
        running = self.running
        ident = get_ident()
        t0 = perf_counter_ns()
        outer = running.get(ident)  # driver code -> local_bh_enable -> driver code
        slept0 = task_st.slept_ns
        running[ident] = (t0, base.nr, pc if atomic else -1, c, c.running or "?", cat, slept0)
        lock = self.lock
        state = lock._release_save()
        try:
            return fn(*args)
        finally:
            lock._acquire_restore(state)
            if outer is None:
                del running[ident]
            else:
                running[ident] = outer
            # the call's run time, less what it spent asleep in irqflow waits
            base.times[cat] += perf_counter_ns() - t0 - (task_st.slept_ns - slept0)
            if busy is not None:
                busy.busy_tasks -= 1
                task_st.busy = outer_busy
            if self.waiters:
                self.check_waiters()
            if self.inbox:
                self.take_raises()
            if base.irr and c.irqs_on and base.engine_state.owner is c:
                take_pending_irqs(self.k, c)

    def run_coroutine(self, c: Cpu, coro: Any, where: str) -> Any:
        """Run an ``async def`` body on this thread's own event loop: asyncio's
        awaitables work, and irqflow's blocking calls block the thread."""
        tls = self.tls
        loop = tls.loop
        if loop is None:
            loop = tls.loop = asyncio.new_event_loop()
        return loop.run_until_complete(coro)

    def cpu_times(self, c: Cpu) -> dict[str, int]:
        times = dict(c.times)
        now = perf_counter_ns()
        for since, cpu, _, ctx, _, cat, slept0 in list(self.running.values()):
            if cpu == c.nr:  # a call under way counts what it has run so far
                slept = ctx.current.engine_state.slept_ns - slept0
                times[cat] += max(0, now - since - slept)
        busy = sum(v for k, v in times.items() if k != IDLE)
        times[IDLE] = max(0, self.now - busy)
        return times

    def run(self, until: int | None = None) -> None:
        raise IrqflowError(
            "run()/run_for() advance virtual time and belong to the sim engine; a real "
            "machine runs by itself once started: use k.start() ... k.stop(), or "
            '`with Kernel(engine="real") as k:`'
        )

    # ------------------------------------------------------------------ waiting
    def add_waiter(self, pred: Callable[[], bool], wake: Callable[[], object]) -> None:
        self.waiters.append(Waiter(pred, wake))

    def check_can_wait(self, what: str) -> None:
        """A wait from outside the machine needs a running machine."""
        if not self.started or self.halted:
            state = "stopped" if self.halted else "not started"
            raise IrqflowError(
                f"{what} would wait for the machine, which is {state}; call it between "
                'k.start() and k.stop() (or inside `with Kernel(engine="real") as k:`)'
            )

    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """Block the calling thread (outside the machine) until ``pred()`` holds, with
        the kernel lock released meanwhile (Ctrl-C ends the wait cleanly)."""
        self.check_can_wait(what)
        gate = threading.Lock()
        gate.acquire()
        waiter = Waiter(pred, gate.release)
        self.waiters.append(waiter)
        try:
            while not pred():
                if self.halted:
                    raise IrqflowError(f"{what}: the machine stopped while waiting")
                wait_unlocked(self, gate, POLL_S)
        finally:
            self.cancel_waiter(waiter)

    def notify_when(
        self,
        pred: Callable[[], bool],
        callback: Callable[[], None],
        on_stop: Callable[[], None] | None = None,
    ) -> Waiter | None:
        """Call ``callback()`` (with the kernel lock held, from whichever thread notices)
        once ``pred()`` holds; at once if it holds now (then None is returned).  For
        bridges to other event loops: ``on_stop()`` is called instead if the machine
        stops first, and :meth:`cancel_waiter` withdraws the wait."""
        with self.lock:
            self.check_can_wait("waiting from another event loop")
            if pred():
                callback()
                return None
            waiter = Waiter(pred, callback, on_stop)
            self.waiters.append(waiter)
            return waiter

    def cancel_waiter(self, waiter: Waiter) -> None:
        with self.lock:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def fail_waiters(self) -> None:
        """The machine stops: waiters from other event loops learn it (lock held)."""
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if w.on_stop is not None:
                try:
                    w.on_stop()
                except Exception as exc:
                    self.k.log(None, "err", f"irqflow: a waiter's stop callback failed: {exc!r}")

    def check_waiters(self) -> None:
        waiters = self.waiters
        if not waiters:
            return
        ready = [w for w in waiters if w.pred()]
        if ready:
            self.waiters = [w for w in waiters if w not in ready]
            for w in ready:
                try:
                    w.wake()
                except Exception as exc:  # a bridge whose event loop is gone, say
                    self.k.log(None, "err", f"irqflow: a waiter's wake-up failed: {exc!r}")

    def park(self, task: Task, deadline: int | None) -> None:
        """Wait (lock released) until ``task`` is woken or ``deadline`` passes.  A task
        asleep inside its driver code stops counting as running meanwhile."""
        ts: TaskState = task.engine_state
        if self.waiters:
            self.check_waiters()  # what this task did before sleeping may end a wait
        busy = ts.busy
        if busy is not None:
            busy.busy_tasks -= 1
        ts.parked = True
        if deadline is not None:
            self.timed_sleeps += 1
        t_sleep = perf_counter_ns()
        try:
            while task.state != RUNNING:
                if self.halted:
                    raise Stopped
                if deadline is None:
                    ts.cv.wait(POLL_S)
                    self.check_waiters()
                else:
                    left = deadline - self.now
                    if left <= 0:
                        self.k.sched.wake_up_process(task)
                        break
                    ts.cv.wait(min(left / 1e9, POLL_S))
        finally:
            ts.parked = False
            ts.slept_ns += perf_counter_ns() - t_sleep
            if deadline is not None:
                self.timed_sleeps -= 1
            if busy is not None:
                busy.busy_tasks += 1
        view = ts.view
        if view is not None and view.base.nr != task.cpu:
            view.base = self.k.cpus[task.cpu]  # woken on another CPU (an IRQ thread)

    # ------------------------------------------------------------------ the token
    def take_token(self, view: TaskCpu) -> None:
        with self.lock:
            st: CpuState = view.base.engine_state
            while st.owner is not None and st.owner is not view:
                if self.halted:
                    raise Stopped
                st.token_waiters += 1
                st.token_cv.wait(POLL_S)
                st.token_waiters -= 1
            st.owner = view
            view.holding = True
            view.base.halted = False

    def give_token(self, view: TaskCpu) -> None:
        with self.lock:
            view.holding = False
            self.release(view.base)

    def release(self, c: Cpu) -> None:
        st: CpuState = c.engine_state
        st.owner = None
        if c.irr and st.sleeping:
            ring(st)
        if st.token_waiters:
            st.token_cv.notify()

    # ------------------------------------------------------------------ threads
    def _thread_main(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def main() -> None:
            set_os_thread_name(name)
            try:
                body()
            except Stopped:
                pass
            except BaseException as exc:  # a panic (panic_on_oops) or an engine bug
                self.panic = exc
                self.halted = True
                with self.lock:
                    self.notify_all()
            finally:
                loop, self.tls.loop = self.tls.loop, None
                if loop is not None:
                    loop.close()  # the thread's asyncio loop (async def bodies): its fds

        return main

    def spawn_thread(self, name: str, body: Callable[[], None]) -> threading.Thread:
        th = threading.Thread(target=self._thread_main(name, body), name=name, daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()]  # forget reaped workers
        self.threads.append(th)
        th.start()
        return th

    def _start_task_thread(self, t: Task) -> None:
        self.spawn_thread(t.comm, lambda: self._task_main(t))

    def _cpu_main(self, c: Cpu) -> None:
        """``swapper/N``: the CPU's interrupt context and idle loop."""
        self.tls.cpu = c
        st: CpuState = c.engine_state
        lock = self.lock
        inbox = self.inbox
        rounds = 0
        with lock:
            while True:
                if inbox:
                    self.take_raises()
                if not (c.irr and st.owner is None):
                    if self.halted:
                        return
                    self._idle(c, st)
                    rounds = 0
                    continue
                c.halted = False
                st.owner = c
                c.current = c.idle_task
                c.preempt_count = 0
                c.irqs_on = True
                try:
                    take_pending_irqs(self.k, c)
                finally:
                    self.release(c)
                rounds += 1
                if rounds == STORM_ROUNDS:  # an interrupt storm: let waiters in
                    rounds = 0
                    state = lock._release_save()
                    time.sleep(0)
                    lock._acquire_restore(state)

    def _idle(self, c: Cpu, st: CpuState) -> None:
        """The CPU thread has nothing to do: sleep (lock released) until rung or
        ``POLL_S`` passes.  Raises that came before they could see it asleep are taken
        first; those from then on ring it."""
        if st.owner is None and not st.busy_tasks:
            c.halted = True
        if self.waiters:
            self.check_waiters()  # what the last interrupt did may end a wait
        st.sleeping = True
        if self.inbox:
            # taken once, not in a loop: a storm of raises for other CPUs must not keep
            # this thread spinning with the lock
            self.take_raises()
            if c.irr and st.owner is None:
                st.sleeping = False
                return
        lock = self.lock
        state = lock._release_save()
        st.doorbell.acquire(timeout=POLL_S)
        lock._acquire_restore(state)
        st.sleeping = st.rung = False

    def _task_main(self, t: Task) -> None:
        c = self.k.cpus[t.cpu]
        ts: TaskState = t.engine_state
        view = ts.view = TaskCpu(c, self, t)
        self.tls.cpu = view
        with self.lock:
            try:
                self.park(t, None)  # until the scheduler first wakes it
                t.result = t.body()
                t.state = "X"
                view.base.rq.dequeue(t)
            finally:
                if view.holding:
                    view.holding = False
                    self.release(view.base)
                if t.state == "X" and t in self.tasks:
                    self.tasks.remove(t)  # a reaped kworker: nothing to wake any more

    def notify_all(self) -> None:
        self.clock.notify_all()
        for c in self.k.cpus:
            st: CpuState = c.engine_state
            st.rung = False
            ring(st)
            st.token_cv.notify_all()
        for t in self.tasks:
            t.engine_state.cv.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self.lock:
            if self.refuse is not None:
                raise IrqflowError(f"start(): {self.refuse}")
            if self.started:
                raise IrqflowError("start(): the machine is already running")
            self.started = True
            _STARTED.add(self)
            signals.machine_started(self)
            for c in self.k.cpus:
                self.spawn_thread(f"swapper/{c.nr}", functools.partial(self._cpu_main, c))
            for t in list(self.tasks):
                self._start_task_thread(t)
            self.clock.start()

    def forked(self, parent: int) -> None:
        """In the child of a fork(): the machine's threads stayed in the parent."""
        self.lock = threading.RLock()  # the parent's may be held by a thread not copied
        self.halted = self.stopping = self.stop_requested = True
        self.homes = {}
        self.refuse = (
            f"this machine runs in process {parent}; the child of a fork() has none of its "
            "threads: make a new Kernel in the child"
        )
        signals.machine_stopped(self)

    def sigint_now(self) -> None:
        """At the end of a public call: deliver a Ctrl-C deferred inside it, if this is
        the main thread and its kernel section is over (:mod:`.signals`)."""
        signals.deliver_here(self)

    def refused(self, what: str) -> None:
        """Raise the error for a public call the machine's state refuses."""
        raise IrqflowError(f"{what}(): {self.refuse}")

    def add_closer(self, fn: Callable[[], None]) -> None:
        """Register a device's close function: stop() calls it before draining."""
        self.closers.append(fn)

    def stop(self, drain: bool, timeout: float, again_ok: bool = False) -> StopReport | None:
        from irqflow.engine.real.lifecycle import stop

        return stop(self, drain, timeout, again_ok)

    def quiet(self, future_timers: bool = False) -> bool:
        """Nothing pending and nothing running (call with the kernel lock held)."""
        from irqflow.engine.real.lifecycle import quiet

        return quiet(self, future_timers)
