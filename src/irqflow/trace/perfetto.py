"""Chrome trace-event JSON that Perfetto UI (ui.perfetto.dev) and ``chrome://tracing`` open.

One process "CPUs" with one track (thread) per CPU.  On a CPU's track, properly nested
slices show what the CPU was doing: the task it ran (from ``sched:sched_switch``), and
inside it each interrupt (``irqflow:irq_entry`` .. ``irq_restore``), its handlers,
softirq vectors, tasklets, timers and work items.  Flow arrows connect a softirq raise to
the vector's next run on that CPU, and ``queue_work`` to the work's execution.  Counter
tracks show the pending softirq vectors per CPU and the queued work items per workqueue.

On the real engine several OS threads run for one CPU at the same time (the CPU's
interrupt thread and its task threads), so their slices would overlap on one CPU track.
There (``per_thread=True``) each thread gets its own track, named ``comm (CPU n)``; a
thread is sequential, so its slices nest, and an interrupt taken by ``ksoftirqd`` shows
inside ``ksoftirqd``'s softirq slice, as it happened.

The writer is defensive: an end without its beginning (lost to the ring buffer) is
dropped, and slices still open at the last event are closed there, so the output always
nests properly.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from irqflow.core.constants import SOFTIRQ_NAMES
from irqflow.trace.event import TraceEvent

__all__ = ["perfetto_events", "write_perfetto"]

_PID = 1  # the "CPUs" process


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


class _Writer:
    """Builds the event list, keeping one stack of open slices per CPU track."""

    def __init__(self, ncpus: int, per_thread: bool = False) -> None:
        self.per_thread = per_thread
        self.out: list[dict[str, Any]] = [
            {"ph": "M", "pid": _PID, "tid": 0, "name": "process_name",
             "args": {"name": "threads" if per_thread else "CPUs"}}
        ]  # fmt: skip
        if not per_thread:
            for n in range(ncpus):
                self.out.append({"ph": "M", "pid": _PID, "tid": n, "name": "thread_name",
                                 "args": {"name": f"CPU {n}"}})  # fmt: skip
        self.tracks: dict[tuple[int, int], int] = {}
        self.stacks: dict[int, list[str]] = defaultdict(list)
        self.task: dict[int, str] = {}
        self.pending: dict[int, set[int]] = defaultdict(set)
        self.queued: dict[str, int] = defaultdict(int)
        self.raise_flows: dict[tuple[int, int], deque[int]] = defaultdict(deque)
        self.work_flows: dict[str, deque[int]] = defaultdict(deque)
        self.next_id = 1

    def emit(self, cpu: int, ts: float, ph: str, name: str, **extra: Any) -> None:
        self.out.append({"pid": _PID, "tid": cpu, "ts": ts, "ph": ph, "name": name, **extra})

    def begin(self, cpu: int, ts: float, name: str, ev: TraceEvent) -> None:
        self.stacks[cpu].append(name)
        self.emit(cpu, ts, "B", name, cat=ev.system, args=dict(ev.fields))

    def end(self, cpu: int, ts: float, name: str | None) -> None:
        stack = self.stacks[cpu]
        if name is None:  # irq_handler_exit carries no name: it closes the open handler
            name = stack[-1] if stack and stack[-1].startswith("handler ") else None
        if name is None or name not in stack:
            return  # its beginning was lost to the ring buffer
        while stack[-1] != name:
            self.emit(cpu, ts, "E", stack.pop())
        self.emit(cpu, ts, "E", stack.pop())

    def flow(self, cpu: int, ts: float, name: str, queue: deque[int]) -> None:
        fid, self.next_id = self.next_id, self.next_id + 1
        queue.append(fid)
        self.emit(cpu, ts, "s", name, cat="flow", id=fid)

    def flow_end(self, cpu: int, ts: float, name: str, queue: deque[int]) -> None:
        if queue:
            self.emit(cpu, ts, "f", name, cat="flow", id=queue.popleft(), bp="e")

    def switch(self, cpu: int, ts: float, ev: TraceEvent) -> None:
        while self.stacks[cpu]:  # defensive: a switch happens outside interrupt slices
            self.emit(cpu, ts, "E", self.stacks[cpu].pop())
        if cpu in self.task:
            self.emit(cpu, ts, "E", self.task[cpu])
        name = str(ev.fields.get("next_comm"))
        self.task[cpu] = name
        self.emit(cpu, ts, "B", name, cat="sched", args={"pid": ev.fields.get("next_pid")})

    def track(self, ev: TraceEvent) -> int:
        """The track (``tid``) of ``ev``: its CPU, or per thread on the real engine."""
        if not self.per_thread:
            return ev.cpu
        key = (ev.cpu, ev.pid)
        tid = self.tracks.get(key)
        if tid is None:
            tid = self.tracks[key] = len(self.tracks)
            self.out.append({"ph": "M", "pid": _PID, "tid": tid, "name": "thread_name",
                             "args": {"name": f"{ev.comm} (CPU {ev.cpu})"}})  # fmt: skip
        return tid

    def add(self, ev: TraceEvent) -> None:
        cpu, ts, f = self.track(ev), _us(ev.ts), ev.fields
        if ev.name == "sched:sched_switch":
            self.switch(cpu, ts, ev)
            return
        sl = _slice(ev)
        if sl is not None:
            phase, name = sl
            if phase == "E" or name is None:
                self.end(cpu, ts, name)
                return
            self.begin(cpu, ts, name, ev)
            if ev.name == "irq:softirq_entry":
                vec = f.get("vec", -1)
                self.pending[cpu].discard(vec)
                self.emit(cpu, ts, "C", f"pending softirqs CPU {cpu}",
                          args={"vectors": len(self.pending[cpu])})  # fmt: skip
                self.flow_end(cpu, ts, "raise", self.raise_flows[(cpu, vec)])
            elif ev.name == "workqueue:workqueue_execute_start":
                work = str(f.get("work"))
                self.flow_end(cpu, ts, "queue_work", self.work_flows[work])
            return
        if ev.name == "irq:softirq_raise":
            vec = f.get("vec", -1)
            self.pending[cpu].add(vec)
            self.emit(cpu, ts, "C", f"pending softirqs CPU {cpu}",
                      args={"vectors": len(self.pending[cpu])})  # fmt: skip
            self.flow(cpu, ts, "raise", self.raise_flows[(cpu, vec)])
        elif ev.name == "workqueue:workqueue_queue_work":
            wq = str(f.get("workqueue"))
            self.queued[wq] += 1
            self.emit(cpu, ts, "C", f"queued work {wq}", args={"items": self.queued[wq]})
            self.flow(cpu, ts, "queue_work", self.work_flows[str(f.get("work"))])
        else:
            self.emit(cpu, ts, "i", ev.event, s="t", cat=ev.system, args=dict(f))

    def close(self, ts: float) -> list[dict[str, Any]]:
        for cpu, stack in self.stacks.items():
            while stack:
                self.emit(cpu, ts, "E", stack.pop())
        for cpu, name in self.task.items():
            self.emit(cpu, ts, "E", name)
        return self.out


def perfetto_events(
    events: Iterable[TraceEvent], ncpus: int, per_thread: bool = False
) -> list[dict[str, Any]]:
    """The trace-event list (``"traceEvents"``) for ``events``: a track per CPU, or with
    ``per_thread`` a track per thread (the real engine)."""
    w = _Writer(ncpus, per_thread)
    last = 0
    for ev in sorted(events, key=lambda e: e.ts):
        w.add(ev)
        last = ev.ts
    return w.close(_us(last))


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
