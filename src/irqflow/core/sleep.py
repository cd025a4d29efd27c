"""Timed sleeps in process context (kernel/time/sleep_timeout.c, include/linux/delay.h).

* ``msleep(ms)`` is ``schedule_timeout_uninterruptible(msecs_to_jiffies(ms))`` in a loop
  until no time is left: a timer on the wheel wakes the task from TIMER_SOFTIRQ, so it
  returns on a tick, costs the CPU a tick and a softirq, and the task sleeps in
  TASK_UNINTERRUPTIBLE (``prev_state=D``).  The lazy wheel rounds the expiry up, so the
  sleep lasts at least ``ms`` and up to a jiffy (level 0) more.  Kernels before 6.13
  added a jiffy to the timeout themselves (``KernelConfig.msleep_extra_jiffy``).
* ``usleep_range(min_us, max_us)`` sleeps on an hrtimer whose range is [min, max]: on a
  quiet CPU it wakes at max, earlier only when another local timer interrupt falls in the
  range.  Hard-IRQ expiry, except on PREEMPT_RT for tasks that are not real-time (there
  the wake-up comes from HRTIMER_SOFTIRQ in ``ktimers/N``).
* ``fsleep(us)`` picks one of them with at most 25% slack: ``udelay`` up to 10 us,
  ``usleep_range(us, us + us/4)`` below four ticks, ``msleep`` beyond.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from irqflow.core.hrtimer import HrTimer
from irqflow.core.timer import Timer

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu


def schedule_timeout(k: KernelBase, c: Cpu, timeout: int, how: str = "D") -> int:
    """Sleep (as ``how``: D, S or I) until ``timeout`` jiffies have passed or the task is
    woken; returns the jiffies left (0 once the time is over)."""
    expire = k.jiffies + timeout
    task = c.current

    def process_timeout(k: KernelBase, c: Cpu) -> None:
        k.sched.wake_up_process(task)

    t = Timer(None, flow=process_timeout, name=f"process_timer-{task.pid}")
    k.timers.arm(c, t, expire)
    k.sched.block(c, how)
    k.timers.del_timer(t)  # del_timer_sync: its callback cannot be running, we are
    return max(expire - k.jiffies, 0)


def msleep(k: KernelBase, ms: float) -> None:
    """``msleep``: see the module's docstring (``ms`` may be fractional; the jiffies are
    rounded up as ``msecs_to_jiffies`` rounds them)."""
    c = k._this_cpu("msleep")
    cfg = k.config
    timeout = math.ceil(ms * cfg.hz / 1000)
    if cfg.msleep_extra_jiffy:
        timeout += 1
    while timeout:
        timeout = schedule_timeout(k, c, timeout)
        c = k._this_cpu("msleep")  # an IRQ thread may have moved


def schedule_hrtimeout_range(k: KernelBase, c: Cpu, expires: int, delta: int, how: str) -> bool:
    """Sleep until the hrtimer [expires, expires + delta] (absolute ns) fires or the task
    is woken; True if the timer fired."""
    task = c.current
    # PREEMPT_RT expires sleepers from the softirq, except those of real-time tasks
    soft = k.config.preempt_model == "rt" and not task.is_rt

    def hrtimer_wakeup(k: KernelBase, c: Cpu) -> None:
        k.sched.wake_up_process(task)

    t = HrTimer(hrtimer_wakeup, soft=soft, name=f"hrtimer_sleeper-{task.pid}",
                function="hrtimer_wakeup")  # fmt: skip
    k.hrtimers.start(c, t, expires, expires + delta)
    k.sched.block(c, how)
    return not k.hrtimers.cancel(t)


def usleep_range(k: KernelBase, min_us: float, max_us: float) -> None:
    """``usleep_range_state(min, max, TASK_UNINTERRUPTIBLE)``."""
    c = k._this_cpu("usleep_range")
    expires = k.engine.now + int(min_us * 1000)
    delta = max(int((max_us - min_us) * 1000), 0)
    while not schedule_hrtimeout_range(k, c, expires, delta, "D"):
        c = k._this_cpu("usleep_range")  # woken early: sleep again until the timer


def usleep_range_upper_bound_us(k: KernelBase) -> int:
    """USLEEP_RANGE_UPPER_BOUND: four ticks, in us (below it fsleep uses hrtimers)."""
    return (k.config.tick_period_ns << 2) // 1000
