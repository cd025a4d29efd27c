"""Plots (matplotlib, PNG or SVG by the file name): a per-CPU timeline of contexts,
latency CDFs, and a metric against a swept setting (throughput against offered load).

``timeline(k, path, start_ns, end_ns)`` needs the trace on (``k.trace.enable("*")``): it
rebuilds, from the tracepoints, which context each CPU was in at every moment.  On the
real engine, where a CPU's threads run at the same time, it draws a row per thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irqflow.trace.event import TraceEvent

if TYPE_CHECKING:
    from irqflow.kernel import Kernel
    from irqflow.stats.latency import Histogram

#: the tracepoints :func:`timeline` reads: enable just these to plot long runs
TIMELINE_EVENTS = (
    "sched:sched_switch",
    "irqflow:irq_entry",
    "irqflow:irq_restore",
    "irq:softirq_entry",
    "irq:softirq_exit",
)

#: context -> colour (a colour-blind-safe palette, Okabe-Ito)
COLOURS = {
    "hardirq": "#D55E00",
    "softirq": "#E69F00",
    "tasklet": "#F0E442",
    "ksoftirqd": "#CC79A7",
    "irq thread": "#0072B2",
    "worker": "#56B4E9",
    "user": "#009E73",
    "idle": "#EEEEEE",
}


def _task_context(comm: str) -> str:
    if comm.startswith("swapper"):
        return "idle"
    if comm.startswith("ksoftirqd"):
        return "ksoftirqd"
    if comm.startswith("irq/"):
        return "irq thread"
    if comm.startswith(("kworker", "events")):
        return "worker"
    return "user"


def context_segments(
    events: Iterable[TraceEvent], ncpus: int, end_ns: int
) -> list[tuple[int, int, int, str]]:
    """``(cpu, start, end, context)`` segments rebuilt from tracepoints."""
    task = ["idle"] * ncpus
    stacks: list[list[str]] = [[] for _ in range(ncpus)]
    since = [0] * ncpus
    segs: list[tuple[int, int, int, str]] = []

    def current(cpu: int) -> str:
        stack = stacks[cpu]
        if not stack:
            return task[cpu]
        top = stack[-1]
        if top == "softirq" and task[cpu] == "ksoftirqd" and "hardirq" not in stack:
            return "ksoftirqd"
        return top

    def mark(cpu: int, ts: int, before: str) -> None:
        """Close the segment of ``before`` if the context changed at ``ts``."""
        if current(cpu) != before:
            if ts > since[cpu]:
                segs.append((cpu, since[cpu], ts, before))
            since[cpu] = ts

    for ev in sorted(events, key=lambda e: e.ts):
        cpu, ts, name = ev.cpu, ev.ts, ev.name
        if cpu >= ncpus:
            continue
        stack = stacks[cpu]
        before = current(cpu)
        if name == "sched:sched_switch":
            task[cpu] = _task_context(str(ev.fields.get("next_comm")))
        elif name == "irqflow:irq_entry":
            stack.append("hardirq")
        elif name == "irqflow:irq_restore" and "hardirq" in stack:
            _pop_to(stack, "hardirq")
        elif name == "irq:softirq_entry":
            stack.append("tasklet" if ev.fields.get("vec") in (0, 6) else "softirq")
        elif name == "irq:softirq_exit" and stack and stack[-1] in ("softirq", "tasklet"):
            stack.pop()
        else:
            continue
        mark(cpu, ts, before)
    for cpu in range(ncpus):
        if end_ns > since[cpu]:
            segs.append((cpu, since[cpu], end_ns, current(cpu)))
    return segs


def thread_segments(
    events: Iterable[TraceEvent], end_ns: int
) -> tuple[list[tuple[int, str]], list[tuple[int, int, int, str]]]:
    """For the real engine, whose threads of one CPU run at the same time: the rows
    ``(cpu, "comm")`` (one per thread seen in the trace) and ``(row, start, end, context)``
    segments.  A thread is idle except inside interrupt, softirq, tasklet, work-item and
    IRQ-thread handler slices (a task's own code between them leaves no tracepoint)."""
    rows: dict[tuple[int, int], int] = {}
    names: list[tuple[int, str]] = []
    stacks: list[list[str]] = []
    since: list[int] = []
    segs: list[tuple[int, int, int, str]] = []

    def current(r: int) -> str:
        return stacks[r][-1] if stacks[r] else "idle"

    for ev in sorted(events, key=lambda e: e.ts):
        key = (ev.cpu, ev.pid)
        r = rows.get(key)
        if r is None:
            r = rows[key] = len(names)
            names.append((ev.cpu, ev.comm))
            stacks.append([])
            since.append(ev.ts)
        stack, name = stacks[r], ev.name
        before = current(r)
        if name == "irqflow:irq_entry":
            stack.append("hardirq")
        elif name == "irqflow:irq_restore" and "hardirq" in stack:
            _pop_to(stack, "hardirq")
        elif name == "irq:softirq_entry":
            busy = "ksoftirqd" if ev.comm.startswith("ksoftirqd") and not stack else None
            stack.append(busy or ("tasklet" if ev.fields.get("vec") in (0, 6) else "softirq"))
        elif name == "irq:softirq_exit" and stack:
            stack.pop()
        elif name == "workqueue:workqueue_execute_start":
            stack.append("worker")
        elif name == "workqueue:workqueue_execute_end" and "worker" in stack:
            _pop_to(stack, "worker")
        elif name == "irq:irq_handler_entry" and ev.comm.startswith("irq/") and not stack:
            stack.append("irq thread")
        elif name == "irq:irq_handler_exit" and stack and stack[-1] == "irq thread":
            stack.pop()
        else:
            continue
        if current(r) != before:
            if ev.ts > since[r]:
                segs.append((r, since[r], ev.ts, before))
            since[r] = ev.ts
    for r in range(len(names)):
        if end_ns > since[r]:
            segs.append((r, since[r], end_ns, current(r)))
    return names, segs


def _pop_to(stack: list[str], name: str) -> None:
    while stack and stack.pop() != name:
        pass


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def timeline(
    k: Kernel, path: str | Path, start_ns: int = 0, end_ns: int | None = None, title: str = ""
) -> None:
    """Per-CPU timeline of contexts between ``start_ns`` and ``end_ns``."""
    end = k.now() if end_ns is None else end_ns
    if getattr(k, "engine_name", "sim") == "real":
        names, segs = thread_segments(k.trace.events(), k.now())
        labels = [f"{comm} (CPU {cpu})" for cpu, comm in names]
    else:
        segs = context_segments(k.trace.events(), len(k.cpus), k.now())
        labels = [f"CPU {n}" for n in range(len(k.cpus))]
    nrows = max(1, len(labels))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 0.9 * nrows + 1.6))
    scale = 1e6 if end - start_ns > 2_000_000 else 1e3
    unit = "ms" if scale == 1e6 else "us"
    for ctx, colour in COLOURS.items():
        for row in range(len(labels)):
            bars = [
                ((max(s, start_ns) - start_ns) / scale, (min(e, end) - max(s, start_ns)) / scale)
                for c, s, e, kind in segs
                if c == row and kind == ctx and e > start_ns and s < end
            ]
            if bars:
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour, edgecolor="none")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(nrows - 0.5, -0.5)
    ax.set_xlim(0, (end - start_ns) / scale)
    ax.set_xlabel(f"time since {start_ns / 1e6:.3f} ms ({unit})")
    ax.set_title(title or "what each CPU was doing")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, ec="#999999") for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), ncol=len(COLOURS), loc="upper center",
              bbox_to_anchor=(0.5, -0.28 - 0.05 / nrows), frameon=False)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_cdf(hists: dict[str, Histogram], path: str | Path, title: str = "") -> None:
    """Cumulative distributions of several latency histograms (``k.latency().histograms
    [kind]``), log-scaled time axis in microseconds."""
    from irqflow.stats.latency import _lower

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, h in sorted(hists.items()):
        if not h.count:
            continue
        xs, ys, seen = [], [], 0
        for b in sorted(h.buckets):
            seen += h.buckets[b]
            xs.append(max(_lower(b + 1), 1) / 1000)
            ys.append(seen / h.count)
        ax.step(xs, ys, where="post", label=f"{label} (n={h.count})")
    ax.set_xscale("log")
    ax.set_xlabel("latency (us)")
    ax.set_ylabel("fraction of events")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "latency CDF")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: line colours for sweep curves: Okabe-Ito, darkest first, no pale yellow
