"""The real engine: the same kernel flows on OS threads, in wall-clock time.

Theory of operation
-------------------
**Threads.**  Each CPU is an OS thread (``swapper/N``) that runs that CPU's interrupt
context: it takes the lines in the CPU's request register, runs ``do_irq`` (top halves,
then softirqs and tasklets at ``irq_exit``) and sleeps when the register is empty.  Every
task (``ksoftirqd/N``, ``events/N`` or ``kworker/N:M``, ``irq/24-eth0``, ``kthread_run``
threads) is an OS thread of its own, named like the kernel thread, interpreting the task's
kernel flow.  The device side (``call_at`` callbacks, the tick, the watchdog) is one more
thread, ``irqflow-clock``.

**The kernel lock.**  One lock protects the core's state.  Kernel flows run holding it;
it is released around every piece of driver code (handlers, softirq actions, tasklets,
work functions) and while a thread waits, so no lock is held while a handler runs.
Public ``Kernel`` methods take it on entry (:class:`RealKernel`).

**The CPU token: one context on a CPU at a time.**  In the kernel a CPU runs one thing at
a time; an interrupt runs on top of whatever it interrupted.  Here several OS threads
belong to CPU N, so whoever runs *atomic* code for CPU N (interrupt context, or a task
with IRQs or bottom halves off) holds CPU N's token:

* the CPU thread takes it while it handles interrupts and gives it back when idle;
* a task takes it automatically when its context becomes atomic (``preempt_count`` non-zero
  or IRQs off: ``local_bh_disable``, ``ksoftirqd`` running softirqs, a forced-threaded
  handler) and gives it back when the context is plain task context again.

So softirqs of one CPU never run twice at once (``ksoftirqd/N`` is serialized with the
CPU's own softirqs), and a task's ``local_bh_disable`` really keeps that CPU's bottom
halves out.  Whoever holds the token takes the CPU's pending interrupts at its next effect
boundary with IRQs on: a burst of softirq work, on the CPU thread or in ``ksoftirqd``,
delays a new top half by one driver call at most.  Python cannot interrupt a running
call, so while a task holds the token with only BH disabled, the CPU's hard interrupts
wait too (on Linux they would run): keep such sections short.

Each thread has its own context: the CPU thread uses the CPU's ``Cpu`` object; a task uses
a :class:`TaskCpu` view, which shares the CPU's per-CPU data (softirq mask, tasklet lists,
request register) and keeps its own ``preempt_count``, IRQ flag and ``current``.  So
``k.in_task()`` in a work function is true while the CPU thread is in a hard IRQ.

**Time.**  ``now`` is ``time.monotonic_ns()`` since the machine was made.  ``udelay``
spins, giving the interpreter away at each turn.  The kernel's modeled path costs
(``irq_entry_ns`` ...) are not spent: the real paths take what they take.  Per-CPU times
are the measured run time of driver code, by context (calls under way included, their
sleeps in irqflow waits left out); idle is the rest.

**Scheduling** is the OS's: scheduling policies and priorities are recorded (and shown in
traces) but CPython has no thread priorities.  ``need_resched`` is never set.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import heapq
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from threading import get_ident
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from irqflow.core import cpu as cpumod
from irqflow.core.cpu import (
    IDLE,
    LOCAL_TIMER_VECTOR,
    RESCHEDULE_VECTOR,
    Cpu,
)
from irqflow.core.effects import (
    BLOCK,
    COND_RESCHED,
    FAILED,
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

if TYPE_CHECKING:
    from irqflow.core.kernel import KernelCore

Flow = Generator[Any, Any, Any]
TASK, IRQ_FRAME = 0, 1
#: how often waiting threads re-check their condition even without a notification
POLL_S = 0.05


class _Stopped(BaseException):
    """Raised inside engine threads to unwind them when the machine stops.  Not an
    ``Exception``: driver code that catches ``Exception`` must not swallow it."""


def spin(ns: int) -> None:
    """Busy-wait ``ns`` nanoseconds (``udelay`` on the real engine).

    The wait gives the interpreter away at each turn (``time.sleep(0)``): a CPU that
    busy-waits does not stop the other CPUs, and a Python thread that spun while holding
    the GIL would stop every other thread of the machine for up to the switch interval."""
    if ns <= 0:
        return
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        time.sleep(0)


class RealCpu(Cpu):
    """A CPU of the real engine: ``udelay`` spins instead of charging virtual time, and
    ``need_resched`` stays clear (the OS schedules the threads)."""

    __slots__ = ()

    def charge(self, ns: int) -> None:
        spin(ns)

    @property
    def need_resched(self) -> bool:
        return False

    @need_resched.setter
    def need_resched(self, value: bool) -> None:
        pass


_PC = Cpu.__dict__["preempt_count"]
_ON = Cpu.__dict__["irqs_on"]
#: fields a task's context keeps for itself; the rest are the CPU's, shared
_LOCAL = frozenset({"preempt_count", "irqs_on", "charges", "running", "current"})


def _context_field(slot: Any) -> property:
    """A context field of a task's view: its own slot, and each change may take or give
    back the CPU's token (``TaskCpu._sync``)."""

    def get(self: TaskCpu) -> Any:
        return slot.__get__(self)

    def set_(self: TaskCpu, value: Any) -> None:
        slot.__set__(self, value)
        self._sync()

    return property(get, set_)


