"""The engine contract: the only way kernel code and driver code touch time and threads.

Kernel flows (``do_irq``, the flow handlers, ``__do_softirq``, tasklets, timers,
``net_rx_action``, workers, IRQ threads, ``ksoftirqd``) and driver code are plain Python
functions that read like the kernel's C.  Where they need time or the scheduler they call
their engine through the members below, and nothing else of it; an engine in turn calls
only the core's public flow entry points (:func:`irqflow.core.entry.take_pending_irqs`,
the task bodies, the kernel's public API).

Two engines implement it:

* the **sim** engine (:mod:`irqflow.engine.sim`): deterministic virtual time.  Every
  context that can be suspended (a CPU's idle loop, each task) is a greenlet; ``busy``
  moves the clock forward inside the running code, and an interrupt that arrives meanwhile
  is taken right there, nested on the same Python stack;
* the **real** engine (:mod:`irqflow.engine.real`): wall-clock time on OS threads; ``busy``
  spins, blocking calls block the thread.

A *context* is a :class:`~irqflow.core.cpu.Cpu` as seen by the running code: on the sim
engine the CPU itself, on the real engine the running thread's view of its CPU (its own
``preempt_count``, IRQ flag and ``current``; the CPU's per-CPU data).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.sched import Task


class Engine(Protocol):
    """What the kernel core asks of an engine.  Only engines know time and threads."""

    #: the clock is the wall clock: a callback asked for a moment that has just passed
    #: runs at once instead of being an error, and waits from outside block the caller
    wall_clock: bool
    #: the kernel's own path costs (``KernelConfig.*_ns``: interrupt entry and exit, a
    #: softirq pass, a context switch ...) are CPU time this engine spends.  False on the
    #: wall clock, where the real paths take what they take.
    models_path_costs: bool
    #: the engine runs the kernel's scheduler (run queues pick the next task; wake-up and
    #: tick preemption set ``need_resched``).  False where the OS schedules the threads.
    runs_scheduler: bool

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held while the core's state changes: a no-op in the single-threaded sim, the
        kernel lock on the real engine (released around driver code and waits)."""
        ...

    @property
    def now(self) -> int:
        """The exact current time of the running context, in ns (sim: the moment the
        code has reached, the time it has been busy included)."""
        ...

    @property
    def current_cpu(self) -> Cpu | None:
        """The context the calling code runs in; None outside the machine (a script, a
        device callback)."""
        ...

    def boot(self) -> None:
        """Every CPU and boot task exists: get ready to run."""

    def add_task(self, t: Task) -> None:
        """Give task ``t`` an execution context (a greenlet, an OS thread) that will run
        ``t.body()`` in process context once the scheduler first picks it."""

    def busy(self, c: Cpu, ns: int, cat: str | None = None) -> None:
        """Context ``c`` executes for ``ns`` ns (``udelay``, the kernel's path costs).

        CPU time goes to ``cat`` (default: the context's category: irq, softirq, or the
        current task's).  With IRQs on, interrupts pending at the start, and those that
        arrive before the end, are taken inside this call, nested; the remaining time is
        then spent.  Returns at the end of the time, in the same context."""

    def irqs_enabled(self, c: Cpu) -> None:
        """The IRQ-enable boundary: ``c`` just turned local interrupts on; interrupts
        pending for its CPU that this context may take are taken here, nested."""

    def halt(self, c: Cpu) -> None:
        """The idle task has nothing to do: wait (IRQs on) for an interrupt or a wake-up;
        interrupts that arrive are taken inside this call."""

    def deliver(self, c: Cpu) -> None:
        """An interrupt was put in ``c``'s request register (``c.irr``): make its CPU
        notice (wake it from idle, interrupt its IRQs-on code)."""

    def kick(self, c: Cpu, t: Task) -> None:
        """Task ``t`` became runnable on ``c`` (and ``c.need_resched`` may be set)."""

    def schedule(self, c: Cpu) -> None:
        """``schedule()`` from process context on ``c``: let the next task run.  Returns
        when the calling task runs again; a task that marked itself sleeping first
        returns once it has been woken (``wake_up_process``)."""

    def sleep_until(self, c: Cpu, t_ns: int) -> None:
        """Process context: sleep until ``t_ns`` (or an earlier wake-up), exactly (the
        hrtimer behind ``usleep_range``/``fsleep``)."""

    def call_driver(self, c: Cpu, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Call driver code ``fn(*args)`` in context ``c`` and give its result; may raise
        whatever ``fn`` raises.  (The real engine releases the kernel lock around it and
        times it for the watchdog; the sim calls it directly and the core skips this.)"""

    def run_coroutine(self, c: Cpu, coro: Any, where: str) -> Any:
        """Run an ``async def`` body to its end in process context ``c``."""

    def call_at(self, t_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """The outside world: call ``fn(*args)`` at ``t_ns`` on no CPU."""

    def wait_until(self, pred: Callable[[], bool], what: str) -> None:
        """From outside the machine: return once ``pred()`` holds (sim: run virtual time
        until then; real: block the calling thread)."""

    def add_waiter(self, pred: Callable[[], bool], wake: Callable[[], object]) -> None:
        """Call ``wake()`` (with the lock held) once ``pred()`` holds.  Predicates are
        checked wherever the machine's state may have changed before time moves on."""

    def ensure_tick(self, c: Cpu) -> None:
        """``c`` has armed a timer: keep its tick running (NO_HZ stops it otherwise).

        The tick itself is the engine's: each period it sets ``c.tick_due`` and puts the
        local timer vector in ``c.irr``.  An idle CPU's tick stops; the engine then wakes
        it for ``k.timers.next_event(c)`` (a jiffy) and for nothing else."""

    def program_event(self, c: Cpu, t_ns: int) -> None:
        """Program ``c``'s clock event for its hrtimers: put the local timer vector in
        ``c.irr`` at ``t_ns`` (without ``tick_due``) unless an earlier request is
        pending.  When it fires, the engine asks ``k.hrtimers.next_event(c)`` again:
        timers cancelled since cost no interrupt, and a later head is re-programmed."""

    def cpu_times(self, c: Cpu) -> dict[str, int]:
        """``c``'s CPU time by category so far, the part under way included."""
        ...

    def run(self, until: int | None = None) -> None:
        """*sim*: advance virtual time to ``until`` (or until nothing is left to do)."""
