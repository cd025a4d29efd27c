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
def machine(make_machine: Callable[..., Machine]) -> Machine:
    """A 2-CPU machine with the kernel's default configuration on ``engine``."""
    return make_machine()
