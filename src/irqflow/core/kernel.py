"""``KernelCore``: wires the subsystems and carries the public, kernel-named API.

The engine (virtual time or OS threads) is handed in by :class:`irqflow.Kernel`; this
module never imports one.  Calls that act on "this CPU" (``raise_softirq``, ``udelay``,
``local_bh_disable`` ...) need a current CPU: they are made from driver code running on
the machine.  Calls that wait (``synchronize_irq``, ``tasklet_kill`` ...) are made from
outside the machine: the sim engine advances virtual time until they are done.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from mypy_extensions import mypyc_attr

from irqflow.core import cpu as cpumod
from irqflow.core import sleep
from irqflow.core.base import LOG_BUF_RECORDS, OOPS_BUF_RECORDS
from irqflow.core.config import KernelConfig, PathCosts
from irqflow.core.constants import (
    HI_SOFTIRQ,
    HRTIMER_SOFTIRQ,
    NR_SOFTIRQS,
    SOFTIRQ_NAMES,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
    SoftIrq,
)
from irqflow.core.context import ContextApi
from irqflow.core.cpu import Cpu
from irqflow.core.engine import Engine
from irqflow.core.errors import IrqflowError, claim, refuse_async
from irqflow.core.hrtimer import Hrtimers, run_hrtimer_softirq
from irqflow.core.irq.flow import IrqHandler
from irqflow.core.irq.manage import Genirq
from irqflow.core.kthread import DONE, Ready
from irqflow.core.napi import (
    NAPI_STATE_SCHED,
    Napi,
    napi_complete_done,
    napi_schedule_on,
    napi_schedule_prep,
)
from irqflow.core.observe import LatencySink, NullLatency, NullTrace, TraceSink
from irqflow.core.rq import RunQueue
from irqflow.core.sched import Scheduler, Task
from irqflow.core.softirq import Softirqs, ksoftirqd_body, ktimers_body, raise_softirq_irqoff
from irqflow.core.sync import Completion, Mutex, WaitQueueHead
from irqflow.core.sync import wait_event as _wait_event
from irqflow.core.tasklet import (
    TASKLET_STATE_RUN,
    TASKLET_STATE_SCHED,
    Tasklet,
    tasklet_action,
    tasklet_hi_action,
    tasklet_schedule_on,
)
from irqflow.core.timer import Timer, Timers, run_timer_softirq
from irqflow.core.workqueue import DelayedWork, Work, Workqueue, Workqueues


# compiled with mypyc, the class stays open to Python subclasses: irqflow.Kernel extends it
@mypyc_attr(allow_interpreted_subclasses=True)
class KernelCore(ContextApi):
    """The machine's kernel.  Use :class:`irqflow.Kernel`, which adds the engine."""

    engine: Engine

    def __init__(
        self,
        cpus: int,
        config: KernelConfig | None,
        seed: int,
        engine_factory: Callable[[KernelCore], Engine],
    ) -> None:
        if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 1024:
            raise IrqflowError(f"Kernel(cpus={cpus!r}): the number of CPUs must be 1..1024")
        if config is not None and not isinstance(config, KernelConfig):
            raise TypeError(f"Kernel(config={config!r}): pass a KernelConfig or None")
        self.config = config or KernelConfig()
        self.seed = seed
        self.tracing = False
        self.trace, self.lat = self._make_observers()
        self.cpus: list[Cpu] = [Cpu(n) for n in range(cpus)]
        self._log = deque(maxlen=LOG_BUF_RECORDS)
        self._oopses = deque(maxlen=OOPS_BUF_RECORDS)
        self._log_seq = self._oops_seq = 0
        self._oops_callbacks = ()
        for c in self.cpus:
            c.rq = RunQueue(self.config)
            idle = Task(0, f"swapper/{c.nr}", c.nr, self._idle_body, policy="idle")
            c.idle_task = idle
            c.current = idle
            # init_idle_preempt_count(): the idle loop runs with preemption off on kernels
            # with CONFIG_PREEMPT_COUNT, so an interrupt on an idle CPU traces as d.h1.
            c.preempt_count = idle.saved_pc = 1 if self.config.preempt_count else 0
        self.engine = engine_factory(self)
        self._direct_calls = getattr(self.engine, "direct_calls", False)
        self.costs = PathCosts(self.config, self.engine.models_path_costs)
        # the subsystems, each owning its state
        self.sched = Scheduler(self)
        self.softirqs = Softirqs(self)
        self.softirqs.open_kernel(HI_SOFTIRQ, tasklet_hi_action)
        self.softirqs.open_kernel(TASKLET_SOFTIRQ, tasklet_action)
        self.softirqs.open_kernel(TIMER_SOFTIRQ, run_timer_softirq)
        self.softirqs.open_kernel(HRTIMER_SOFTIRQ, run_hrtimer_softirq)
        self.timers = Timers(self)
        self.hrtimers = Hrtimers(self)
        self.genirq = Genirq(self)
        self.wq = Workqueues(self)
        for c in self.cpus:
            self.engine.add_task(c.idle_task)
        for c in self.cpus:
            c.ksoftirqd = self.sched.spawn(f"ksoftirqd/{c.nr}", c.nr, self._ksoftirqd, start=False)
            c.ksoftirqd.is_ksoftirqd = True
        if self.config.threadirqs:
            # forced threading: the timer softirqs run in ktimers/N (SCHED_FIFO 1)
            for c in self.cpus:
                c.ktimers = self.sched.spawn(
                    f"ktimers/{c.nr}", c.nr, self._ktimers, policy="fifo", prio=1, start=False
                )
                c.ktimers.is_ksoftirqd = True  # its softirq time is its own run time
        self.wq.boot()
        self.engine.boot()

    @property
    def tasks(self) -> list[Task]:
        """Every task the machine has made (kernel threads, workers, IRQ threads)."""
        return self.sched.tasks

    def _make_observers(self) -> tuple[TraceSink, LatencySink]:
        """The trace and latency sinks (a bare core records nothing; ``irqflow.Kernel``
        installs the tracer and the latency histograms)."""
        return NullTrace(), NullLatency()

    def _ksoftirqd(self) -> None:
        ksoftirqd_body(self)

    def _ktimers(self) -> None:
        ktimers_body(self)

    def _idle_body(self) -> None:
        """The idle task (``do_idle``): halt until there is something to do, then let the
        scheduler pick it."""
        c = self._this_cpu("idle")
        halt = self.engine.halt
        while True:
            if c.need_resched or len(c.rq):
                self.engine.schedule(c)
            else:
                halt(c)

    # ------------------------------------------------------------------ time
    def msecs_to_jiffies(self, ms: int) -> int:
        return self.config.msecs_to_jiffies(ms)

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` at time ``t_ns`` in the outside world (on no CPU): the place
        for devices to raise interrupts."""
        if t_ns.__class__ is not int or t_ns < self.engine.now or not callable(fn):
            t_ns = self._call_at_time(t_ns, fn)
        self.engine.call_at(t_ns, fn, *args)

    def _call_at_time(self, t_ns: Any, fn: Any) -> int:
        """``call_at``'s checks, off the hot path: the time as an int of ns."""
        if not callable(fn):
            raise TypeError(f"call_at({t_ns!r}, {fn!r}): fn must be callable")
        if (
            not isinstance(t_ns, int | float)
            or isinstance(t_ns, bool)
            or math.isnan(t_ns)
            or math.isinf(t_ns)
        ):
            raise IrqflowError(
                f"call_at({t_ns!r}, {getattr(fn, '__name__', fn)}): the time must be a finite "
                "number of ns (k.now() + delay)"
            )
        now = self.engine.now
        if t_ns < now:
            if not self.engine.wall_clock:
                raise IrqflowError(
                    f"call_at({t_ns}): that is in the past (now is {now} ns); "
                    "pass a time >= k.now()"
                )
            t_ns = now  # wall time moved on while the caller computed t_ns
        return int(t_ns)

    # ------------------------------------------------------------------ softirqs
    def open_softirq(self, nr: int | SoftIrq, action: Callable[[], Any]) -> None:
        """Install ``action()`` as the handler of vector ``nr``.  On TIMER_SOFTIRQ, which
        irqflow uses for its own timers, the driver's action runs after the timers."""
        nr = self._vec(nr, "open_softirq")
        if nr in (HI_SOFTIRQ, TASKLET_SOFTIRQ):
            raise IrqflowError(
                f"open_softirq({SOFTIRQ_NAMES[nr]}_SOFTIRQ): that vector runs the tasklets; "
                "use Tasklet with k.tasklet_schedule / k.tasklet_hi_schedule instead"
            )
        if not callable(action):
            raise TypeError(f"open_softirq({SOFTIRQ_NAMES[nr]}): action {action!r} is not callable")
        refuse_async(action, f"open_softirq({SOFTIRQ_NAMES[nr]})", "softirq")
        self.softirqs.open(nr, action)

    def raise_softirq(self, nr: int | SoftIrq) -> None:
        """Mark vector ``nr`` pending on this CPU (from task context it wakes ksoftirqd)."""
        c = self.engine.current_cpu
        if c is None or nr.__class__ not in (int, SoftIrq) or not 0 <= nr < NR_SOFTIRQS:
            nr = self._vec(nr, "raise_softirq")
            c = self._this_cpu("raise_softirq")
        raise_softirq_irqoff(self, c, nr)

    def raise_softirq_irqoff(self, nr: int | SoftIrq) -> None:
        nr = self._vec(nr, "raise_softirq_irqoff")
        raise_softirq_irqoff(self, self._this_cpu("raise_softirq_irqoff"), nr)

    @staticmethod
    def _vec(nr: int | SoftIrq, what: str) -> int:
        if not isinstance(nr, int) or isinstance(nr, bool) or not 0 <= nr < NR_SOFTIRQS:
            raise IrqflowError(
                f"{what}({nr!r}): softirq vectors are 0..9 (irqflow.SoftIrq.HI_SOFTIRQ .. "
                "RCU_SOFTIRQ)"
            )
        return int(nr)

    # ------------------------------------------------------------------ tasklets
    def tasklet_schedule(self, t: Tasklet) -> None:
        """Queue ``t`` on this CPU's TASKLET_SOFTIRQ list (no-op if already queued)."""
        c = self.engine.current_cpu
        if c is None or t.__class__ is not Tasklet or t.owner is not self:
            c = self._this_cpu("tasklet_schedule")
            claim(self._tasklet(t), self, "tasklet_schedule")
        tasklet_schedule_on(self, c, t, TASKLET_SOFTIRQ)

    def tasklet_hi_schedule(self, t: Tasklet) -> None:
        """Queue ``t`` on this CPU's HI_SOFTIRQ list (runs before every other vector)."""
        c = self._this_cpu("tasklet_hi_schedule")
        claim(self._tasklet(t), self, "tasklet_hi_schedule")
        tasklet_schedule_on(self, c, t, HI_SOFTIRQ)

    @staticmethod
    def _tasklet(t: Any) -> Tasklet:
        if not isinstance(t, Tasklet):
            raise TypeError(f"expected an irqflow.Tasklet, got {t!r}")
        return t

    def tasklet_disable_nosync(self, t: Tasklet) -> None:
        self._tasklet(t).count += 1

    def tasklet_disable(self, t: Tasklet) -> Any:
        """Disable ``t`` and wait until it is not running anywhere (invariant 24)."""
        self._tasklet(t).count += 1
        return self._wait(lambda: not t.state & TASKLET_STATE_RUN, f"tasklet_disable({t.name})")

    def tasklet_enable(self, t: Tasklet) -> None:
        """Undo one disable; a tasklet scheduled meanwhile runs on the next pass."""
        if self._tasklet(t).count == 0:
            raise IrqflowError(f"tasklet_enable({t.name}): it is not disabled (count is 0)")
        t.count -= 1

    def tasklet_kill(self, t: Tasklet) -> None:
        """Wait until ``t`` is neither scheduled nor running, taking SCHED on the way so
        that it cannot be scheduled again meanwhile (invariant 25)."""
        self._tasklet(t)
        if t.count and t.state & TASKLET_STATE_SCHED:
            raise IrqflowError(
                f"tasklet_kill({t.name}) would wait forever: the tasklet is scheduled but "
                f"disabled (count={t.count}); call tasklet_enable first"
            )
        if t.state & TASKLET_STATE_SCHED:
            # the queued instance must run first; when it clears SCHED, we take it
            t.kill_waiting = True
            self._wait(lambda: not t.kill_waiting, f"tasklet_kill({t.name})")
        else:
            t.state |= TASKLET_STATE_SCHED
        self._wait(lambda: not t.state & TASKLET_STATE_RUN, f"tasklet_kill({t.name})")
        t.state &= ~TASKLET_STATE_SCHED

    # ------------------------------------------------------------------ NAPI
    def napi_schedule(self, n: Napi) -> bool:
        """Schedule ``n`` for polling on this CPU (NET_RX_SOFTIRQ); False if it was already
        scheduled (then MISSED is set and it will be polled again)."""
        if not isinstance(n, Napi):
            raise TypeError(f"napi_schedule: expected an irqflow.Napi, got {n!r}")
        c = self._this_cpu("napi_schedule")
        if n.owner is not self:
            claim(n, self, "napi_schedule")
        if napi_schedule_prep(n):
            napi_schedule_on(self, c, n)
            return True
        return False

    def napi_complete_done(self, n: Napi, work_done: int) -> bool:
        """Called by ``poll`` when it did less than its budget: release ``n``.  True means
        the driver may re-enable its interrupt; False means it stays scheduled."""
        if not isinstance(n, Napi):
            raise TypeError(f"napi_complete_done: expected an irqflow.Napi, got {n!r}")
        if not n.state & NAPI_STATE_SCHED:
            raise IrqflowError(
                f"napi_complete_done({n.name}, {work_done}): the NAPI is not scheduled; "
                "only its poll function may complete it"
            )
        return napi_complete_done(self, self.engine.current_cpu, n)

    # ------------------------------------------------------------------ timers
    def add_timer(self, t: Timer, expires: int) -> None:
        """Arm ``t`` for jiffy ``expires`` on this CPU (CPU 0 from outside the machine)."""
        self.timers.add_timer(t, expires)

    def mod_timer(self, t: Timer, expires: int) -> bool:
        """Move ``t`` to ``expires`` (arming it if idle); True if it was pending."""
        return self.timers.mod_timer(t, expires)

    def del_timer(self, t: Timer) -> bool:
        """Deactivate ``t``; True if it was pending.  Does not wait for a running callback."""
        return self.timers.del_timer(t)

    def del_timer_sync(self, t: Timer) -> Any:
        """Deactivate ``t`` and wait until its callback is not running anywhere."""
        was = self.del_timer(t)
        return self._wait(lambda: not t.running, f"del_timer_sync({t.name})", was)

    def timer_pending(self, t: Timer) -> bool:
        return self.timers.check(t, "timer_pending").pending

    # ------------------------------------------------------------------ threads
    def kthread_run(
        self,
        fn: Callable[[Any], Any],
        name: str,
        cpu: int | None = None,
        policy: str = "normal",
        prio: int = 0,
        nice: int = 0,
    ) -> Task:
        """Start a thread running ``fn(k)``, which may block (``k.msleep``, completions,
        ``flush_work`` ...) and may be ``async def``.  Its CPU time counts as user time."""
        if not callable(fn):
            raise TypeError(f"kthread_run({fn!r}, {name!r}): fn must be callable as fn(k)")
        if cpu is None:
            cpu = min(self.cpus, key=lambda c: (len(c.rq), c.nr)).nr
        elif not isinstance(cpu, int) or not 0 <= cpu < len(self.cpus):
            raise IrqflowError(
                f"kthread_run({name!r}, cpu={cpu!r}): CPUs are 0..{len(self.cpus) - 1}"
            )

        def body() -> Any:
            return self._run_in_task(self._this_cpu(name), fn, (self,), name)

        return self.sched.spawn(
            name, cpu, body, policy=policy, prio=prio, nice=nice, acct=cpumod.USER
        )

    def msleep(self, ms: float) -> Ready[None]:
        """Sleep at least ``ms`` milliseconds in process context (never in atomic
        context), as the kernel's ``msleep``: a timer on the wheel wakes the task from
        TIMER_SOFTIRQ, so the sleep ends on a tick, up to a jiffy late at level 0 (more
        for long sleeps), and the task sleeps as TASK_UNINTERRUPTIBLE (``D``).  An early
        wake-up only sends it back to sleep for the time left.  ``await k.msleep(ms)``
        works in an ``async def`` body.  For sleeps exact to the microsecond use
        :meth:`usleep_range` or :meth:`fsleep`."""
        self._check_sleep("msleep", ms, "ms")
        sleep.msleep(self, ms)
        return DONE

    def usleep_range(self, min_us: float, max_us: float) -> Ready[None]:
        """Sleep between ``min_us`` and ``max_us`` microseconds on an hrtimer (process
        context only): on a quiet CPU the wake-up comes at ``max_us``, earlier only if
        another local timer interrupt falls in the range.  The task sleeps as ``D``."""
        self._check_sleep("usleep_range", min_us, "us")
        self._check_sleep("usleep_range", max_us, "us")
        if max_us < min_us:
            raise ValueError(
                f"usleep_range({min_us!r}, {max_us!r}): max_us is below min_us; give a "
                "range min_us <= max_us (the slack lets the kernel batch wake-ups)"
            )
        sleep.usleep_range(self, min_us, max_us)
        return DONE

    def fsleep(self, us: float) -> Ready[None]:
        """Sleep ``us`` microseconds with at most 25% slack, as the kernel's ``fsleep``:
        ``udelay`` up to 10 us, ``usleep_range(us, us * 1.25)`` below four ticks,
        ``msleep`` beyond."""
        self._check_sleep("fsleep", us, "us")
        if us <= 10:
            if us > 0:
                self.udelay(us)
        elif us < sleep.usleep_range_upper_bound_us(self):
            return self.usleep_range(us, us + int(us) // 4)
        else:
            return self.msleep(math.ceil(us / 1000))
        return DONE

    def _check_sleep(self, what: str, value: float, unit: str) -> None:
        self._this_cpu(what)
        self.might_sleep(f"{what}({value})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what}({value!r}): give a number of {unit}")
        if not value >= 0 or value == math.inf:
            raise ValueError(f"{what}({value!r}): give a finite, non-negative number of {unit}")

    def completion(self) -> Completion:
        """A new ``struct completion`` (``.complete()``, ``await .wait()``)."""
        return Completion(self)

    def mutex(self) -> Mutex:
        """A new ``struct mutex`` (``await m.lock()``, ``m.unlock()``, ``async with m:``)."""
        return Mutex(self)

    def wait_queue_head(self, name: str = "") -> WaitQueueHead:
        """A new wait queue head for :meth:`wait_event` / :meth:`wake_up`."""
        return WaitQueueHead(self, name)

    def wait_event(self, h: WaitQueueHead, cond: Callable[[], bool]) -> Ready[None]:
        """Sleep on ``h`` until ``cond()`` is true; the condition is re-checked each time
        ``h`` is woken (``await k.wait_event(h, cond)`` in an ``async def`` body)."""
        if not isinstance(h, WaitQueueHead):
            raise TypeError(f"wait_event: expected a wait queue head, got {h!r}")
        return _wait_event(self, h, cond)

    def wake_up(self, h: WaitQueueHead) -> int:
        """Wake the sleepers of ``h`` (any context); returns how many were woken."""
        return h.wake_up()

    def cond_resched(self) -> Ready[None]:
        """Let another task run if one should (a voluntary preemption point)."""
        c = self._this_cpu("cond_resched")
        self.might_sleep("cond_resched()")
        self.sched.cond_resched(c)
        return DONE

    # ------------------------------------------------------------------ genirq
    def raise_irq(self, irq: int) -> None:
        """A device signals line ``irq``: one edge, or on a level line, asserts it."""
        self.genirq.raise_irq(irq)

    def set_irq_level(self, irq: int, asserted: bool) -> None:
        """Drive a level-triggered line: the device holds it until its driver quiets it."""
        self.genirq.set_irq_level(irq, asserted)

    def irq_set_affinity(self, irq: int, cpus: Iterable[int]) -> None:
        """Set the CPUs allowed to take ``irq``."""
        self.genirq.irq_set_affinity(irq, cpus)

    def request_irq(
        self,
        irq: int,
        handler: IrqHandler,
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register ``handler(irq, dev_id) -> IrqReturn`` on line ``irq``.

        Raises :class:`RequestError` with the kernel's errno (``EINVAL``, ``EBUSY``) when
        the request is refused."""
        self.genirq.setup_irq(irq, handler, None, flags, name, dev_id, cond_oneshot=True)

    def request_threaded_irq(
        self,
        irq: int,
        handler: IrqHandler | None,
        thread_fn: IrqHandler | None,
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register a primary ``handler`` and a ``thread_fn`` run by thread ``irq/N-name``."""
        self.genirq.setup_irq(irq, handler, thread_fn, flags, name, dev_id)

    def free_irq(self, irq: int, dev_id: Any = None) -> str:
        """Remove the action registered with ``dev_id``; returns its name. Waits (outside
        the machine) until no handler of the line is running."""
        return self.genirq.free_irq(irq, dev_id)

    def disable_irq_nosync(self, irq: int) -> None:
        """Disable the line (nested by depth) without waiting for running handlers."""
        self.genirq.disable_irq_nosync(irq)

    def disable_irq(self, irq: int) -> Any:
        """Disable the line and wait until no handler of it is running (invariant 30)."""
        return self.genirq.disable_irq(irq)

    def enable_irq(self, irq: int) -> None:
        """Undo one ``disable_irq``; at depth 1 -> 0 the line is enabled and an edge that
        arrived meanwhile is replayed once (invariants 29, 34)."""
        self.genirq.enable_irq(irq)

    def synchronize_irq(self, irq: int) -> Any:
        """Wait until no handler of ``irq`` is running on any CPU (invariant 41)."""
        return self.genirq.synchronize_irq(irq)

    def irq_state(self, irq: int) -> str:
        """The line's state bits as text, e.g. ``"DISABLED|MASKED"`` (for debugging)."""
        return self.genirq.irq_state(irq)

    # ------------------------------------------------------------------ workqueues
    @property
    def system_wq(self) -> Workqueue:
        """``events``: the queue ``schedule_work`` uses."""
        return self.wq.system_wq

    @property
    def system_bh_wq(self) -> Workqueue:
        """``events_bh``: items run in TASKLET_SOFTIRQ (6.9+ BH workqueues)."""
        return self.wq.system_bh_wq

    @property
    def system_bh_highpri_wq(self) -> Workqueue:
        """``events_bh_highpri``: items run in HI_SOFTIRQ."""
        return self.wq.system_bh_highpri_wq

    def create_workqueue(self, name: str) -> Workqueue:
        """Per-CPU threads ``<name>/<cpu>`` (per-cpu-threads model); under cmwq the legacy
        macro: max_active 1 per CPU."""
        return self.wq.create_workqueue(name)

    def create_singlethread_workqueue(self, name: str) -> Workqueue:
        """One worker thread, ``<name>``, for all CPUs (cmwq: an ordered queue): items run
        one at a time, in order."""
        return self.wq.create_singlethread_workqueue(name)

    def alloc_ordered_workqueue(self, name: str, flags: int = 0) -> Workqueue:
        """At most one item at a time, in queueing order (invariant 52)."""
        return self.wq.alloc_ordered_workqueue(name, flags)

    def alloc_workqueue(self, name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
        """cmwq: a queue onto the per-CPU (or, with ``WQ_UNBOUND``, unbound) pools with at
        most ``max_active`` items active per CPU (``WQ_UNBOUND``: in all): 1..2048
        (WQ_MAX_ACTIVE), 0 for the default 1024 (WQ_DFL_ACTIVE).  Other values raise
        IrqflowError (the kernel clamps them with a warning).  per-cpu-threads model:
        per-CPU threads, or one thread with ``WQ_UNBOUND`` or ``max_active=1``.
        ``WQ_BH``: items run in softirq context."""
        return self.wq.alloc_workqueue(name, flags, max_active)

    def queue_work_on(self, cpu: int, wq: Workqueue, w: Work) -> bool:
        """Queue ``w`` on ``cpu``'s list of ``wq``; False if it was already pending.
        ``workqueue_queue_work`` traces ``cpu`` as its ``req_cpu``."""
        return self.wq.queue_work_on(cpu, wq, w)

    def queue_work(self, wq: Workqueue, w: Work) -> bool:
        """Queue on the submitting CPU (CPU 0 from outside the machine); traced with
        ``req_cpu`` WORK_CPU_UNBOUND (8192), as the kernel's ``queue_work`` does."""
        return self.wq.queue_work(wq, w)

    def schedule_work(self, w: Work) -> bool:
        """``queue_work(system_wq, w)``: the ``events`` queue."""
        return self.wq.schedule_work(w)

    def queue_delayed_work(self, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
        """Queue ``dw`` ``delay`` jiffies from now (0: at once); False if already pending."""
        return self.wq.queue_delayed_work(wq, dw, delay)

    def schedule_delayed_work(self, dw: DelayedWork, delay: int) -> bool:
        return self.wq.schedule_delayed_work(dw, delay)

    def mod_delayed_work(self, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
        """Re-arm ``dw`` (pending or not) ``delay`` jiffies from now; True if it was pending."""
        return self.wq.mod_delayed_work(wq, dw, delay)

    def flush_work(self, w: Work) -> Any:
        """Wait until the last queued instance of ``w`` has run; False if it was idle."""
        return self.wq.flush_work(w)

    def cancel_work_sync(self, w: Work) -> Any:
        """Cancel a pending ``w`` and wait for a running one; returns whether it was
        pending.  On return it is neither pending nor running (invariant 56)."""
        return self.wq.cancel_work_sync(w)

    def cancel_delayed_work_sync(self, dw: DelayedWork) -> Any:
        return self.wq.cancel_work_sync(dw)

    def flush_workqueue(self, wq: Workqueue) -> Any:
        """Wait for every item queued on ``wq`` before this call (later ones don't count)."""
        return self.wq.flush_workqueue(wq)

    def drain_workqueue(self, wq: Workqueue) -> Any:
        """Flush until ``wq`` is empty, including items its own items queue."""
        return self.wq.drain_workqueue(wq)

    def destroy_workqueue(self, wq: Workqueue) -> None:
        """Drain ``wq`` and stop its threads."""
        self.wq.destroy_workqueue(wq)
