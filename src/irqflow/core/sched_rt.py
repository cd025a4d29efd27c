"""What keeps real-time tasks from starving the rest: classic RT throttling
(kernel/sched/rt.c) and the 6.12+ fair server (kernel/sched/deadline.c ``dl_server_*``).

**Classic RT throttling** (``rt_bandwidth="throttle"``: every kernel before 6.12, and
6.12+ built with CONFIG_RT_GROUP_SCHED=y).  :class:`RtBandwidth` is the root task group's
``rt_bandwidth``, one for the machine; each CPU's run queue keeps its ``rt_time``.

* ``update_curr_rt`` (the tick, and the scheduler's events) adds the running RT task's
  time to its CPU's ``rt_time``; once ``rt_time > rt_runtime`` the CPU's RT tasks are
  throttled (``sched_rt_runtime_exceeded``), whether or not a fair task waits: the CPU
  runs fair tasks, or idles, until the period timer lets them run again;
* the period timer starts when an RT task is queued and the timer is not running
  (``start_rt_bandwidth``), so its periods count from that moment; at each period end
  (``do_sched_rt_period_timer``) every CPU's ``rt_time`` drops by
  ``min(rt_time, rt_runtime)`` (by ``overruns x rt_runtime`` in the kernel, one period at
  a time here), a throttled CPU whose ``rt_time`` fell below ``rt_runtime`` is let go,
  and the timer stops once no CPU has RT time or queued RT tasks;
* RT_RUNTIME_SHARE is off (no borrowing between CPUs: the default since 5.10; before, a
  throttled CPU could borrow the other CPUs' unused runtime, which is not modelled);
  ``rt_runtime >= rt_period`` means no limit, and a runtime of 0 throttles nothing (the
  kernel zeroes ``rt_time`` instead).

**The fair server** (``rt_bandwidth="fair_server"``: 6.12+ without RT_GROUP_SCHED, the
default).  Classic throttling is compiled out; each CPU has a deadline server
(:class:`FairServer`) of 50 ms every 1000 ms for its fair tasks:

* it starts when a fair task is queued on a CPU that had none (``dl_server_start``) and
  stops when the last one leaves (``dl_server_stop``); it is deferred: throttled, with a
  timer at the zero-laxity point ``deadline - runtime`` (950 ms into its period);
* fair tasks that run anyway charge its runtime (``dl_server_update``); so does idle time
  (``dl_server_update_idle_time``); once 50 ms are used in the background the server
  starts a new deferred period, so it never runs while fair tasks get their 5%;
* when the timer fires with fair tasks still queued (``dl_server_timer``), the server is
  queued as a deadline entity (above every RT task) with a new 1 s deadline and runs
  fair tasks for 50 ms; then it is throttled until that deadline.  ``dl_defer_running``
  stays set while the starvation lasts, so later periods are not deferred: under a
  permanent RT hog the fair tasks get 50 ms at 950 ms after they were queued, then 50 ms
  at the start of each following server period (1950 ms, 2950 ms ...), i.e. 5% of the
  CPU.  A lone RT hog with no fair task queued keeps 100% of its CPU.

The kernel runs these timers as hrtimers.  irqflow evaluates a timer that has expired
whenever the run queue is next touched (the tick, the scheduler's events), exactly as of
its expiry; and it gives a timer its own event (``call_at``) where the moment matters: the
RT period timer whenever a CPU is throttled (the CPU may idle, with its tick stopped), and
a fair-server timer when it expires before the next tick.  Such an event reschedules the
CPU through the reschedule IPI (counted as RES in /proc/interrupts, where the kernel's
hrtimer interrupt counts as LOC).  The kernel also reschedules when ``dl_server_start``
or ``dl_server_timer`` leaves the server deferred; the CPU would pick the same task
again, and irqflow leaves those out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irqflow.core.rq import RunQueue

#: RR_TIMESLICE: 100 ms (include/linux/sched/rt.h)
RR_TIMESLICE_NS = 100_000_000
#: the fair server's parameters, set on its first start (kernel/sched/deadline.c
#: dl_server_start: runtime 50 * NSEC_PER_MSEC, period 1000 * NSEC_PER_MSEC)
FAIR_SERVER_RUNTIME_NS = 50_000_000
FAIR_SERVER_PERIOD_NS = 1_000_000_000
#: dl_server_min_res: the defer timer is not pushed for less than this (deadline.c)
DL_SERVER_MIN_RES_NS = 1_000_000
#: DL_SCALE: dl_entity_overflow() drops 10 bits of each time (kernel/sched/sched.h)
DL_SCALE = 10
#: u64 arithmetic (dl_entity_overflow), and the sign bit dl_time_before() tests
_U64 = 1 << 64
_S64_SIGN = 1 << 63
#: NSEC_PER_USEC: start_dl_timer() compares in whole microseconds (ktime_us_delta)
_NSEC_PER_USEC = 1_000


class RtBandwidth:
    """The root group's ``rt_bandwidth`` (CONFIG_RT_GROUP_SCHED): the period timer over
    every CPU's ``rt_time``.  See the module docstring."""

    __slots__ = ("active", "armed_at", "next_at", "period", "rqs", "runtime", "warned")

    def __init__(self, rqs: list[RunQueue], runtime: int, period: int) -> None:
        self.rqs = rqs
        self.runtime = runtime
        self.period = period
        #: the period timer runs (``rt_period_active``)
        self.active = False
        #: its next expiry, and the expiry that has its own event
        self.next_at = 0
        self.armed_at = -1
        #: "sched: RT throttling activated" is printed once (printk_deferred_once)
        self.warned = False

    def start(self, now: int) -> None:
        """``do_start_rt_bandwidth``: an RT task is queued; start the timer if it is not
        running.  It fires at once (a no-op: every ``rt_time`` is 0 when it stopped) and
        then every period from now."""
        if not self.active:
            self.active = True
            self.next_at = now + self.period

    def catch_up(self, now: int) -> None:
        """Run the period timer's expiries up to ``now`` (``do_sched_rt_period_timer``),
        then reschedule the CPUs it let go."""
        if not self.active or self.next_at > now:
            return
        freed: list[RunQueue] = []
        while self.active and self.next_at <= now:
            self.next_at += self.period
            idle = True
            for rq in self.rqs:
                queued = bool(rq.rt_tasks)
                if not rq.rt_time and not queued:
                    continue
                if rq.rt_time:
                    rq.rt_time -= min(rq.rt_time, self.runtime)
                    if rq.rt_throttled and rq.rt_time < self.runtime:
                        rq.rt_throttled = False
                        freed.append(rq)
                    if rq.rt_time or queued:
                        idle = False
                else:
                    idle = False
            if idle:
                self.active = False
        for rq in freed:
            rq.rt_unthrottled()
        self.arm()

    def arm(self) -> None:
        """Give the next expiry its own event while some CPU is throttled."""
        if (
            self.active
            and self.armed_at != self.next_at
            and any(rq.rt_throttled for rq in self.rqs)
        ):
            self.armed_at = self.next_at
            self.rqs[0].call_at(self.next_at, self.timer_event, self.next_at)

    def timer_event(self, expiry: int) -> None:
        if self.active and self.next_at == expiry:
            self.catch_up(expiry)

    def exceeded(self, rq: RunQueue) -> bool:
        """``sched_rt_runtime_exceeded``: True if ``rq``'s RT tasks are (now) throttled."""
        if rq.rt_throttled:
            return True
        if self.runtime >= self.period:
            return False
        if rq.rt_time > self.runtime:
            if not self.runtime:
                rq.rt_time = 0  # a group without runtime is not throttled
                return False
            rq.rt_throttled = True
            if not self.warned:
                self.warned = True
                rq.log("sched: RT throttling activated")
            self.arm()
            return True
        return False


