"""Latency histograms: percentiles against known distributions, and the kernel's hooks."""

from __future__ import annotations

import random

from irqflow import IRQ_HANDLED, NET_RX_SOFTIRQ, Kernel, KernelConfig, Tasklet, Work
from irqflow.stats.latency import Histogram


def test_percentiles_of_an_exponential_distribution_are_within_a_sixteenth() -> None:
    """The log-linear buckets keep every percentile within 1/16 of the exact value."""
    rng = random.Random(7)
    xs = sorted(int(rng.expovariate(1 / 50_000)) for _ in range(50_000))
    h = Histogram()
    for x in xs:
        h.add(x)
    for p in (50, 90, 99, 99.9):
        exact = xs[int(len(xs) * p / 100) - 1]
        assert abs(h.percentile(p) - exact) <= exact / 16 + 1, p
    assert h.max == xs[-1] and h.count == len(xs)


def test_small_values_are_exact_and_log2_text_has_bcc_rows() -> None:
    """Values below 16 ns are exact; the text is bcc's print_log2_hist layout."""
    h = Histogram()
    for v in (3, 3, 3, 7):
        h.add(v)
    assert h.percentile(50) == 3 and h.percentile(100) == 7
    h2 = Histogram()
    for us in (1, 2, 3, 5, 300):
        h2.add(us * 1000)
    text = h2.log2_text("t").splitlines()
    assert text[1] == "     usecs               : count     distribution"
    assert text[2].startswith("         0 -> 0          : 0")
    assert text[3].startswith("         1 -> 1          : 1")
    assert text[4].startswith("         2 -> 3          : 2")
    assert text[-1].startswith("       256 -> 511        : 1")


def test_kernel_hooks_measure_raise_hardirq_softirq_tasklet_and_work() -> None:
    """With every kernel cost at 0 but the 600 ns interrupt entry: raise->hardirq is the
    entry cost; hardirq is the handler's 2 us; NET_RX waits for the handler (2 us, plus the
    100 ns minimum pass) and
    runs 5 us; the tasklet waits for NET_RX's remaining time; the work item's queueing
    latency and run time are measured per workqueue."""
    cfg = KernelConfig(irq_entry_ns=600, irq_exit_ns=0, softirq_pass_ns=0,
                       tasklet_dispatch_ns=0, context_switch_ns=0, tick_ns=0)  # fmt: skip
    k = Kernel(cpus=1, config=cfg)
    t = Tasklet(lambda d: k.udelay(1), name="rx")
    w = Work(lambda w: k.udelay(4), name="slow")

    def net_rx() -> None:
        k.tasklet_schedule(t)
        k.udelay(5)

    def eth0(irq: int, dev: object) -> int:
        k.raise_softirq(NET_RX_SOFTIRQ)
        k.schedule_work(w)
        k.udelay(2)
        return IRQ_HANDLED

    k.open_softirq(NET_RX_SOFTIRQ, net_rx)
    k.request_irq(24, eth0, name="eth0")
    for i in range(10):
        k.call_at(100_000 * (i + 1), k.raise_irq, 24)
    k.run(until=2_000_000)
    r = k.latency()
    assert r["raise->hardirq"]["irq 24 eth0"].p50 == 600
    assert r["raise->hardirq"]["irq 24 eth0"].count == 10
    assert r["hardirq"]["irq 24 eth0"].max == 2_000
    assert r["softirq raise->entry"]["NET_RX"].p50 == 2_100  # + the 100 ns pass floor
    assert r["softirq"]["NET_RX"].p99 == 5_000
    assert r["tasklet schedule->run"]["rx"].p50 == 5_100
    assert r["work"]["events"].count == 10 and r["work"]["events"].max == 4_000
    assert r["work queue->start"]["events"].p50 >= 7_000  # behind the softirqs
    table = r.table()
    assert "raise->hardirq" in table and "irq 24 eth0" in table
    assert "usecs" in r.text("softirq", "NET_RX")


def test_recording_can_be_switched_off() -> None:
    """KernelConfig(latency_histograms=False): nothing is recorded, the run is the same."""
    k = Kernel(cpus=1, config=KernelConfig(latency_histograms=False))
    k.request_irq(24, lambda i, d: IRQ_HANDLED, name="eth0")
    k.call_at(1000, k.raise_irq, 24)
    k.run()
    assert k.latency()["raise->hardirq"] == {}
    assert k.statistics().irqs[24].accepted == 1
