"""Perfetto / Chrome trace-event JSON: valid by the format's rules, with the expected
tracks, nesting and flows."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from irqflow.demo import run_demo
from irqflow.trace.event import TraceEvent
from irqflow.trace.perfetto import perfetto_events


def validate(events: list[dict[str, Any]]) -> None:
    """The rules Perfetto's JSON importer relies on: B/E matched and properly nested per
    track, monotonic timestamps per track, every flow start has one finish, later in the
    file and not earlier in time, with the same name, both ends inside a slice (Perfetto
    binds them to the enclosing slice and drops a flow it cannot bind); and what strict
    loaders need: every
    event has a ``cat``, and no track is ``tid`` 0."""
    stacks: dict[tuple[int, int], list[str]] = defaultdict(list)
    last: dict[tuple[int, int], float] = {}
    starts: dict[int, dict[str, Any]] = {}
    finishes: dict[int, dict[str, Any]] = {}
    for e in events:
        assert isinstance(e.get("cat"), str) and e["cat"], e
        assert e["tid"] != 0, e
        if e["ph"] == "M":
            continue
        key = (e["pid"], e["tid"])
        assert e["ts"] >= last.get(key, 0), e
        last[key] = e["ts"]
        if e["ph"] == "B":
            stacks[key].append(e["name"])
        elif e["ph"] == "E":
            assert stacks[key] and stacks[key][-1] == e["name"], (e, stacks[key][-3:])
            stacks[key].pop()
        elif e["ph"] == "s":
            assert stacks[key], e  # Perfetto binds a flow to the enclosing slice
            assert e["id"] not in starts
            starts[e["id"]] = e
        elif e["ph"] == "f":
            assert stacks[key] and e.get("bp") == "e", e
            assert e["id"] in starts and e["id"] not in finishes, e
            finishes[e["id"]] = e
            assert starts[e["id"]]["ts"] <= e["ts"]
            assert starts[e["id"]]["name"] == e["name"]
    assert all(not s for s in stacks.values())
    assert finishes.keys() == starts.keys()


def check_softirq_flows(events: list[dict[str, Any]], trace: list[TraceEvent]) -> int:
    """Every raise arrow ends at the run that served it: no run of that vector on that
    CPU comes between the raise and the arrow's run; and every raise that a later run of
    its vector on its CPU served has an arrow (so the runs account for all of them).
    Returns the number of arrows."""
    pos = {(e["ph"], e["id"]): i for i, e in enumerate(events) if e["ph"] in "sf"}
    arrows = [e for e in events if e["ph"] == "s" and e["name"].startswith("raise ")]
    for s in arrows:
        start, finish = pos["s", s["id"]], pos["f", s["id"]]
        f = events[finish]
        run = "softirq " + s["name"].removeprefix("raise ")
        assert s["tid"] == f["tid"]  # one track per CPU
        # the run the arrow ends at: the last slice opened on the track before the finish
        entry = max(i for i in range(finish) if events[i]["ph"] == "B"
                    and events[i]["tid"] == f["tid"])  # fmt: skip
        assert events[entry]["name"] == run and events[entry]["ts"] == f["ts"]
        assert start < entry
        earlier = [e for e in events[start + 1 : entry] if e["ph"] == "B"
                   and e["tid"] == f["tid"] and e["name"] == run]  # fmt: skip
        assert not earlier, (s, earlier[0])  # that run served this raise already
    served = 0
    for i, ev in enumerate(trace):
        if ev.name == "irq:softirq_raise":
            served += any(later.name == "irq:softirq_entry" and later.cpu == ev.cpu
                          and later.fields["vec"] == ev.fields["vec"]
                          for later in trace[i + 1 :])  # fmt: skip
    assert len(arrows) == served
    runs = [e for e in events if e["ph"] == "B" and "raises_served" in e["args"]]
    assert sum(e["args"]["raises_served"] for e in runs) == served
    return len(arrows)


def test_demo_trace_is_valid_chrome_json_with_a_track_per_cpu(tmp_path: Path) -> None:
    """The demo's whole trace converts to JSON that follows the format's rules; each CPU
    has a named track; interrupts nest handlers; softirq raises flow to their entries."""
    k = run_demo(lambda _line: None)
    path = tmp_path / "demo.json"
    k.trace.write_perfetto(path)
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    validate(events)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"CPU 0", "CPU 1"}
    assert {e["tid"] for e in events} == {1, 2}
    slices = [e for e in events if e["ph"] == "B"]
    kinds = {e["name"].split(" ")[0] for e in slices}
    assert {"hardirq", "handler", "softirq", "tasklet", "ksoftirqd/0"} <= kinds
    # a handler slice lies inside a hardirq slice on the same track
    first_handler = next(i for i, e in enumerate(events) if e["ph"] == "B"
                         and e["name"].startswith("handler "))  # fmt: skip
    before = [e for e in events[:first_handler] if e.get("tid") == events[first_handler]["tid"]]
    assert any(e["ph"] == "B" and e["name"].startswith("hardirq ") for e in before)
    assert any(e["ph"] == "f" and e["name"] == "raise NET_RX" for e in events)
    assert any(e["ph"] == "C" and e["name"].startswith("pending softirqs") for e in events)


def test_writer_drops_ends_whose_beginning_was_lost_and_closes_open_slices() -> None:
    """A truncated trace (ring-buffer overwrite) still nests: orphan ends are dropped,
    open slices are closed at the last timestamp."""
    k = run_demo(lambda _line: None)
    evs = k.trace.events()
    truncated = evs[len(evs) // 3 : 2 * len(evs) // 3]
    validate(perfetto_events(truncated, 2))


def test_work_items_get_slices_flows_and_a_queue_counter() -> None:
    """queue_work flows to the work's execution slice on the worker's CPU; the queued-work
    counter rises and the slice nests inside the worker task's slice."""
    from irqflow import IRQ_HANDLED, Kernel, Work

    k = Kernel(cpus=2)
    k.trace.enable("*")
    w = Work(lambda w: k.udelay(20), name="store")
    k.request_irq(9, lambda i, d: (k.schedule_work(w), IRQ_HANDLED)[1], name="dev")
    k.call_at(10_000, k.raise_irq, 9)
    k.run(until=1_000_000)
    events = perfetto_events(k.trace.events(), 2)
    validate(events)
    assert [e["name"] for e in events if e["ph"] == "B" and e["name"].startswith("work ")] == [
        "work store"
    ]
    flow_ids = {e["id"] for e in events if e["ph"] == "s" and e["name"] == "queue_work"}
    assert flow_ids and flow_ids == {e["id"] for e in events if e["ph"] == "f"
                                     and e["name"] == "queue_work"}  # fmt: skip
    assert any(e["ph"] == "C" and e["name"] == "queued work events" for e in events)


