"""NAPI and net_rx_action (invariants 60-62), and a NIC driver that masks its line."""

from __future__ import annotations

from collections import deque
from typing import Any

from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    Kernel,
    KernelConfig,
    Napi,
)
from support import MS, US, events, make_kernel


class Nic:
    """A NIC with a receive ring: the top half masks the line and schedules NAPI; the poll
    takes up to its budget off the ring and unmasks the line once the ring is empty."""

    def __init__(self, k: Kernel, irq: int = 24, weight: int = 64, cost_ns: int = 500) -> None:
        self.k, self.irq, self.cost_ns = k, irq, cost_ns
        self.ring: deque[int] = deque()
        self.delivered = 0
        self.napi = Napi(self.poll, weight, name="eth0")
        k.request_irq(irq, self.interrupt, name="eth0")

    def packet(self) -> None:
        self.ring.append(1)
        self.k.raise_irq(self.irq)

    def interrupt(self, irq: int, dev: object) -> Any:
        if not self.ring:
            return IRQ_NONE
        self.k.disable_irq_nosync(irq)  # mask the device's interrupt
        self.k.napi_schedule(self.napi)
        return IRQ_HANDLED

    def poll(self, napi: Napi, budget: int) -> int:
        done = 0
        while self.ring and done < budget:
            self.ring.popleft()
            self.k.ndelay(self.cost_ns)
            done += 1
        self.delivered += done
        if done < budget and self.k.napi_complete_done(napi, done):
            self.k.enable_irq(self.irq)  # ring empty: interrupts again
        return done


def test_nic_with_napi_takes_one_interrupt_per_burst_and_polls_by_weight() -> None:
    """Invariant 61: a burst of 200 packets costs one handled interrupt; the poll runs
    with the weight (64) until the ring is empty (64, 64, 64, 8), and the line is
    re-enabled afterwards, so the next burst interrupts again.  The edges that arrived
    while the line was disabled are replayed once at enable_irq (invariant 34): that
    replay finds the ring empty and answers IRQ_NONE."""
    k = make_kernel(cpus=1, config=KernelConfig())
    nic = Nic(k)
    for i in range(200):
        k.call_at(10 * US + i, nic.packet)
    k.call_at(5 * MS, nic.packet)
    k.run(until=10 * MS)
    assert nic.delivered == 201
    polls = [e.fields["work"] for e in events(k, "napi:napi_poll")]
    assert polls == [64, 64, 64, 8, 1]
    line = k.statistics().irqs[24]
    assert (line.accepted, line.unhandled) == (3, 1)
    assert line.raised == line.accepted + line.coalesced + line.lost
    assert line.depth == 0


def test_budget_spent_counts_a_time_squeeze_and_reraises() -> None:
    """Invariant 61: with netdev_budget=100, three busy NAPIs of weight 64: one run polls
    the first two (128 >= 100), counts a time squeeze, leaves the third first in line and
    re-raises NET_RX."""
    k = make_kernel(cpus=1, config=KernelConfig(netdev_budget=100))
    nics = [Nic(k, irq=24 + i) for i in range(3)]
    for n, nic in enumerate(nics):
        nic.napi.name = "abc"[n]
        for _ in range(100):
            k.call_at(10 * US + n, nic.packet)
    k.run(until=10 * MS)
    assert [nic.delivered for nic in nics] == [100, 100, 100]
    assert k.statistics().time_squeeze[0] >= 1
    order = [e.fields["napi"] for e in events(k, "napi:napi_poll")]
    assert order[:3] == ["a", "b", "c"]  # c was not reached in run 1: first in run 2
    runs = [e for e in events(k, "irq:softirq_entry") if e.fields["vec"] == 3]
    assert len(runs) >= 2


def test_exhausted_napis_go_to_the_tail_round_robin() -> None:
    """Invariant 61: two NAPIs with full rings alternate: a weight-exhausted NAPI is
    repolled after the others."""
    k = make_kernel(cpus=1, config=KernelConfig())
    a, b = Nic(k, irq=24, weight=8), Nic(k, irq=25, weight=8)
    a.napi.name, b.napi.name = "a", "b"
    for _ in range(24):
        k.call_at(10 * US, a.packet)
        k.call_at(10 * US, b.packet)
    k.run(until=10 * MS)
    order = [e.fields["napi"] for e in events(k, "napi:napi_poll")]
    assert order[:6] == ["a", "b", "a", "b", "a", "b"]


def test_schedule_while_scheduled_sets_missed_and_complete_keeps_it() -> None:
    """Invariant 60: napi_schedule on a SCHED NAPI returns False and sets MISSED, without
    queueing it twice; napi_complete_done then returns False and keeps it scheduled, so
    it is polled once more."""
    k = make_kernel(cpus=1, config=KernelConfig())
    results: dict[str, Any] = {}
    polls: list[int] = []

    def poll(napi: Napi, budget: int) -> int:
        polls.append(k.now())
        if len(polls) == 1:
            results["again"] = k.napi_schedule(napi)  # a schedule arrives while polling
            results["complete1"] = k.napi_complete_done(napi, 0)
        else:
            results["complete2"] = k.napi_complete_done(napi, 0)
        return 0

    n = Napi(poll, name="n")

    def top(irq: int, dev: object) -> Any:
        results["first"] = k.napi_schedule(n)
        return IRQ_HANDLED

    k.request_irq(24, top, name="t")
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    assert results == {"first": True, "again": False, "complete1": False, "complete2": True}
    assert len(polls) == 2 and not n.scheduled


def test_napi_schedule_inside_net_rx_action_does_not_raise_and_never_wakes_ksoftirqd() -> None:
    """Invariant 62: a NAPI scheduled while net_rx_action runs on that CPU is picked up by
    that run without a new NET_RX raise; scheduling from a kernel thread raises NET_RX
    without waking ksoftirqd (the softirq waits for the next irq_exit or bh enable)."""
    k = make_kernel(cpus=1, config=KernelConfig())

    def idle_poll(napi: Napi, budget: int) -> int:
        k.napi_complete_done(napi, 0)
        return 0

    second = Napi(idle_poll, name="second")

    def first_poll(napi: Napi, budget: int) -> int:
        k.napi_schedule(second)
        k.napi_complete_done(napi, 0)
        return 0

    first = Napi(first_poll, name="first")
    k.request_irq(24, lambda i, d: (k.napi_schedule(first), IRQ_HANDLED)[1], name="t")
    k.call_at(10 * US, k.raise_irq, 24)
    k.run(until=MS)
    raises = [e for e in events(k, "irq:softirq_raise") if e.fields["vec"] == 3]
    assert len(raises) == 1  # only the top half's
    assert [e.fields["napi"] for e in events(k, "napi:napi_poll")] == ["first", "second"]

    k2 = make_kernel(cpus=1, config=KernelConfig())
    third = Napi(lambda n, b: 0, name="third")
    k2.kthread_run(lambda k: k.napi_schedule(third), "sched", cpu=0)
    k2.run(until=MS)
    assert k2.statistics().ksoftirqd_wakeups == (0,)
    assert k2.statistics().softirq_raises["NET_RX"] == (1,)
    assert events(k2, "napi:napi_poll") == []  # nobody ran NET_RX yet: the latency trap
