"""The seed article, statement by statement.

/work/shared/seed/how-linux-handles-interrupts.txt ("How Linux Handles Interrupts: A
Five-Stage Deep Dive") describes behaviour that irqflow must show.  Each test below is
named after one statement and quotes it in its docstring; it then drives a simulated
machine and checks exact times, orders and counts.  The workqueue section belongs to a
later issue and is not tested here.

Timing model: every kernel path cost is 0 except one ``__do_softirq`` pass (``PASS_NS``,
irqflow's ``min_loop_ns`` floor); driver code runs at the start of its segment and the CPU
time it charges with ``udelay`` follows.  The last two tests (determinism, CPU-time
accounting) use the default, non-zero costs.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from irqflow import (
    GFP_ATOMIC,
    GFP_KERNEL,
    IRQ_HANDLED,
    IRQF_SHARED,
    Kernel,
    SleepInAtomicContext,
    Tasklet,
)
from irqflow.trace.ftrace import format_trace
from support import (
    BLOCK,
    HARDIRQ_OFFSET,
    HI,
    MS,
    NET_RX,
    PASS_NS,
    SOFTIRQ_OFFSET,
    TASKLET,
    TIMER,
    US,
    events,
    irq_line,
    make_kernel,
)


def handler_entries(k: Kernel, irq: int | None = None) -> list[tuple[int, int]]:
    """(ts, cpu) of each irq_handler_entry (of line ``irq``)."""
    return [
        (e.ts, e.cpu)
        for e in events(k, "irq:irq_handler_entry")
        if irq is None or e.fields["irq"] == irq
    ]


# === First Stage: Getting the Interrupt Number =================================================


def test_stage1_each_cpu_responds_to_interrupts_with_the_same_isr() -> None:
    """ "Each CPU can respond to interrupts using the same interrupt service routine (ISR).\""""
    k = make_kernel()
    calls: list[tuple[int, int]] = []
    irq_line(k, 10, lambda: calls.append((k.now(), k.smp_processor_id())), at=[], cpus={0})
    k.call_at(10 * US, k.raise_irq, 10)
    k.call_at(20 * US, k.irq_set_affinity, 10, {1})
    k.call_at(30 * US, k.raise_irq, 10)
    k.run(until=1 * MS)
    assert calls == [(10 * US, 0), (30 * US, 1)]
    assert k.statistics().irqs[10].per_cpu == (1, 1)


def test_stage1_cpu_disables_interrupts_on_isr_entry_because_isr_is_not_reentrant() -> None:
    """ "When the ISR is entered, the CPU automatically disables further interrupts on that
    CPU because the ISR is not re‑entrant."

    The handler sees IRQs off; the same line raised again on the same CPU during the
    100 us handler waits, and the handler is entered again only after it returned."""
    k = make_kernel()
    seen: list[tuple[int, bool]] = []

    def body() -> None:
        seen.append((k.now(), k.irqs_disabled()))
        k.udelay(100)

    irq_line(k, 10, body, at=[10 * US, 50 * US], cpus={0})
    k.run(until=1 * MS)
    assert seen == [(10 * US, True), (110 * US, True)]
    exits = [e.ts for e in events(k, "irq:irq_handler_exit")]
    assert exits == [110 * US, 210 * US]
    # never nested: each entry follows the previous exit
    names = [e.name for e in k.trace.events() if e.name.startswith("irq:irq_handler")]
    assert names == ["irq:irq_handler_entry", "irq:irq_handler_exit"] * 2


