"""The fair scheduling class (kernel/sched/fair.c): EEVDF (6.6+) and the older CFS.

:class:`Eevdf` follows fair.c as of 6.13, with the feature defaults of
kernel/sched/features.h:

* every fair task has a virtual runtime ``v`` that grows by ``delta * 1024 / w``
  (``calc_delta_fair``) and a virtual deadline ``d``;
* ``V`` (``avg_vruntime``) is the weight-averaged ``v`` of the entities on the run queue,
  the running one included; a task is *eligible* when ``V >= v`` (its lag ``V - v`` is not
  negative), compared exactly, without a division (``vruntime_eligible``);
* ``update_curr`` charges the running task; once ``v >= d`` the deadline moves to
  ``v + slice * 1024 / w`` (``update_deadline``) and, if another task is queued, the CPU
  reschedules.  Without HRTICK this happens where the kernel calls ``update_curr``: the
  tick and the scheduler's own events (enqueue, dequeue, pick, wakeup);
* the pick (``pick_eevdf``) takes the eligible task with the earliest deadline; with
  RUN_TO_PARITY the running task keeps the CPU while it is eligible and its deadline has
  not moved since it was picked (PREEMPT_SHORT then drops an ineligible running task at
  its next ``update_curr``);
* a woken task preempts only if ``pick_eevdf`` would pick it (``check_preempt_wakeup_fair``);
* a task that leaves keeps its lag, clamped (``update_entity_lag``); one that joins is
  placed at ``V - lag * (W + w) / W`` (PLACE_LAG), with half a slice for its first
  deadline if it is new (PLACE_DEADLINE_INITIAL);
* DELAY_DEQUEUE: a task that sleeps while ineligible stays queued (``sched_delayed``,
  still counted in ``V`` and the weights) until it is picked, then leaves with its lag
  clipped to 0 (DELAY_ZERO); if it is woken first it stays, re-placed when its lag is
  positive (``requeue_delayed_entity``).

Not modelled: cgroups (group entities, ``cfs_rq_min_slice``), custom slices
(``sched_attr.sched_runtime``: every slice is the base slice, so ``do_preempt_short``
never fires), PLACE_REL_DEADLINE (it applies to dequeues that are not sleeps: migration
and priority changes, which irqflow does not do to fair tasks), buddies (NEXT_BUDDY is
off; PICK_BUDDY only serves ``yield_to``), ``sched_yield``, SCHED_BATCH, renice, and the
32-bit fixed-point reciprocal ``__calc_delta`` uses for weights other than 1024 (irqflow
divides exactly).

:class:`Cfs` is the pre-6.6 rule set, unchanged from irqflow's earlier model.
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
#: NICE_0_LOAD after scale_load_down() (kernel/sched/sched.h)
NICE_0_LOAD = 1024
#: WEIGHT_IDLEPRIO: the weight of a SCHED_IDLE task (kernel/sched/sched.h)
WEIGHT_IDLEPRIO = 3
#: normalized_sysctl_sched_base_slice: 0.75 ms (kernel/sched/fair.c)
BASE_SLICE_NS = 750_000
#: get_update_sysctl_factor() counts at most 8 CPUs (kernel/sched/fair.c)
SLICE_SCALING_MAX_CPUS = 8


def base_slice_ns(ncpus: int) -> int:
    """``sysctl_sched_base_slice``: 0.75 ms x (1 + ilog2(min(ncpus, 8))), the default
    SCHED_TUNABLESCALING_LOG of ``get_update_sysctl_factor()`` (kernel/sched/fair.c)."""
    cpus = min(max(ncpus, 1), SLICE_SCALING_MAX_CPUS)
    return BASE_SLICE_NS * cpus.bit_length()  # bit_length() == 1 + ilog2(cpus)


def calc_delta_fair(delta: int, weight: int) -> int:
    """``calc_delta_fair``: ``delta`` ns of CPU time in the virtual time of a task of
    ``weight`` (exact for nice 0, as in the kernel)."""
    if weight == NICE_0_LOAD:
        return delta
    return delta * NICE_0_LOAD // weight


def _div_trunc(a: int, b: int) -> int:
    """``div_s64``: C division, rounding toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


