"""Interrupt per packet versus NAPI, under a flood.

Run: ``python examples/napi_driver.py``.  The same NIC receives 20,000 packets in 20 ms
(1 Mpps) on one CPU.  The plain driver takes an interrupt per packet and processes it
in NET_RX; the NAPI driver masks its interrupt, lets ``net_rx_action`` poll the ring
64 packets at a time and unmasks only when the ring is empty.  Each packet costs 1 us
of protocol work either way.  Per-packet interrupts at this rate are receive livelock:
the hard interrupts (with entry and exit) take all of the CPU, the softirq that would
empty the ring gets none, and the ring overflows.
"""

from __future__ import annotations

from collections import deque

from irqflow import IRQ_HANDLED, IRQ_NONE, NET_RX_SOFTIRQ, Kernel, Napi

PACKETS, SPACING_NS, RING = 20_000, 1_000, 512


class Nic:
    """The card: a receive ring of RING packets; a full ring drops."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.ring: deque[int] = deque()
        self.dropped = 0
        for i in range(PACKETS):  # the flood
            k.call_at(10_000 + i * SPACING_NS, self.arrive)

    def arrive(self) -> None:
        if len(self.ring) < RING:
            self.ring.append(1)
        else:
            self.dropped += 1
        self.k.raise_irq(24)

    def result(self) -> tuple[int, int, int]:
        self.k.run()
        snap = self.k.statistics()
        return snap.irqs[24].accepted, self.dropped, snap.cpus[0].irq


def per_packet() -> tuple[int, int, int]:
    k = Kernel(cpus=1)
    nic = Nic(k)
    ring = nic.ring

    def net_rx() -> None:
        while ring:
            ring.popleft()
            k.udelay(1)

    def eth0(irq: int, dev: object) -> int:
        k.udelay(0.5)
        k.raise_softirq(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    k.open_softirq(NET_RX_SOFTIRQ, net_rx)
    k.request_irq(24, eth0, name="eth0")
    return nic.result()


def with_napi() -> tuple[int, int, int]:
    k = Kernel(cpus=1)
    nic = Nic(k)
    ring = nic.ring

    def poll(napi: Napi, budget: int) -> int:
        done = 0
        while ring and done < budget:
            ring.popleft()
            k.udelay(1)
            done += 1
        if done < budget and k.napi_complete_done(napi, done):
            k.enable_irq(24)
        return done

    napi = Napi(poll, 64, name="eth0")

    def eth0(irq: int, dev: object) -> int:
        if not ring:
            return IRQ_NONE
        k.udelay(0.5)
        k.disable_irq_nosync(24)
        k.napi_schedule(napi)
        return IRQ_HANDLED

    k.request_irq(24, eth0, name="eth0")
    return nic.result()


for label, (irqs, dropped, irq_ns) in (("interrupt per packet", per_packet()),
                                    ("NAPI, weight 64     ", with_napi())):  # fmt: skip
    delivered = PACKETS - dropped
    print(
        f"{label}: {irqs:6d} hard interrupts, {delivered:5d} packets delivered, "
        f"{dropped:5d} dropped, {irq_ns / 1e6:6.3f} ms in hard-IRQ context"
    )