def test_stage1_isr_saves_interrupted_context_and_passes_the_irq_number() -> None:
    """ "The ISR pushes the interrupt number and the current register state onto the stack,
    then calls do_IRQ."

    The handler receives the interrupt number; the interrupted kthread keeps its place: it
    needs 1000 us of CPU, is interrupted for 50 us at 300 us, and finishes at exactly
    1050 us having been charged exactly 1000 us."""
    k = make_kernel(cpus=1)
    got: list[tuple[int, Any, str]] = []

    def handler(irq: int, dev_id: Any) -> int:
        got.append((irq, dev_id, k.current().comm))
        k.udelay(50)
        return IRQ_HANDLED

    k.request_irq(10, handler, 0, "dev", "cookie")
    k.call_at(300 * US, k.raise_irq, 10)
    k.kthread_run(lambda k: k.udelay(1000), "worker", cpu=0)
    k.run(until=5 * MS)

    assert got == [(10, "cookie", "worker")]
    (entry,) = events(k, "irqflow:irq_entry")
    assert (entry.ts, entry.fields["irq"], entry.comm) == (300 * US, 10, "worker")
    done = [e for e in events(k, "sched:sched_switch") if e.fields["prev_comm"] == "worker"]
    assert [(e.ts, e.fields["prev_state"]) for e in done] == [(1050 * US, "X")]
    cpu = k.statistics().cpus[0]
    assert (cpu.user, cpu.irq) == (1000 * US, 50 * US)


def test_stage1_interrupted_softirq_resumes_with_its_remaining_cpu_time() -> None:
    """ "The ISR pushes ... the current register state onto the stack": a softirq that is
    interrupted 30 us into its 100 us resumes where it was and ends 20 us (the nested
    handler) late, having been charged exactly its 100 us."""
    k = make_kernel(cpus=1)
    k.open_softirq(NET_RX, lambda: k.udelay(100))
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.udelay(20), at=10 * US + PASS_NS + 30 * US, cpus={0})
    k.run(until=1 * MS)

    start = 10 * US + PASS_NS
    assert [e.ts for e in events(k, "irq:softirq_entry")] == [start]
    assert [e.ts for e in events(k, "irq:softirq_exit")] == [start + 120 * US]
    assert handler_entries(k, 11) == [(start + 30 * US, 0)]
    cpu = k.statistics().cpus[0]
    assert cpu.softirq == PASS_NS + 100 * US
    assert cpu.irq == 20 * US


# === Second Stage: Interrupt Serialization ======================================================


def two_cpu_line(arrivals: list[int]) -> Kernel:
    """Line 10 may go to CPU 0 or 1; its handler takes 100 us; first raise at 10 us (it
    goes to CPU 0), then ``arrivals`` (they go to the idle CPU 1)."""
    k = make_kernel()
    irq_line(k, 10, lambda: k.udelay(100), at=[10 * US, *arrivals])
    k.run(until=2 * MS)
    return k


def test_stage2_same_irq_on_other_cpu_sets_trigger_flag_and_returns() -> None:
    """ "If the same interrupt is already in the “executing” state on another CPU, the
    kernel sets a “trigger” flag and returns immediately."

    CPU 1 takes the second arrival while CPU 0 runs the handler: it records PENDING
    (irqflow:irq_pending) and leaves at once, without calling the handler or counting
    the event in /proc/interrupts."""
    k = two_cpu_line([50 * US])
    cpu1 = [(e.ts, e.name) for e in k.trace.events() if e.cpu == 1]
    assert cpu1 == [
        (50 * US, "irqflow:irq_entry"),
        (50 * US, "irqflow:irq_pending"),
        (50 * US, "irqflow:irq_restore"),
    ]
    (pending,) = events(k, "irqflow:irq_pending")
    assert pending.fields["inprogress_cpu"] == 0
    assert k.statistics().irqs[10].per_cpu == (1, 0)


def test_stage2_first_cpu_checks_flag_and_processes_interrupt_again() -> None:
    """ "After the first CPU finishes, it checks the flag and, if set, processes the
    interrupt again."

    CPU 0 runs the handler a second time right after the first run; CPU 1 never runs it."""
    k = two_cpu_line([50 * US])
    assert handler_entries(k) == [(10 * US, 0), (110 * US, 0)]
    assert [e.ts for e in events(k, "irq:irq_handler_exit")] == [110 * US, 210 * US]
    # one hardware interrupt on CPU 0 did both runs
    assert [e.ts for e in events(k, "irqflow:irq_entry", cpu=0)] == [10 * US]


def test_stage2_no_flag_no_second_run() -> None:
    """ "... and, if set, processes the interrupt again": without an arrival during the run
    the flag stays clear and the handler runs once."""
    k = two_cpu_line([])
    assert handler_entries(k) == [(10 * US, 0)]


