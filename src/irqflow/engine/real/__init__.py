"""The real engine: the same kernel flows on OS threads, in wall-clock time.

Theory of operation
-------------------
**Threads.**  Each CPU is an OS thread (``swapper/N``) that runs that CPU's interrupt
context: it takes the lines in the CPU's request register (the core's
``take_pending_irqs``: ``do_irq``, top halves, then softirqs and tasklets at ``irq_exit``)
and sleeps when the register is empty.  Every task (``ksoftirqd/N``, ``events/N`` or
``kworker/N:M``, ``irq/24-eth0``, ``kthread_run`` threads) is an OS thread of its own,
named like the kernel thread, running the task's body: the same plain functions the sim
runs.  Blocking calls block the thread.  The device side (``call_at`` callbacks, the
tick, the watchdog) is one more thread, ``irqflow-clock``.

**The kernel lock.**  One lock protects the core's state.  Kernel flows run holding it;
it is released around every piece of driver code (handlers, softirq actions, tasklets,
work functions) and while a thread waits, so no lock is held while a handler runs.
Public ``Kernel`` methods take it on entry (:class:`RealKernel`), with ``with`` on the C
``RLock`` so that Ctrl-C cannot break it (:mod:`.lock`, :mod:`.signals`); ``raise_irq`` on
an edge line does not take it (:mod:`.raises`).

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
halves out.  Whoever holds the token takes the CPU's pending interrupts at its next
boundary with IRQs on (``local_irq_enable``, the end of a driver call, inside
``udelay``): a burst of softirq work, on the CPU thread or in ``ksoftirqd``, delays a new
top half by one driver call at most.  Python cannot interrupt a running
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
traces) but CPython has no thread priorities.  ``need_resched`` is never set
(``runs_scheduler`` is False in the engine contract).

**Modules.**  :mod:`.engine` holds the contract's members, the CPU and task threads and
the token; :mod:`.lock` the kernel lock; :mod:`.context` a task's view of its CPU;
:mod:`.clock` the clock thread and watchdog; :mod:`.lifecycle` stopping and the report;
:mod:`.raises` the lock-free raise path; :mod:`.signals` Ctrl-C and signal handlers.
"""

from irqflow.engine.real.context import set_os_thread_name, spin
from irqflow.engine.real.engine import RealEngine, Stopped
from irqflow.engine.real.report import StopReport

__all__ = ["RealEngine", "StopReport", "Stopped", "set_os_thread_name", "spin"]
