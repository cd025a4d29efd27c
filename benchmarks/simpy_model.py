"""The 2-CPU NIC scenario as a plain SimPy model: the baseline irqflow is measured against.

Theory of operation
-------------------
Each CPU is a ``simpy.PreemptiveResource(capacity=1)``. A NIC process waits for each
packet time of :func:`workload.arrival_times` and starts one process per packet on the
next CPU, round robin. The packet process

1. requests its CPU with priority ``PRIO_HARDIRQ`` and ``preempt=True`` and holds it for
   ``hardirq_ns``. Hard IRQ work is never preempted: SimPy only preempts a user whose
   request key ``(priority, request time, not preempt)`` is strictly greater than the
   newcomer's, and an earlier hard IRQ's key is never greater than a later one's;
2. then runs the NET_RX softirq work (``softirq_ns``), then the tasklet (``tasklet_ns``),
   each as a ``preempt=False`` request at priority ``PRIO_DEFERRED``. A hard IRQ request
   takes the CPU away from such work: SimPy removes the victim's request from the users
   and throws ``simpy.Interrupt(Preempted(by, usage_since, resource))`` into the victim
   process, which subtracts ``now - usage_since`` from its remaining time and requests the
   CPU again.

Two SimPy details shape step 2:

* A re-request gets a new key with the *current* time, which would put the preempted item
  behind every deferred item queued before the preemption. In the kernel the interrupted
  softirq resumes where it stopped, so the re-request uses ``PRIO_RESUMED``, between hard
  IRQs and fresh deferred work. At most one item per CPU is ever in that state (only the
  one that was running can be preempted), so it needs no tie-break.
* SimPy schedules the ``Interrupt`` as an URGENT event, ahead of a NORMAL timeout due at
  the same instant, and it may arrive while the victim still sits at ``yield req`` (the
  request was granted but the process has not resumed yet). Both cases show up as an
  interrupt with nothing left to do or nothing done yet; the loop handles both.

Deferred work is FIFO per CPU in request order: a packet's tasklet is queued when its
softirq work ends, behind the softirq work of packets that arrived meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any, Literal

import simpy
from simpy.resources.resource import Preempted

from workload import NicWorkload, Result, arrival_times

#: Hard IRQ requests: the most important (SimPy: a smaller number is more important).
PRIO_HARDIRQ = 0
#: A preempted softirq/tasklet item asking for its CPU back: ahead of fresh deferred work.
PRIO_RESUMED = 1
#: Fresh NET_RX softirq and tasklet work.
PRIO_DEFERRED = 2

Stage = Literal["hardirq", "softirq", "tasklet"]
#: (completion time ns, cpu, stage, packet number)
LogEntry = tuple[int, int, Stage, int]
ProcessGen = Generator[simpy.Event, Any, None]


class SimpyNicModel:
    """One SimPy environment running the NIC scenario; see the module docstring."""

    def __init__(self, w: NicWorkload, *, log: list[LogEntry] | None = None) -> None:
        self.w = w
        self.env = simpy.Environment()
        self.cpus = [simpy.PreemptiveResource(self.env, capacity=1) for _ in range(w.cpus)]
        #: when not None, every completed stage is appended here (tests use it)
        self.log = log
        self.packets = 0
        self.hardirqs = 0
        self.softirq_items = 0
        self.tasklets = 0
        self.busy_ns = 0
        self.preemptions = 0

    def start(self, arrivals: Iterable[int]) -> None:
        """Start the NIC: one interrupt at each (non-decreasing) time in ``arrivals``."""
        self.env.process(self._nic(arrivals))

    def run(self, until: int | None = None) -> None:
        """Run until ``until`` ns, or until every packet's work is done."""
        self.env.run(until=until)

    def result(self, wall_s: float) -> Result:
        return Result(
            model="simpy",
            hardirqs=self.hardirqs,
            softirq_items=self.softirq_items,
            tasklets=self.tasklets,
            wall_s=wall_s,
            packets=self.packets,
            busy_ns=self.busy_ns,
            end_ns=int(self.env.now),
            preemptions=self.preemptions,
        )

    def _nic(self, arrivals: Iterable[int]) -> ProcessGen:
        env = self.env
        ncpus = self.w.cpus
        for n, t in enumerate(arrivals):
            if t > env.now:
                yield env.timeout(t - env.now)
            self.packets += 1
            env.process(self._packet(n % ncpus, n))

    def _packet(self, cpu: int, n: int) -> ProcessGen:
        w = self.w
        res = self.cpus[cpu]
        with res.request(priority=PRIO_HARDIRQ, preempt=True) as req:
            yield req
            yield self.env.timeout(w.hardirq_ns)
        self.hardirqs += 1
        self.busy_ns += w.hardirq_ns
        if self.log is not None:
            self.log.append((int(self.env.now), cpu, "hardirq", n))

        yield from self._deferred(res, w.softirq_ns)
        self.softirq_items += 1
        if self.log is not None:
            self.log.append((int(self.env.now), cpu, "softirq", n))

        yield from self._deferred(res, w.tasklet_ns)
        self.tasklets += 1
        if self.log is not None:
            self.log.append((int(self.env.now), cpu, "tasklet", n))

    def _deferred(self, res: simpy.PreemptiveResource, cost_ns: int) -> ProcessGen:
        """Hold ``res`` for ``cost_ns`` in total, giving it up to hard IRQs as they come."""
        env = self.env
        remaining = cost_ns
        priority = PRIO_DEFERRED
        while remaining > 0:
            with res.request(priority=priority, preempt=False) as req:
                try:
                    yield req
                    yield env.timeout(remaining)
                except simpy.Interrupt as exc:
                    cause = exc.cause
                    assert isinstance(cause, Preempted)
                    done = int(env.now - cause.usage_since)
                    self.busy_ns += done
                    remaining -= done
                    self.preemptions += 1
                    priority = PRIO_RESUMED
                else:
                    self.busy_ns += remaining
                    remaining = 0


def run_simpy(w: NicWorkload) -> Result:
    """Simulate ``w`` with SimPy, drain the deferred work, and time the whole run."""
    start = time.perf_counter()
    model = SimpyNicModel(w)
    model.start(arrival_times(w))
    model.run()
    return model.result(time.perf_counter() - start)