class SchedEntity:
    """The EEVDF state of one task (``struct sched_entity``); its ``v`` is
    ``Task.vruntime``."""

    __slots__ = ("deadline", "delayed", "holder", "protect", "queued", "seq", "slice", "vlag", "w")

    def __init__(self) -> None:
        self.deadline = 0
        #: ``vlag``: V - v when it left the run queue (clamped); 0 for a new task
        self.vlag = 0
        self.slice = BASE_SLICE_NS
        #: RUN_TO_PARITY: picked, and the deadline has not moved since (the kernel keeps
        #: this as ``vlag == deadline``, set in ``set_next_entity``)
        self.protect = False
        #: on its run queue (``se->on_rq``): runnable, or sleeping but delayed
        self.queued = False
        #: DELAY_DEQUEUE: asleep but still queued (``sched_delayed``)
        self.delayed = False
        #: the class instance that queues it while it is delayed
        self.holder: Eevdf | None = None
        #: insertion order: the rb-tree puts equal deadlines in the order they arrived
        self.seq = 0
        #: the weight EEVDF uses (set when queued)
        self.w = NICE_0_LOAD


class Eevdf:
    """One CPU's fair run queue under EEVDF (``struct cfs_rq``).  See the module
    docstring; :class:`irqflow.core.rq.RunQueue` calls it."""

    __slots__ = (
        "base_slice",
        "curr",
        "min_vruntime",
        "queue",
        "runnable",
        "seq",
        "sum_w",
        "sum_wv",
        "tick_ns",
    )

    def __init__(self, cfg: KernelConfig, ncpus: int) -> None:
        #: the entities on this run queue: the running one (while it is on it), those
        #: waiting, and delayed sleepers (``cfs_rq->nr_running`` counts all of them)
        self.queue: list[Task] = []
        #: ``cfs_rq->curr``: the fair task picked last, until another class's task or
        #: the idle task is picked; it may have left the queue meanwhile (it blocked)
        self.curr: Task | None = None
        #: sum of w * v and of w over the queue (``avg_vruntime``/``avg_load`` plus curr;
        #: the kernel keeps them relative to min_vruntime, which changes nothing exact)
        self.sum_wv = 0
        self.sum_w = 0
        self.min_vruntime = 0
        self.runnable = 0
        self.seq = 0
        self.base_slice = base_slice_ns(ncpus)
        #: TICK_NSEC: the floor of the lag clamp (update_entity_lag)
        self.tick_ns = cfg.tick_period_ns

    # --- V and eligibility ----------------------------------------------------------
    def avg_vruntime(self) -> int:
        """``avg_vruntime``: V, rounded down (the kernel floors negative sums too)."""
        if self.sum_w:
            return self.sum_wv // self.sum_w
        return self.min_vruntime

    def eligible(self, t: Task) -> bool:
        """``vruntime_eligible``: V >= v, as sum(w_j v_j) >= v * sum(w_j), no division."""
        return self.sum_wv >= t.vruntime * self.sum_w

    # --- the queue ----------------------------------------------------------------------
    def _add(self, t: Task) -> None:
        se = t.se
        self.queue.append(t)
        self.sum_wv += se.w * t.vruntime
        self.sum_w += se.w
        self.seq += 1
        se.seq = self.seq
        se.queued = True

    def _remove(self, t: Task) -> None:
        se = t.se
        self.queue.remove(t)
        self.sum_wv -= se.w * t.vruntime
        self.sum_w -= se.w
        se.queued = False

    def _update_min_vruntime(self) -> None:
        """``update_min_vruntime``: the least v queued, never moving back.  (With the
        sums above it only places a task that joins an empty queue.)"""
        if self.queue:
            least = min(t.vruntime for t in self.queue)
            if least > self.min_vruntime:
                self.min_vruntime = least

    def _update_entity_lag(self, t: Task) -> None:
        """``update_entity_lag``: vlag = V - v, clamped to the virtual time of
        max(2 slices, one tick)."""
        se = t.se
        limit = calc_delta_fair(max(2 * se.slice, self.tick_ns), se.w)
        se.vlag = max(-limit, min(limit, self.avg_vruntime() - t.vruntime))

    def _place(self, t: Task, initial: bool) -> None:
        """``place_entity``: v = V - lag (the lag inflated by (W + w) / W so that it
        survives the task's own weight joining V); d = v + slice, half a slice for a new
        task."""
        se = t.se
        se.slice = self.base_slice
        vslice = calc_delta_fair(se.slice, se.w)
        lag = 0
        if self.queue and se.vlag:  # PLACE_LAG
            load = self.sum_w
            lag = se.vlag * (load + se.w)
            lag = _div_trunc(lag, load or 1)
        t.vruntime = self.avg_vruntime() - lag
        if initial:  # PLACE_DEADLINE_INITIAL (ENQUEUE_INITIAL: wake_up_new_task)
            vslice //= 2
        se.deadline = t.vruntime + vslice

    # --- what the run queue calls -----------------------------------------------------
    def enqueue(self, t: Task, initial: bool) -> None:
        """``enqueue_entity`` of a task that is not queued (the caller brought ``curr``
        up to date first)."""
        t.se.w = WEIGHT_IDLEPRIO if t.policy == "idle" else t.weight
        self._place(t, initial)
        self._add(t)
        self.runnable += 1

    def requeue_delayed(self, t: Task) -> None:
        """``requeue_delayed_entity``: a delayed sleeper is woken; with DELAY_ZERO a
        positive lag is dropped and the task placed again at V."""
        se = t.se
        self._update_entity_lag(t)
        if se.vlag > 0:
            self._remove(t)
            se.vlag = 0
            self._place(t, False)
            self._add(t)
        se.delayed = False
        se.holder = None
        self.runnable += 1

    def dequeue(self, t: Task, sleep: bool) -> None:
        """``dequeue_entity`` (the caller brought ``curr`` up to date first).  A sleeper
        that is not eligible stays queued, delayed (DELAY_DEQUEUE)."""
        se = t.se
        self.runnable -= 1
        if sleep and not self.eligible(t):
            se.delayed = True
            se.holder = self
            return
        self._update_entity_lag(t)
        self._remove(t)
        self._update_min_vruntime()

    def finish_delayed(self, t: Task) -> None:
        """``dequeue_entities(DEQUEUE_SLEEP | DEQUEUE_DELAYED)``: a delayed sleeper
        really leaves, its lag clipped to at most 0 (DELAY_ZERO)."""
        se = t.se
        self._update_entity_lag(t)
        self._remove(t)
        self._update_min_vruntime()
        se.delayed = False
        se.holder = None
        if se.vlag > 0:
            se.vlag = 0
        if t is self.curr:
            self.curr = None

    def update_curr(self, delta: int) -> bool:
        """``update_curr``: ``curr`` ran ``delta`` ns more.  True: reschedule (its
        deadline was reached, or it lost its RUN_TO_PARITY protection and is not
        eligible (PREEMPT_SHORT)), and another task is queued."""
        curr = self.curr
        if curr is None:
            return False
        se = curr.se
        dv = calc_delta_fair(delta, se.w)
        curr.vruntime += dv
        if se.queued:
            self.sum_wv += se.w * dv
        resched = False
        if curr.vruntime >= se.deadline:  # update_deadline
            se.slice = self.base_slice
            se.deadline = curr.vruntime + calc_delta_fair(se.slice, se.w)
            se.protect = False
            resched = True
        self._update_min_vruntime()
        if len(self.queue) == 1:
            return False
        return resched or (not se.protect and se.queued and not self.eligible(curr))

    def pick_eevdf(self) -> Task | None:
        """``pick_eevdf``: the eligible task with the earliest deadline; ``curr`` keeps
        the CPU under RUN_TO_PARITY, and wins a tie only with a strictly earlier
        deadline."""
        queue = self.queue
        if len(queue) <= 1:
            return queue[0] if queue else None
        curr = self.curr
        keep = curr if curr is not None and curr.se.queued and self.eligible(curr) else None
        if keep is not None and keep.se.protect:
            return keep
        best: Task | None = None
        for t in queue:
            if t is curr or not self.eligible(t):
                continue
            if best is None or (t.se.deadline, t.se.seq) < (best.se.deadline, best.se.seq):
                best = t
        if best is None or (keep is not None and keep.se.deadline < best.se.deadline):
            best = keep
        return best

    def pick_next(self) -> Task | None:
        """``pick_task_fair`` + ``put_prev_entity``/``set_next_entity``: the task to run;
        delayed sleepers that come up leave on the way."""
        while True:
            nxt = self.pick_eevdf()
            if nxt is None or not nxt.se.delayed:
                break
            self.finish_delayed(nxt)
        if nxt is not self.curr:
            self.put_prev()
            if nxt is not None:
                nxt.se.protect = True  # set_next_entity's "vlag = deadline"
                self.curr = nxt
        return nxt

    def put_prev(self) -> None:
        """``put_prev_entity``: ``curr`` stops running; if still queued it goes back into
        the tree, behind the tasks of the same deadline."""
        curr = self.curr
        if curr is not None:
            if curr.se.queued:
                self.seq += 1
                curr.se.seq = self.seq
            curr.se.protect = False  # only the running task's flag means anything
            self.curr = None

    def wakeup_preempt(self, woken: Task) -> bool:
        """``check_preempt_wakeup_fair`` for ``woken``, just queued (the caller brought
        ``curr`` up to date first)."""
        curr = self.curr
        if curr is None or curr is woken:
            return False
        curr_idle, woken_idle = curr.policy == "idle", woken.policy == "idle"
        if curr_idle and not woken_idle:
            return True  # a non-idle task preempts a SCHED_IDLE one
        if curr_idle or woken_idle:
            return False  # ... and SCHED_IDLE tasks preempt nothing
        if self._preempt_short(woken, curr) and curr.se.protect:
            curr.se.protect = False
        return self.pick_eevdf() is woken

    def _preempt_short(self, woken: Task, curr: Task) -> bool:
        """``do_preempt_short``: the woken task has a shorter slice and is eligible, and
        either it has the earlier deadline or ``curr`` is not eligible.  (Every slice is
        the base slice in irqflow, so this stays False.)"""
        if woken.se.slice >= curr.se.slice or not self.eligible(woken):
            return False
        return woken.se.deadline < curr.se.deadline or not self.eligible(curr)

    def __len__(self) -> int:
        """Tasks on the queue (``cfs_rq->nr_running``: delayed sleepers included)."""
        return len(self.queue)