class TaskCpu(Cpu):
    """A task thread's view of its CPU: its own context, the CPU's per-CPU data.

    Becoming atomic (``preempt_count`` non-zero or IRQs off) takes the CPU's token;
    returning to plain task context gives it back (see the module docstring)."""

    __slots__ = ("base", "eng", "holding")

    def __init__(self, base: Cpu, eng: RealEngine, task: Task) -> None:
        self.base = base
        self.eng = eng
        self.holding = False
        _PC.__set__(self, 0)
        _ON.__set__(self, True)
        self.charges = []
        self.running = None
        self.current = task

    def _sync(self) -> None:
        need = bool(_PC.__get__(self)) or not _ON.__get__(self)
        if need is not self.holding:
            if need:
                self.eng._take_token(self)
            else:
                self.eng._give_token(self)

    preempt_count = _context_field(_PC)
    irqs_on = _context_field(_ON)

    def charge(self, ns: int) -> None:
        spin(ns)

    def __repr__(self) -> str:
        return f"<TaskCpu {self.nr} of {self.current.comm} pc={self.preempt_count:#x}>"


def _forward(name: str) -> property:
    return property(
        lambda self: getattr(self.base, name),
        lambda self, value: setattr(self.base, name, value),
    )


for _name in Cpu.__slots__:
    if _name not in _LOCAL:
        setattr(TaskCpu, _name, _forward(_name))


class _Frame:
    __slots__ = ("gen", "kind", "saved_on", "value")

    def __init__(self, gen: Flow, kind: int, saved_on: bool = True) -> None:
        self.gen = gen
        self.kind = kind
        self.saved_on = saved_on
        self.value: Any = None


class _CpuState:
    """The real engine's per-CPU state."""

    def __init__(self, lock: threading.Lock) -> None:
        #: the context running atomic code for this CPU now (see the module docstring)
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


class _TaskState:
    __slots__ = ("busy", "cv", "parked", "slept_ns", "view")

    def __init__(self, lock: threading.Lock) -> None:
        self.cv = threading.Condition(lock)
        self.parked = False
        self.view: TaskCpu | None = None
        #: the CPU whose busy_tasks counts this task's driver call in progress
        self.busy: _CpuState | None = None
        #: time spent asleep inside driver calls (awaited effects, blocking calls)
        self.slept_ns = 0


class _Tls(threading.local):
    cpu: Cpu | None = None
    #: how deep this thread is in kernel-lock sections (0: it does not hold the lock)
    depth = 0
    loop: asyncio.AbstractEventLoop | None = None

    def __init__(self) -> None:
        #: idle CPUs to wake once this thread lets go of the kernel lock
        self.rings: list[_CpuState] = []


def _ring_now(st: _CpuState) -> None:
    try:
        st.doorbell.release()
    except RuntimeError:
        pass  # already released: the CPU thread wakes anyway


class _KernelLock:
    """The kernel lock as a context manager that a thread may enter again."""

    __slots__ = ("_eng", "_lock", "_tls")

    def __init__(self, eng: RealEngine) -> None:
        self._eng = eng
        self._lock = eng._kl
        self._tls = eng._tls

    def __enter__(self) -> None:
        tls = self._tls
        if not tls.depth:
            self._lock.acquire()
        tls.depth += 1

    def __exit__(self, *exc: object) -> None:
        tls = self._tls
        try:
            if tls.depth == 1 and self._eng._waiters:
                self._eng._check_waiters()  # what this section changed may end a wait
        finally:
            tls.depth -= 1
            if not tls.depth:
                self._lock.release()
                if tls.rings:
                    self._eng._flush_rings()


@dataclass(slots=True)
class _Waiter:
    pred: Callable[[], bool]
    wake: Callable[[], None]


