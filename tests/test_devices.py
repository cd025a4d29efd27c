"""Arrival processes of irqflow.devices.sim: times, limits and seeded reproducibility."""

from __future__ import annotations

from irqflow import Kernel
from irqflow.devices.sim import Burst, Periodic, Poisson


def _times(k: Kernel) -> tuple[list[int], object]:
    seen: list[int] = []
    return seen, lambda: seen.append(k.now())


def test_periodic_starts_steps_and_stops() -> None:
    """Periodic: first event at start_ns, then every period, none at or after stop_ns;
    count limits it too."""
    k = Kernel(cpus=1)
    seen, rec = _times(k)
    Periodic(k, 5, 1_000, start_ns=500, stop_ns=4_000, on_event=rec)  # type: ignore[arg-type]
    seen2, rec2 = _times(k)
    Periodic(k, 6, 700, count=3, on_event=rec2)  # type: ignore[arg-type]
    k.run(until=10_000)
    assert seen == [500, 1_500, 2_500, 3_500]
    assert seen2 == [0, 700, 1_400]


def test_burst_and_default_event_raises_the_line() -> None:
    """Burst: count events spacing apart; without on_event a source raises its line."""
    k = Kernel(cpus=1)
    k.request_irq(5, lambda i, d: 1, name="dev")
    src = Burst(k, 5, 4, start_ns=1_000, spacing_ns=250)
    k.run(until=10_000)
    assert src.events == 4
    assert k.statistics().irqs[5].raised == 4


def test_poisson_rate_stop_and_same_seed_same_arrivals() -> None:
    """Poisson: about rate x time events, none after stop_ns, identical for the same
    kernel seed and name, different for another name."""

    def arrivals(seed: int, name: str) -> list[int]:
        k = Kernel(cpus=1, seed=seed)
        seen, rec = _times(k)
        Poisson(k, 5, 100_000, stop_ns=10_000_000, name=name, on_event=rec)  # type: ignore[arg-type]
        k.run(until=20_000_000)
        return seen

    a, b, c = arrivals(1, "eth0"), arrivals(1, "eth0"), arrivals(1, "eth1")
    assert a == b and a != c
    assert 850 <= len(a) <= 1_150 and max(a) < 10_000_000