class Cfs:
    """One CPU's fair run queue under the pre-6.6 CFS rules: virtual runtime advances by
    ``delta * 1024 / weight``, the task with the smallest virtual runtime runs, a running
    task is preempted at the tick once it has used its share of ``sched_latency_ns`` (at
    least ``sched_min_granularity_ns``), and a woken task preempts the current one when
    its virtual runtime is smaller by more than ``sched_wakeup_granularity_ns``.  A woken
    sleeper is placed at ``min_vruntime - sched_latency_ns / 2`` at the earliest (the
    sleeper credit of ``place_entity``)."""

    __slots__ = ("cfg", "min_vruntime", "queue")

    def __init__(self, cfg: KernelConfig) -> None:
        self.cfg = cfg
        #: the runnable fair tasks, the running one included
        self.queue: list[Task] = []
        self.min_vruntime = 0

    @property
    def runnable(self) -> int:
        return len(self.queue)

    def enqueue(self, t: Task, wakeup: bool) -> None:
        if wakeup:
            # place_entity(): sleeper credit of half a latency period at most
            floor = self.min_vruntime - self.cfg.sched_latency_ns // 2
            t.vruntime = max(t.vruntime, floor)
        else:
            t.vruntime = max(t.vruntime, self.min_vruntime)
        self.queue.append(t)

    def dequeue(self, t: Task) -> None:
        self.queue.remove(t)

    def pick_next(self) -> Task | None:
        """Least vruntime (pid breaks ties)."""
        if not self.queue:
            return None
        best = self.queue[0]
        for t in self.queue:
            if (t.vruntime, t.pid) < (best.vruntime, best.pid):
                best = t
        self.min_vruntime = max(self.min_vruntime, best.vruntime)
        return best

    def tick_preempt(self, curr: Task) -> bool:
        """``check_preempt_tick``: has ``curr`` used its slice while others wait?"""
        if curr.policy == "idle":
            return len(self.queue) > 0
        others = [t for t in self.queue if t is not curr]
        if not others:
            return False
        total = sum(t.weight for t in self.queue) + (0 if curr.on_rq else curr.weight)
        ideal = max(
            self.cfg.sched_latency_ns * curr.weight // total,
            self.cfg.sched_min_granularity_ns,
        )
        ran = curr.sum_exec - curr.exec_start_sum
        if ran > ideal:
            return True
        least = min(t.vruntime for t in others)
        return curr.vruntime - least > ideal

    def wakeup_preempt(self, curr: Task, woken: Task) -> bool:
        """``check_preempt_wakeup``."""
        if curr.policy == "idle":
            return True
        return curr.vruntime - woken.vruntime > self.cfg.sched_wakeup_granularity_ns
