"""The "2-CPU NIC scenario" shared by the benchmark's models, and what a model returns.

A NIC raises one interrupt per packet; packets arrive as a seeded Poisson process. Each
packet costs, on the CPU that took its interrupt, a hard IRQ handler (``hardirq_ns``),
then NET_RX softirq work (``softirq_ns``), then a tasklet (``tasklet_ns``). Hard IRQ work
preempts softirq and tasklet work; softirq and tasklet work runs FIFO behind it.

Both models draw their packet times from :func:`arrival_times`, so with the same workload
they see exactly the same packets.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class NicWorkload:
    """Parameters of the 2-CPU NIC scenario. Times in ns of virtual time."""

    cpus: int = 2
    #: mean packet (= interrupt) rate of the Poisson arrival process, packets per second
    rate_pps: float = 100_000.0
    #: hard IRQ handler cost per packet
    hardirq_ns: int = 2_000
    #: NET_RX softirq work per packet
    softirq_ns: int = 3_000
    #: tasklet work per packet
    tasklet_ns: int = 1_000
    #: packets arrive in [0, duration_ns); the models then drain the deferred work
    duration_ns: int = 200_000_000
    seed: int = 1

    @property
    def work_per_packet_ns(self) -> int:
        """CPU time one packet costs in the workload itself (no kernel-path overheads)."""
        return self.hardirq_ns + self.softirq_ns + self.tasklet_ns

    @property
    def expected_packets(self) -> float:
        """Mean number of packets in ``duration_ns``."""
        return self.rate_pps * self.duration_ns / NS_PER_S

    @property
    def expected_utilisation(self) -> float:
        """Mean fraction of all CPUs' time the workload occupies: rate * cost / cpus."""
        return self.rate_pps * self.work_per_packet_ns / NS_PER_S / self.cpus

    def packet_count_bounds(self, sigmas: float = 6.0) -> tuple[int, int]:
        """A range the Poisson packet count falls in except with negligible probability."""
        mean = self.expected_packets
        spread = sigmas * math.sqrt(mean)
        return max(0, math.floor(mean - spread)), math.ceil(mean + spread)


def arrival_times(w: NicWorkload) -> Iterator[int]:
    """Packet arrival times in ns, increasing (ties possible), all below ``w.duration_ns``.

    Exponential gaps from ``random.Random(w.seed)``; the running sum is kept as a float and
    truncated to whole nanoseconds, so rounding does not drift.
    """
    rng = random.Random(w.seed)
    rate_per_ns = w.rate_pps / NS_PER_S
    t = 0.0
    while True:
        t += rng.expovariate(rate_per_ns)
        if t >= w.duration_ns:
            return
        yield int(t)


@dataclass(frozen=True, slots=True)
class Result:
    """What one model run reports. Counts are taken after the deferred work has drained."""

    model: str
    #: hard interrupts executed (handler runs)
    hardirqs: int
    #: per-packet NET_RX softirq work items completed
    softirq_items: int
    #: per-packet tasklet work items completed
    tasklets: int
    #: wall-clock seconds for the whole run (set-up, simulation, drain)
    wall_s: float
    #: interrupts the NIC raised (packets injected)
    packets: int = 0
    #: CPU time spent on interrupt work, summed over CPUs, ns of virtual time
    busy_ns: int = 0
    #: virtual time at the end of the run (after the drain), ns
    end_ns: int = 0
    #: times hard IRQ work preempted softirq/tasklet work (0 where a model does not count)
    preemptions: int = 0

    @property
    def rate(self) -> float:
        """Hard IRQs simulated per wall-clock second."""
        return self.hardirqs / self.wall_s if self.wall_s > 0 else math.inf

    def utilisation(self, cpus: int, span_ns: int) -> float:
        """Busy fraction of ``cpus`` CPUs over ``span_ns`` of virtual time."""
        return self.busy_ns / (cpus * span_ns)


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """The NIC workload's command-line options, shared by the benchmarks that run it."""
    defaults = NicWorkload()
    p.add_argument(
        "--duration-ms",
        type=float,
        default=defaults.duration_ns / 1e6,
        help="virtual time the NIC sends packets for, ms (default %(default)g)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=defaults.rate_pps,
        help="mean packet (interrupt) rate, packets/s (default %(default)g)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="arrival seed (default 1)")
