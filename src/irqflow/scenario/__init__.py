"""Scenario files: a machine, its devices and workload, described in TOML.

``load(path)`` validates a file into a :class:`Scenario` (precise errors, no code is ever
executed); ``run(scenario)`` builds the machine, runs it and returns a :class:`Result`.
"""

from irqflow.scenario.run import Result, run
from irqflow.scenario.schema import Scenario, ScenarioError, load, loads

__all__ = ["Result", "Scenario", "ScenarioError", "load", "loads", "run"]