CURVE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")


def sweep_curve(
    rows: list[dict[str, Any]],
    x: str,
    ys: list[str],
    path: str | Path,
    *,
    group_by: list[str] | None = None,
    title: str = "",
) -> None:
    """Each metric in ``ys`` against ``x`` (the first swept key), one panel per metric
    (they may have different units) and one line per combination of the ``group_by``
    keys (the other swept keys).  A text-valued ``x`` gets one tick per value."""
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    fig, axes = plt.subplots(len(ys), 1, figsize=(8, 1.2 + 3.3 * len(ys)), squeeze=False)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(g) for g in group_by or []), []).append(r)
    xs_all = [r[x] for r in rows]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs_all)
    categories = list(dict.fromkeys(xs_all))
    thousands = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}")
    for ax, y in zip((a[0] for a in axes), ys, strict=True):
        for n, (key, rs) in enumerate(groups.items()):
            pts = sorted(
                ((r[x] if numeric else categories.index(r[x]), r[y]) for r in rs
                 if isinstance(r.get(y), int | float)),
                key=lambda p: p[0],
            )  # fmt: skip
            if not pts:
                continue
            label = ", ".join(f"{g}={v}" for g, v in zip(group_by or [], key, strict=True))
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label or None,
                    color=CURVE_COLOURS[n % len(CURVE_COLOURS)])  # fmt: skip
        if numeric:
            ax.xaxis.set_major_formatter(thousands)
        else:
            ax.set_xticks(range(len(categories)), [str(c) for c in categories])
        ax.yaxis.set_major_formatter(thousands)
        ax.set_ylabel(y)
        ax.grid(True, alpha=0.3)
        if group_by and len(groups) > 1:
            ax.legend(fontsize="small", loc="best")
    axes[-1][0].set_xlabel(x)
    axes[0][0].set_title(title or f"{', '.join(ys)} against {x}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