def test_stage2_loop_calls_handle_irq_event_repeatedly() -> None:
    """ "This creates a loop where handle_IRQ_event is repeatedly called."

    An arrival during each of the first three runs keeps CPU 0 in the loop: four
    back-to-back runs from one entry, counted once in /proc/interrupts."""
    k = two_cpu_line([50 * US, 150 * US, 250 * US])
    assert handler_entries(k) == [(t * US, 0) for t in (10, 110, 210, 310)]
    assert [e.ts for e in events(k, "irqflow:irq_entry", cpu=0)] == [10 * US]
    assert len(events(k, "irqflow:irq_pending", cpu=1)) == 3
    assert k.statistics().irqs[10].per_cpu == (1, 0)


# === Third Stage: Handling with Interrupts Disabled =============================================


def test_stage3_handle_irq_event_invokes_handlers_registered_with_request_irq() -> None:
    """ "handle_IRQ_event invokes the handler registered via request_irq."

    On a shared line every registered handler is called, in registration order, with the
    interrupt number and its own dev_id."""
    k = make_kernel()
    calls: list[tuple[int, Any]] = []

    def handler(irq: int, dev_id: Any) -> int:
        calls.append((irq, dev_id))
        return IRQ_HANDLED

    k.request_irq(10, handler, IRQF_SHARED, "nic", "nic-dev")
    k.request_irq(10, handler, IRQF_SHARED, "disk", "disk-dev")
    k.call_at(10 * US, k.raise_irq, 10)
    k.run(until=1 * MS)
    assert calls == [(10, "nic-dev"), (10, "disk-dev")]
    assert [e.fields["name"] for e in events(k, "irq:irq_handler_entry")] == ["nic", "disk"]


def test_stage3_handlers_run_with_interrupts_disabled() -> None:
    """ "Handlers usually run with interrupts disabled; they can be enabled but only if the
    code is fully re‑entrant, which is rare."

    Handlers run in hardirq context with IRQs off.  (Modern kernels go further: a handler
    that turns IRQs on gets a warning and they are turned off again.)"""
    k = make_kernel()
    seen: list[tuple[bool, bool, int]] = []

    def quiet() -> None:
        seen.append((k.irqs_disabled(), k.in_hardirq(), k.preempt_count()))

    def rude() -> None:
        k.local_irq_enable()

    irq_line(k, 10, quiet, at=10 * US)
    irq_line(k, 11, rude, at=20 * US)
    k.run(until=1 * MS)
    assert seen == [(True, True, HARDIRQ_OFFSET)]
    assert all(e.irqs_off for e in events(k, "irq:irq_handler_exit"))
    warnings = [r.text for r in k.statistics().log if "enabled interrupts" in r.text]
    assert len(warnings) == 1
    assert "irq 11" in warnings[0]


def test_stage3_long_handlers_with_interrupts_disabled_block_subsequent_interrupts() -> None:
    """ "Long handlers that run with interrupts disabled block subsequent interrupts."

    A 1 ms handler on CPU 0 delays another line raised on CPU 0 at 100 us until 1010 us."""
    k = make_kernel()
    irq_line(k, 10, lambda: k.udelay(1000), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: None, at=100 * US, cpus={0})
    k.run(until=5 * MS)
    assert handler_entries(k, 11) == [(1010 * US, 0)]


def test_stage3_isr_does_non_reentrant_part_then_raise_softirq_and_returns() -> None:
    """ "... so the kernel introduces softirqs: the non‑re‑entrant part is done in the ISR,
    then raise_softirq schedules a softirq and the ISR returns."

    The ISR does 10 us and raises NET_RX; NET_RX (1 ms) runs only after the handler
    returned, with IRQs on, so another line arriving at 500 us is served at once instead
    of waiting 1 ms."""
    k = make_kernel()
    k.open_softirq(NET_RX, lambda: k.udelay(1000))

    def isr() -> None:
        k.udelay(10)
        k.raise_softirq(NET_RX)

    irq_line(k, 10, isr, at=10 * US, cpus={0})
    irq_line(k, 11, lambda: None, at=500 * US, cpus={0})
    k.run(until=5 * MS)
    (raise_ev,) = events(k, "irq:softirq_raise")
    (exit_ev, _) = events(k, "irq:irq_handler_exit")
    (entry,) = events(k, "irq:softirq_entry")
    assert raise_ev.preempt_count == HARDIRQ_OFFSET
    assert exit_ev.ts == 20 * US
    assert entry.ts == 20 * US + PASS_NS
    assert handler_entries(k, 11) == [(500 * US, 0)]


