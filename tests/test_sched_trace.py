"""What the scheduler's tracepoints say on 6.13: the context they fire in (the idle
loop's preempt count, the scheduler's own locks), ``sched_waking`` before
``sched_wakeup``, how a sleeper sleeps (``prev_state``), and pids as on a booted system."""

from __future__ import annotations

from typing import Any

from irqflow import IRQ_HANDLED, KernelConfig, Work
from irqflow.trace.ftrace import format_event
from support import MS, US, events, handler, make_kernel

V613 = KernelConfig.preset("6.13")


def _flags(line: str) -> str:
    return line.split("] ", 1)[1].split()[0]


def test_an_interrupt_on_an_idle_cpu_traces_as_d_h1_on_6_13_and_d_h_on_2_6() -> None:
    """init_idle_preempt_count(): the idle loop runs with preempt_count 1 where the kernel
    has CONFIG_PREEMPT_COUNT; the seed's era has none."""
    for config, want in ((V613, "d.h1."), (KernelConfig.preset("2.6"), "d.h..")):
        k = make_kernel(1, config=config, trace="irq:irq_handler_entry")
        k.request_irq(24, handler(lambda: None), name="eth0")
        k.call_at(10 * US, k.raise_irq, 24)
        k.run(until=MS)
        (ev,) = events(k, "irq:irq_handler_entry")
        assert ev.comm == "<idle>" or ev.pid == 0
        assert _flags(format_event(ev)) == want, want


def test_sched_switch_holds_the_rq_lock_with_irqs_off() -> None:
    """__schedule traces sched_switch with preemption off and the run-queue lock held:
    ``d..2.`` on 6.13, ``d....`` where nothing counts (2.6)."""
    for config, want in ((V613, {"d..2."}), (KernelConfig.preset("2.6"), {"d...."})):
        k = make_kernel(1, config=config, trace="sched:sched_switch")
        k.kthread_run(lambda k: k.msleep(1), "sleeper")
        k.run(until=20 * MS)
        switches = events(k, "sched:sched_switch")
        assert len(switches) >= 3
        assert {_flags(format_event(e)) for e in switches} == want


def test_sched_waking_precedes_each_sched_wakeup_under_pi_lock_then_rq_lock() -> None:
    """try_to_wake_up: sched_waking under p->pi_lock (depth 2 from task context), then
    sched_wakeup with the run queue's lock as well (depth 3); from a hard IRQ on the idle
    CPU both add to its depth 1 (d.h3. / d.h4.)."""
    k = make_kernel(1, config=V613, trace="sched:sched_waking,sched:sched_wakeup")
    first, second = k.completion(), k.completion()

    def waiter(k: Any) -> None:
        first.wait()
        second.wait()

    def waker(k: Any) -> None:
        k.msleep(1)
        first.complete()  # from task context

    k.kthread_run(waiter, "waiter")
    k.kthread_run(waker, "waker")

    def top(irq: int, dev: Any) -> int:
        second.complete()  # from a hard IRQ on the idle CPU
        return IRQ_HANDLED

    k.request_irq(24, top, name="dev")
    k.call_at(12 * MS, k.raise_irq, 24)  # msleep(1) at HZ=250 ends on the tick at 8 ms
    k.run(until=20 * MS)
    evs = [e for e in k.trace.events() if e.fields.get("comm") == "waiter" and e.ts > 0]
    assert [e.name for e in evs] == ["sched:sched_waking", "sched:sched_wakeup"] * 2
    assert evs[0].fields == evs[1].fields
    assert [_flags(format_event(e)) for e in evs] == ["d..2.", "d..3.", "d.h3.", "d.h4."]
    assert evs[0].comm == "waker" and evs[2].pid == 0


def test_prev_state_says_how_the_task_sleeps() -> None:
    """msleep and completions sleep TASK_UNINTERRUPTIBLE (D); an IRQ thread and
    ksoftirqd wait TASK_INTERRUPTIBLE (S); an idle kworker sleeps TASK_IDLE (I)."""
    k = make_kernel(1, config=V613, trace="sched:sched_switch")
    k.kthread_run(lambda k: k.msleep(1), "sleeper")

    def top(irq: int, dev: Any) -> int:
        return 2  # IRQ_WAKE_THREAD

    k.request_threaded_irq(24, top, lambda irq, dev: IRQ_HANDLED, name="dev")
    k.schedule_work(Work(lambda w: None))
    k.call_at(3 * MS, k.raise_irq, 24)
    k.run(until=10 * MS)
    state = {}
    for e in events(k, "sched:sched_switch"):
        state.setdefault(e.fields["prev_comm"], set()).add(e.fields["prev_state"])
    assert state["sleeper"] == {"D", "X"}  # X: its body returned
    assert state["irq/24-dev"] == {"S"}
    assert {"I"} == {s for comm, ss in state.items() if comm.startswith("kworker/") for s in ss}
    assert state["swapper/0"] == {"R"}


def test_no_kernel_thread_is_init_or_kthreadd() -> None:
    """pid 1 is init and pid 2 kthreadd on every Linux machine; irqflow's threads come
    after them (and the idle tasks are pid 0)."""
    k = make_kernel(2, config=V613, trace=None)
    pids = {t.comm: t.pid for t in k.tasks}
    assert pids["ksoftirqd/0"] >= 3 and pids["ksoftirqd/1"] >= 3
    assert all(t.pid >= 3 for t in k.tasks if not t.comm.startswith("swapper/"))
    assert sorted(pids.values()) == sorted(set(pids.values()))
