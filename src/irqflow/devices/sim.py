"""Interrupt sources that raise a line from ``Kernel.call_at``: arrival processes.

They work on both engines (on the real engine ``call_at`` runs on the clock thread); on
the sim engine they are deterministic.  :class:`Source` is also the base of the real-world
sources in :mod:`irqflow.devices.real`.

Each source schedules its raises with ``Kernel.call_at`` (the outside world, on no CPU)
and draws randomness from its own ``random.Random`` seeded from the kernel's seed and the
source's name, so adding a source never changes another source's arrivals.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irqflow.kernel import Kernel


def _rng(k: Kernel, name: str) -> random.Random:
    # str seeds hash deterministically (random.seed uses sha512 for str), unlike hash()
    return random.Random(f"{k.seed}:{name}")


class Source:
    """Base class: calls ``on_event()`` (default: ``k.raise_irq(irq)``) at each arrival."""

    def __init__(
        self,
        k: Kernel,
        irq: int,
        *,
        name: str,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        self.k = k
        self.irq = irq
        self.name = name
        self.events = 0
        self._on_event = on_event or (lambda: k.raise_irq(irq))

    def _fire(self) -> None:
        self.events += 1
        self._on_event()

    def at(self, times: Iterable[int]) -> Source:
        """Schedule an arrival at each time in ``times`` (ns)."""
        for t in times:
            self.k.call_at(t, self._fire)
        return self


class Periodic(Source):
    """One event every ``period_ns`` from ``start_ns``, ``count`` times (None: no limit),
    none at or after ``stop_ns``."""

    def __init__(
        self,
        k: Kernel,
        irq: int,
        period_ns: int,
        *,
        start_ns: int = 0,
        count: int | None = None,
        stop_ns: int | None = None,
        name: str = "periodic",
        on_event: Callable[[], None] | None = None,
    ) -> None:
        if period_ns <= 0:
            raise ValueError(f"Periodic({name!r}): period_ns must be > 0, got {period_ns}")
        super().__init__(k, irq, name=name, on_event=on_event)
        self.period_ns = period_ns
        self.remaining = count
        self.stop_ns = stop_ns
        k.call_at(max(start_ns, k.now()), self._tick)

    def _tick(self) -> None:
        if self.stop_ns is not None and self.k.now() >= self.stop_ns:
            return
        if self.remaining is not None:
            if self.remaining <= 0:
                return
            self.remaining -= 1
        self._fire()
        self.k.call_at(self.k.now() + self.period_ns, self._tick)


class Poisson(Source):
    """Poisson arrivals at ``rate_hz`` per second from ``start_ns`` until ``stop_ns``."""

    def __init__(
        self,
        k: Kernel,
        irq: int,
        rate_hz: float,
        *,
        start_ns: int = 0,
        stop_ns: int | None = None,
        name: str = "poisson",
        on_event: Callable[[], None] | None = None,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"Poisson({name!r}): rate_hz must be > 0, got {rate_hz}")
        super().__init__(k, irq, name=name, on_event=on_event)
        self.rate_hz = rate_hz
        self.stop_ns = stop_ns
        self._rng = _rng(k, name)
        self._schedule(max(start_ns, k.now()))

    def _schedule(self, base: int) -> None:
        t = base + max(1, round(self._rng.expovariate(self.rate_hz) * 1e9))
        if self.stop_ns is None or t < self.stop_ns:
            self.k.call_at(t, self._arrive)

    def _arrive(self) -> None:
        self._fire()
        self._schedule(self.k.now())


class Burst(Source):
    """``count`` events ``spacing_ns`` apart, starting at ``start_ns``."""

    def __init__(
        self,
        k: Kernel,
        irq: int,
        count: int,
        *,
        start_ns: int,
        spacing_ns: int,
        name: str = "burst",
        on_event: Callable[[], None] | None = None,
    ) -> None:
        if count < 0 or spacing_ns < 0:
            raise ValueError(f"Burst({name!r}): count and spacing_ns must be >= 0")
        super().__init__(k, irq, name=name, on_event=on_event)
        self.at(start_ns + i * spacing_ns for i in range(count))
