"""Chrome trace-event JSON that Perfetto UI (ui.perfetto.dev) and ``chrome://tracing`` open.

One process "CPUs" with one track (thread) per CPU.  On a CPU's track, properly nested
slices show what the CPU was doing: the task it ran (from ``sched:sched_switch``), and
inside it each interrupt (``irqflow:irq_entry`` .. ``irq_restore``), its handlers,
softirq vectors, tasklets, timers and work items.  Counter tracks show the pending softirq
vectors per CPU and the queued work items per workqueue.

Flow arrows join each softirq raise to the run that served it, and each ``queue_work`` to
the work's execution.  A ``__do_softirq`` pass serves every raise of a vector made on that
CPU before the vector's ``softirq_entry`` (the pending bit is one bit: later raises of a
still-pending vector add nothing to it), so a run serves exactly the raises of its vector
on its CPU since the previous run's entry; a raise during a run sets the bit again and is
served by the next run.  Every served raise gets its own arrow to its run.  Perfetto draws
the arrows of the selected slice, so this does not clutter the view, and it answers both
questions a reader asks: from a handler, "which run served my raise, and how late?", and
from a run, "which raises did it serve?" (all of its incoming arrows).  A single arrow per
run would leave the coalesced raises unattributed.  The run's slice also carries
``raises_served`` and ``since_first_raise_us`` (its latency from the earliest of them).
A raise no recorded run served (the trace ended first) gets no arrow, so every flow has
both ends.

A CPU track opens a slice for the task the CPU runs from its first event (the event's
comm) until the first recorded ``sched_switch``, so every slice and flow end on it has
an enclosing slice: Perfetto binds a flow to the slice around it and drops one it cannot
bind.

Tracks never use ``tid`` 0 (older Perfetto builds merge it with another track): CPU ``n``
is ``tid`` ``n + 1``.  Every event has a ``cat`` (``__metadata`` for metadata), which strict
loaders require.

On the real engine several OS threads run for one CPU at the same time (the CPU's
interrupt thread and its task threads), so their slices would overlap on one CPU track.
There (``per_thread=True``) each thread gets its own track, named ``comm (CPU n)``; a
thread is sequential, so its slices nest, and an interrupt taken by ``ksoftirqd`` shows
inside ``ksoftirqd``'s softirq slice, as it happened.  Raises and runs are still matched
per CPU, so an arrow can go from an interrupt thread's track to ``ksoftirqd``'s.

The writer is defensive: an end without its beginning (lost to the ring buffer) is
dropped, and slices still open at the last event are closed there, so the output always
nests properly.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

from irqflow.core.constants import SOFTIRQ_NAMES
from irqflow.trace.event import TraceEvent

__all__ = ["perfetto_events", "write_perfetto"]

_PID = 1  # the "CPUs" process
_META = "__metadata"  # the category Chrome gives metadata events


def _us(ts: int) -> float:
    return ts / 1000.0


#: event -> (phase, slice-name prefix, field naming the slice); None field: no suffix.
#: irq_handler_exit has no name field: it closes the open handler slice.
_SLICES: dict[str, tuple[str, str, str | None]] = {
    "irqflow:irq_entry": ("B", "hardirq", "irq"),
    "irqflow:irq_restore": ("E", "hardirq", "irq"),
    "irq:irq_handler_entry": ("B", "handler", "name"),
    "irq:softirq_entry": ("B", "softirq", "vec"),
    "irq:softirq_exit": ("E", "softirq", "vec"),
    "irq:tasklet_entry": ("B", "tasklet", "tasklet"),
    "irq:tasklet_exit": ("E", "tasklet", "tasklet"),
    "timer:timer_expire_entry": ("B", "timer", "timer"),
    "timer:timer_expire_exit": ("E", "timer", "timer"),
    "workqueue:workqueue_execute_start": ("B", "work", "work"),
    "workqueue:workqueue_execute_end": ("E", "work", "work"),
    "irq_vectors:local_timer_entry": ("B", "tick", None),
    "irq_vectors:local_timer_exit": ("E", "tick", None),
}


def _slice(ev: TraceEvent) -> tuple[str, str | None] | None:
    """(phase, slice name) for events that open or close a slice on the CPU track."""
    if ev.name == "irq:irq_handler_exit":
        return "E", None
    spec = _SLICES.get(ev.name)
    if spec is None:
        return None
    phase, prefix, key = spec
    if key is None:
        return phase, prefix
    value = ev.fields.get(key)
    return phase, f"{prefix} {_vec(value) if key == 'vec' else value}"


def _vec(v: Any) -> str:
    return SOFTIRQ_NAMES[v] if isinstance(v, int) and 0 <= v < len(SOFTIRQ_NAMES) else str(v)


class _Flows:
    """Which event starts and which ends each flow arrow, decided before writing (so no
    arrow is written without its other end): ``start[i]`` is the flow id leaving event
    ``i``, ``end[j]`` the ids arriving at event ``j``."""

    def __init__(self, events: Sequence[TraceEvent]) -> None:
        self.start: dict[int, int] = {}
        self.end: dict[int, list[int]] = defaultdict(list)
        self.first: dict[int, int] = {}  # run index -> index of its earliest served raise
        raised: dict[tuple[int, Any], list[int]] = defaultdict(list)
        queued: dict[str, deque[int]] = defaultdict(deque)
        for i, ev in enumerate(events):
            name = ev.name
            if name == "irq:softirq_raise":
                raised[ev.cpu, ev.fields.get("vec")].append(i)
            elif name == "irq:softirq_entry":
                served = raised.pop((ev.cpu, ev.fields.get("vec")), [])
                for r in served:
                    self._join(r, i)
                if served:
                    self.first[i] = served[0]
            elif name == "workqueue:workqueue_queue_work":
                queued[str(ev.fields.get("work"))].append(i)
            elif name == "workqueue:workqueue_execute_start":
                waiting = queued.get(str(ev.fields.get("work")))
                if waiting:
                    self._join(waiting.popleft(), i)

    def _join(self, src: int, dst: int) -> None:
        fid = len(self.start) + 1
        self.start[src] = fid
        self.end[dst].append(fid)


class _Writer:
    """Builds the event list, keeping one stack of open slices per track."""

    def __init__(self, ncpus: int, per_thread: bool, flows: _Flows) -> None:
        self.per_thread = per_thread
        self.flows = flows
        self.out: list[dict[str, Any]] = [
            {"ph": "M", "cat": _META, "pid": _PID, "tid": 1, "name": "process_name",
             "args": {"name": "threads" if per_thread else "CPUs"}}
        ]  # fmt: skip
        if not per_thread:
            for n in range(ncpus):
                self.name_track(n + 1, f"CPU {n}")
        self.tracks: dict[tuple[int, int], int] = {}
        #: open slices per track: (name, category)
        self.stacks: dict[int, list[tuple[str, str]]] = defaultdict(list)
        self.task: dict[int, str] = {}
        self.pending: dict[int, set[int]] = defaultdict(set)
        self.queued: dict[str, int] = defaultdict(int)

    def name_track(self, tid: int, name: str) -> None:
        self.out.append({"ph": "M", "cat": _META, "pid": _PID, "tid": tid,
                         "name": "thread_name", "args": {"name": name}})  # fmt: skip
        self.out.append({"ph": "M", "cat": _META, "pid": _PID, "tid": tid,
                         "name": "thread_sort_index", "args": {"sort_index": tid}})  # fmt: skip

    def emit(self, tid: int, ts: float, ph: str, name: str, cat: str, **extra: Any) -> None:
        self.out.append({"pid": _PID, "tid": tid, "ts": ts, "ph": ph, "name": name,
                         "cat": cat, **extra})  # fmt: skip

    def begin(self, tid: int, ts: float, name: str, cat: str, args: dict[str, Any]) -> None:
        self.stacks[tid].append((name, cat))
        self.emit(tid, ts, "B", name, cat, args=args)

    def pop(self, tid: int, ts: float) -> None:
        name, cat = self.stacks[tid].pop()
        self.emit(tid, ts, "E", name, cat)

    def end(self, tid: int, ts: float, name: str | None) -> None:
        stack = self.stacks[tid]
        if name is None:  # irq_handler_exit carries no name: it closes the open handler
            name = stack[-1][0] if stack and stack[-1][0].startswith("handler ") else None
        if name is None or all(open_name != name for open_name, _ in stack):
            return  # its beginning was lost to the ring buffer
        while stack[-1][0] != name:
            self.pop(tid, ts)
        self.pop(tid, ts)

    def switch(self, tid: int, ts: float, ev: TraceEvent) -> None:
        while self.stacks[tid]:  # defensive: a switch happens outside interrupt slices
            self.pop(tid, ts)
        if tid in self.task:
            self.emit(tid, ts, "E", self.task[tid], "sched")
        name = str(ev.fields.get("next_comm"))
        self.task[tid] = name
        self.emit(tid, ts, "B", name, "sched", args={"pid": ev.fields.get("next_pid")})

    def track(self, ev: TraceEvent) -> int:
        """The track (``tid``, never 0) of ``ev``: its CPU, or per thread on the real engine."""
        if not self.per_thread:
            return ev.cpu + 1
        key = (ev.cpu, ev.pid)
        tid = self.tracks.get(key)
        if tid is None:
            tid = self.tracks[key] = len(self.tracks) + 1
            self.name_track(tid, f"{ev.comm} (CPU {ev.cpu})")
        return tid

    def pending_counter(self, tid: int, ts: float, cpu: int) -> None:
        self.emit(tid, ts, "C", f"pending softirqs CPU {cpu}", "irq",
                  args={"vectors": len(self.pending[cpu])})  # fmt: skip

    def add(self, i: int, ev: TraceEvent, events: Sequence[TraceEvent]) -> None:
        tid, ts, f = self.track(ev), _us(ev.ts), ev.fields
        if ev.name == "sched:sched_switch":
            self.switch(tid, ts, ev)
            return
        if tid not in self.task and not self.per_thread:
            # the task running before the first recorded switch: every slice and flow
            # start on the track then has an enclosing slice to bind to
            self.task[tid] = ev.comm
            self.emit(tid, ts, "B", ev.comm, "sched", args={"pid": ev.pid})
        sl = _slice(ev)
        if sl is not None:
            phase, name = sl
            if phase == "E" or name is None:
                self.end(tid, ts, name)
                return
            args = dict(f)
            first = self.flows.first.get(i)
            if first is not None:
                args["raises_served"] = len(self.flows.end[i])
                args["since_first_raise_us"] = round(_us(ev.ts - events[first].ts), 3)
            self.begin(tid, ts, name, ev.system, args)
            if ev.name == "irq:softirq_entry":
                self.pending[ev.cpu].discard(f.get("vec", -1))
                self.pending_counter(tid, ts, ev.cpu)
            flow = "queue_work" if ev.system == "workqueue" else f"raise {_vec(f.get('vec'))}"
            for arrow in self.flows.end.get(i, ()):
                self.emit(tid, ts, "f", flow, "flow", id=arrow, bp="e")
            return
        fid = self.flows.start.get(i)
        if ev.name == "irq:softirq_raise":
            vec = f.get("vec", -1)
            self.pending[ev.cpu].add(vec)
            self.pending_counter(tid, ts, ev.cpu)
            if fid is not None:
                self.emit(tid, ts, "s", f"raise {_vec(vec)}", "flow", id=fid)
        elif ev.name == "workqueue:workqueue_queue_work":
            wq = str(f.get("workqueue"))
            self.queued[wq] += 1
            self.emit(tid, ts, "C", f"queued work {wq}", "workqueue",
                      args={"items": self.queued[wq]})  # fmt: skip
            if fid is not None:
                self.emit(tid, ts, "s", "queue_work", "flow", id=fid)
        else:
            self.emit(tid, ts, "i", ev.event, ev.system, s="t", args=dict(f))

    def close(self, ts: float) -> list[dict[str, Any]]:
        for tid, stack in self.stacks.items():
            while stack:
                self.pop(tid, ts)
        for tid, name in self.task.items():
            self.emit(tid, ts, "E", name, "sched")
        return self.out


def perfetto_events(
    events: Iterable[TraceEvent], ncpus: int, per_thread: bool = False
) -> list[dict[str, Any]]:
    """The trace-event list (``"traceEvents"``) for ``events``: a track per CPU, or with
    ``per_thread`` a track per thread (the real engine)."""
    ordered = sorted(events, key=lambda e: e.ts)
    w = _Writer(ncpus, per_thread, _Flows(ordered))
    for i, ev in enumerate(ordered):
        w.add(i, ev, ordered)
    return w.close(_us(ordered[-1].ts) if ordered else 0.0)


def write_perfetto(
    path: str | os.PathLike[str],
    events: Iterable[TraceEvent],
    ncpus: int,
    per_thread: bool = False,
) -> None:
    """Write ``events`` as a Chrome trace-event JSON file."""
    data = {"traceEvents": perfetto_events(events, ncpus, per_thread), "displayTimeUnit": "ns"}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, default=str)
