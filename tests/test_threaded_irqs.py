"""Threaded interrupt handlers and forced threading (invariants 37-42)."""

from __future__ import annotations

from typing import Any

import pytest

from irqflow import (
    IRQ_HANDLED,
    IRQ_WAKE_THREAD,
    IRQF_NO_THREAD,
    IRQF_ONESHOT,
    IRQF_SHARED,
    IRQF_TRIGGER_HIGH,
    NET_RX_SOFTIRQ,
    Kernel,
    KernelConfig,
    RequestError,
)
from support import MS, US, make_kernel
from support import events as named


def make(cpus: int = 2, **cfg: Any) -> Kernel:
    """A traced machine with the default (realistic) kernel-path costs."""
    return make_kernel(cpus, config=KernelConfig(), **cfg)


def test_thread_runs_only_when_primary_returns_wake_thread_and_wakes_coalesce() -> None:
    """Invariant 37: IRQ_HANDLED does not wake the thread; three IRQ_WAKE_THREADs before it
    runs give one run (the thread is busy in the first run's msleep, so the second and third
    wakes fold into exactly one more run)."""
    k = make()
    answers = [IRQ_HANDLED, IRQ_WAKE_THREAD, IRQ_WAKE_THREAD, IRQ_WAKE_THREAD, IRQ_WAKE_THREAD]
    runs: list[int] = []

    def primary(irq: int, dev: object) -> Any:
        return answers.pop(0)

    async def thread_fn(irq: int, dev: object) -> Any:
        runs.append(k.now())
        await k.msleep(1)
        return IRQ_HANDLED

    k.request_threaded_irq(24, primary, thread_fn, name="eth0")
    k.irq_set_affinity(24, {0})
    for t in (10 * US, 20 * US, 30 * US, 40 * US, 50 * US):
        k.call_at(t, k.raise_irq, 24)
    k.run(until=10 * MS)
    assert len(runs) == 2  # woken at 20 us; the wakes at 30, 40, 50 us coalesce into one
    assert runs[0] >= 20 * US and runs[1] >= runs[0] + MS
    assert k.statistics().irqs[24].accepted == 5


def test_handler_none_needs_oneshot_and_then_the_default_primary_wakes_the_thread() -> None:
    """Invariant 38: request_threaded_irq(handler=None) without IRQF_ONESHOT is EINVAL;
    with it, the default primary wakes the thread on every interrupt."""
    k = make()
    with pytest.raises(RequestError) as err:
        k.request_threaded_irq(24, None, lambda irq, dev: IRQ_HANDLED, name="dev")
    assert err.value.errno == "EINVAL" and "IRQF_ONESHOT" in str(err.value)
    calls: list[int] = []
    k.request_threaded_irq(24, None, lambda irq, dev: calls.append(irq) or IRQ_HANDLED,
                           flags=IRQF_ONESHOT, name="dev")  # fmt: skip
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    assert calls == [24]


def _slow_level_device(k: Kernel, flags: int) -> list[int]:
    """Line 30, level: the primary only wakes the thread; the thread quiets the device
    after sleeping 2 ms.  Returns the list the primary appends its call times to."""
    primary_calls: list[int] = []

    def primary(irq: int, dev: object) -> Any:
        primary_calls.append(k.now())
        return IRQ_WAKE_THREAD

    async def thread_fn(irq: int, dev: object) -> Any:
        await k.msleep(2)
        k.set_irq_level(irq, False)  # talk to the device: it lets go of the line
        return IRQ_HANDLED

    k.request_threaded_irq(30, primary, thread_fn, flags=flags | IRQF_TRIGGER_HIGH, name="i2c")
    k.call_at(10 * US, k.set_irq_level, 30, True)
    return primary_calls


def test_oneshot_level_line_stays_masked_until_the_thread_finishes() -> None:
    """Invariant 39: the primary does not quiet the level device; with ONESHOT the line
    stays masked until the thread (which quiets it after 2 ms of sleep) has finished, so
    the primary runs exactly once."""
    k = make()
    primary_calls = _slow_level_device(k, IRQF_ONESHOT)
    k.run(until=1 * MS)
    assert "MASKED" in k.irq_state(30)  # mid-sleep: still masked
    k.run(until=10 * MS)
    assert len(primary_calls) == 1
    assert "MASKED" not in k.irq_state(30)
    line = k.statistics().irqs[30]
    assert line.raised == line.accepted == 1


def test_without_oneshot_the_level_line_refires_while_the_thread_sleeps() -> None:
    """Invariant 39, the contrast: without ONESHOT the unmasked, still-asserted line fires
    again and again while the thread sleeps (the storm ONESHOT exists to prevent)."""
    k = make()
    primary_calls = _slow_level_device(k, 0)
    k.run(until=10 * MS)
    assert len(primary_calls) > 100


