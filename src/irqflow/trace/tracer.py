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


#: the tracepoint systems irqflow emits (``system:event``)
TRACE_SYSTEMS = ("irq", "irq_vectors", "irqflow", "napi", "sched", "timer", "workqueue")


class Tracer:
    """``k.trace``: enable tracepoints by pattern, read them back, write them out.

    Events go to a ring buffer of ``buffer_size`` events; when it is full the oldest
    event is overwritten and ``overwritten`` counts it (ftrace's overwrite mode).
    """

    def __init__(self, kernel: KernelCore) -> None:
        self._k = kernel
        self._patterns: tuple[str, ...] = ()
        self._want: dict[str, bool] = {}
        self._buf: deque[TraceEvent] = deque(maxlen=DEFAULT_BUFFER_EVENTS)
        self.overwritten = 0

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
        cur = c.current
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
            )
        )

    def write_ftrace(self, path: str | Path) -> None:
        """Write the events as ftrace text, as ``/sys/kernel/tracing/trace`` shows them."""
        from irqflow.trace.ftrace import write_ftrace

        write_ftrace(path, self.events(), len(self._k.cpus))

    def write_perfetto(self, path: str | Path) -> None:
        """Write the events as Chrome trace-event JSON (Perfetto UI, chrome://tracing)."""
        from irqflow.trace.perfetto import write_perfetto

        real = getattr(self._k, "engine_name", "sim") == "real"
        write_perfetto(path, self.events(), len(self._k.cpus), per_thread=real)