# === Fourth Stage: Softirq Processing with Interrupts Enabled ===================================


def test_stage4_after_the_isr_loop_do_softirq_processes_pending_softirqs() -> None:
    """ "After the ISR loop, do_softirq processes pending softirqs."

    Both runs of the handler loop (stage 2 replay) raise NET_RX; it runs once, after the
    last run of the loop."""
    k = make_kernel()
    k.open_softirq(NET_RX, lambda: None)

    def isr() -> None:
        k.raise_softirq(NET_RX)
        k.udelay(100)

    irq_line(k, 10, isr, at=[10 * US, 50 * US])
    k.run(until=1 * MS)
    assert handler_entries(k) == [(10 * US, 0), (110 * US, 0)]
    assert len(events(k, "irq:softirq_raise")) == 2
    assert [(e.ts, e.cpu) for e in events(k, "irq:softirq_entry")] == [(210 * US + PASS_NS, 0)]


def test_stage4_each_cpu_has_a_softirq_bitmask_and_open_softirq_handlers_run() -> None:
    """ "Each CPU maintains a bitmask of softirq numbers; the corresponding softirq handler
    (registered with open_softirq) is invoked."

    CPU 0 raises TIMER and NET_RX, CPU 1 raises BLOCK at the same instant: each CPU runs
    exactly its own bits' handlers, lowest number first."""
    k = make_kernel()
    ran: list[tuple[str, int]] = []
    for nr, name in ((TIMER, "timer"), (NET_RX, "net_rx"), (BLOCK, "block")):
        k.open_softirq(nr, lambda name=name: ran.append((name, k.smp_processor_id())))

    def cpu0() -> None:
        k.raise_softirq(NET_RX)
        k.raise_softirq(TIMER)

    irq_line(k, 10, cpu0, at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.raise_softirq(BLOCK), at=10 * US, cpus={1})
    k.run(until=1 * MS)
    assert sorted(ran) == [("block", 1), ("net_rx", 0), ("timer", 0)]
    assert [name for name, cpu in ran if cpu == 0] == ["timer", "net_rx"]
    snap = k.statistics()
    assert (snap.softirqs["TIMER"], snap.softirqs["NET_RX"], snap.softirqs["BLOCK"]) == (
        (1, 0),
        (1, 0),
        (0, 1),
    )


def test_stage4_softirqs_run_with_interrupts_enabled_allowing_nesting() -> None:
    """ "Softirqs are similar to interrupts but run with interrupts enabled, allowing
    nesting."

    NET_RX runs with IRQs on; a line raised 40 us into it is served at that instant,
    nested inside the softirq (hardirq count on top of the softirq count)."""
    k = make_kernel()
    seen: list[bool] = []

    def rx() -> None:
        seen.append(k.irqs_disabled())
        k.udelay(100)

    k.open_softirq(NET_RX, rx)
    start = 10 * US + PASS_NS
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: None, at=start + 40 * US, cpus={0})
    k.run(until=1 * MS)
    assert seen == [False]
    seq = [
        (e.ts, e.name, e.preempt_count)
        for e in k.trace.events()
        if e.name in ("irq:softirq_entry", "irq:softirq_exit")
        or (e.name == "irq:irq_handler_entry" and e.fields["irq"] == 11)
    ]
    assert seq == [
        (start, "irq:softirq_entry", SOFTIRQ_OFFSET),
        (start + 40 * US, "irq:irq_handler_entry", HARDIRQ_OFFSET + SOFTIRQ_OFFSET),
        (start + 100 * US, "irq:softirq_exit", SOFTIRQ_OFFSET),
    ]


