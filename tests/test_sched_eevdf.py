"""The 6.13 fair class, EEVDF (kernel/sched/fair.c): base slice, tick preemption,
weights, RUN_TO_PARITY, lag placement, DELAY_DEQUEUE.

The machines run the 6.13 preset with every kernel path cost at 0, so virtual times are
exact: a task's CPU time is what its ``udelay`` calls charge.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from irqflow import Kernel, KernelConfig
from irqflow.core.config import PRESETS
from irqflow.core.rq import NICE_TO_WEIGHT, RunQueue
from irqflow.core.sched import Task
from irqflow.core.sched_fair import Eevdf, base_slice_ns
from support import MS, US, ZERO, events

#: 6.13 with the kernel's own paths free (HZ=250, EEVDF, the fair server): support's
#: ZERO with every field the 2.6 preset sets back at its 6.13 value
Z613 = dataclasses.replace(ZERO, **{f: getattr(KernelConfig(), f) for f in PRESETS["2.6"]})


def machine(cpus: int = 1, **overrides: Any) -> Kernel:
    k = Kernel(cpus=cpus, config=dataclasses.replace(Z613, **overrides))
    k.trace.enable("sched:sched_switch,sched:sched_wakeup")
    return k


def spinner(chunk_us: int = 100):  # type: ignore[no-untyped-def]
    """A CPU-bound thread: ``udelay`` in small chunks, offering to reschedule between."""

    async def spin(k: Kernel) -> None:
        while True:
            k.udelay(chunk_us)
            await k.cond_resched()

    return spin


def looping(*steps: Callable[[Kernel], object]) -> Callable[[Kernel], None]:
    """A thread body that does ``steps`` (``k.usleep_range``, ``k.udelay`` ...) over and over."""

    def body(k: Kernel) -> None:
        while True:
            for step in steps:
                step(k)

    return body


def fair_rq(k: Kernel) -> tuple[RunQueue, Eevdf]:
    """CPU 0's run queue and its EEVDF class."""
    rq = k.cpus[0].rq
    assert rq.eevdf is not None
    return rq, rq.eevdf


def switches_to(k: Kernel) -> list[tuple[int, str]]:
    """(time, next task) of every context switch on CPU 0."""
    return [(e.ts, e.fields["next_comm"]) for e in events(k, "sched:sched_switch", 0)]


# --- the base slice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "slice_ns"),
    [(1, 750_000), (2, 1_500_000), (3, 1_500_000), (4, 2_250_000), (7, 2_250_000),
     (8, 3_000_000), (16, 3_000_000), (64, 3_000_000)],
)  # fmt: skip
def test_base_slice_is_0_75_ms_times_1_plus_log2_cpus_capped_at_8(cpus: int, slice_ns: int) -> None:
    """sysctl_sched_base_slice = 0.75 ms x (1 + ilog2(min(ncpus, 8)))
    (get_update_sysctl_factor, SCHED_TUNABLESCALING_LOG)."""
    assert base_slice_ns(cpus) == slice_ns
    k = Kernel(cpus=cpus, config=Z613)
    eevdf = k.cpus[0].rq.eevdf
    assert eevdf is not None and eevdf.base_slice == slice_ns


def test_the_older_presets_keep_cfs_and_6_13_runs_eevdf() -> None:
    for preset, eevdf in (("2.6", False), ("4.9", False), ("6.13", True), ("6.13-rt", True)):
        rq = Kernel(cpus=1, config=KernelConfig.preset(preset)).cpus[0].rq
        assert (rq.eevdf is not None, rq.cfs is not None) == (eevdf, not eevdf), preset


# --- tick preemption --------------------------------------------------------------------------


def test_two_equal_hogs_alternate_every_tick_at_hz_250() -> None:
    """The slice (0.75 ms on one CPU) is shorter than the 4 ms tick, and without HRTICK
    the deadline is only checked at the tick: each tick finds the running task past its
    deadline and no longer eligible, so the other one runs.  Two CPU-bound nice-0 tasks
    take turns of exactly one tick."""
    k = machine()
    k.kthread_run(spinner(), "t0", cpu=0)
    k.kthread_run(spinner(), "t1", cpu=0)
    k.run(until=40 * MS)
    assert switches_to(k) == [(n * 4 * MS, f"t{n % 2}") for n in range(11)]
    assert sum(t.sum_exec for t in k.tasks if t.comm in ("t0", "t1")) == 40 * MS


