"""``Kernel``: the public machine, a kernel core plus an engine."""

from __future__ import annotations

from typing import Any

from irqflow.core.config import KernelConfig
from irqflow.core.errors import IrqflowError
from irqflow.core.kernel import KernelCore

ENGINES = ("sim", "real")


class Kernel(KernelCore):
    """A machine with ``cpus`` CPUs running irqflow's Linux interrupt-handling kernel.

    ``engine="sim"`` runs in deterministic virtual time (``run``/``run_for`` advance it);
    ``seed`` seeds every random choice a scenario makes, so the same seed gives the same
    trace.
    """

    def __init__(
        self,
        cpus: int = 2,
        engine: str = "sim",
        config: KernelConfig | None = None,
        seed: int = 0,
    ) -> None:
        if engine == "sim":
            from irqflow.engine.sim import SimEngine

            factory: Any = SimEngine
        elif engine == "real":
            raise IrqflowError(
                'Kernel(engine="real"): the real (wall-clock, OS-thread) engine is not '
                'available in this version; use engine="sim"'
            )
        else:
            raise IrqflowError(f"Kernel(engine={engine!r}): choose one of {ENGINES}")
        self.engine_name = engine
        super().__init__(cpus, config, seed, factory)

    def run(self, until: int | None = None) -> None:
        """*sim*: advance virtual time to ``until`` ns, or until nothing is left to do
        (idle CPUs stop their tick, so a quiet machine ends the run; a thread that never
        sleeps keeps it going: pass ``until``)."""
        self.engine.run(until)

    def run_for(self, ns: int) -> None:
        """*sim*: advance virtual time by ``ns``."""
        if ns < 0:
            raise IrqflowError(f"run_for({ns}): cannot run for a negative time")
        self.engine.run(self.engine.now + ns)

    def __repr__(self) -> str:
        return f"<Kernel cpus={len(self.cpus)} engine={self.engine_name} t={self.now()}ns>"
