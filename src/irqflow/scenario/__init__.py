"""Scenario files: a machine, its devices and workload, described in TOML.

``load(path)`` validates a file into a :class:`Scenario` (precise errors, no code is ever
executed); ``run(scenario)`` builds the machine, runs it and returns a :class:`Result`.
"""

from irqflow.scenario.run import Result, run
from irqflow.scenario.schema import Scenario, ScenarioError, load, loads
from irqflow.scenario.sweep import Axis, SweepResult, parse_axis, sweep

__all__ = [
    "Axis",
    "Result",
    "Scenario",
    "ScenarioError",
    "SweepResult",
    "load",
    "loads",
    "parse_axis",
    "run",
    "sweep",
]
