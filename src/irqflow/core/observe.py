"""Observers: how tracing and statistics watch the core without the core importing them.

The core calls two sinks, both installed by :class:`irqflow.Kernel` (the outer layer):

* a **trace sink** (:class:`irqflow.trace.tracer.Tracer`): ``emit(cpu, name, fields)``
  at each tracepoint.  The core tests the kernel's ``tracing`` flag before it builds the
  fields, so a machine with tracing off pays one attribute test per tracepoint;
* a **latency sink** (:class:`irqflow.stats.latency.LatencyRecorder`): ``hist(kind,
  subject)`` gives the histogram a hook adds samples to (``hist.add(ns)``), and
  ``fold()`` is the sink's housekeeping, called at the tick.

Without an outer layer (a bare ``KernelCore``) both are the null sinks below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from irqflow.core.cpu import Cpu


class Samples(Protocol):
    """Where one histogram's samples go."""

    @property
    def add(self) -> Callable[[int], None]: ...


class LatencySink(Protocol):
    def hist(self, kind: str, subject: object) -> Samples: ...
    def fold(self) -> None: ...


class TraceSink(Protocol):
    def emit(self, c: Cpu, name: str, fields: dict[str, Any]) -> None: ...


def _discard(v: int) -> None:
    return None


class _NullSamples:
    __slots__ = ("add",)

    def __init__(self) -> None:
        self.add: Callable[[int], None] = _discard


class NullLatency:
    """Records nothing."""

    def __init__(self) -> None:
        self._samples = _NullSamples()

    def hist(self, kind: str, subject: object) -> Samples:
        return self._samples

    def fold(self) -> None:
        return None


class NullTrace:
    """Emits nothing (the kernel's ``tracing`` stays False with it)."""

    def emit(self, c: Cpu, name: str, fields: dict[str, Any]) -> None:
        return None
