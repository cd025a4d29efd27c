"""``KernelCore``: wires the subsystems and carries the public, kernel-named API.

The engine (virtual time or OS threads) is handed in by :class:`irqflow.Kernel`; this
module never imports one.  Calls that act on "this CPU" (``raise_softirq``, ``udelay``,
``local_bh_disable`` ...) need a current CPU: they are made from driver code running on
the machine.  Calls that wait (``synchronize_irq``, ``tasklet_kill`` ...) are made from
outside the machine: the sim engine advances virtual time until they are done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig
from irqflow.core.constants import (
    HI_SOFTIRQ,
    NR_SOFTIRQS,
    SOFTIRQ_NAMES,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
    SoftIrq,
)
from irqflow.core.context import ContextMixin
from irqflow.core.cpu import Cpu
from irqflow.core.engine import Engine
from irqflow.core.errors import (
    IrqflowError,
    refuse_async,
)
from irqflow.core.irq.desc import (
    SPURIOUS_DISABLED,
    IrqDesc,
)
from irqflow.core.irq.manage import IrqManageMixin
from irqflow.core.kthread import DONE, Ready
from irqflow.core.napi import (
    NAPI_STATE_SCHED,
    Napi,
    napi_complete_done,
    napi_schedule_on,
    napi_schedule_prep,
)
from irqflow.core.sched import RUNNING, RunQueue, Task
from irqflow.core.softirq import (
    SoftirqFlow,
    ksoftirqd_body,
    raise_softirq_irqoff,
)
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
from irqflow.core.timer import Timer, arm, run_timer_softirq
from irqflow.core.workqueue import WorkqueueMixin
from irqflow.stats.latency import LatencyRecorder, LatencyReport
from irqflow.stats.snapshot import CpuTimes, IrqStats, LogRecord, Oops, Snapshot
from irqflow.trace.tracer import Tracer


class KernelCore(IrqManageMixin, ContextMixin, WorkqueueMixin):
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
        self.trace = Tracer(self)
        self.cpus: list[Cpu] = [Cpu(n) for n in range(cpus)]
        self._descs: dict[int, IrqDesc] = {}
        # softirq_vec[]: a vector's action is either a kernel flow or a driver's callable
        self._softirq_flow: list[SoftirqFlow | None] = [None] * NR_SOFTIRQS
        self._softirq_run: list[Callable[[], Any] | None] = [None] * NR_SOFTIRQS
        self._softirq_where = tuple(f"softirq {name}" for name in SOFTIRQ_NAMES)
        self._softirq_flow[HI_SOFTIRQ] = tasklet_hi_action
        self._softirq_flow[TASKLET_SOFTIRQ] = tasklet_action
        self._softirq_flow[TIMER_SOFTIRQ] = run_timer_softirq
        self._timer_seq = 0
        self._spurious_poll_armed = False
        self._tick_ns = self.config.tick_period_ns
        self._softirq_time_jiffies = self.config.max_softirq_time_jiffies
        self.lat = LatencyRecorder(self.config.latency_histograms)
        self._lat_softirq_raise = [
            self.lat.hist("softirq raise->entry", nr) for nr in range(NR_SOFTIRQS)
        ]
        self._lat_softirq = [self.lat.hist("softirq", nr) for nr in range(NR_SOFTIRQS)]
        self._log: list[LogRecord] = []
        self._oopses: list[Oops] = []
        self._bogus_reports = 0
        self._next_pid = 1
        self.tasks: list[Task] = []
        for c in self.cpus:
            c.rq = RunQueue(self.config)
            idle = Task(0, f"swapper/{c.nr}", c.nr, self._idle_body, policy="idle")
            c.idle_task = idle
            c.current = idle
        self.engine = engine_factory(self)
        self._direct_calls = getattr(self.engine, "direct_calls", False)
        # the kernel's own path costs: CPU time on an engine that models them
        cfg, costs = self.config, self.engine.models_path_costs
        self._irq_entry_ns = cfg.irq_entry_ns if costs else 0
        self._irq_exit_ns = cfg.irq_exit_ns if costs else 0
        self._softirq_pass_ns = max(cfg.softirq_pass_ns, cfg.min_loop_ns) if costs else 0
        self._tasklet_dispatch_ns = cfg.tasklet_dispatch_ns if costs else 0
        self._tick_cost_ns = cfg.tick_ns if costs else 0
        self._switch_ns = cfg.context_switch_ns if costs else 0
        self._runs_scheduler = self.engine.runs_scheduler
        #: kernel code in process context is preempted on return from interrupt (full
        #: preemption); otherwise only code returning to user mode (kthread_run bodies)
        self._preempt_kernel = cfg.preempt_model in ("full", "rt")
        for c in self.cpus:
            self.engine.add_task(c.idle_task)
        for c in self.cpus:
            c.ksoftirqd = self._spawn(f"ksoftirqd/{c.nr}", c.nr, self._ksoftirqd, start=False)
            c.ksoftirqd.is_ksoftirqd = True
        self._init_workqueues()
        self.engine.boot()

    def _ksoftirqd(self) -> None:
        ksoftirqd_body(self)

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
    def now(self) -> int:
        """Current time in ns (virtual in sim, monotonic since start in real)."""
        return self.engine.now

    @property
    def jiffies(self) -> int:
        """Ticks since boot."""
        return self.engine.now // self._tick_ns

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
        self._softirq_run[nr] = action

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
        if c is None or t.__class__ is not Tasklet:
            c = self._this_cpu("tasklet_schedule")
            self._tasklet(t)
        tasklet_schedule_on(self, c, t, TASKLET_SOFTIRQ)

    def tasklet_hi_schedule(self, t: Tasklet) -> None:
        """Queue ``t`` on this CPU's HI_SOFTIRQ list (runs before every other vector)."""
        tasklet_schedule_on(
            self, self._this_cpu("tasklet_hi_schedule"), self._tasklet(t), HI_SOFTIRQ
        )

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
    def _timer_cpu(self) -> Cpu:
        c = self.engine.current_cpu
        return c if c is not None else self.cpus[0]

    @staticmethod
    def _check_timer(t: Any, what: str, expires: int | None = None) -> Timer:
        if not isinstance(t, Timer):
            raise TypeError(f"{what}: expected an irqflow.Timer, got {t!r}")
        if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
            raise TypeError(
                f"{what}({t.name}, {expires!r}): expires is an absolute time in jiffies "
                "(k.jiffies + k.msecs_to_jiffies(ms))"
            )
        return t

    def add_timer(self, t: Timer, expires: int) -> None:
        """Arm ``t`` for jiffy ``expires`` on this CPU (CPU 0 from outside the machine)."""
        self._check_timer(t, "add_timer", expires)
        if t.pending:
            raise IrqflowError(
                f"add_timer({t.name}): the timer is already pending (expires {t.expires}); "
                "use mod_timer to move it"
            )
        arm(self, self._timer_cpu(), t, expires)

    def mod_timer(self, t: Timer, expires: int) -> bool:
        """Move ``t`` to ``expires`` (arming it if idle); True if it was pending."""
        self._check_timer(t, "mod_timer", expires)
        was = t.pending
        if was and t.expires == expires:
            return True  # same expiry: nothing to do
        arm(self, self._timer_cpu(), t, expires)
        return was

    def del_timer(self, t: Timer) -> bool:
        """Deactivate ``t``; True if it was pending.  Does not wait for a running callback."""
        self._check_timer(t, "del_timer")
        was = t.pending
        t.pending = False
        return was

    def del_timer_sync(self, t: Timer) -> Any:
        """Deactivate ``t`` and wait until its callback is not running anywhere."""
        was = self.del_timer(t)
        return self._wait(lambda: not t.running, f"del_timer_sync({t.name})", was)

    def timer_pending(self, t: Timer) -> bool:
        return self._check_timer(t, "timer_pending").pending

    # ------------------------------------------------------------------ threads
    def _spawn(
        self,
        comm: str,
        cpu: int,
        body: Callable[[], Any],
        *,
        policy: str = "normal",
        prio: int = 0,
        nice: int = 0,
        acct: str = cpumod.SYSTEM,
        start: bool = True,
    ) -> Task:
        pid = self._next_pid
        self._next_pid += 1
        t = Task(pid, comm, cpu, body, policy=policy, rt_priority=prio, nice=nice, acct=acct)
        self.tasks.append(t)
        self.engine.add_task(t)
        if start:
            self._wake_new(t)
        else:
            t.state = "S"
        return t

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

        return self._spawn(name, cpu, body, policy=policy, prio=prio, nice=nice, acct=cpumod.USER)

    def msleep(self, ms: float) -> Ready[None]:
        """Sleep ``ms`` milliseconds in process context (never in atomic context).  Like
        the kernel's ``msleep``, an early wake-up only sends the task back to sleep for
        the time that is left.  ``await k.msleep(ms)`` works in an ``async def`` body."""
        c = self._this_cpu("msleep")
        self.might_sleep(f"msleep({ms})")
        if not ms >= 0 or ms == math.inf:
            raise ValueError(f"msleep({ms!r}): give a finite, non-negative number of ms")
        deadline = self.engine.now + int(ms * 1_000_000)
        while self.engine.now < deadline:
            self.engine.sleep_until(c, deadline)
            c = self._this_cpu("msleep")
        return DONE

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
        self._cond_resched(c)
        return DONE

    def _cond_resched(self, c: Cpu) -> None:
        # where the OS schedules the threads, a voluntary preemption point always gives
        # the others a turn
        if c.need_resched or not self._runs_scheduler:
            self.engine.schedule(c)

    def _preempt(self, c: Cpu) -> None:
        """Return from interrupt to task context with ``need_resched`` set: preempt the
        task if the preemption model allows it here."""
        if self._preempt_kernel or c.current.acct == cpumod.USER:
            self.engine.schedule(c)

    def _wake_new(self, t: Task) -> None:
        t.state = RUNNING
        c = self.cpus[t.cpu]
        c.rq.enqueue(t, wakeup=False)
        self._after_wake(c, t)

    def _wake_up_process(self, t: Task) -> bool:
        """``wake_up_process``: False if the task was already runnable."""
        if t.state == RUNNING:
            return False
        if t.state != "S":
            return False  # dead
        t.state = RUNNING
        c = self.cpus[t.cpu]
        c.rq.enqueue(t, wakeup=True)
        if t.wq_worker is not None and self._cmwq is not None:
            self._cmwq.worker_running(t.wq_worker)
        self._after_wake(c, t)
        return True

    def _wq_worker_sleeping(self, t: Task) -> None:
        if self._cmwq is not None:
            self._cmwq.worker_sleeping(t.wq_worker)

    def _after_wake(self, c: Cpu, t: Task) -> None:
        if self.tracing:
            here = self.engine.current_cpu or c
            self.trace.emit(
                here,
                "sched:sched_wakeup",
                {"comm": t.comm, "pid": t.pid, "prio": t.prio, "target_cpu": c.nr},
            )
        if self._runs_scheduler and c.rq.wakeup_should_preempt(c.current, t):
            c.need_resched = True
        self.engine.kick(c, t)

    def _scheduler_tick(self, c: Cpu) -> None:
        curr = c.current
        if self._runs_scheduler:
            if c.rq.rt_tick(self.engine.now):
                c.need_resched = True  # a new RT period: throttled RT tasks may run again
            if curr is c.idle_task:
                if len(c.rq):
                    c.need_resched = True
                return
            if c.rq.tick_should_preempt(curr):
                c.need_resched = True
        w = curr.wq_worker
        if w is not None and self._cmwq is not None and self._cmwq.hogging(w):
            self._cmwq.mark_intensive(w)

    # ------------------------------------------------------------------ observing
    def latency(self) -> LatencyReport:
        """Latency histograms so far: ``k.latency()["raise->hardirq"]["irq 24 eth0"].p99``;
        ``.table()`` for a summary, ``.text(kind, subject)`` for a log2 histogram."""
        irqs: dict[object, str] = {n: f"irq {n} {d.name}".rstrip() for n, d in self._descs.items()}
        vecs: dict[object, str] = dict(enumerate(SOFTIRQ_NAMES))
        return self.lat.report(
            {"raise->hardirq": irqs, "hardirq": irqs, "softirq raise->entry": vecs, "softirq": vecs}
        )

    def statistics(self) -> Snapshot:
        """A frozen snapshot of every counter."""
        ncpus = len(self.cpus)
        irqs = {}
        for n in sorted(self._descs):
            d = self._descs[n]
            if not d.requested and not d.raised:
                continue
            irqs[n] = IrqStats(
                irq=n,
                name=d.name,
                chip=d.chip,
                hwirq=n,
                trigger=d.trigger,
                flow=d.trigger,
                per_cpu=tuple(d.kstat),
                raised=d.raised,
                accepted=d.accepted,
                coalesced=d.coalesced,
                lost=d.lost,
                in_flight=d.in_flight,
                unhandled=d.unhandled,
                depth=d.depth,
                spurious_disabled=bool(d.state & SPURIOUS_DISABLED),
                irq_count=d.irq_count,
                irqs_unhandled=d.irqs_unhandled,
                actions=len(d.actions),
            )
        softirqs = {
            name: tuple(c.softirq_counts[nr] for c in self.cpus)
            for nr, name in enumerate(SOFTIRQ_NAMES)
        }
        raises = {
            name: tuple(c.softirq_raises[nr] for c in self.cpus)
            for nr, name in enumerate(SOFTIRQ_NAMES)
        }
        times = []
        for c in self.cpus:
            t = self.engine.cpu_times(c)
            times.append(
                CpuTimes(
                    user=t[cpumod.USER],
                    nice=0,
                    system=t[cpumod.SYSTEM],
                    idle=t[cpumod.IDLE],
                    irq=t[cpumod.IRQ],
                    softirq=t[cpumod.SOFTIRQ],
                )
            )
        arch_names = sorted({k for c in self.cpus for k in c.arch_counts})
        arch = {a: tuple(c.arch_counts.get(a, 0) for c in self.cpus) for a in arch_names}
        live = [t for t in self.tasks if t.state == RUNNING]
        return Snapshot(
            time_ns=self.engine.now,
            jiffies=self.jiffies,
            hz=self.config.hz,
            ncpus=ncpus,
            nr_irqs=self.config.nr_irqs,
            irqs=irqs,
            softirqs=softirqs,
            softirq_raises=raises,
            cpus=tuple(times),
            arch=arch,
            context_switches=sum(c.nr_switches for c in self.cpus),
            processes=len(self.tasks),
            procs_running=len(live),
            procs_blocked=0,
            ksoftirqd_wakeups=tuple(c.ksoftirqd_wakeups for c in self.cpus),
            time_squeeze=tuple(c.time_squeeze for c in self.cpus),
            oopses=tuple(self._oopses),
            log=tuple(self._log),
        )