@pytest.mark.parametrize(("cpus", "turn_ticks"), [(1, 1), (2, 2), (4, 3), (8, 3)])
def test_the_slice_sets_the_turn_at_hz_1000(cpus: int, turn_ticks: int) -> None:
    """At HZ=1000 a turn lasts the slice rounded up to whole ticks: 0.75 ms -> 1 tick,
    1.5 ms -> 2, 2.25 ms -> 3, 3 ms -> 3.  (The first turns are shorter: a new task's
    first deadline is half a slice away, PLACE_DEADLINE_INITIAL.)"""
    k = machine(cpus, hz=1000)
    k.kthread_run(spinner(), "t0", cpu=0)
    k.kthread_run(spinner(), "t1", cpu=0)
    k.run(until=60 * MS)
    times = [t for t, _ in switches_to(k)]
    turns = {b - a for a, b in itertools.pairwise(times[3:])}
    assert turns == {turn_ticks * MS}, times


def test_a_lone_task_is_not_preempted_at_its_deadline() -> None:
    """update_curr refreshes the deadline of a task alone on its CPU but reschedules only
    when another task is queued (``cfs_rq->nr_running > 1``)."""
    k = machine()
    k.kthread_run(spinner(), "alone", cpu=0)
    k.run(until=100 * MS)
    assert switches_to(k) == [(0, "alone")]


# --- weights ----------------------------------------------------------------------------------


def test_nice_weights_give_the_expected_cpu_shares() -> None:
    """Three CPU-bound tasks at nice -5, 0 and 5 share one CPU in proportion to their
    weights 3121 : 1024 : 335 (within 2% over 3 s of 4 ms turns)."""
    k = machine()
    tasks = [k.kthread_run(spinner(), f"n{n}", cpu=0, nice=n) for n in (-5, 0, 5)]
    k.run(until=3_000 * MS)
    weights = [NICE_TO_WEIGHT[n + 20] for n in (-5, 0, 5)]
    for t, w in zip(tasks, weights, strict=True):
        share, expected = t.sum_exec / (3_000 * MS), w / sum(weights)
        assert abs(share - expected) / expected < 0.02, (t.comm, share, expected)


# --- wakeup preemption ------------------------------------------------------------------------


def test_a_woken_task_waits_for_a_protected_curr_but_not_for_an_ineligible_one() -> None:
    """check_preempt_wakeup_fair preempts only if pick_eevdf would pick the woken task.

    Eight CPUs (a 3 ms slice), HZ=250, all on CPU 0: spinners A and C, and B, which
    sleeps 5 ms and runs 0.3 ms in a loop.

    * 13.0 ms: B wakes while C runs (picked at 12 ms).  V = 5.117 ms; C has v = 4.9 ms, so
      it is eligible, and its deadline (7.0 ms) has not moved since it was picked.  B has
      the earlier deadline (5.45 ms) and is eligible too, so plain EEVDF would pick B; but
      RUN_TO_PARITY keeps C until its deadline: B waits for the 16 ms tick.
    * 21.3 ms: B wakes while C runs (picked at 20 ms) with v = 9.2 ms > V = 8.7 ms: C is
      no longer eligible, pick_eevdf gives B, and B preempts at once."""
    k = machine(8)
    k.kthread_run(spinner(), "A", cpu=0)
    k.kthread_run(spinner(), "C", cpu=0)
    b = k.kthread_run(
        looping(lambda k: k.usleep_range(5000, 5000), lambda k: k.udelay(300)), "B", cpu=0
    )
    _, eevdf = fair_rq(k)
    k.run(until=13 * MS)  # B's wakeup at 13.0 ms has happened
    c = eevdf.curr
    assert c is not None and c.comm == "C"
    assert c.se.protect and eevdf.eligible(c)
    assert eevdf.eligible(b) and b.se.deadline < c.se.deadline  # only RUN_TO_PARITY keeps C
    k.run(until=23 * MS)
    wakeups = [e.ts for e in events(k, "sched:sched_wakeup") if e.fields["comm"] == "B"]
    to_b = [t for t, comm in switches_to(k) if comm == "B"]
    assert wakeups == [0, 13 * MS, 21_300 * US]
    assert to_b == [8 * MS, 16 * MS, 21_300 * US]


# --- lag, placement, eligibility (the class on its own) ---------------------------------------


def _task(pid: int, nice: int = 0) -> Task:
    return Task(pid, f"t{pid}", 0, lambda: None, nice=nice)


