"""The per-CPU scheduler: fair sharing by nice weight, RT over fair, RR slices, RT
bandwidth, and /proc/stat-style accounting.  (EEVDF and RT bandwidth in detail:
test_sched_eevdf.py, test_sched_rt.py.)"""

from __future__ import annotations

import pytest

from irqflow import Kernel, KernelConfig
from irqflow.core.rq import NICE_TO_WEIGHT
from support import MS


def spinner(chunk_us: int = 1_000):  # type: ignore[no-untyped-def]
    async def spin(k: Kernel) -> None:
        while True:
            k.udelay(chunk_us)
            await k.cond_resched()

    return spin


def user_time(k: Kernel, comm: str) -> int:
    (t,) = [t for t in k.tasks if t.comm == comm]
    return t.sum_exec


def test_nice_levels_share_the_cpu_by_the_kernels_weights() -> None:
    """Two CPU-bound threads at nice 0 and nice 5 share one CPU about 1024:335."""
    k = Kernel(cpus=1)
    k.kthread_run(spinner(), "n0", cpu=0, nice=0)
    k.kthread_run(spinner(), "n5", cpu=0, nice=5)
    k.run(until=2_000 * MS)
    ratio = user_time(k, "n0") / user_time(k, "n5")
    expected = NICE_TO_WEIGHT[20] / NICE_TO_WEIGHT[25]
    assert abs(ratio - expected) / expected < 0.15, ratio


@pytest.mark.parametrize("rt_bandwidth", ["fair_server", "throttle"])
def test_an_rt_hog_leaves_normal_tasks_five_percent(rt_bandwidth: str) -> None:
    """A SCHED_FIFO hog and a normal task: the 6.13 fair server gives the normal task 50 ms
    of each second once it has waited 950 ms; classic throttling gives it what the hog
    may not use, rt_period - rt_runtime (50 ms).  About 5% either way."""
    k = Kernel(cpus=1, config=KernelConfig(rt_bandwidth=rt_bandwidth))
    k.kthread_run(spinner(), "rt", cpu=0, policy="fifo", prio=10)
    k.kthread_run(spinner(), "normal", cpu=0)
    k.run(until=3_000 * MS)
    rt, normal = user_time(k, "rt"), user_time(k, "normal")
    assert 0.03 < normal / (rt + normal) < 0.07, (rt, normal)


def test_rt_runtime_does_not_limit_rt_tasks_under_the_fair_server() -> None:
    """Without CONFIG_RT_GROUP_SCHED (6.13's default, rt_bandwidth="fair_server")
    sched_rt_runtime_us only caps deadline admission: alone, the RT hog gets it all."""
    k = Kernel(cpus=1, config=KernelConfig(rt_runtime_ns=500_000_000))
    k.kthread_run(spinner(), "rt", cpu=0, policy="fifo", prio=10)
    k.run(until=2_000 * MS)
    assert user_time(k, "rt") > 1_950 * MS


def test_rr_threads_of_equal_priority_rotate_every_100ms() -> None:
    """SCHED_RR: equal-priority threads take turns in 100 ms slices; SCHED_FIFO doesn't."""
    k = Kernel(cpus=1, config=KernelConfig(rt_runtime_ns=1_000_000_000))
    k.kthread_run(spinner(), "rr1", cpu=0, policy="rr", prio=20)
    k.kthread_run(spinner(), "rr2", cpu=0, policy="rr", prio=20)
    k.run(until=1_000 * MS)
    a, b = user_time(k, "rr1"), user_time(k, "rr2")
    assert abs(a - b) < 110 * MS, (a, b)
    k2 = Kernel(cpus=1, config=KernelConfig(rt_runtime_ns=1_000_000_000))
    k2.kthread_run(spinner(), "f1", cpu=0, policy="fifo", prio=20)
    k2.kthread_run(spinner(), "f2", cpu=0, policy="fifo", prio=20)
    k2.run(until=1_000 * MS)
    assert user_time(k2, "f2") == 0


def test_cpu_time_categories_sum_to_elapsed_time() -> None:
    """/proc/stat accounting: user + system + irq + softirq + idle == elapsed, per CPU."""
    k = Kernel(cpus=2)
    k.kthread_run(spinner(300), "busy", cpu=1)
    for i in range(50):
        k.call_at(i * 37_000, k.raise_irq, 5)
    k.request_irq(5, lambda irq, dev: 1, name="dev")
    k.run(until=12_345_678)
    for times in k.statistics().cpus:
        assert times.total == 12_345_678
    assert k.statistics().cpus[1].user > 10 * MS
