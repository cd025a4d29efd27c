"""Per-CPU run queues: the scheduling classes (kernel/sched/rt.c, fair.c).

Two classes, as in the kernel: real-time (``fifo``/``rr``, rt_priority 1-99, strict
priority) above fair (``normal``, nice -20..19).  The fair class follows CFS's base rules:
virtual runtime advances by ``delta * 1024 / weight`` (weights from the kernel's nice
table), the task with the smallest virtual runtime runs, a running task is preempted at
the tick once it has used its share of ``sched_latency_ns`` (at least
``sched_min_granularity_ns``), and a woken task preempts the current one when its virtual
runtime is smaller by more than ``sched_wakeup_granularity_ns``.  A woken sleeper is
placed at ``min_vruntime - sched_latency_ns / 2`` at the earliest (the kernel's sleeper
credit), so a task that sleeps a lot does not build up an unfair claim.

Pure state and decisions: :class:`irqflow.core.sched.Scheduler` calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irqflow.core.config import KernelConfig
    from irqflow.core.sched import Task

#: kernel/sched/core.c sched_prio_to_weight[]: nice -20 .. 19; nice 0 = 1024.
NICE_TO_WEIGHT: tuple[int, ...] = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
NICE_0_LOAD = 1024
#: RR_TIMESLICE: 100 ms (include/linux/sched/rt.h)
#: RR_TIMESLICE: 100 ms (include/linux/sched/rt.h)
RR_TIMESLICE_NS = 100_000_000


class RunQueue:
    """Runnable tasks of one CPU (the running one included)."""

    __slots__ = ("cfg", "fair", "min_vruntime", "rt", "rt_period_start", "rt_time")

    def __init__(self, cfg: KernelConfig) -> None:
        self.cfg = cfg
        self.fair: list[Task] = []
        self.rt: list[Task] = []
        self.min_vruntime = 0
        #: RT bandwidth (kernel/sched/rt.c): RT time used in the current period
        self.rt_time = 0
        self.rt_period_start = 0

    @property
    def rt_throttled(self) -> bool:
        """RT tasks have used ``rt_runtime_ns`` of this ``rt_period_ns`` while a normal
        task waits: they may not run until the period ends (sched_rt_runtime_us)."""
        return self.rt_time >= self.cfg.rt_runtime_ns and bool(self.fair)

    def rt_tick(self, now: int) -> bool:
        """Start a new RT period when one has passed; True if that unthrottles RT tasks."""
        period = self.cfg.rt_period_ns
        if now - self.rt_period_start < period:
            return False
        was = self.rt_throttled
        self.rt_period_start = now - (now - self.rt_period_start) % period
        self.rt_time = 0
        return was and bool(self.rt)

    def __len__(self) -> int:
        return len(self.fair) + len(self.rt)

    def enqueue(self, t: Task, *, wakeup: bool) -> None:
        if t.on_rq:
            return
        t.on_rq = True
        if t.is_rt:
            self.rt.append(t)
            return
        if wakeup:
            # place_entity(): sleeper credit of half a latency period at most
            floor = self.min_vruntime - self.cfg.sched_latency_ns // 2
            t.vruntime = max(t.vruntime, floor)
        else:
            t.vruntime = max(t.vruntime, self.min_vruntime)
        self.fair.append(t)

    def dequeue(self, t: Task) -> None:
        if not t.on_rq:
            return
        t.on_rq = False
        (self.rt if t.is_rt else self.fair).remove(t)

    def pick_next(self) -> Task | None:
        """Highest real-time priority first (FIFO among equals), else least vruntime."""
        if self.rt and not self.rt_throttled:
            best = self.rt[0]
            for t in self.rt:
                if t.rt_priority > best.rt_priority:
                    best = t
            return best
        if self.fair:
            best = self.fair[0]
            for t in self.fair:
                if (t.vruntime, t.pid) < (best.vruntime, best.pid):
                    best = t
            self.min_vruntime = max(self.min_vruntime, best.vruntime)
            return best
        return None

    def requeue_rt_tail(self, t: Task) -> None:
        """Round-robin rotation among equal real-time priorities (sched_yield, rr slice)."""
        if t in self.rt:
            self.rt.remove(t)
            self.rt.append(t)

    # --- CFS decisions ----------------------------------------------------------------
    def account(self, t: Task, ns: int) -> None:
        """``update_curr``: the task ran ``ns`` more."""
        t.sum_exec += ns
        if t.policy == "normal":
            t.vruntime += ns * NICE_0_LOAD // t.weight
        elif t.policy in ("fifo", "rr"):
            self.rt_time += ns

    def tick_should_preempt(self, curr: Task) -> bool:
        """``check_preempt_tick``: has ``curr`` used its slice while others wait?"""
        if curr.is_rt:
            if self.rt_throttled:
                return True  # out of RT bandwidth: let the normal tasks run
            if curr.policy == "rr" and curr.sum_exec - curr.exec_start_sum >= RR_TIMESLICE_NS:
                peers = [t for t in self.rt if t is not curr and t.rt_priority == curr.rt_priority]
                if peers:
                    self.requeue_rt_tail(curr)
                    return True
            return False  # fifo runs until it blocks or a higher priority wakes
        if curr.policy == "idle":
            return len(self) > 0
        if self.rt:
            return True
        others = [t for t in self.fair if t is not curr]
        if not others:
            return False
        total = sum(t.weight for t in self.fair) + (0 if curr.on_rq else curr.weight)
        ideal = max(
            self.cfg.sched_latency_ns * curr.weight // total,
            self.cfg.sched_min_granularity_ns,
        )
        ran = curr.sum_exec - curr.exec_start_sum
        if ran > ideal:
            return True
        least = min(t.vruntime for t in others)
        return curr.vruntime - least > ideal

    def wakeup_should_preempt(self, curr: Task, woken: Task) -> bool:
        """``check_preempt_wakeup``."""
        if curr.policy == "idle":
            return True
        if woken.is_rt:
            if self.rt_throttled:
                return False
            return not curr.is_rt or woken.rt_priority > curr.rt_priority
        if curr.is_rt:
            return False
        return curr.vruntime - woken.vruntime > self.cfg.sched_wakeup_granularity_ns