def test_a_new_task_joins_at_v_with_half_a_slice() -> None:
    """place_entity with ENQUEUE_INITIAL: v = V, d = v + slice / 2 (PLACE_DEADLINE_INITIAL)."""
    e = Eevdf(Z613, 1)
    a, b = _task(1), _task(2, nice=5)
    e.enqueue(a, initial=True)
    assert (a.vruntime, a.se.deadline) == (0, 375_000)
    e.curr = a
    e.update_curr(4 * MS)  # a ran 4 ms: v = 4 ms
    e.enqueue(b, initial=True)
    assert b.vruntime == e.avg_vruntime() == 4 * MS
    assert b.se.deadline == 4 * MS + 750_000 * 1024 // 335 // 2


def test_lag_is_kept_across_a_sleep_inflated_by_the_joining_weight() -> None:
    """update_entity_lag saves V - v on dequeue; place_entity puts the task back at
    V - lag x (W + w) / W, so that its lag after joining is the lag it left with."""
    e = Eevdf(Z613, 1)
    a, b, c = _task(1), _task(2), _task(3)
    for t in (a, b, c):
        e.enqueue(t, initial=True)
    e.curr = a
    e.update_curr(3 * MS)  # a: v = 3 ms; V = 1 ms
    assert e.avg_vruntime() == 1 * MS
    e.dequeue(b, sleep=True)  # b is eligible: it leaves, with lag V - v = 1 ms
    assert (b.se.vlag, b.se.queued, b.se.delayed) == (1 * MS, False, False)
    e.enqueue(b, initial=False)
    # V was (3 + 0) / 2 = 1.5 ms over a and c; b's lag 1 ms becomes 1 x (2048 + 1024) / 2048
    assert b.vruntime == 1_500_000 - 1_500_000
    assert e.avg_vruntime() - b.vruntime == 1 * MS  # the lag it left with


def test_lag_is_clamped_to_two_slices_or_a_tick() -> None:
    """update_entity_lag clamps to calc_delta_fair(max(2 x slice, TICK_NSEC)): 4 ms at
    HZ=250 on one CPU (2 x 0.75 ms is less than the tick)."""
    e = Eevdf(Z613, 1)
    a, b = _task(1), _task(2)
    e.enqueue(a, initial=True)
    e.enqueue(b, initial=True)
    e.curr = a
    e.update_curr(100 * MS)  # V = 50 ms, b's v = 0: lag 50 ms
    e.dequeue(b, sleep=True)
    assert b.se.vlag == 4 * MS


def test_eligibility_is_exact() -> None:
    """vruntime_eligible compares sum(w_j v_j) >= v sum(w_j) without dividing; it agrees
    with V >= v in exact arithmetic."""
    e = Eevdf(Z613, 1)
    tasks = [_task(i, nice=n) for i, n in enumerate((-3, 0, 7, 19), start=1)]
    for t in tasks:
        e.enqueue(t, initial=True)
    for i, t in enumerate(tasks):
        e.curr = t
        e.update_curr(1_000_003 * (i + 1))
    total = sum(t.se.w for t in tasks)
    exact_v = Fraction(sum(t.se.w * t.vruntime for t in tasks), total)
    for t in tasks:
        assert e.eligible(t) == (exact_v >= t.vruntime)
    assert any(e.eligible(t) for t in tasks) and not all(e.eligible(t) for t in tasks)


# --- DELAY_DEQUEUE ----------------------------------------------------------------------------


def test_an_ineligible_sleeper_stays_queued_until_it_is_picked() -> None:
    """DELAY_DEQUEUE: B (3.5 ms of work, then a 20 ms sleep on an hrtimer) wakes at
    27.5 ms, preempts A and goes to sleep at 31 ms while not eligible (it ran 3.5 ms
    since its wakeup, A did not).  It stays on the run queue (weights and V count it) but
    is not runnable; at the 36 ms tick A passes its deadline, pick_eevdf comes to B, and
    B leaves with its positive lag clipped to 0 (DELAY_ZERO)."""
    k = machine()
    k.kthread_run(spinner(), "A", cpu=0)
    work, sleep = (lambda k: k.udelay(3500)), (lambda k: k.usleep_range(20_000, 20_000))
    b = k.kthread_run(looping(work, sleep), "B", cpu=0)
    rq, eevdf = fair_rq(k)
    k.run(until=32 * MS)
    assert b.se.delayed and b in eevdf.queue
    assert (len(rq), len(eevdf)) == (1, 2)
    k.run(until=37 * MS)
    assert not b.se.delayed and b not in eevdf.queue
    assert b.se.vlag == 0
    # the sleep itself was not disturbed: B wakes 20 ms after it slept
    k.run(until=52 * MS)
    assert [e.ts for e in events(k, "sched:sched_wakeup") if e.fields["comm"] == "B"] == [
        0,
        27_500 * US,
        51 * MS,
    ]
