"""Perfetto / Chrome trace-event JSON: valid by the format's rules, with the expected
tracks, nesting and flows."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from irqflow.demo import run_demo
from irqflow.trace.perfetto import perfetto_events


def validate(events: list[dict[str, Any]]) -> None:
    """The rules Perfetto's JSON importer relies on: B/E matched and properly nested per
    track, monotonic timestamps per track, every flow start has one finish."""
    stacks: dict[tuple[int, int], list[str]] = defaultdict(list)
    last: dict[tuple[int, int], float] = {}
    starts, finishes = set(), set()
    for e in events:
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
            starts.add(e["id"])
        elif e["ph"] == "f":
            finishes.add(e["id"])
    assert all(not s for s in stacks.values())
    assert finishes <= starts


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
    slices = [e for e in events if e["ph"] == "B"]
    kinds = {e["name"].split(" ")[0] for e in slices}
    assert {"hardirq", "handler", "softirq", "tasklet", "ksoftirqd/0"} <= kinds
    # a handler slice lies inside a hardirq slice on the same track
    first_handler = next(i for i, e in enumerate(events) if e["ph"] == "B"
                         and e["name"].startswith("handler "))  # fmt: skip
    before = [e for e in events[:first_handler] if e.get("tid") == events[first_handler]["tid"]]
    assert any(e["ph"] == "B" and e["name"].startswith("hardirq ") for e in before)
    assert any(e["ph"] == "f" and e["name"] == "raise" for e in events)
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
