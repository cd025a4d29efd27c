"""``RealEngine``: the engine contract on OS threads, in wall-clock time.

See the package docstring (:mod:`irqflow.engine.real`) for the theory of operation.
This module holds the contract's members, the CPU and task threads, parking and the
per-CPU token; the clock thread is in :mod:`.clock`, stopping in :mod:`.lifecycle`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import get_ident
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from irqflow.core.cpu import IDLE, LOCAL_TIMER_VECTOR, Cpu
from irqflow.core.entry import take_pending_irqs
from irqflow.core.errors import InternalError, IrqflowError
from irqflow.core.sched import RUNNING, Task
from irqflow.engine.real.clock import Clock
from irqflow.engine.real.context import TaskCpu, Tls, base_cpu, set_os_thread_name
from irqflow.engine.real.lock import KernelLock, ring_now
from irqflow.engine.real.report import StopReport

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

#: how often waiting threads re-check their condition even without a notification
POLL_S = 0.05


class Stopped(BaseException):
    """Raised inside engine threads to unwind them when the machine stops.  Not an
    ``Exception``: driver code that catches ``Exception`` must not swallow it."""


class CpuState:
    """The real engine's per-CPU state."""

    def __init__(self, lock: threading.Lock) -> None:
        #: the context running atomic code for this CPU now (see the package docstring)
        self.owner: Cpu | None = None
        #: the idle CPU thread blocks on this locked lock; a delivery releases it once,
        #: after the kernel lock is free, so the woken thread does not block again on it
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

    def __init__(self, lock: threading.Lock) -> None:
        self.cv = threading.Condition(lock)
        self.parked = False
        self.view: TaskCpu | None = None
        #: the CPU whose busy_tasks counts this task's driver call in progress
        self.busy: CpuState | None = None
        #: time spent asleep inside driver calls (blocking calls)
        self.slept_ns = 0
        #: the end of a timed sleep (``sleep_until``), for the next park
        self.deadline: int | None = None


@dataclass(slots=True)
class Waiter:
    pred: Callable[[], bool]
    wake: Callable[[], object]


class RealEngine:
    """Wall-clock time on OS threads.  See the package docstring."""

    wall_clock = True
    models_path_costs = False
    runs_scheduler = False
    #: driver code is called through :meth:`call_driver` (it releases the kernel lock)
    direct_calls = False

    def __init__(self, kernel: KernelCore) -> None:
        self.k = kernel
        self._kl = threading.Lock()
        self.tls = Tls()
        self.waiters: list[Waiter] = []
        self.lock = KernelLock(self, self._kl, self.tls)
        self._t0 = time.monotonic_ns()
        self.period = kernel.config.tick_period_ns
        self.started = False
        #: stop() was called: kthread_should_stop() is true from here on
        self.stop_requested = False
        self.stopping = False
        self.halted = False
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
            c.engine_state = CpuState(self._kl)
            c.halted = True

    def add_task(self, t: Task) -> None:
        t.engine_state = TaskState(self._kl)
        if t.policy == "idle":
            return  # the idle task is the CPU thread itself
        self.tasks.append(t)
        if self.started and not self.stopping:
            self._start_task_thread(t)

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            self.clock.push(t_ns, fn, args, False)

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
            if base.irr and c.irqs_on and st.owner is c:
                with self.lock:
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
        if st.owner is None:
            self._ring(st)
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
            depth = self.lock.unlock()
            time.sleep(0)
            self.lock.relock(depth)
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
        this context holds the CPU with IRQs on (the boundary after a driver call)."""
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
        depth = self.lock.unlock()
        try:
            return fn(*args)
        finally:
            self.lock.relock(depth)
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

    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """Block the calling thread (outside the machine) until ``pred()`` holds."""
        if not self.started or self.stopping:
            state = "stopped" if self.stopping else "not started"
            raise IrqflowError(
                f"{what} would wait for the machine, which is {state}; call it between "
                'k.start() and k.stop() (or inside `with Kernel(engine="real") as k:`)'
            )
        cv = threading.Condition(self._kl)
        waiter = Waiter(pred, cv.notify)
        self.waiters.append(waiter)
        try:
            while not pred():
                if self.stopping or self.halted:
                    raise IrqflowError(f"{what}: the machine stopped while waiting")
                self.lock.wait(cv, POLL_S)
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def notify_when(self, pred: Callable[[], bool], callback: Callable[[], None]) -> None:
        """Call ``callback()`` (with the kernel lock held, from whichever thread notices)
        once ``pred()`` holds; at once if it holds now.  For bridges to other event loops."""
        with self.lock:
            if pred():
                callback()
            else:
                self.waiters.append(Waiter(pred, callback))

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
                    self.lock.wait(ts.cv, POLL_S)
                    self.check_waiters()
                else:
                    left = deadline - self.now
                    if left <= 0:
                        self.k.sched.wake_up_process(task)
                        break
                    self.lock.wait(ts.cv, min(left / 1e9, POLL_S))
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
    def _ring(self, st: CpuState) -> None:
        """Wake an idle CPU thread once this thread releases the kernel lock."""
        if st.sleeping and not st.rung:
            st.rung = True
            self.tls.rings.append(st)

    def take_token(self, view: TaskCpu) -> None:
        with self.lock:
            st: CpuState = view.base.engine_state
            while st.owner is not None and st.owner is not view:
                if self.halted:
                    raise Stopped
                st.token_waiters += 1
                self.lock.wait(st.token_cv, POLL_S)
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
        if c.irr:
            self._ring(st)
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
        with self.lock:
            while True:
                while not (c.irr and st.owner is None):
                    if self.halted:
                        return
                    if st.owner is None and not st.busy_tasks:
                        c.halted = True
                    if self.waiters:
                        self.check_waiters()  # what the last interrupt did may end a wait
                    st.sleeping = True
                    depth = self.lock.unlock()
                    st.doorbell.acquire(timeout=POLL_S)
                    self.lock.relock(depth)
                    st.sleeping = st.rung = False
                c.halted = False
                st.owner = c
                c.current = c.idle_task
                c.preempt_count = 0
                c.irqs_on = True
                try:
                    take_pending_irqs(self.k, c)
                finally:
                    self.release(c)

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
            ring_now(st)
            st.token_cv.notify_all()
        for t in self.tasks:
            t.engine_state.cv.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.started:
            raise IrqflowError("start(): the machine is already running")
        self.started = True
        for c in self.k.cpus:
            self.spawn_thread(f"swapper/{c.nr}", functools.partial(self._cpu_main, c))
        for t in list(self.tasks):
            self._start_task_thread(t)
        self.clock.start()

    def add_closer(self, fn: Callable[[], None]) -> None:
        """Register a device's close function: stop() calls it before draining."""
        self.closers.append(fn)

    def stop(self, drain: bool, timeout: float) -> StopReport:
        from irqflow.engine.real.lifecycle import stop

        return stop(self, drain, timeout)

    def quiet(self, future_timers: bool = False) -> bool:
        """Nothing pending and nothing running (call with the kernel lock held)."""
        from irqflow.engine.real.lifecycle import quiet

        return quiet(self, future_timers)