def test_thread_is_named_irq_n_name_and_runs_sched_fifo_50() -> None:
    """Invariant 40: the thread is irq/<irq>-<name> (comm cut to 15 characters), SCHED_FIFO
    rt_priority 50, which sched tracepoints print as prio 49."""
    k = make()
    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, lambda i, d: IRQ_HANDLED,
                           name="eth0-rx-queue-7")  # fmt: skip
    (t,) = [t for t in k.tasks if t.comm.startswith("irq/24-")]
    assert t.comm == "irq/24-eth0-rx-"
    assert (t.policy, t.rt_priority, t.prio) == ("fifo", 50, 49)
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    (wake,) = [e for e in named(k, "sched:sched_wakeup") if e.fields["comm"] == t.comm]
    assert wake.fields["prio"] == 49
    switches = [e for e in named(k, "sched:sched_switch") if e.fields["next_comm"] == t.comm]
    assert switches and switches[0].fields["next_prio"] == 49


def test_irq_thread_preempts_a_normal_thread_on_return_from_interrupt() -> None:
    """Invariant 40: the woken FIFO-50 thread preempts a running nice-0 thread on the
    interrupt's return (need_resched set in interrupt context)."""
    k = make(cpus=1)

    def hog(k: Kernel) -> None:
        k.udelay(5_000)

    k.kthread_run(hog, "hog", cpu=0)
    ran: list[str] = []
    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD,
                           lambda i, d: ran.append(k.current().comm) or IRQ_HANDLED,
                           name="eth0")  # fmt: skip
    k.call_at(1 * MS, k.raise_irq, 24)
    k.run(until=2 * MS)
    assert ran == ["irq/24-eth0"]
    switch = next(
        e for e in named(k, "sched:sched_switch") if e.fields["next_comm"] == "irq/24-eth0"
    )
    assert switch.fields["prev_comm"] == "hog" and switch.fields["prev_state"] == "R+"
    assert switch.ts < 1 * MS + 50 * US


def test_synchronize_irq_and_disable_irq_wait_for_the_thread() -> None:
    """Invariants 41 and 30: synchronize_irq and disable_irq return only once no thread
    of the line is active (the thread sleeps 3 ms)."""
    for call in ("synchronize_irq", "disable_irq"):
        k = make()

        async def thread_fn(irq: int, dev: object, k: Kernel = k) -> Any:
            await k.msleep(3)
            return IRQ_HANDLED

        k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, thread_fn, name="eth0")
        k.call_at(10 * US, k.raise_irq, 24)
        k.run(until=100 * US)
        getattr(k, call)(24)
        assert k.now() >= 3 * MS, call
        assert k.statistics().oopses == ()


