"""Real signals against real machines, in child processes (benchmarks/trials_real.py):
Ctrl-C inside kernel calls, the ``with k:`` pattern, ``stop()`` from a SIGTERM handler,
and a drain with a worker asleep.  Each is bounded in time (a child that hangs is
killed and the trial fails) and each failure message carries the child's exit status
and output."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).parent.parent / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
trials: ModuleType = importlib.import_module("trials_real")

pytestmark = [pytest.mark.real_only, pytest.mark.timeout(300)]


@pytest.mark.parametrize("kind", ["ctrl-c", "with", "sigterm", "drain"])
def test_lifecycle_trials(kind: str) -> None:
    """ctrl-c: 13 SIGINTs inside kernel calls leave a working machine that stops
    cleanly; with: one Ctrl-C in ``with k:`` stops it and the process goes on;
    sigterm: ``stop()`` from a SIGTERM handler returns a report with no stuck thread;
    drain: a drain with a worker asleep does not claim success."""
    for _ in range(3):
        ok, detail = trials.trial(kind)
        assert ok, detail
