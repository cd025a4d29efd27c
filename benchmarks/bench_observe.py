"""What observing costs the sim engine: latency histograms on vs off, tracing off vs on.

Run: ``python benchmarks/bench_observe.py [--packets N] [--repeat K]``.  The workload is
the 2-CPU NIC driver (hard IRQ + NET_RX + tasklet per packet, a packet every 10 us).
The baseline is the same run with ``KernelConfig(latency_histograms=False)`` and
tracing off; targets: histograms cost <= 20%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from irqflow import IRQ_HANDLED, NET_RX_SOFTIRQ, Kernel, KernelConfig, Tasklet


def run(packets: int, *, latency: bool, trace: bool) -> float:
    k = Kernel(cpus=2, config=KernelConfig(latency_histograms=latency))
    if trace:
        k.trace.enable("*", buffer_size=1 << 16)
    t = Tasklet(lambda d: k.ndelay(1000), name="rx")

    def net_rx() -> None:
        k.ndelay(3000)
        k.tasklet_schedule(t)

    def eth0(irq: int, dev: object) -> int:
        k.ndelay(2000)
        k.raise_softirq(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    k.open_softirq(NET_RX_SOFTIRQ, net_rx)
    k.request_irq(24, eth0, name="eth0")
    for i in range(packets):
        k.call_at(10_000 * (i + 1), k.raise_irq, 24)
    start = time.perf_counter()
    k.run()
    return packets / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    modes = {
        "baseline (no histograms, no tracing)": {"latency": False, "trace": False},
        "latency histograms on (default)": {"latency": True, "trace": False},
        "histograms + tracing all events": {"latency": True, "trace": True},
    }
    rates = {m: max(run(args.packets, **kw) for _ in range(args.repeat)) for m, kw in modes.items()}
    base = rates["baseline (no histograms, no tracing)"]
    for mode, rate in rates.items():
        print(f"{mode:<40} {rate:>10,.0f} irq/s  {100 * (base / rate - 1):+6.1f}% time")


if __name__ == "__main__":
    main()
