"""Fixtures shared by the test modules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import Machine


@pytest.fixture(params=["sim", "real"])
def engine(request: pytest.FixtureRequest) -> str:
    """The engine a conformance test runs on: every such test runs on both."""
    return str(request.param)


@pytest.fixture
def make_machine(engine: str) -> Iterator[Callable[..., Machine]]:
    """``make_machine(cpus=2, **config)``: a machine on ``engine``.  After the test each
    real machine must stop cleanly (nothing abandoned, no stuck thread) and leave no
    thread behind."""
    before = set(threading.enumerate())
    made: list[Machine] = []

    def make(cpus: int = 2, **overrides: Any) -> Machine:
        m = Machine(engine, cpus, **overrides)
        made.append(m)
        return m

    yield make
    for m in made:
        report = m.close()
        if report is not None:
            assert report.clean, str(report)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left behind: {left}"


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Every thread a test started has ended by its end (a thread that called stop()
    from driver code unwinds once that call returns: it is given time to)."""
    before = set(threading.enumerate())
    yield
    for t in set(threading.enumerate()) - before:
        t.join(20)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left behind: {left}"


@pytest.fixture
def machine(make_machine: Callable[..., Machine]) -> Machine:
    """A 2-CPU machine with the kernel's default configuration on ``engine``."""
    return make_machine()


#: behaviour-test modules written against virtual time: they assert exact nanoseconds,
#: byte-identical traces or sim-only calls (run/run_for), so they run on the sim engine
#: only.  What both engines must do alike is in test_conformance.py.
SIM_ONLY_MODULES = frozenset(
    {
        "test_accounting", "test_bh_workqueues", "test_blocking_calls", "test_cmwq",
        "test_contexts", "test_demo", "test_devices", "test_examples", "test_ftrace",
        "test_genirq", "test_latency", "test_napi", "test_perfetto", "test_plot",
        "test_proc", "test_scenarios", "test_sched", "test_seed", "test_softirq",
        "test_sync", "test_tasklets", "test_threaded_irqs", "test_timers",
        "test_workqueues",
    }
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__ in SIM_ONLY_MODULES:
            item.add_marker(pytest.mark.sim_only)
