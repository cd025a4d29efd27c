"""The tracepoint hook: kernel code calls ``emit`` only when ``kernel.tracing`` is true,
so a machine with tracing off pays one attribute test per tracepoint."""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irqflow.trace.event import TraceEvent

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu
    from irqflow.core.kernel import KernelCore

DEFAULT_BUFFER_EVENTS = 1 << 18
#: the task attribute holding its migrate_disable() depth (``p->migration_disabled``),
#: read when the core's tasks have it; the ftrace column shows ``.`` otherwise
_MIGRATE_DEPTH = "migration_disabled"


#: the tracepoint systems irqflow emits (``system:event``)
TRACE_SYSTEMS = ("irq", "irq_vectors", "irqflow", "napi", "sched", "timer", "workqueue")


class Tracer:
    """``k.trace``: enable tracepoints by pattern, read them back, write them out.

    Events go to a ring buffer of ``buffer_size`` events; when it is full the oldest
    event is overwritten and ``overwritten`` counts it (ftrace's overwrite mode), and
    ``overruns`` by the CPU that recorded it (the kernel's per-CPU overrun count, which
    the ftrace header and the lost-event annotations report).  Unlike the kernel's
    per-CPU buffers, the buffer is shared: a busy CPU also pushes out a quiet CPU's
    oldest events.
    """

    def __init__(self, kernel: KernelCore) -> None:
        self._k = kernel
        self._patterns: tuple[str, ...] = ()
        self._want: dict[str, bool] = {}
        self._buf: deque[TraceEvent] = deque(maxlen=DEFAULT_BUFFER_EVENTS)
        self.overwritten = 0
        #: events overwritten, by the CPU that had recorded them
        self.overruns: dict[int, int] = {}
        #: whether the kernel's tasks have a migrate_disable() depth (looked up once)
        self._migrate: bool | None = None

    @property
    def enabled(self) -> bool:
        return self._k.tracing

    def enable(self, pattern: str | Iterable[str] = "*", *, buffer_size: int | None = None) -> None:
        """Turn on the tracepoints whose ``system:event`` name matches ``pattern``
        (shell-style, e.g. ``"irq:*"``; a comma-separated string or a list for several).
        Calling it again adds patterns."""
        pats = pattern.split(",") if isinstance(pattern, str) else list(pattern)
        pats = [p.strip() for p in pats if p.strip()]
        if not pats:
            raise ValueError(f"trace.enable({pattern!r}): no pattern given; use '*' for all")
        for p in pats:
            if ":" not in p and p != "*":
                raise ValueError(
                    f"trace.enable({p!r}): tracepoint names are 'system:event' "
                    "(e.g. 'irq:softirq_entry', 'irq:*', 'sched:*'); use '*' for all"
                )
        if buffer_size is not None:
            if buffer_size < 1:
                raise ValueError(f"trace.enable(buffer_size={buffer_size}) must be >= 1")
            self._buf = deque(self._buf, maxlen=buffer_size)
        self._patterns = (*self._patterns, *pats)
        self._want.clear()
        self._k.tracing = True

    def disable(self) -> None:
        """Turn every tracepoint off (the recorded events stay)."""
        self._patterns = ()
        self._want.clear()
        self._k.tracing = False

    def clear(self) -> None:
        self._buf.clear()
        self.overwritten = 0
        self.overruns = {}

    def events(self) -> list[TraceEvent]:
        """Recorded events, oldest first."""
        return list(self._buf)

    def emit(self, c: Cpu, name: str, fields: dict[str, Any]) -> None:
        want = self._want.get(name)
        if want is None:
            want = any(fnmatch.fnmatchcase(name, p) for p in self._patterns)
            self._want[name] = want
        if not want:
            return
        buf = self._buf
        if len(buf) == buf.maxlen:
            self.overwritten += 1
            lost = buf[0].cpu
            self.overruns[lost] = self.overruns.get(lost, 0) + 1
        cur = c.current
        migrate = self._migrate
        if migrate is None:
            migrate = self._migrate = hasattr(cur, _MIGRATE_DEPTH)
        buf.append(
            TraceEvent(
                name,
                self._k.engine.now,
                c.nr,
                cur.comm,
                cur.pid,
                fields,
                c.preempt_count,
                not c.irqs_on,
                c.need_resched,
                getattr(cur, _MIGRATE_DEPTH) if migrate else 0,
            )
        )

    def write_ftrace(self, path: str | Path) -> None:
        """Write the events as ftrace text, as ``/sys/kernel/tracing/trace`` shows them."""
        from irqflow.trace.ftrace import write_ftrace

        write_ftrace(path, self.events(), len(self._k.cpus), overruns=self.overruns)

    def write_perfetto(self, path: str | Path) -> None:
        """Write the events as Chrome trace-event JSON (Perfetto UI, chrome://tracing)."""
        from irqflow.trace.perfetto import write_perfetto

        real = getattr(self._k, "engine_name", "sim") == "real"
        write_perfetto(path, self.events(), len(self._k.cpus), per_thread=real)
