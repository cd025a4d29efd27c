"""``KernelCore``: wires the subsystems and carries the public, kernel-named API.

The engine (virtual time or OS threads) is handed in by :class:`irqflow.Kernel`; this
module never imports one.  Calls that act on "this CPU" (``raise_softirq``, ``udelay``,
``local_bh_disable`` ...) need a current CPU: they are made from driver code running on
the machine.  Calls that wait (``synchronize_irq``, ``tasklet_kill`` ...) are made from
outside the machine: the sim engine advances virtual time until they are done.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, Protocol

from irqflow.core import cpu as cpumod
from irqflow.core.config import KernelConfig
from irqflow.core.constants import (
    GFP_KERNEL,
    HARDIRQ_MASK,
    HI_SOFTIRQ,
    IRQ_WAKE_THREAD,
    IRQF_COND_ONESHOT,
    IRQF_EDGE_MASK,
    IRQF_LEVEL_MASK,
    IRQF_NO_AUTOEN,
    IRQF_ONESHOT,
    IRQF_PERCPU,
    IRQF_SHARED,
    IRQF_TRIGGER_MASK,
    NR_SOFTIRQS,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_NAMES,
    TASKLET_SOFTIRQ,
    SoftIrq,
)
from irqflow.core.cpu import Cpu
from irqflow.core.effects import COND_RESCHED, FAILED, Busy, Run, Sleep
from irqflow.core.errors import (
    InternalError,
    IrqflowError,
    NotOnCpuError,
    RequestError,
    SleepInAtomicContext,
)
from irqflow.core.irq import chip
from irqflow.core.irq.desc import (
    DISABLED,
    EDGE,
    INPROGRESS,
    LEVEL,
    MASKED,
    PENDING,
    REPLAY,
    SPURIOUS_DISABLED,
    IrqAction,
    IrqDesc,
)
from irqflow.core.irq.flow import handle_edge_irq, handle_level_irq
from irqflow.core.sched import RUNNING, RunQueue, Task
from irqflow.core.softirq import (
    SoftirqAction,
    do_softirq,
    ksoftirqd_body,
    raise_softirq_irqoff,
    user_action,
)
from irqflow.core.tasklet import (
    TASKLET_STATE_RUN,
    TASKLET_STATE_SCHED,
    Tasklet,
    tasklet_action,
    tasklet_hi_action,
    tasklet_schedule_on,
)
from irqflow.stats.snapshot import CpuTimes, IrqStats, LogRecord, Oops, Snapshot
from irqflow.trace.tracer import Tracer

Flow = Generator[Any, Any, None]


class Engine(Protocol):
    """What the core needs from an engine.  Only engines know time and threads."""

    now: int
    current_cpu: Cpu | None

    def boot(self) -> None: ...
    def deliver(self, c: Cpu) -> None: ...
    def kick(self, c: Cpu) -> None: ...
    def add_task(self, t: Task) -> None: ...
    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None: ...
    def wait_until(self, pred: Callable[[], bool], what: str) -> None: ...
    def run_inline(self, c: Cpu, flow: Flow) -> None: ...
    def cpu_times(self, c: Cpu) -> dict[str, int]: ...
    def run(self, until: int | None = None) -> None: ...


class _IrqSave:
    """What ``local_irq_save()`` returns: the saved flag, and a context manager."""

    __slots__ = ("_c", "was_on")

    def __init__(self, c: Cpu) -> None:
        self._c = c
        self.was_on = c.irqs_on
        c.irqs_on = False

    def __enter__(self) -> _IrqSave:
        return self

    def __exit__(self, *exc: object) -> None:
        self._c.irqs_on = self.was_on


class _BhDisabled:
    __slots__ = ("_k",)

    def __init__(self, k: KernelCore) -> None:
        self._k = k

    def __enter__(self) -> None:
        self._k.local_bh_disable()

    def __exit__(self, *exc: object) -> None:
        self._k.local_bh_enable()


class _Await:
    """An awaitable that hands one effect to the engine (``await k.msleep(10)``)."""

    __slots__ = ("_eff",)

    def __init__(self, eff: Any) -> None:
        self._eff = eff

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self._eff)


def _default_primary(irq: int, dev_id: Any) -> int:
    """``irq_default_primary_handler``: always wake the thread."""
    return int(IRQ_WAKE_THREAD)


class KernelCore:
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
        self.tracer = self.trace
        self.cpus: list[Cpu] = [Cpu(n) for n in range(cpus)]
        self._descs: dict[int, IrqDesc] = {}
        self._softirq_vec: list[SoftirqAction | None] = [None] * NR_SOFTIRQS
        self._softirq_vec[HI_SOFTIRQ] = tasklet_hi_action
        self._softirq_vec[TASKLET_SOFTIRQ] = tasklet_action
        self._softirq_pass = Busy(
            max(self.config.softirq_pass_ns, self.config.min_loop_ns), irqs_on=True
        )
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
        for c in self.cpus:
            self.engine.add_task(c.idle_task)
        for c in self.cpus:
            c.ksoftirqd = self._spawn(
                f"ksoftirqd/{c.nr}", c.nr, self._ksoftirqd_factory(c), start=False
            )
            c.ksoftirqd.is_ksoftirqd = True
        self.engine.boot()

    def _ksoftirqd_factory(self, c: Cpu) -> Callable[[], Flow]:
        return lambda: ksoftirqd_body(self, c)

    @staticmethod
    def _idle_body() -> Flow:
        from irqflow.core.effects import IDLE

        while True:
            yield IDLE

    # ------------------------------------------------------------------ time
    def now(self) -> int:
        """Current time in ns (virtual in sim, monotonic since start in real)."""
        return self.engine.now

    @property
    def jiffies(self) -> int:
        """Ticks since boot."""
        return self.engine.now // self.config.tick_period_ns

    def msecs_to_jiffies(self, ms: int) -> int:
        return self.config.msecs_to_jiffies(ms)

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` at time ``t_ns`` in the outside world (on no CPU): the place
        for devices to raise interrupts."""
        if not callable(fn):
            raise TypeError(f"call_at({t_ns}, {fn!r}): fn must be callable")
        if t_ns < self.engine.now:
            raise IrqflowError(
                f"call_at({t_ns}): that is in the past (now is {self.engine.now} ns); "
                "pass a time >= k.now()"
            )
        self.engine.call_at(int(t_ns), fn, *args)

    # ------------------------------------------------------------------ helpers
    def _this_cpu(self, what: str) -> Cpu:
        c = self.engine.current_cpu
        if c is None:
            raise NotOnCpuError(
                f"{what}() acts on the current CPU, and there is none: it was called from "
                "outside the machine. Call it from driver code running on the machine (an "
                "IRQ handler, softirq action, tasklet or a kernel thread started with "
                "k.kthread_run)."
            )
        return c

    def log(self, c: Cpu | None, level: str, text: str) -> None:
        """Append a kernel log (dmesg) line."""
        self._log.append(LogRecord(self.engine.now, None if c is None else c.nr, level, text))

    def dmesg(self) -> list[str]:
        """The kernel log as text lines, ``[   12.345678] text``."""
        return [
            f"[{r.time_ns // 1_000_000_000:5d}.{r.time_ns // 1000 % 1_000_000:06d}] {r.text}"
            for r in self._log
        ]

    def _desc(self, irq: int, what: str) -> IrqDesc:
        if not isinstance(irq, int) or isinstance(irq, bool):
            raise TypeError(f"{what}({irq!r}): the IRQ number must be an int")
        if not 0 <= irq < self.config.nr_irqs:
            raise IrqflowError(
                f"{what}({irq}): IRQ {irq} does not exist; this machine has IRQs "
                f"0..{self.config.nr_irqs - 1} (KernelConfig.nr_irqs)"
            )
        desc = self._descs.get(irq)
        if desc is None:
            desc = self._descs[irq] = IrqDesc(irq, len(self.cpus))
        return desc

    def _flow_for(self, desc: IrqDesc) -> Callable[[KernelCore, Cpu, IrqDesc], Flow]:
        return handle_edge_irq if desc.trigger is EDGE else handle_level_irq

    def _call_user(self, c: Cpu, run: Run) -> Any:
        """Call driver code; a raised exception becomes an oops and :data:`FAILED`."""
        prev = c.running
        c.running = run
        pc = c.preempt_count
        on = c.irqs_on
        try:
            res = run.fn(*run.args)
        except Exception as exc:
            c.preempt_count = pc
            c.irqs_on = on
            c.running = prev
            self._oops(c, run, exc)
            return FAILED
        c.running = prev
        return res

    def _oops(self, c: Cpu, run: Run, exc: Exception) -> None:
        tb = "".join(traceback.format_exception(exc))
        context = cpumod.context_name(c.preempt_count)
        self._oopses.append(
            Oops(
                self.engine.now, c.nr, context, run.where, run.irq, type(exc).__name__, str(exc), tb
            )
        )
        self.log(
            c, "emerg", f"Oops: {type(exc).__name__}: {exc} in {context} {run.where} on CPU {c.nr}"
        )
        if self.config.panic_on_oops:
            raise exc

    # ------------------------------------------------------------------ hardware side
    def raise_irq(self, irq: int) -> None:
        """A device signals line ``irq``: one edge, or on a level line, asserts it."""
        desc = self._desc(irq, "raise_irq")
        if desc.trigger is EDGE:
            chip.raise_edge(self, desc)
        else:
            desc.asserted = True
            chip.level_check(self, desc)

    def set_irq_level(self, irq: int, asserted: bool) -> None:
        """Drive a level-triggered line: the device holds it until its driver quiets it."""
        desc = self._desc(irq, "set_irq_level")
        if desc.trigger is not LEVEL:
            raise IrqflowError(
                f"set_irq_level({irq}): IRQ {irq} is edge-triggered; request it with "
                "IRQF_TRIGGER_HIGH (or _LOW) to drive it as a level, or use raise_irq"
            )
        desc.asserted = bool(asserted)
        if asserted:
            chip.level_check(self, desc)

    def irq_set_affinity(self, irq: int, cpus: Iterable[int]) -> None:
        """Set the CPUs allowed to take ``irq``."""
        desc = self._desc(irq, "irq_set_affinity")
        chosen = sorted(set(cpus))
        if not chosen or not all(isinstance(n, int) and 0 <= n < len(self.cpus) for n in chosen):
            raise IrqflowError(
                f"irq_set_affinity({irq}, {chosen}): give a non-empty set of CPU numbers "
                f"in 0..{len(self.cpus) - 1}"
            )
        desc.affinity = tuple(chosen)

    # ------------------------------------------------------------------ genirq
    def request_irq(
        self,
        irq: int,
        handler: Callable[[int, Any], Any],
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register ``handler(irq, dev_id) -> IrqReturn`` on line ``irq``.

        Raises :class:`RequestError` with the kernel's errno (``EINVAL``, ``EBUSY``) when
        the request is refused."""
        self._setup_irq(irq, handler, None, flags | IRQF_COND_ONESHOT, name, dev_id)

    def request_threaded_irq(
        self,
        irq: int,
        handler: Callable[[int, Any], Any] | None,
        thread_fn: Callable[[int, Any], Any] | None,
        flags: int = 0,
        name: str = "",
        dev_id: Any = None,
    ) -> None:
        """Register a primary ``handler`` and a ``thread_fn`` run by thread ``irq/N-name``."""
        self._setup_irq(irq, handler, thread_fn, flags, name, dev_id)

    def _setup_irq(
        self,
        irq: int,
        handler: Callable[[int, Any], Any] | None,
        thread_fn: Callable[[int, Any], Any] | None,
        flags: int,
        name: str,
        dev_id: Any,
    ) -> None:
        desc = self._desc(irq, "request_irq")
        what = f"request_irq({irq}, name={name!r})"
        if flags & IRQF_SHARED and dev_id is None:
            raise RequestError(
                "EINVAL",
                f"{what}: IRQF_SHARED needs a dev_id, the cookie that tells the actions of a "
                "shared line apart in free_irq; pass dev_id=<your device object>",
            )
        if handler is None and thread_fn is None:
            raise RequestError("EINVAL", f"{what}: give a handler, a thread_fn, or both")
        if handler is None:
            if not flags & IRQF_ONESHOT:
                raise RequestError(
                    "EINVAL",
                    f"{what}: threaded irq requested with handler=None and without "
                    "IRQF_ONESHOT; the line would re-fire before the thread runs. "
                    "Add IRQF_ONESHOT",
                )
            handler = _default_primary
        if not callable(handler):
            raise TypeError(f"{what}: handler {handler!r} is not callable as handler(irq, dev_id)")
        if thread_fn is not None:
            raise IrqflowError(
                f"{what}: threaded handlers (IRQ threads irq/N-name) are not available yet; "
                "register a hard handler with request_irq"
            )
        name = name or getattr(handler, "__name__", f"irq{irq}")
        if desc.actions:
            old = desc.actions[0]
            oldf = old.flags
            mismatch = None
            if not (oldf & flags & IRQF_SHARED):
                mismatch = "both requests must pass IRQF_SHARED to share a line"
            elif flags & IRQF_TRIGGER_MASK and (flags ^ oldf) & IRQF_TRIGGER_MASK:
                mismatch = "the trigger types differ"
            elif (flags ^ oldf) & IRQF_ONESHOT and not (
                flags & IRQF_COND_ONESHOT and oldf & IRQF_ONESHOT
            ):
                mismatch = "IRQF_ONESHOT differs"
            elif (flags ^ oldf) & IRQF_PERCPU:
                mismatch = "IRQF_PERCPU differs"
            if mismatch:
                raise RequestError(
                    "EBUSY",
                    f"Flags mismatch irq {irq}. {flags:08x} ({name}) vs. {oldf:08x} "
                    f"({desc.name}): {mismatch}",
                )
            if flags & IRQF_COND_ONESHOT and oldf & IRQF_ONESHOT:
                flags |= IRQF_ONESHOT
        action = IrqAction(irq, handler, flags, name, dev_id, thread_fn)
        first = not desc.actions
        desc.actions.append(action)  # appended at the tail: called in this order (inv. 27)
        if first:
            if flags & IRQF_LEVEL_MASK:
                desc.trigger = LEVEL
            elif flags & IRQF_EDGE_MASK:
                desc.trigger = EDGE
            desc.handle_irq = self._flow_for(desc)
            desc.state &= ~(SPURIOUS_DISABLED | REPLAY)
            desc.drop_pending(lost=True)
            desc.requested = True
            if flags & IRQF_NO_AUTOEN:
                desc.depth = 1
                desc.state |= DISABLED
            else:
                desc.depth = 0
                desc.state &= ~DISABLED
                chip.unmask(self, desc)
        elif desc.state & SPURIOUS_DISABLED:
            # a new sharer may be the driver that cares: re-enable once (invariant 45)
            desc.state &= ~SPURIOUS_DISABLED
            self._enable(desc)
        desc.irq_count = 0
        desc.irqs_unhandled = 0

    def free_irq(self, irq: int, dev_id: Any = None) -> str:
        """Remove the action registered with ``dev_id``; returns its name. Waits (outside
        the machine) until no handler of the line is running."""
        desc = self._desc(irq, "free_irq")
        for action in desc.actions:
            if action.dev_id is dev_id or action.dev_id == dev_id:
                break
        else:
            have = ", ".join(f"{a.name} (dev_id={a.dev_id!r})" for a in desc.actions) or "none"
            raise IrqflowError(
                f"free_irq({irq}, dev_id={dev_id!r}): Trying to free already-free IRQ {irq}: "
                f"no action has that dev_id; registered actions: {have}"
            )
        c = self.engine.current_cpu
        if c is not None and cpumod.in_interrupt(c.preempt_count):
            self.log(c, "warn", f"Trying to free IRQ {irq} from IRQ context!")
        desc.actions.remove(action)
        if not desc.actions:
            desc.depth = 1
            desc.state |= DISABLED
            desc.drop_pending(lost=True)
            chip.shutdown(desc)
        if c is None:
            self._wait(lambda: not desc.state & INPROGRESS, f"free_irq({irq})")
        return action.name

    def disable_irq_nosync(self, irq: int) -> None:
        """Disable the line (nested by depth) without waiting for running handlers."""
        desc = self._desc(irq, "disable_irq_nosync")
        if desc.depth == 0:
            desc.state |= DISABLED  # lazy disable: the pin stays unmasked until it fires
        desc.depth += 1

    def disable_irq(self, irq: int) -> None:
        """Disable the line and wait until no handler of it is running (invariant 30)."""
        self.disable_irq_nosync(irq)
        self.synchronize_irq(irq)

    def enable_irq(self, irq: int) -> None:
        """Undo one ``disable_irq``; at depth 1 -> 0 the line is enabled and an edge that
        arrived meanwhile is replayed once (invariants 29, 34)."""
        self._enable(self._desc(irq, "enable_irq"))

    def _enable(self, desc: IrqDesc) -> None:
        if desc.depth == 0:
            self.log(self.engine.current_cpu, "warn", f"Unbalanced enable for IRQ {desc.irq}")
            return
        desc.depth -= 1
        if desc.depth:
            return
        desc.state &= ~DISABLED
        if desc.state & MASKED and desc.actions:
            chip.unmask(self, desc)
        self._check_irq_resend(desc)

    def _check_irq_resend(self, desc: IrqDesc) -> None:
        """kernel/irq/resend.c: replay a pending edge through the controller."""
        if desc.trigger is LEVEL:
            desc.drop_pending(lost=False)  # the device still holds the line: no replay
            return
        if desc.state & REPLAY or not desc.state & PENDING:
            return
        desc.state &= ~PENDING
        desc.state |= REPLAY
        if desc.carrier:
            desc.carrier = False  # the carried raise moves to the replayed presentation
        else:
            desc.raised += 1
            desc.in_flight += 1
        if not desc.actions:
            desc.settle_lost()
            return
        chip.present(self, desc)

    def synchronize_irq(self, irq: int) -> None:
        """Wait until no handler of ``irq`` is running on any CPU (invariant 41)."""
        desc = self._desc(irq, "synchronize_irq")
        self._wait(
            lambda: not desc.state & INPROGRESS and desc.threads_active == 0,
            f"synchronize_irq({irq})",
        )

    def _irq_wake_thread(self, c: Cpu, desc: IrqDesc, action: IrqAction) -> None:
        if action.thread_fn is None:
            if not action.warned_wake:
                action.warned_wake = True
                self.log(
                    c,
                    "warn",
                    f"IRQ {desc.irq} device {action.name} returned IRQ_WAKE_THREAD but no "
                    "thread function available.",
                )
            return
        raise InternalError("threaded handler woken but threads are not built")

    def _wait(self, pred: Callable[[], bool], what: str) -> None:
        if pred():
            return
        c = self.engine.current_cpu
        if c is None:
            self.engine.wait_until(pred, what)
            return
        if cpumod.in_interrupt(c.preempt_count) or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))
        raise IrqflowError(
            f"{what} has to wait, and waiting from inside a kernel thread is not supported "
            "yet; call it from outside the machine (a script or test)"
        )

    # ------------------------------------------------------------------ contexts
    def current(self) -> Task:
        """The running task (in interrupt context: the interrupted one, as in the kernel)."""
        return self._this_cpu("current").current

    def smp_processor_id(self) -> int:
        c = self.engine.current_cpu
        return c.nr if c is not None else self._this_cpu("smp_processor_id").nr

    def preempt_count(self) -> int:
        return self._this_cpu("preempt_count").preempt_count

    def in_hardirq(self) -> bool:
        return cpumod.in_hardirq(self._this_cpu("in_hardirq").preempt_count)

    in_irq = in_hardirq

    def in_softirq(self) -> bool:
        return cpumod.in_softirq(self._this_cpu("in_softirq").preempt_count)

    def in_serving_softirq(self) -> bool:
        return cpumod.in_serving_softirq(self._this_cpu("in_serving_softirq").preempt_count)

    def in_interrupt(self) -> bool:
        return cpumod.in_interrupt(self._this_cpu("in_interrupt").preempt_count)

    def in_task(self) -> bool:
        return cpumod.in_task(self._this_cpu("in_task").preempt_count)

    def irqs_disabled(self) -> bool:
        return not self._this_cpu("irqs_disabled").irqs_on

    def local_irq_disable(self) -> None:
        self._this_cpu("local_irq_disable").irqs_on = False

    def local_irq_enable(self) -> None:
        self._this_cpu("local_irq_enable").irqs_on = True

    def local_irq_save(self) -> _IrqSave:
        """Disable local IRQs and remember the old state: ``with k.local_irq_save(): ...``
        or ``flags = k.local_irq_save(); ...; k.local_irq_restore(flags)``."""
        return _IrqSave(self._this_cpu("local_irq_save"))

    def local_irq_restore(self, flags: _IrqSave) -> None:
        if not isinstance(flags, _IrqSave):
            raise TypeError(f"local_irq_restore({flags!r}): pass what local_irq_save() returned")
        self._this_cpu("local_irq_restore").irqs_on = flags.was_on

    def local_bh_disable(self) -> None:
        self._this_cpu("local_bh_disable").preempt_count += SOFTIRQ_DISABLE_OFFSET

    def local_bh_enable(self) -> None:
        """Re-enable bottom halves; the outermost enable outside interrupt context runs
        pending softirqs right here, in the caller (invariant 13)."""
        c = self._this_cpu("local_bh_enable")
        pc = c.preempt_count
        if (pc & SOFTIRQ_MASK) < SOFTIRQ_DISABLE_OFFSET:
            raise IrqflowError(
                f"local_bh_enable() on CPU {c.nr} without a matching local_bh_disable() "
                f"(preempt_count={pc:#x})"
            )
        if pc & HARDIRQ_MASK or not c.irqs_on:
            self.log(c, "warn", "local_bh_enable() called in hardirq context or with IRQs off")
        c.preempt_count -= SOFTIRQ_DISABLE_OFFSET - 1  # keep one preempt count while running
        if c.softirq_pending and not cpumod.in_interrupt(c.preempt_count) and c.irqs_on:
            self.engine.run_inline(c, do_softirq(self, c))
        c.preempt_count -= 1

    def bh_disabled(self) -> _BhDisabled:
        """``with k.bh_disabled():`` = local_bh_disable() ... local_bh_enable()."""
        return _BhDisabled(self)

    def _atomic_message(self, c: Cpu, what: str) -> str:
        pc = c.preempt_count
        where = c.running.where if c.running is not None else c.current.comm
        return (
            f"BUG: sleeping function called from invalid context at {what} in "
            f"{cpumod.context_name(pc)} context: in_atomic(): {1 if pc else 0}, "
            f"irqs_disabled(): {0 if c.irqs_on else 1}, preempt_count: {pc:#x}, "
            f"pid: {c.current.pid}, name: {where}"
        )

    def might_sleep(self, what: str = "might_sleep()") -> None:
        """Raise :class:`SleepInAtomicContext` if the caller may not sleep here."""
        c = self.engine.current_cpu
        if c is None:
            return
        if c.preempt_count or not c.irqs_on:
            raise SleepInAtomicContext(self._atomic_message(c, what))

    def kmalloc(self, size: int, gfp: int = GFP_KERNEL) -> bytearray:
        """Allocate ``size`` bytes; ``GFP_KERNEL`` may sleep, so it is refused in atomic
        context: use ``GFP_ATOMIC`` there."""
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"kmalloc({size!r}): size must be a non-negative int")
        if gfp & GFP_KERNEL:
            self.might_sleep(f"kmalloc({size}, GFP_KERNEL)")
        return bytearray(size)

    def udelay(self, us: float) -> None:
        """Busy-wait ``us`` microseconds: in sim, charge that CPU time to the running code."""
        c = self.engine.current_cpu
        if c is None:
            c = self._this_cpu("udelay")
        if us < 0:
            raise ValueError(f"udelay({us}): a delay cannot be negative")
        c.charge(int(us * 1000))

    def ndelay(self, ns: int) -> None:
        """Busy-wait ``ns`` nanoseconds (see :meth:`udelay`)."""
        c = self.engine.current_cpu
        if c is None:
            c = self._this_cpu("ndelay")
        if ns < 0:
            raise ValueError(f"ndelay({ns}): a delay cannot be negative")
        c.charge(int(ns))

    # ------------------------------------------------------------------ softirqs
    def open_softirq(self, nr: int | SoftIrq, action: Callable[[], Any]) -> None:
        """Install ``action()`` as the handler of vector ``nr``."""
        nr = self._vec(nr, "open_softirq")
        if nr in (HI_SOFTIRQ, TASKLET_SOFTIRQ):
            raise IrqflowError(
                f"open_softirq({SOFTIRQ_NAMES[nr]}_SOFTIRQ): that vector runs the tasklets; "
                "use Tasklet with k.tasklet_schedule / k.tasklet_hi_schedule instead"
            )
        if not callable(action):
            raise TypeError(f"open_softirq({SOFTIRQ_NAMES[nr]}): action {action!r} is not callable")
        self._softirq_vec[nr] = user_action(action, nr)

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

    def tasklet_disable(self, t: Tasklet) -> None:
        """Disable ``t`` and wait until it is not running anywhere (invariant 24)."""
        self._tasklet(t).count += 1
        self._wait(lambda: not t.state & TASKLET_STATE_RUN, f"tasklet_disable({t.name})")

    def tasklet_enable(self, t: Tasklet) -> None:
        """Undo one disable; a tasklet scheduled meanwhile runs on the next pass."""
        if self._tasklet(t).count == 0:
            raise IrqflowError(f"tasklet_enable({t.name}): it is not disabled (count is 0)")
        t.count -= 1

    def tasklet_kill(self, t: Tasklet) -> None:
        """Wait until ``t`` is neither scheduled nor running (invariant 25)."""
        self._tasklet(t)
        c = self.engine.current_cpu
        if c is not None and cpumod.in_interrupt(c.preempt_count):
            self.log(c, "warn", "Attempt to kill tasklet from interrupt")
        if t.count and t.state & TASKLET_STATE_SCHED:
            raise IrqflowError(
                f"tasklet_kill({t.name}) would wait forever: the tasklet is scheduled but "
                f"disabled (count={t.count}); call tasklet_enable first"
            )
        self._wait(
            lambda: not t.state & (TASKLET_STATE_SCHED | TASKLET_STATE_RUN),
            f"tasklet_kill({t.name})",
        )

    # ------------------------------------------------------------------ threads
    def _spawn(
        self,
        comm: str,
        cpu: int,
        body: Callable[[], Flow],
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
        """Start a thread running ``fn(k)``; ``fn`` may be ``async def`` and await
        :meth:`msleep` / :meth:`cond_resched`.  Its CPU time counts as user time."""
        if not callable(fn):
            raise TypeError(f"kthread_run({fn!r}, {name!r}): fn must be callable as fn(k)")
        if cpu is None:
            cpu = min(self.cpus, key=lambda c: (len(c.rq), c.nr)).nr
        elif not isinstance(cpu, int) or not 0 <= cpu < len(self.cpus):
            raise IrqflowError(
                f"kthread_run({name!r}, cpu={cpu!r}): CPUs are 0..{len(self.cpus) - 1}"
            )
        if inspect.iscoroutinefunction(fn):
            body = self._async_body(fn, name)
        else:
            run = Run(fn, (self,), name)

            def body() -> Flow:
                yield run

        return self._spawn(name, cpu, body, policy=policy, prio=prio, nice=nice, acct=cpumod.USER)

    def _async_body(self, fn: Callable[[Any], Awaitable[Any]], name: str) -> Callable[[], Flow]:
        def step(send: Callable[[Any], Any], value: Any) -> tuple[bool, Any]:
            try:
                return False, send(value)
            except StopIteration as stop:
                return True, stop.value

        def body() -> Flow:
            it = fn(self).__await__()
            value: Any = None
            while True:
                res = yield Run(step, (it.send, value), name)
                if res is FAILED:
                    return
                done, eff = res
                if done:
                    return
                if not isinstance(eff, (Sleep,)) and eff is not COND_RESCHED:
                    self.log(
                        self.cpus[0],
                        "err",
                        f"kernel thread {name} awaited {eff!r}, which irqflow cannot wait "
                        "for; await k.msleep(ms) or k.cond_resched()",
                    )
                    return
                value = yield eff

        return body

    def msleep(self, ms: float) -> _Await:
        """``await k.msleep(ms)`` from a kernel thread: sleep (never in atomic context)."""
        self._this_cpu("msleep")
        self.might_sleep(f"msleep({ms})")
        if ms < 0:
            raise ValueError(f"msleep({ms}): cannot sleep a negative time")
        return _Await(Sleep(int(ms * 1_000_000)))

    def cond_resched(self) -> _Await:
        """``await k.cond_resched()``: let another task run if one should."""
        self._this_cpu("cond_resched")
        self.might_sleep("cond_resched()")
        return _Await(COND_RESCHED)

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
        self._after_wake(c, t)
        return True

    def _after_wake(self, c: Cpu, t: Task) -> None:
        if self.tracing:
            here = self.engine.current_cpu or c
            self.tracer.emit(
                here,
                "sched:sched_wakeup",
                {"comm": t.comm, "pid": t.pid, "prio": t.prio, "target_cpu": c.nr},
            )
        if c.rq.wakeup_should_preempt(c.current, t):
            c.need_resched = True
        self.engine.kick(c)

    def _scheduler_tick(self, c: Cpu) -> None:
        curr = c.current
        if curr is c.idle_task:
            if len(c.rq):
                c.need_resched = True
            return
        if c.rq.tick_should_preempt(curr):
            c.need_resched = True

    # ------------------------------------------------------------------ observing
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
            oopses=tuple(self._oopses),
            log=tuple(self._log),
        )

    def irq_state(self, irq: int) -> str:
        """The line's state bits as text, e.g. ``"DISABLED|MASKED"`` (for debugging)."""
        from irqflow.core.irq.desc import state_names

        return state_names(self._desc(irq, "irq_state").state)
