"""The real engine's lifecycle promises: what ``stop()`` does and reports, from every
place it can be called, and what a stopped (or forked) machine does with later calls.

They assert orders, counts and report contents, never wall-clock windows: a ``timeout``
appears only as the generous limit of a wait that must end long before it.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from irqflow import IRQ_HANDLED, DelayedWork, Kernel, KernelConfig, Tasklet, Timer, Work
from irqflow.core.errors import IrqflowError
from irqflow.devices.real import SignalSource
from support import wait_for

#: the seed's workqueues: one events/N thread per CPU, items one after another
EVENTS_N = KernelConfig(workqueue_model="per-cpu-threads")

pytestmark = [pytest.mark.real_only, pytest.mark.usefixtures("no_leftover_threads")]


# ------------------------------------------------------------------ the drain tells the truth
def test_a_drain_with_a_worker_asleep_in_a_blocking_call_does_not_claim_success() -> None:
    """per-cpu-threads: events/0 sleeps in wait_for_completion inside a work item, so
    the items queued behind it cannot run; the machine looks idle (every thread asleep)
    but the drain must not say that everything ran."""
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    never = k.completion()
    ran: list[str] = []
    k.start()
    k.schedule_work(Work(lambda w: never.wait()))
    for i in range(3):
        k.schedule_work(Work(lambda w, i=i: ran.append(f"w{i}")))
    report = k.stop(drain=True, timeout=0.3)
    assert ran == []
    assert not report.drained and report.timed_out
    assert report.abandoned["work items"] == 4  # the sleeping one and the three behind it
    assert "the drain timed out" in str(report) and "everything pending ran" not in str(report)
    assert report.stuck_threads == ()  # asleep in an irqflow wait: stopping wakes it


@pytest.mark.parametrize("drain", [False, True])
def test_after_stop_returns_no_driver_code_starts(drain: bool) -> None:
    """stop(drain=False), or a drain that times out, while a work item runs: the item
    finishes its call, and nothing queued behind it (reported abandoned) ever runs."""
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def slow(w: Any) -> None:
        started.set()
        gate.wait(20)

    k.start()
    k.schedule_work(Work(slow))
    for i in range(3):
        k.schedule_work(Work(lambda w, i=i: ran.append(i)))
    started.wait(20)
    report = k.stop(drain=drain, timeout=0.2)
    assert report.stuck_threads == ("events/0",)
    assert report.abandoned["work items"] == 4
    assert report.timed_out is drain
    gate.set()
    for t in threading.enumerate():
        if t.name == "events/0":
            t.join(20)
    assert ran == []


def test_timers_and_delayed_work_not_yet_due_are_reported_abandoned() -> None:
    k = Kernel(cpus=1, engine="real")
    fired: list[str] = []
    k.start()
    k.add_timer(Timer(lambda d: fired.append("timer")), k.jiffies + k.msecs_to_jiffies(60_000))
    k.schedule_delayed_work(DelayedWork(lambda w: fired.append("work")), k.msecs_to_jiffies(60_000))
    k.schedule_work(Work(lambda w: fired.append("due")))
    report = k.stop()
    assert fired == ["due"]
    assert report.drained  # everything due ran
    assert report.abandoned == {"timers not yet due": 1, "delayed work items not yet due": 1}
    assert not report.clean
    assert str(report) == (
        "stopped: everything due ran; abandoned 1 timers not yet due, "
        "1 delayed work items not yet due; every thread joined"
    )


# ------------------------------------------------------------------ stop() from driver code
def _stop_from(kind: str) -> tuple[Kernel, Any]:
    """A machine whose driver code of ``kind`` calls stop() (drain=True, a long timeout
    that the drain must not wait for): the report it got."""
    k = Kernel(cpus=2, engine="real", config=KernelConfig(workqueue_model="cmwq"))
    reports: list[Any] = []

    def stop_now(*_: Any) -> None:
        reports.append(k.stop(drain=True, timeout=60))

    def top(irq: int, dev: Any) -> int:
        stop_now()
        return IRQ_HANDLED

    if kind == "handler":
        k.request_irq(24, top, name="dev")
    elif kind == "tasklet":
        t = Tasklet(stop_now)
        k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="dev")
    elif kind == "kthread":
        k.kthread_run(stop_now, "ctl")
    k.start()
    if kind in ("handler", "tasklet"):
        k.raise_irq(24)
    elif kind == "timer":
        k.add_timer(Timer(stop_now), k.jiffies + 1)
    elif kind == "work":
        k.schedule_work(Work(stop_now))
    elif kind == "signal":
        k.request_irq(41, top, name="term")
        got: list[int] = []

        def previous(signum: int, frame: Any) -> None:
            got.append(signum)

        old = signal.signal(signal.SIGUSR2, previous)
        try:
            SignalSource(k, 41, signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGUSR2)
            wait_for(lambda: bool(reports))
            # closed by a stop() on a CPU thread: the next signal puts the previous
            # handler back and hands the signal to it
            os.kill(os.getpid(), signal.SIGUSR2)
            wait_for(lambda: got == [signal.SIGUSR2])
            assert signal.getsignal(signal.SIGUSR2) is previous
        finally:
            signal.signal(signal.SIGUSR2, old)
    wait_for(lambda: bool(reports))
    return k, reports[0]


@pytest.mark.parametrize("kind", ["handler", "tasklet", "timer", "work", "kthread", "signal"])
def test_stop_from_driver_code_does_not_wait_for_itself(kind: str) -> None:
    k, report = _stop_from(kind)
    assert not report.timed_out, str(report)
    assert report.stuck_threads == ()
    assert report.caller  # who called it
    assert "the drain timed out" not in str(report)
    with pytest.raises(IrqflowError, match="already stopped"):
        k.stop()


def test_stop_from_a_work_item_reports_what_waits_behind_it() -> None:
    """per-cpu-threads: the items queued behind the caller on events/0 cannot run."""
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    reports: list[Any] = []
    ran: list[int] = []
    queued = threading.Event()
    k.start()
    k.schedule_work(Work(lambda w: queued.wait(20) and reports.append(k.stop(timeout=60))))
    k.schedule_work(Work(lambda w: ran.append(1)))
    queued.set()
    wait_for(lambda: bool(reports))
    report = reports[0]
    assert not report.drained and not report.timed_out
    assert report.abandoned == {"work items": 1}
    assert "could not run what waits for its caller (events/0: work <lambda>)" in str(report)
    assert ran == []


# ------------------------------------------------------------------ one stop, then nothing
def test_two_concurrent_stops_run_once() -> None:
    k = Kernel(cpus=2, engine="real")
    k.start()
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def stopper() -> None:
        barrier.wait()
        try:
            results.append(k.stop())
        except IrqflowError as exc:
            results.append(exc)

    threads = [threading.Thread(target=stopper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    errors = [r for r in results if isinstance(r, IrqflowError)]
    reports = [r for r in results if not isinstance(r, IrqflowError)]
    assert len(errors) == 1 and len(reports) == 1
    assert "already stopped" in str(errors[0])
    assert reports[0].clean


def test_a_stopped_machine_refuses_calls_naming_its_state() -> None:
    k = Kernel(cpus=1, engine="real")
    k.request_irq(24, lambda i, d: IRQ_HANDLED, name="dev")
    with k:
        k.raise_irq(24)
    for call in (
        lambda: k.raise_irq(24),
        lambda: k.raise_irq(25),
        lambda: k.schedule_work(Work(lambda w: None)),
        lambda: k.request_irq(26, lambda i, d: IRQ_HANDLED),
        k.start,
    ):
        with pytest.raises(IrqflowError, match="the machine is stopped: make a new Kernel"):
            call()
    with pytest.raises(IrqflowError, match="make a new Kernel"), k:
        pass
    with pytest.raises(IrqflowError, match="already stopped"):
        k.stop()
    snap = k.statistics()  # observing still works
    assert snap.irqs[24].raised == snap.irqs[24].accepted + snap.irqs[24].coalesced
    assert any("irqflow: stopped" in line for line in k.dmesg())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_an_error_not_a_dead_machine() -> None:
    k = Kernel(cpus=1, engine="real")
    k.request_irq(24, lambda i, d: IRQ_HANDLED, name="dev")
    with k:
        k.raise_irq(24)
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only if every call was refused clearly
            code = 0
            for call in (lambda: k.raise_irq(24), lambda: k.schedule_work(Work(print))):
                try:
                    call()
                    code = 2
                except IrqflowError as exc:
                    code = code or (0 if "fork()" in str(exc) else 3)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child exit status {status}"


def test_with_exit_after_a_stop_elsewhere_does_not_raise() -> None:
    k = Kernel(cpus=1, engine="real")
    with k:
        th = threading.Thread(target=k.stop)
        th.start()
        th.join(30)
    assert k.engine.stopped.is_set()