@dataclass(frozen=True)
class StopReport:
    """What :meth:`Kernel.stop` did: whether everything pending ran, what was left."""

    drained: bool
    #: what was still pending when the threads were stopped, by kind (empty when drained)
    abandoned: dict[str, int] = field(default_factory=dict)
    #: threads that did not finish in time (running driver code that never returned)
    stuck_threads: tuple[str, ...] = ()
    #: stop(drain=True) was asked for (then ``drained`` False means it timed out)
    drain_requested: bool = True

    @property
    def clean(self) -> bool:
        return (
            not self.abandoned
            and not self.stuck_threads
            and (self.drained or not self.drain_requested)
        )

    def __str__(self) -> str:
        if self.clean:
            if self.drain_requested:
                return "stopped: everything pending ran, every thread joined"
            return "stopped without draining: nothing was pending, every thread joined"
        parts = []
        if self.drain_requested and not self.drained:
            parts.append("the drain timed out")
        if self.abandoned:
            parts.append(
                "abandoned " + ", ".join(f"{n} {what}" for what, n in self.abandoned.items())
            )
        if self.stuck_threads:
            parts.append("threads still running driver code: " + ", ".join(self.stuck_threads))
        return "stopped: " + "; ".join(parts)


@functools.cache
def _libc() -> Any:
    """The C library, found once (``find_library`` may run ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - best effort
        return None


def _set_os_thread_name(name: str) -> None:
    """Name the OS thread (``ps -T``, ``top -H``), as Python 3.14 does on its own."""
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is not None:
        try:
            libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        except AttributeError:  # pragma: no cover - best effort
            pass


class RealEngine:
    """Wall-clock time on OS threads.  See the module docstring."""

    blocking_tasks = True
    wall_clock = True

    def __init__(self, kernel: KernelCore) -> None:
        self.k = kernel
        self._kl = threading.Lock()
        self._tls = _Tls()
        self._waiters: list[_Waiter] = []
        self.lock = _KernelLock(self)
        self._t0 = time.monotonic_ns()
        self._period = kernel.config.tick_period_ns
        self.started = False
        #: stop() was called: kthread_should_stop() is true from here on
        self.stop_requested = False
        self.stopping = False
        self._halt = False
        self._threads: list[threading.Thread] = []
        self._tasks: list[Task] = []
        self._clock_cv = threading.Condition(self._kl)
        #: (time, seq, fn, args, internal): internal entries run under the kernel lock
        self._timers: list[tuple[int, int, Callable[..., Any], tuple[Any, ...], bool]] = []
        self._seq = 0
        #: driver calls in progress, by thread: (start, cpu, preempt_count or -1 in
        #: plain task context, the calling context, where, time category, the task's
        #: slept_ns at the start), for the watchdog and for CPU times of calls under way
        self._running: dict[int, tuple[int, int, int, Cpu, str, str, int]] = {}
        self._reported: set[tuple[int, str]] = set()
        self._panic: BaseException | None = None
        #: tasks in a timed sleep (msleep): the machine is not quiet while one sleeps
        self._timed_sleeps = 0
        self.softlockups = 0
        self._closers: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ engine protocol
    @property
    def now(self) -> int:
        return time.monotonic_ns() - self._t0

    @property
    def current_cpu(self) -> Cpu | None:
        return self._tls.cpu

    def add_task(self, t: Task) -> None:
        t.engine_state = _TaskState(self._kl)
        if t.policy == "idle":
            return  # the idle task is the CPU thread itself
        self._tasks.append(t)
        if self.started and not self.stopping:
            self._start_task_thread(t)

    def boot(self) -> None:
        for c in self.k.cpus:
            c.__class__ = RealCpu
            c.engine_state = _CpuState(self._kl)
            c.halted = True

    def deliver(self, c: Cpu) -> None:
        st: _CpuState = c.engine_state
        if st.owner is None:
            self._ring(st)
        # else: the holder takes it at its next boundary with IRQs on, or on release

    def kick(self, c: Cpu) -> None:
        for t in self._tasks:
            ts: _TaskState = t.engine_state
            if ts.parked and t.state == RUNNING:
                ts.cv.notify()

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            self._push_timer(t_ns, fn, args, False)

    def _push_timer(self, t: int, fn: Callable[..., Any], args: tuple[Any, ...], internal: bool):  # type: ignore[no-untyped-def]
        heapq.heappush(self._timers, (t, self._seq, fn, args, internal))
        self._seq += 1
        if self._timers[0][1] == self._seq - 1:
            self._clock_cv.notify()

    def ensure_tick(self, c: Cpu) -> None:
        st: _CpuState = c.engine_state
        if not st.tick_armed:
            st.tick_armed = True
            self._push_timer((self.now // self._period + 1) * self._period, self._tick, (c,), True)

    def _tick(self, c: Cpu) -> None:
        st: _CpuState = c.engine_state
        if not c.timers:
            st.tick_armed = False  # NO_HZ: no timer armed, no tick
            return
        self._push_timer(self.now + self._period, self._tick, (c,), True)
        c.irr[LOCAL_TIMER_VECTOR] = None
        self.deliver(c)

    def run_inline(self, c: Cpu, flow: Flow) -> None:
        """``local_bh_enable`` running softirqs in the caller's thread."""
        value: Any = None
        while True:
            try:
                eff = flow.send(value)
            except StopIteration:
                return
            value = None
            tp = type(eff)
            if tp is Run:
                value = self._call(c, eff)
            elif tp is Busy:
                if eff.irqs_on is not None:
                    c.irqs_on = eff.irqs_on
            elif eff is IRQS_ON:
                c.irqs_on = True
            elif eff is IRQS_OFF:
                c.irqs_on = False
            else:
                raise InternalError(f"{eff!r} cannot run inline")

    def cpu_times(self, c: Cpu) -> dict[str, int]:
        times = dict(c.times)
        now = perf_counter_ns()
        for since, cpu, _, ctx, _, cat, slept0 in list(self._running.values()):
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
    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """Block the calling thread until ``pred()`` holds (called with the lock held)."""
        if not self.started or self.stopping:
            state = "stopped" if self.stopping else "not started"
            raise IrqflowError(
                f"{what} would wait for the machine, which is {state}; call it between "
                'k.start() and k.stop() (or inside `with Kernel(engine="real") as k:`)'
            )
        ctx = self._tls.cpu
        if isinstance(ctx, TaskCpu):
            # a plain process-context function blocking in a kernel call: it sleeps until
            # the condition holds (other wake-ups, e.g. an IRQ thread's, send it back)
            task = ctx.current
            while not pred():
                waiter = _Waiter(pred, functools.partial(self._wake_task, task))
                self._waiters.append(waiter)
                self._task_sleeping(task, in_call=True)
                t_sleep = perf_counter_ns()
                try:
                    self._park(task, None)
                finally:
                    task.engine_state.slept_ns += perf_counter_ns() - t_sleep
                    self._task_busy_again(task)
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            return
        cv = threading.Condition(self._kl)
        waiter = _Waiter(pred, cv.notify)
        self._waiters.append(waiter)
        try:
            while not pred():
                if self.stopping or self._halt:
                    raise IrqflowError(f"{what}: the machine stopped while waiting")
                self._cv_wait(cv, POLL_S)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def notify_when(self, pred: Callable[[], bool], callback: Callable[[], None]) -> None:
        """Call ``callback()`` (with the kernel lock held, from whichever thread notices)
        once ``pred()`` holds; at once if it holds now.  For bridges to other event loops."""
        with self.lock:
            if pred():
                callback()
            else:
                self._waiters.append(_Waiter(pred, callback))

    def _check_waiters(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        ready = [w for w in waiters if w.pred()]
        if ready:
            self._waiters = [w for w in waiters if w not in ready]
            for w in ready:
                try:
                    w.wake()
                except Exception as exc:  # a bridge whose event loop is gone, say
                    self.k.log(None, "err", f"irqflow: a waiter's wake-up failed: {exc!r}")

    def _wake_task(self, task: Task) -> None:
        self.k._wake_up_process(task)

    def _task_sleeping(self, task: Task, in_call: bool = False) -> None:
        """``task`` goes to sleep; ``in_call``: from inside its driver code (a blocking
        kernel call or an awaited effect), which then no longer counts as running."""
        task.state = SLEEPING
        self.k.cpus[task.cpu].rq.dequeue(task)
        if in_call:
            busy = task.engine_state.busy
            if busy is not None:
                busy.busy_tasks -= 1
        if task.wq_worker is not None:
            self.k._wq_worker_sleeping(task)

    def _task_busy_again(self, task: Task) -> None:
        busy = task.engine_state.busy
        if busy is not None:
            busy.busy_tasks += 1  # the CPU its driver call started on, even if it moved

    def _task_awake(self, task: Task) -> None:
        """The end of a sleep begun with ``in_call``."""
        self.k._wake_up_process(task)
        self._task_busy_again(task)

    def _park(self, task: Task, deadline: int | None) -> None:
        """Wait (lock released) until ``task`` is woken or ``deadline`` passes."""
        ts: _TaskState = task.engine_state
        ts.parked = True
        if deadline is not None:
            self._timed_sleeps += 1
        try:
            while task.state != RUNNING:
                if self._halt:
                    raise _Stopped
                if deadline is None:
                    self._cv_wait(ts.cv, POLL_S)
                    self._check_waiters()
                else:
                    left = deadline - self.now
                    if left <= 0:
                        self.k._wake_up_process(task)
                        break
                    self._cv_wait(ts.cv, min(left / 1e9, POLL_S))
        finally:
            ts.parked = False
            if deadline is not None:
                self._timed_sleeps -= 1
        view = ts.view
        if view is not None and view.base.nr != task.cpu:
            view.base = self.k.cpus[task.cpu]  # woken on another CPU (an IRQ thread)

    # ------------------------------------------------------------------ the kernel lock
    def _ring(self, st: _CpuState) -> None:
        """Wake an idle CPU thread once this thread releases the kernel lock."""
        if st.sleeping and not st.rung:
            st.rung = True
            self._tls.rings.append(st)

    def _flush_rings(self) -> None:
        rings = self._tls.rings
        while rings:
            _ring_now(rings.pop())

    def _unlock(self) -> int:
        """Let go of the kernel lock (whatever the depth); returns the depth to restore."""
        tls = self._tls
        depth, tls.depth = tls.depth, 0
        self._kl.release()
        if tls.rings:
            self._flush_rings()
        return depth

    def _relock(self, depth: int) -> None:
        self._kl.acquire()
        self._tls.depth = depth

    def _cv_wait(self, cv: threading.Condition, timeout: float) -> None:
        if self._tls.rings:
            self._flush_rings()
        cv.wait(timeout)

    # ------------------------------------------------------------------ the token
    def _take_token(self, view: TaskCpu) -> None:
        with self.lock:
            st: _CpuState = view.base.engine_state
            while st.owner is not None and st.owner is not view:
                if self._halt:
                    raise _Stopped
                st.token_waiters += 1
                self._cv_wait(st.token_cv, POLL_S)
                st.token_waiters -= 1
            st.owner = view
            view.holding = True
            view.base.halted = False

    def _give_token(self, view: TaskCpu) -> None:
        with self.lock:
            view.holding = False
            self._release(view.base)

    def _release(self, c: Cpu) -> None:
        st: _CpuState = c.engine_state
        st.owner = None
        if c.irr:
            self._ring(st)
        if st.token_waiters:
            st.token_cv.notify()

    # ------------------------------------------------------------------ the interpreter
    def _execute(self, ctx: Cpu, stack: list[_Frame], task: Task | None) -> Any:
        """Interpret frames on ``ctx`` (a CPU, or a task's view of one) until the stack is
        empty (a CPU thread) or the task's body returns.  Called and returns with the
        kernel lock held."""
        is_cpu = task is None
        base = ctx
        while True:
            if not is_cpu:
                base = ctx.base  # type: ignore[attr-defined]  # an IRQ thread may move
            if ctx.irqs_on and base.irr and (is_cpu or ctx.holding):  # type: ignore[attr-defined]
                self._take_irq(ctx, base, stack)
                continue
            if not stack:
                return None
            f = stack[-1]
            try:
                eff = f.gen.send(f.value)
            except StopIteration as stop:
                stack.pop()
                if f.kind == IRQ_FRAME:
                    ctx.irqs_on = f.saved_on  # iret
                    continue
                return stop.value
            f.value = None
            if self._waiters:
                self._check_waiters()
            tp = type(eff)
            if tp is Run:
                f.value = self._call(ctx, eff)
            elif tp is Busy:
                if eff.irqs_on is not None:
                    ctx.irqs_on = eff.irqs_on
            elif eff is IRQS_ON:
                ctx.irqs_on = True
            elif eff is IRQS_OFF:
                ctx.irqs_on = False
            elif eff is COND_RESCHED:
                self._cond_resched()
            elif eff is BLOCK or tp is Sleep or tp is WaitUntil:
                if task is None or len(stack) != 1:
                    raise InternalError(f"{eff!r} yielded from interrupt context")
                if tp is WaitUntil:
                    if eff.pred():
                        continue
                    self._waiters.append(
                        _Waiter(eff.pred, functools.partial(self._wake_task, task))
                    )
                self._task_sleeping(task)
                self._park(task, self.now + eff.ns if tp is Sleep else None)
            elif eff is IDLE_EFFECT:
                raise InternalError("the idle task does not run on the real engine")
            else:
                raise InternalError(f"a kernel flow yielded {eff!r}, which is not an effect")

    def _take_irq(self, ctx: Cpu, base: Cpu, stack: list[_Frame]) -> None:
        irr = base.irr
        vector = next(iter(irr))
        t_presented = irr.pop(vector)
        k = self.k
        if vector >= 0:
            gen = do_irq(k, ctx, vector, t_presented)
        elif vector == LOCAL_TIMER_VECTOR:
            gen = do_local_timer(k, ctx)
        else:
            gen = do_reschedule_ipi(k, ctx, "RES" if vector == RESCHEDULE_VECTOR else "IWI")
        stack.append(_Frame(gen, IRQ_FRAME, ctx.irqs_on))
        ctx.irqs_on = False  # the interrupt gate clears IF

    def _cond_resched(self) -> None:
        depth = self._unlock()
        time.sleep(0)  # let other threads have the interpreter
        self._relock(depth)

    def _call(self, ctx: Cpu, run: Run) -> Any:
        """Call driver code with the kernel lock released; a fault becomes an oops.

        The hot path of the real engine: no allocation but one tuple for the watchdog."""
        prev = ctx.running
        ctx.running = run
        pc = ctx.preempt_count
        on = ctx.irqs_on
        if ctx.__class__ is TaskCpu:
            base: Cpu = ctx.base
            atomic = bool(pc) or not on
        else:
            base = ctx
            atomic = True
        cat = ctx.category()
        busy: _CpuState | None = None
        if not atomic:
            busy = base.engine_state
            busy.busy_tasks += 1
            base.halted = False
            ts: _TaskState = ctx.current.engine_state
            outer_busy, ts.busy = ts.busy, busy
        running = self._running
        ident = get_ident()
        t0 = perf_counter_ns()
        outer = running.get(ident)  # driver code -> local_bh_enable -> driver code
        task_st: _TaskState = ctx.current.engine_state
        slept0 = task_st.slept_ns
        running[ident] = (t0, base.nr, pc if atomic else -1, ctx, run.where, cat, slept0)
        depth = self._unlock()
        exc: Exception | None = None
        try:
            res = run.fn(*run.args)
        except Exception as e:
            exc = e
        finally:
            self._relock(depth)
            if outer is None:
                del running[ident]
            else:
                running[ident] = outer
            # the call's run time, less what it spent asleep in irqflow waits (counted
            # even when the machine stops it)
            base.times[cat] += perf_counter_ns() - t0 - (task_st.slept_ns - slept0)
            if busy is not None:
                busy.busy_tasks -= 1
                ts.busy = outer_busy
        ctx.running = prev
        if self._waiters:
            self._check_waiters()
        if exc is not None:
            ctx.preempt_count = pc
            ctx.irqs_on = on
            self.k._oops(ctx, run, exc)  # with panic_on_oops this raises
            return FAILED
        return res

    # ------------------------------------------------------------------ coroutines
    def run_coroutine(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Run an ``async def`` process-context function on this thread's own event loop;
        irqflow's awaitables (``k.msleep``, completions ...) sleep the task for real."""
        tls = self._tls
        loop = tls.loop
        if loop is None:
            loop = tls.loop = asyncio.new_event_loop()
        return loop.run_until_complete(_Drive(self, fn(*args)))

    run_coroutine.irqflow_coroutine = True  # type: ignore[attr-defined]

    async def _await_effect(self, eff: Any) -> None:
        ctx = self._tls.cpu
        if ctx is None:
            raise InternalError("an irqflow effect was awaited outside a task thread")
        task = ctx.current
        loop = asyncio.get_running_loop()
        if eff is COND_RESCHED:
            if self._halt:
                raise _Stopped
            await asyncio.sleep(0)
            return
        if type(eff) is Sleep:
            with self.lock:
                self._task_sleeping(task, in_call=True)
                self._timed_sleeps += 1
            t_sleep = perf_counter_ns()
            try:
                deadline = time.monotonic() + eff.ns / 1e9
                while (left := deadline - time.monotonic()) > 0:
                    if self._halt:
                        raise _Stopped
                    await asyncio.sleep(min(left, POLL_S))
            finally:
                with self.lock:
                    task.engine_state.slept_ns += perf_counter_ns() - t_sleep
                    self._timed_sleeps -= 1
                    self._task_awake(task)
            return
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(_resolve, fut)

        with self.lock:
            if eff.pred():
                return
            self._waiters.append(_Waiter(eff.pred, wake))
            self._task_sleeping(task, in_call=True)
        t_sleep = perf_counter_ns()
        try:
            while not fut.done():
                if self._halt:
                    raise _Stopped
                await asyncio.wait({fut}, timeout=POLL_S)
        finally:
            with self.lock:
                task.engine_state.slept_ns += perf_counter_ns() - t_sleep
                self._task_awake(task)

    # ------------------------------------------------------------------ threads
    def _thread_main(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        def main() -> None:
            _set_os_thread_name(name)
            try:
                body()
            except _Stopped:
                pass
            except BaseException as exc:  # a panic (panic_on_oops) or an engine bug
                self._panic = exc
                self._halt = True
                with self.lock:
                    self._notify_all()

        return main

    def _spawn_thread(self, name: str, body: Callable[[], None]) -> threading.Thread:
        th = threading.Thread(target=self._thread_main(name, body), name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]  # forget reaped workers
        self._threads.append(th)
        th.start()
        return th

    def _start_task_thread(self, t: Task) -> None:
        self._spawn_thread(t.comm, lambda: self._task_main(t))

    def _cpu_main(self, c: Cpu) -> None:
        tls = self._tls
        tls.cpu = c
        st: _CpuState = c.engine_state
        with self.lock:
            while True:
                while not (c.irr and st.owner is None):
                    if self._halt:
                        return
                    if st.owner is None and not st.busy_tasks:
                        c.halted = True
                    if self._waiters:
                        self._check_waiters()  # what the last interrupt did may end a wait
                    st.sleeping = True
                    depth = self._unlock()
                    st.doorbell.acquire(timeout=POLL_S)
                    self._relock(depth)
                    st.sleeping = st.rung = False
                c.halted = False
                st.owner = c
                c.current = c.idle_task
                c.preempt_count = 0
                c.irqs_on = True
                try:
                    self._execute(c, [], None)
                finally:
                    self._release(c)

    def _task_main(self, t: Task) -> None:
        c = self.k.cpus[t.cpu]
        ts: _TaskState = t.engine_state
        view = ts.view = TaskCpu(c, self, t)
        self._tls.cpu = view
        with self.lock:
            try:
                self._park(t, None)
                value = self._execute(view, [_Frame(t.body(), TASK)], t)
                t.result = value
                t.state = "X"
                view.base.rq.dequeue(t)
            finally:
                if view.holding:
                    view.holding = False
                    self._release(view.base)
                if t.state == "X" and t in self._tasks:
                    self._tasks.remove(t)  # a reaped kworker: nothing to wake any more

    def _clock_main(self) -> None:
        with self.lock:
            next_check = self.now
            while not self._halt:
                now = self.now
                if now >= next_check:
                    next_check = now + int(POLL_S * 1e9) // 5
                    self._check_waiters()
                    self._watchdog()
                timers = self._timers
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
                self._cv_wait(self._clock_cv, max(wait, 0) / 1e9)

    def _outside_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """A device callback (``call_at``): outside the machine, without the lock."""
        depth = self._unlock()
        try:
            fn(*args)
        except Exception as exc:
            with self.lock:
                self.k.log(None, "err", f"call_at callback {fn!r} raised {exc!r}")
        finally:
            self._relock(depth)

    def _watchdog(self) -> None:
        """Report driver code that has run in atomic context for too long (once each), and
        mark work items that hold a cmwq worker too long CPU_INTENSIVE (6.5+): here by wall
        time, so that a work function blocked in plain I/O stops holding its pool back."""
        limit = self.k.config.softlockup_thresh_ns
        now = perf_counter_ns()
        cm = self.k._cmwq
        thresh = self.k.config.wq_cpu_intensive_thresh_ns
        if cm is not None and thresh:
            for since, _, pc, ctx, _, _, _ in list(self._running.values()):
                w = ctx.current.wq_worker
                if w is not None and pc < 0 and now - since >= thresh:
                    cm.mark_intensive(w)
        for since, cpu, pc, ctx, where, _, _ in list(self._running.values()):
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
            self.k.log(
                self.k.cpus[cpu],
                "emerg",
                f"watchdog: BUG: soft lockup - CPU#{cpu} stuck for {(now - since) / 1e9:.1f}s! "
                f"[{task.comm}:{task.pid}] in {context} {where}",
            )

    def _notify_all(self) -> None:
        self._clock_cv.notify_all()
        for c in self.k.cpus:
            st: _CpuState = c.engine_state
            _ring_now(st)
            st.token_cv.notify_all()
        for t in self._tasks:
            t.engine_state.cv.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.started:
            raise IrqflowError("start(): the machine is already running")
        self.started = True
        for c in self.k.cpus:
            self._spawn_thread(f"swapper/{c.nr}", functools.partial(self._cpu_main, c))
        for t in list(self._tasks):
            self._start_task_thread(t)
        self._spawn_thread("irqflow-clock", self._clock_main)

    def add_closer(self, fn: Callable[[], None]) -> None:
        """Register a device's close function: stop() calls it before draining."""
        self._closers.append(fn)

    def quiet(self, future_timers: bool = False) -> bool:
        """Nothing pending and nothing running (with the lock held).  Armed timers that
        are not due yet count only with ``future_timers``."""
        jiffies = (1 << 62) if future_timers else self.now // self._period
        for c in self.k.cpus:
            st: _CpuState = c.engine_state
            if c.irr or c.softirq_pending or st.owner is not None or st.busy_tasks:
                return False
            if any(t[0] <= jiffies for t in c.timers if t[2].pending):
                return False
        if self._timed_sleeps:
            return False
        return not any(t.state == RUNNING for t in self._tasks)

    def pending_summary(self) -> dict[str, int]:
        """What is still queued (with the lock held), for the stop report."""
        k = self.k
        out: dict[str, int] = {}

        def add(what: str, n: int) -> None:
            if n:
                out[what] = out.get(what, 0) + n

        for c in k.cpus:
            add("interrupts", sum(1 for v in c.irr if v >= 0))
            add("softirqs", bin(c.softirq_pending).count("1"))
            add("tasklets", len(c.tasklet_vec) + len(c.tasklet_hi_vec))
            add("timers", sum(1 for t in c.timers if t[2].pending))
            add("bh work items", len(c.bh_work[0]) + len(c.bh_work[1]))
        add("work items", k._pending_work_count())
        add("runnable tasks", sum(1 for t in self._tasks if t.state == RUNNING))
        add("driver calls in progress", sum(c.engine_state.busy_tasks for c in k.cpus))
        add("timed sleeps", self._timed_sleeps)
        return out

    def stop(self, drain: bool, timeout: float) -> StopReport:
        if not self.started:
            raise IrqflowError("stop(): the machine was not started (call k.start() first)")
        if self.stopping:
            raise IrqflowError("stop(): the machine is already stopped")
        self.stop_requested = True
        for close in reversed(self._closers):  # the last source made is closed first
            try:
                close()
            except Exception as exc:
                with self.lock:
                    self.k.log(None, "err", f"irqflow: closing a source failed: {exc!r}")
        deadline = time.monotonic() + timeout
        drained = True
        with self.lock:
            if drain:
                cv = threading.Condition(self._kl)
                while not self.quiet() and self._panic is None:
                    if time.monotonic() >= deadline:
                        drained = False
                        break
                    self._cv_wait(cv, 0.002)
            abandoned = {} if drained and drain else self.pending_summary()
            if drain and not drained:
                self.k.log(None, "warn", f"irqflow: the drain timed out after {timeout} s")
            self.stopping = True
            self._halt = True
            self._notify_all()
        me = threading.current_thread()  # stop() from driver code: do not join oneself
        for th in self._threads:
            if th is not me:
                th.join(max(0.0, deadline - time.monotonic()) + 0.5)
        stuck = tuple(th.name for th in self._threads if th.is_alive() and th is not me)
        report = StopReport(
            drained=drain and drained,
            abandoned=abandoned,
            stuck_threads=stuck,
            drain_requested=drain,
        )
        with self.lock:
            self.k.log(None, "info" if report.clean else "warn", f"irqflow: {report}")
        if self._panic is not None:
            raise self._panic
        return report


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Drive:
    """Run a process-context coroutine on an asyncio loop, turning irqflow's effects
    (``await k.msleep``, completions, ``await k.flush_work``) into real waits, and passing
    everything else (``await asyncio.sleep``, futures) to the loop."""

    __slots__ = ("_coro", "_eng")

    def __init__(self, eng: RealEngine, coro: Any) -> None:
        self._eng = eng
        self._coro = coro

    def __await__(self) -> Generator[Any, Any, Any]:
        it = self._coro.__await__()
        value: Any = None
        exc: BaseException | None = None
        while True:
            try:
                y = it.send(value) if exc is None else it.throw(exc)
            except StopIteration as stop:
                return stop.value
            value = exc = None
            try:
                if type(y) in (Sleep, WaitUntil) or y is COND_RESCHED:
                    yield from self._eng._await_effect(y).__await__()
                    value = None
                else:
                    value = yield y
            except GeneratorExit:
                it.close()
                raise
            except BaseException as e:
                exc = e