def test_demo_raise_arrows_join_each_raise_to_the_run_that_served_it(tmp_path: Path) -> None:
    """Issue 11: a __do_softirq pass serves every raise of the vector before it, so an
    arrow never starts at a raise an earlier run served, and each served raise has its
    arrow; the run's slice counts its raises and its delay from the earliest one."""
    k = run_demo(lambda _line: None)
    path = tmp_path / "demo.json"
    k.trace.write_perfetto(path)
    events = json.loads(path.read_text())["traceEvents"]
    validate(events)
    assert check_softirq_flows(events, sorted(k.trace.events(), key=lambda e: e.ts)) > 100
    coalesced = [e for e in events if e["ph"] == "B" and e["args"].get("raises_served", 0) > 1]
    assert coalesced and all(e["args"]["since_first_raise_us"] > 0 for e in coalesced)


def test_raises_before_a_run_go_to_it_and_raises_during_it_to_the_next() -> None:
    """Hand-built: two raises, a run that raises again, a second run.  The first run gets
    both earlier raises; the raise made during it goes to the second run."""

    def ev(name: str, ts: int, vec: int = 3) -> TraceEvent:
        return TraceEvent(name, ts, 0, "swapper/0", 0, {"vec": vec})

    trace = [
        ev("irq:softirq_raise", 1_000),
        ev("irq:softirq_raise", 2_000),
        ev("irq:softirq_entry", 3_000),
        ev("irq:softirq_raise", 4_000),
        ev("irq:softirq_exit", 5_000),
        ev("irq:softirq_entry", 6_000),
        ev("irq:softirq_exit", 7_000),
        ev("irq:softirq_raise", 8_000),  # never served in this trace: no arrow
    ]
    events = perfetto_events(trace, 1)
    validate(events)
    assert check_softirq_flows(events, trace) == 3
    arrows = {e["id"]: e["ts"] for e in events if e["ph"] == "s"}
    ends = {e["id"]: e["ts"] for e in events if e["ph"] == "f"}
    assert sorted((arrows[i], ends[i]) for i in arrows) == [(1.0, 3.0), (2.0, 3.0), (4.0, 6.0)]
    assert next(e["name"] for e in events if e["ph"] == "B") == "swapper/0"  # the task so far
    runs = [e["args"] for e in events if e["ph"] == "B" and e["name"] == "softirq NET_RX"]
    assert runs == [
        {"vec": 3, "raises_served": 2, "since_first_raise_us": 2.0},
        {"vec": 3, "raises_served": 1, "since_first_raise_us": 2.0},
    ]


def test_per_thread_tracks_are_valid_and_match_raises_per_cpu() -> None:
    """The real engine's layout (a track per thread): still valid, no tid 0, and raises
    are matched to runs by CPU even when the run is on another thread's track."""
    k = run_demo(lambda _line: None)
    trace = sorted(k.trace.events(), key=lambda e: e.ts)
    events = perfetto_events(trace, 2, per_thread=True)
    validate(events)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"ksoftirqd/0 (CPU 0)", "swapper/0 (CPU 0)"} <= names
    arrows = [e for e in events if e["ph"] == "s" and e["name"].startswith("raise ")]
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert any(ends[a["id"]]["tid"] != a["tid"] for a in arrows)
