"""RT bandwidth: classic RT throttling (``rt_bandwidth="throttle"``: before 6.12, or
CONFIG_RT_GROUP_SCHED=y), the 6.12+ fair server (``"fair_server"``, the 6.13 default) and
no limit (``"none"``).

One CPU at HZ=250 with every kernel path cost at 0: the times below are exact.  The hog
is a ``kthread_run`` body (user code, preempted on return from interrupt in every
preemption model) that loops on ``udelay``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from irqflow import Kernel, KernelConfig
from irqflow.core.config import PRESETS
from support import MS, ZERO, events

#: 6.13 with the kernel's own paths free: support's ZERO with every field the 2.6 preset
#: sets back at its 6.13 value
Z613 = dataclasses.replace(ZERO, **{f: getattr(KernelConfig(), f) for f in PRESETS["2.6"]})


def machine(rt_bandwidth: str, **overrides: Any) -> Kernel:
    k = Kernel(cpus=1, config=dataclasses.replace(Z613, rt_bandwidth=rt_bandwidth, **overrides))
    k.trace.enable("sched:sched_switch")
    return k


def hog(k: Kernel) -> None:
    while True:
        k.udelay(1000)


def fair_spinner(k: Kernel) -> None:
    while True:
        k.udelay(100)
        k.cond_resched()


def per_second(k: Kernel, seconds: int, what: Any) -> list[int]:
    """``what()`` (a cumulative time) at the end of each second, as per-second amounts."""
    marks = [0]
    for s in range(1, seconds + 1):
        k.run(until=s * 1_000 * MS)
        marks.append(what())
    return [b - a for a, b in itertools.pairwise(marks)]


def switches(k: Kernel) -> list[tuple[int, str, str]]:
    return [
        (e.ts, e.fields["prev_comm"], e.fields["next_comm"])
        for e in events(k, "sched:sched_switch", 0)
    ]


# --- a lone RT hog ----------------------------------------------------------------------------


def test_throttling_idles_a_lone_rt_hog_about_5_percent_of_each_second() -> None:
    """rt_time passes rt_runtime (950 ms) at the 952 ms tick (update_curr_rt checks at the
    tick): the RT hog is throttled although no fair task waits, and the CPU idles until
    the period timer (started with the hog at 0) lets it go at 1000 ms."""
    k = machine("throttle")
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    idle = per_second(k, 4, lambda: k.statistics().cpus[0].idle)
    assert idle == [48 * MS, 48 * MS, 52 * MS, 48 * MS]
    assert switches(k)[:3] == [
        (0, "swapper/0", "hog"),
        (952 * MS, "hog", "swapper/0"),
        (1_000 * MS, "swapper/0", "hog"),
    ]
    assert k.dmesg() == ["[    0.952000] sched: RT throttling activated"]  # printed once


def test_the_period_timer_subtracts_the_runtime_so_an_overrun_is_paid_back() -> None:
    """do_sched_rt_period_timer: rt_time -= min(rt_time, rt_runtime), no reset.  The hog
    overruns by 2 ms (952 ms > 950 ms) and starts the next period owing them: it is
    throttled at 1952 ms with rt_time 2 + 952 = 954 ms; the 4 ms owed then make it stop at
    2948 ms (4 + 948 = 952 ms).  Resetting rt_time each period would give 952 ms every
    time."""
    k = machine("throttle")
    hog_task = k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    rq = k.cpus[0].rq
    k.run(until=1_000 * MS)
    assert rq.rt_time == 2 * MS and not rq.rt_throttled
    marks = [hog_task.sum_exec]
    for s in (2, 3, 4):
        k.run(until=s * 1_000 * MS)
        marks.append(hog_task.sum_exec)
    ran = [marks[0], *(b - a for a, b in itertools.pairwise(marks))]
    assert ran == [952 * MS, 952 * MS, 948 * MS, 952 * MS]
    stops = [t for t, prev, _ in switches(k) if prev == "hog"]
    assert stops == [952 * MS, 1_952 * MS, 2_948 * MS, 3_952 * MS]


@pytest.mark.parametrize("mode", ["fair_server", "none"])
def test_without_classic_throttling_a_lone_rt_hog_keeps_the_whole_cpu(mode: str) -> None:
    """6.13 without RT_GROUP_SCHED has no RT throttling: the fair server only acts when a
    fair task is queued, and none is."""
    k = machine(mode)
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    assert per_second(k, 3, lambda: k.statistics().cpus[0].idle) == [0, 0, 0]
    assert switches(k) == [(0, "swapper/0", "hog")]
    assert k.dmesg() == []


# --- an RT hog and a fair task ----------------------------------------------------------------


def test_the_fair_server_gives_a_starved_fair_task_50_ms_per_second() -> None:
    """The fair task's enqueue starts the fair server deferred: its timer fires at the
    zero-laxity point, 950 ms, the fair task has had nothing, so the server is queued
    above the RT hog and runs it for its 50 ms runtime.  With the starvation going on
    (dl_defer_running) the next replenishments are not deferred: 50 ms at the start of
    each server period, 1950 ms, 2950 ms ..."""
    k = machine("fair_server")
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    fair = k.kthread_run(fair_spinner, "fair", cpu=0)
    got = per_second(k, 4, lambda: fair.sum_exec)
    assert got == [50 * MS] * 4
    assert switches(k) == [(0, "swapper/0", "hog")] + [
        (t, a, b)
        for s in range(4)
        for t, a, b in (
            ((950 + 1_000 * s) * MS, "hog", "fair"),
            ((1_000 * (s + 1)) * MS, "fair", "hog"),
        )
    ]


def test_throttling_gives_a_waiting_fair_task_the_rest_of_each_period() -> None:
    k = machine("throttle")
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    fair = k.kthread_run(fair_spinner, "fair", cpu=0)
    assert per_second(k, 4, lambda: fair.sum_exec) == [48 * MS, 48 * MS, 52 * MS, 48 * MS]
    assert k.statistics().cpus[0].idle == 0


def test_without_a_limit_the_fair_task_starves() -> None:
    k = machine("none")
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    fair = k.kthread_run(fair_spinner, "fair", cpu=0)
    k.run(until=3_000 * MS)
    assert fair.sum_exec == 0


def test_while_the_fair_server_runs_an_rt_wakeup_waits() -> None:
    """The server is a deadline entity: an RT task that wakes at 951.3 ms, while the
    server runs the fair task, gets the CPU only when the server has used its 50 ms."""
    k = machine("fair_server")
    k.kthread_run(hog, "hog", cpu=0, policy="fifo", prio=10)
    k.kthread_run(fair_spinner, "fair", cpu=0)

    def rt_sleeper(k: Kernel) -> None:
        while True:
            k.usleep_range(7000, 7000)
            k.udelay(100)

    k.kthread_run(rt_sleeper, "rt50", cpu=0, policy="fifo", prio=50)
    k.run(until=1_010 * MS)
    window = [s for s in switches(k) if 940 * MS <= s[0] <= 1_010 * MS]
    assert window == [
        (944_200_000, "hog", "rt50"),
        (944_300_000, "rt50", "hog"),
        (950 * MS, "hog", "fair"),
        (1_000 * MS, "fair", "rt50"),  # woken at 951.3 ms
        (1_000_100_000, "rt50", "hog"),
        (1_007_100_000, "hog", "rt50"),
        (1_007_200_000, "rt50", "hog"),
    ]


def test_a_fair_task_that_gets_its_share_never_needs_the_server() -> None:
    """An RT task that runs 8 ms and sleeps 2 ms leaves the fair task 20%.  The fair task's
    run time is charged to the server in the background; each 50 ms of it starts a new
    deferred period, so the server's timer never fires and the RT task is never
    preempted."""
    k = machine("fair_server")

    def rt80(k: Kernel) -> None:
        while True:
            k.udelay(8_000)
            k.usleep_range(2000, 2000)

    rt = k.kthread_run(rt80, "rt", cpu=0, policy="fifo", prio=10)
    fair = k.kthread_run(fair_spinner, "fair", cpu=0)
    k.run(until=3_000 * MS)
    assert (rt.sum_exec, fair.sum_exec) == (2_400 * MS, 600 * MS)
    assert all(  # it only ever leaves the CPU to sleep (D: usleep_range), never preempted
        e.fields["prev_state"] == "D"
        for e in events(k, "sched:sched_switch")
        if e.fields["prev_comm"] == "rt"
    )