def test_stage4_nested_interrupts_stop_after_the_third_stage() -> None:
    """ "Only the first‑level ISR reaches this stage; nested interrupts stop after the
    third stage."

    A line nested in NET_RX raises TIMER: its exit path runs no softirq; TIMER waits for
    the first-level run's next pass."""
    k = make_kernel()
    k.open_softirq(NET_RX, lambda: k.udelay(100))
    k.open_softirq(TIMER, lambda: None)
    start = 10 * US + PASS_NS
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    irq_line(k, 11, lambda: k.raise_softirq(TIMER), at=start + 40 * US, cpus={0})
    k.run(until=1 * MS)
    seq = [
        (e.ts, e.name.split(":")[1], e.fields.get("irq", e.fields.get("vec")))
        for e in k.trace.events()
        if e.cpu == 0 and e.name != "irq:softirq_raise"
    ]
    assert seq == [
        (10 * US, "irq_entry", 10),
        (10 * US, "irq_handler_entry", 10),
        (10 * US, "irq_handler_exit", 10),
        (start, "softirq_entry", NET_RX),
        (start + 40 * US, "irq_entry", 11),
        (start + 40 * US, "irq_handler_entry", 11),
        (start + 40 * US, "irq_handler_exit", 11),
        (start + 40 * US, "irq_restore", 11),  # stage 3 was the last one for it
        (start + 100 * US, "softirq_exit", NET_RX),
        (start + 100 * US + PASS_NS, "softirq_entry", TIMER),
        (start + 100 * US + PASS_NS, "softirq_exit", TIMER),
        (start + 100 * US + PASS_NS, "irq_restore", 10),
    ]


def test_stage4_many_softirqs_overflow_to_ksoftirqd() -> None:
    """ "If many softirqs accumulate, the kernel offloads the remaining work to the
    ksoftirqd kernel thread."

    A softirq that keeps re-raising itself gets 10 passes at irq exit; the other 20 runs
    happen in ksoftirqd/0."""
    k = make_kernel()
    runs: list[str] = []

    def rx() -> None:
        runs.append(k.current().comm)
        k.udelay(10)
        if len(runs) < 30:
            k.raise_softirq(NET_RX)

    k.open_softirq(NET_RX, rx)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={0})
    k.run(until=10 * MS)
    assert runs == ["swapper/0"] * 10 + ["ksoftirqd/0"] * 20
    assert k.statistics().ksoftirqd_wakeups == (1, 0)


# === Fifth Stage: Tasklet Processing with Interrupts Enabled ====================================