def test_forced_threading_runs_the_handler_in_its_thread_with_bh_and_irqs_off() -> None:
    """Invariant 42: with threadirqs the hard handler runs in irq/N-name with BH disabled
    (0x200) and IRQs off; the line gets ONESHOT; the NET_RX it raises runs in the thread at
    its local_bh_enable (0x101), not in ksoftirqd."""
    k = make(threadirqs=True)
    seen: list[tuple[str, int, bool]] = []
    rx: list[tuple[str, int]] = []

    def eth0(irq: int, dev: object) -> Any:
        seen.append((k.current().comm, k.preempt_count(), k.irqs_disabled()))
        k.raise_softirq(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    k.open_softirq(NET_RX_SOFTIRQ, lambda: rx.append((k.current().comm, k.preempt_count())))
    k.request_irq(24, eth0, name="eth0")
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    assert seen == [("irq/24-eth0", 0x200, True)]
    assert rx == [("irq/24-eth0", 0x101)]
    assert named(k, "irqflow:ksoftirqd_wakeup") == []


def test_forced_threading_skips_no_thread_and_oneshot_and_splits_threaded_handlers() -> None:
    """Invariant 42: IRQF_NO_THREAD handlers stay in hard-IRQ context; a threaded request
    gets its primary forced into irq/N-name and its thread_fn into irq/N-s-name."""
    k = make(threadirqs=True)
    where: dict[str, str] = {}

    def timer(irq: int, dev: object) -> Any:
        where["timer"] = "hardirq" if k.in_hardirq() else k.current().comm
        return IRQ_HANDLED

    def primary(irq: int, dev: object) -> Any:
        where["primary"] = "hardirq" if k.in_hardirq() else k.current().comm
        return IRQ_WAKE_THREAD

    def thread_fn(irq: int, dev: object) -> Any:
        where["thread_fn"] = k.current().comm
        return IRQ_HANDLED

    k.request_irq(0, timer, flags=IRQF_NO_THREAD, name="timer")
    k.request_threaded_irq(25, primary, thread_fn, name="mmc")
    k.call_at(10 * US, k.raise_irq, 0)
    k.call_at(20 * US, k.raise_irq, 25)
    k.run(until=MS)
    assert where == {"timer": "hardirq", "primary": "irq/25-mmc", "thread_fn": "irq/25-s-mmc"}
    assert not [t for t in k.tasks if t.comm.startswith("irq/0-")]


def test_forced_threading_comes_before_the_sharing_checks() -> None:
    """__setup_irq forces threading first, then compares the sharers' flags: every
    sharer of a forced-threaded line runs in its own thread (not the second one in
    hard-IRQ context), and a threaded sharer without IRQF_ONESHOT is accepted because
    forcing gave both actions ONESHOT."""
    k = make(threadirqs=True)
    where: dict[str, str] = {}

    def rec(name: str) -> Any:
        def h(irq: int, dev: object) -> Any:
            where[name] = "hardirq" if k.in_hardirq() else k.current().comm
            return IRQ_HANDLED

        return h

    def wake(irq: int, dev: object) -> Any:
        where["mmc-primary"] = "hardirq" if k.in_hardirq() else k.current().comm
        return IRQ_WAKE_THREAD

    k.request_irq(11, rec("usb"), flags=IRQF_SHARED, name="usb", dev_id="U")
    k.request_irq(11, rec("snd"), flags=IRQF_SHARED, name="snd", dev_id="S")
    k.request_threaded_irq(12, wake, rec("mmc"), IRQF_SHARED, "mmc", "M")
    k.request_threaded_irq(12, wake, rec("sdio"), IRQF_SHARED, "sdio", "D")  # no ONESHOT
    k.call_at(10 * US, k.raise_irq, 11)
    k.call_at(20 * US, k.raise_irq, 12)
    k.run(until=MS)
    assert where["usb"] == "irq/11-usb" and where["snd"] == "irq/11-snd"
    assert where["mmc"] == "irq/12-s-mmc" and where["mmc-primary"].startswith("irq/12-")


def test_a_no_thread_sharer_joins_a_forced_threaded_line_only_through_request_irq() -> None:
    """Forcing gave the first action IRQF_ONESHOT.  An IRQF_NO_THREAD sharer keeps its
    hard handler without it: through request_threaded_irq the ONESHOT flags differ
    (EBUSY, as on 6.13); request_irq adds IRQF_COND_ONESHOT, which agrees to ONESHOT."""
    k = make(threadirqs=True)
    k.request_irq(11, lambda i, d: IRQ_HANDLED, flags=IRQF_SHARED, name="usb", dev_id="U")
    no_thread = IRQF_SHARED | IRQF_NO_THREAD
    with pytest.raises(RequestError, match=r"Flags mismatch irq 11.*IRQF_ONESHOT differs"):
        k.request_threaded_irq(11, lambda i, d: IRQ_HANDLED, None, no_thread, "t", "T")
    k.request_irq(11, lambda i, d: IRQ_HANDLED, flags=no_thread, name="t", dev_id="T")
    assert [a.name for a in k.genirq.descs[11].actions] == ["usb", "t"]


def test_shared_oneshot_line_unmasks_after_every_woken_thread_finished() -> None:
    """Invariant 39 (shared): each ONESHOT action has its own bit; the level line is
    unmasked only when both woken threads have finished."""
    k = make()
    done: dict[str, int] = {}

    def thread_for(name: str, ms: int) -> Any:
        async def fn(irq: int, dev: object) -> Any:
            await k.usleep_range(ms * 1000, ms * 1000)
            done[name] = k.now()
            if len(done) == 2:
                k.set_irq_level(irq, False)
            return IRQ_HANDLED

        return fn

    flags = IRQF_ONESHOT | IRQF_SHARED | IRQF_TRIGGER_HIGH
    k.request_threaded_irq(31, lambda i, d: IRQ_WAKE_THREAD, thread_for("a", 1), flags, "a", "A")
    k.request_threaded_irq(31, lambda i, d: IRQ_WAKE_THREAD, thread_for("b", 4), flags, "b", "B")
    k.call_at(10 * US, k.set_irq_level, 31, True)
    k.run(until=3 * MS)
    assert "a" in done and "b" not in done
    assert "MASKED" in k.irq_state(31)
    k.run(until=10 * MS)
    assert "MASKED" not in k.irq_state(31)
    assert k.statistics().irqs[31].accepted == 1


def test_free_irq_stops_the_thread() -> None:
    """free_irq waits for the running thread and ends it (kthread_stop)."""
    k = make()

    async def thread_fn(irq: int, dev: object) -> Any:
        await k.msleep(2)
        return IRQ_HANDLED

    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, thread_fn, name="eth0")
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=100 * US)
    assert k.free_irq(24) == "eth0"
    assert k.now() >= 2 * MS
    k.run(until=k.now() + 5 * MS)
    (t,) = [t for t in k.tasks if t.comm == "irq/24-eth0"]
    assert t.state == "X"


def test_spurious_detection_counts_a_threaded_event_by_its_thread_at_the_next_one() -> None:
    """Kernel-semantics 7.2: an event whose primary only wakes the thread is judged at the
    next event, by whether the thread handled it: a thread that always answers IRQ_NONE
    makes the line unhandled; one that answers IRQ_HANDLED does not."""
    for answer, expect_unhandled in ((IRQ_HANDLED, 0), (0, 4)):
        k = make(cpus=1)
        k.request_threaded_irq(
            24, lambda i, d: IRQ_WAKE_THREAD, lambda i, d, a=answer: a, name="dev"
        )
        for n in range(5):
            k.call_at((n + 1) * 100 * US, k.raise_irq, 24)
        k.run(until=5 * MS)
        # the first event only arms the deferral; events 2-5 each carry a verdict
        assert k.statistics().irqs[24].unhandled == expect_unhandled, answer