def _overflow(dl_deadline: int, dl_runtime: int, runtime: int, deadline: int, t: int) -> bool:
    """``dl_entity_overflow``: runtime / (deadline - t) > dl_runtime / dl_deadline,
    compared as the kernel does: each time scaled down by DL_SCALE bits, products in
    64-bit unsigned arithmetic, ``dl_time_before`` on the result."""
    left = ((dl_deadline >> DL_SCALE) * ((runtime >> DL_SCALE) % _U64)) % _U64
    right = ((((deadline - t) % _U64) >> DL_SCALE) * (dl_runtime >> DL_SCALE)) % _U64
    return (right - left) % _U64 >= _S64_SIGN


class FairServer:
    """``rq->fair_server``: one CPU's deferred deadline server for its fair tasks.  See
    the module docstring; the names follow ``struct sched_dl_entity``."""

    __slots__ = (
        "active",
        "armed",
        "deadline",
        "defer_running",
        "dl_deadline",
        "dl_period",
        "dl_runtime",
        "inited",
        "queued",
        "rq",
        "runtime",
        "throttled",
        "timer_at",
    )

    def __init__(self, rq: RunQueue) -> None:
        self.rq = rq
        self.dl_runtime = FAIR_SERVER_RUNTIME_NS
        self.dl_deadline = self.dl_period = FAIR_SERVER_PERIOD_NS
        #: ``dl_server``: set up by the first start (until then ``dl_defer`` is 0 too)
        self.inited = False
        #: ``dl_server_active``: started and not stopped
        self.active = False
        #: on the deadline run queue: the CPU runs its fair tasks before any RT task
        self.queued = False
        self.runtime = 0
        self.deadline = 0
        self.throttled = False
        #: ``dl_defer_armed``: the timer is the deferral (zero-laxity) timer
        self.armed = False
        #: ``dl_defer_running``: a deferral ran out while fair tasks starved; later
        #: periods start at once
        self.defer_running = False
        #: the hrtimer ``dl_timer``: its expiry, None when not queued
        self.timer_at: int | None = None

    # --- kernel/sched/deadline.c ------------------------------------------------------
    def _has_tasks(self) -> bool:
        """``fair_server_has_tasks``: fair tasks queued (delayed sleepers included)."""
        return self.rq.fair_nr() > 0

    def _start_timer(self, now: int) -> bool:
        """``start_dl_timer``: at ``deadline - runtime`` for a deferral, else at the next
        period (``deadline``: implicit deadline).  False if that is over a microsecond
        in the past (``ktime_us_delta < 0``).  A queued timer is left as it is."""
        act = self.deadline - self.runtime if self.armed else self.deadline
        if act - now <= -_NSEC_PER_USEC:  # ktime_us_delta(act, now) < 0
            return False
        if self.timer_at is None:
            self.timer_at = max(act, now)
            self.rq.server_timer_armed()
        return True

    def _new_period(self, now: int) -> None:
        """``replenish_dl_new_period``."""
        self.deadline = now + self.dl_deadline
        self.runtime = self.dl_runtime
        if not self.defer_running:
            self.throttled = self.armed = True

    def _update_entity(self, now: int) -> None:
        """``update_dl_entity`` (the CBS wakeup rule; the deadline is implicit)."""
        if self.deadline < now or _overflow(
            self.dl_deadline, self.dl_runtime, self.runtime, self.deadline, now
        ):
            self._new_period(now)
        elif not self.defer_running:
            self.throttled = self.armed = True

    def _replenish(self, now: int) -> None:
        """``replenish_dl_entity``."""
        if self.armed and _overflow(
            self.dl_deadline, self.dl_runtime, self.runtime, self.deadline, now
        ):
            self.deadline = now + self.dl_deadline
            self.runtime = self.dl_runtime
        while self.runtime <= 0:
            self.deadline += self.dl_period
            self.runtime += self.dl_runtime
        if self.deadline < now:
            self._new_period(now)  # "DL replenish lagged too much"
        self.throttled = False
        if self.armed:
            self.armed = False
            return
        if not self.defer_running and now < self.deadline - self.runtime and self._has_tasks():
            self.armed = self.throttled = True
            if not self._start_timer(now):
                self.timer_at = None
                self.armed = self.throttled = False

    def _enqueue(self, now: int, replenish: bool) -> None:
        """``enqueue_dl_entity`` with ENQUEUE_REPLENISH or ENQUEUE_WAKEUP."""
        if replenish:
            self._replenish(now)
        else:
            self._update_entity(now)
        if self.throttled and self._start_timer(now):
            return  # deferred: it waits for its timer
        if self.throttled:
            self.timer_at = None
            self.armed = self.throttled = False
        self.queued = True

    def start(self, now: int) -> None:
        """``dl_server_start``: the first fair task is queued on this CPU.  (The kernel
        also reschedules here when the server stays deferred; that picks the same task
        again and is left out.)"""
        if not self.inited:
            self.inited = True
            if not self.throttled:  # setup_new_dl_entity
                self._new_period(now)
        self.active = True
        self._enqueue(now, replenish=False)
        if self.queued:
            self.rq.resched = True  # resched_curr(): the server outranks what runs

    def stop(self) -> None:
        """``dl_server_stop``: the last fair task left this CPU."""
        self.queued = False
        self.timer_at = None
        self.armed = self.throttled = False
        self.active = False

    def update(self, delta: int, now: int) -> None:
        """``dl_server_update`` → ``update_curr_dl_se``: a fair task ran ``delta`` ns."""
        if delta <= 0:
            return
        self.runtime -= delta
        if self.throttled and self.runtime <= 0:
            # used up in the background: the fair tasks got their share without the
            # server; start a new deferred period
            self.defer_running = False
            self.timer_at = None
            self._new_period(now)
            self._start_timer(now)
            return
        if self.runtime <= 0:  # ran its 50 ms: throttled until the next period
            self.throttled = True
            self.queued = False
            if not self._start_timer(now):
                self._enqueue(now, replenish=True)
            if not self.queued:
                self.rq.resched = True  # the server is no longer the leftmost entity

    def update_idle_time(self, idle_ns: int) -> None:
        """``dl_server_update_idle_time``: idle time counts as time the fair tasks did not
        need."""
        if not self.inited or self.runtime < 0 or idle_ns < 0:
            return
        self.runtime -= idle_ns
        if self.runtime < 0:
            self.defer_running = False
            self.runtime = 0

    def run_timers(self, now: int) -> None:
        """Fire the timer if it expired by ``now``, as of its expiry."""
        while self.timer_at is not None and self.timer_at <= now:
            at = self.timer_at
            self.timer_at = None
            self._timer(at)

    def _timer(self, now: int) -> None:
        """``dl_server_timer``."""
        if not self.throttled:
            return
        if not self._has_tasks():
            self._replenish(now)
            return
        if self.armed:
            if now < self.deadline - self.runtime - DL_SERVER_MIN_RES_NS:
                # fair tasks could still get the runtime in the background: push the
                # deferral to the new zero-laxity point
                self.timer_at = self.deadline - self.runtime
                self.rq.server_timer_armed()
                return
            self.defer_running = True
        self._enqueue(now, replenish=True)
        if self.queued:
            self.rq.resched = True  # resched_curr(): the server outranks what runs