def test_stage5_tasklets_are_built_on_hi_softirq_and_tasklet_softirq() -> None:
    """ "Tasklets are built on top of softirqs. The kernel defines two softirq masks,
    HI_SOFTIRQ and TASKLET_SOFTIRQ, each with its own handler."

    tasklet_hi_schedule raises vector 0 and its tasklet runs inside HI_SOFTIRQ;
    tasklet_schedule raises vector 6 and its tasklet runs inside TASKLET_SOFTIRQ."""
    k = make_kernel()
    ran: list[str] = []
    hi = Tasklet(ran.append, "hi")
    lo = Tasklet(ran.append, "lo")

    def isr() -> None:
        k.tasklet_schedule(lo)
        k.tasklet_hi_schedule(hi)

    irq_line(k, 10, isr, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    assert ran == ["hi", "lo"]
    assert [int(e.fields["vec"]) for e in events(k, "irq:softirq_raise")] == [TASKLET, HI]
    seq = [
        e.fields.get("vec", e.name)
        for e in k.trace.events()
        if e.name in ("irq:softirq_entry", "irq:tasklet_entry")
    ]
    assert seq == [HI, "irq:tasklet_entry", TASKLET, "irq:tasklet_entry"]


def test_stage5_isr_calls_tasklet_schedule_to_mark_a_tasklet() -> None:
    """ "After the ISR finishes its disabled‑interrupt part, it calls tasklet_schedule or
    tasklet_hi_schedule to mark a tasklet."

    The schedule only marks the tasklet (scheduled, vector raised); it runs after the
    ISR returned."""
    k = make_kernel()
    ran: list[int] = []
    t = Tasklet(lambda data: ran.append(k.now()))
    marked: list[tuple[bool, bool, list[int]]] = []

    def isr() -> None:
        k.udelay(30)
        k.tasklet_schedule(t)
        marked.append((t.scheduled, t.running, list(ran)))

    irq_line(k, 10, isr, at=10 * US, cpus={0})
    k.run(until=1 * MS)
    assert marked == [(True, False, [])]
    assert ran == [40 * US + PASS_NS]
    assert not t.scheduled


def test_stage5_tasklet_runs_in_softirq_context_serialized_across_cpus() -> None:
    """ "The tasklet’s handler runs in softirq context, is serialized across CPUs, and does
    not need to be re‑entrant."

    The callback runs serving softirqs (0x100, IRQs on).  Scheduled from both CPUs while
    it runs for 200 us, it never runs twice at once: its runs do not overlap."""
    k = make_kernel()
    ctx: list[tuple[int, int, bool, bool]] = []

    def func(data: Any) -> None:
        ctx.append((k.smp_processor_id(), k.preempt_count(), k.in_serving_softirq(),
                    k.irqs_disabled()))  # fmt: skip
        k.udelay(200)

    t = Tasklet(func)
    irq_line(k, 10, lambda: k.tasklet_schedule(t), at=[10 * US, 100 * US], cpus={0})
    irq_line(k, 11, lambda: k.tasklet_schedule(t), at=[50 * US], cpus={1})
    k.run(until=5 * MS)

    # CPU 1's schedule at 50 us queues it there (SCHED was cleared before the callback);
    # CPU 0's at 100 us (an interrupt nested in the callback) finds SCHED set: no-op.
    # CPU 1 finds it running and requeues it until CPU 0 is done: exactly two runs.
    assert ctx == [(0, SOFTIRQ_OFFSET, True, False), (1, SOFTIRQ_OFFSET, True, False)]
    spans = sorted(
        (e.ts, e.cpu, e.name) for e in k.trace.events() if e.name.startswith("irq:tasklet_")
    )
    first_end = 10 * US + PASS_NS + 200 * US
    assert spans[:2] == [
        (10 * US + PASS_NS, 0, "irq:tasklet_entry"),
        (first_end, 0, "irq:tasklet_exit"),
    ]
    assert [(cpu, name) for _, cpu, name in spans[2:]] == [
        (1, "irq:tasklet_entry"),
        (1, "irq:tasklet_exit"),
    ]
    assert first_end <= spans[2][0] <= first_end + 2 * PASS_NS


# === Conclusion =================================================================================


def test_conclusion_cpu_restores_saved_registers_and_exits_interrupt_flow() -> None:
    """ "After completing the five stages, the CPU restores the registers saved on the
    stack and exits the interrupt handling flow."

    A kthread interrupted by an interrupt that goes through all five stages (handler,
    softirq, tasklet) continues afterwards in exactly the state it had: task context,
    preempt_count 0, IRQs on, same CPU, and with all of its own CPU time."""
    k = make_kernel(cpus=1)
    k.open_softirq(NET_RX, lambda: k.udelay(20))
    t = Tasklet(lambda data: k.udelay(5))

    def isr() -> None:
        k.udelay(10)
        k.raise_softirq(NET_RX)
        k.tasklet_schedule(t)

    irq_line(k, 10, isr, at=50 * US, cpus={0})
    after: list[tuple[int, int, bool, bool, int, str]] = []

    async def worker(k: Kernel) -> None:
        k.udelay(100)
        await k.cond_resched()
        after.append((k.now(), k.preempt_count(), k.irqs_disabled(), k.in_task(),
                      k.smp_processor_id(), k.current().comm))  # fmt: skip

    k.kthread_run(worker, "worker", cpu=0)
    k.run(until=1 * MS)

    # handler, then one softirq pass running NET_RX and TASKLET (the tasklet)
    irq_time = 10 * US + PASS_NS + 20 * US + 5 * US
    assert after == [(100 * US + irq_time, 0, False, True, 0, "worker")]
    (restore,) = events(k, "irqflow:irq_restore")
    assert (restore.ts, restore.comm, restore.preempt_count) == (50 * US + irq_time, "worker", 0)
    assert k.statistics().cpus[0].user == 100 * US


# === Scheduling Considerations ==================================================================


def test_sched_interrupt_handlers_have_no_task_structure_and_cannot_sleep() -> None:
    """ "Interrupt handlers have no task structure, so they cannot be scheduled or put to
    sleep."

    In a handler, current is the interrupted task (the handler has none of its own), and
    every attempt to sleep is refused with SleepInAtomicContext."""
    k = make_kernel()
    seen: list[Any] = []

    def isr() -> None:
        seen.append(k.current().comm)
        for attempt in (lambda: k.might_sleep(), lambda: k.msleep(1)):
            try:
                attempt()
            except SleepInAtomicContext:
                seen.append("refused")
            else:
                seen.append("slept")

    irq_line(k, 10, isr, at=10 * US, cpus={1})
    k.run(until=1 * MS)
    assert seen == ["swapper/1", "refused", "refused"]
    assert k.statistics().oopses == ()


def test_sched_low_priority_interrupts_can_occupy_the_cpu() -> None:
    """ "This can cause low‑priority interrupts to occupy the CPU ..."

    Even a SCHED_FIFO 99 kthread loses the CPU to every interrupt: 18 interrupts of 50 us
    stretch its 1 ms of work to 1.9 ms."""
    k = make_kernel(cpus=1)
    irq_line(k, 10, lambda: k.udelay(50), at=[n * 100 * US for n in range(1, 19)], cpus={0})
    k.kthread_run(lambda k: k.udelay(1000), "rt", cpu=0, policy="fifo", prio=99)
    k.run(until=5 * MS)
    done = [e for e in events(k, "sched:sched_switch") if e.fields["prev_comm"] == "rt"]
    assert [e.ts for e in done] == [1900 * US]
    cpu = k.statistics().cpus[0]
    assert (cpu.user, cpu.irq) == (1000 * US, 18 * 50 * US)


def test_sched_handlers_cannot_use_sleeping_memory_allocation() -> None:
    """ "... and prevents the use of sleeping functions (e.g., memory allocation) inside
    handlers."

    kmalloc(GFP_KERNEL) is refused in a handler; kmalloc(GFP_ATOMIC) works."""
    k = make_kernel()
    seen: list[Any] = []

    def isr() -> None:
        try:
            k.kmalloc(64, GFP_KERNEL)
        except SleepInAtomicContext:
            seen.append("GFP_KERNEL refused")
        seen.append(len(k.kmalloc(64, GFP_ATOMIC)))

    irq_line(k, 10, isr, at=10 * US)
    k.run(until=1 * MS)
    assert seen == ["GFP_KERNEL refused", 64]


def test_sched_ksoftirqd_defers_excess_softirq_work_but_sleeping_is_still_prohibited() -> None:
    """ "Newer kernels use ksoftirqd to defer excess softirq work to a kernel thread,
    though sleeping is still prohibited in the softirq context."

    The excess runs in ksoftirqd/1, a kernel thread, but still in softirq context where
    GFP_KERNEL allocation is refused."""
    k = make_kernel()
    seen: list[tuple[str, bool, str]] = []

    def rx() -> None:
        try:
            k.kmalloc(64, GFP_KERNEL)
            verdict = "allowed"
        except SleepInAtomicContext:
            verdict = "refused"
        seen.append((k.current().comm, k.in_serving_softirq(), verdict))
        if len(seen) < 12:
            k.raise_softirq(NET_RX)

    k.open_softirq(NET_RX, rx)
    irq_line(k, 10, lambda: k.raise_softirq(NET_RX), at=10 * US, cpus={1})
    k.run(until=1 * MS)
    assert seen == [("swapper/1", True, "refused")] * 10 + [("ksoftirqd/1", True, "refused")] * 2


# === Determinism and CPU-time accounting =======================================================


def busy_scenario(seed: int, until: int = 30 * MS) -> Kernel:
    """Two CPUs, default costs: three lines at seeded random times raising softirqs and
    tasklets, a self-re-raising softirq that overflows to ksoftirqd, and two kthreads."""
    k = Kernel(cpus=2, seed=seed)
    k.trace.enable("*")
    rng = random.Random(k.seed)
    rx_left = [40]
    tasklet = Tasklet(lambda data: k.udelay(rng.randint(5, 40)))
    hi = Tasklet(lambda data: k.udelay(3))

    def rx() -> None:
        k.udelay(rng.randint(5, 60))
        if rx_left[0] > 0:
            rx_left[0] -= 1
            k.raise_softirq(NET_RX)

    k.open_softirq(NET_RX, rx)
    k.open_softirq(TIMER, lambda: k.udelay(2))

    def nic() -> None:
        k.udelay(rng.randint(1, 20))
        k.raise_softirq(NET_RX)
        k.tasklet_schedule(tasklet)

    def disk() -> None:
        k.udelay(rng.randint(1, 10))
        k.tasklet_hi_schedule(hi)
        k.raise_softirq(TIMER)

    irq_line(k, 10, nic, at=sorted(rng.randrange(until) for _ in range(60)))
    irq_line(k, 11, disk, at=sorted(rng.randrange(until) for _ in range(60)), cpus={1})

    async def worker(k: Kernel) -> None:
        for _ in range(50):
            k.udelay(rng.randint(50, 300))
            if rng.random() < 0.3:
                with k.bh_disabled():
                    k.raise_softirq(TIMER)
            await k.msleep(rng.choice([0, 1]))

    k.kthread_run(worker, "worker0", cpu=0)
    k.kthread_run(worker, "worker1", cpu=1)
    k.run(until=until)
    return k


def test_determinism_same_seed_gives_byte_identical_ftrace_text() -> None:
    """Appendix A / API: the sim is deterministic; the same scenario and seed give the same
    ftrace text byte for byte, and a different seed gives a different one."""
    a = busy_scenario(7)
    b = busy_scenario(7)
    c = busy_scenario(8)
    text_a = format_trace(a.trace.events(), 2)
    text_b = format_trace(b.trace.events(), 2)
    text_c = format_trace(c.trace.events(), 2)
    assert len(a.trace.events()) > 1000
    assert text_a.encode() == text_b.encode()
    assert text_a != text_c
    assert a.statistics() == b.statistics()


def test_determinism_holds_across_processes_and_hash_seeds() -> None:
    """Determinism does not depend on the interpreter run: two fresh processes with
    different PYTHONHASHSEED values (set and dict-of-str order) produce the same ftrace
    text as this process."""
    code = (
        "import hashlib, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_seed\n"
        "from irqflow.trace.ftrace import format_trace\n"
        "k = test_seed.busy_scenario(7)\n"
        "text = format_trace(k.trace.events(), 2)\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    digests = set()
    for hashseed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hashseed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.add(out.stdout.strip())
    here = format_trace(busy_scenario(7).trace.events(), 2)
    assert digests == {hashlib.sha256(here.encode()).hexdigest()}


@pytest.mark.parametrize("until", [1 * MS, 7 * MS + 123, 12_345_678, 30 * MS])
def test_proc_stat_cpu_time_categories_sum_to_elapsed_time(until: int) -> None:
    """/proc/stat: user + nice + system + idle + irq + softirq of each CPU is exactly the
    elapsed time, also when the snapshot falls in the middle of a handler or softirq."""
    k = busy_scenario(3, until=until)
    snap = k.statistics()
    assert snap.time_ns == until
    for cpu in snap.cpus:
        parts = (cpu.user, cpu.nice, cpu.system, cpu.idle, cpu.irq, cpu.softirq)
        assert all(p >= 0 for p in parts)
        assert sum(parts) == snap.time_ns
    if until == 30 * MS:  # by then the scenario has used every category on both CPUs
        assert all(c.irq > 0 and c.softirq > 0 and c.user > 0 and c.idle > 0 for c in snap.cpus)
