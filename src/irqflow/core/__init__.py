"""The kernel core: sans-time, sans-I/O.

Nothing in this package imports a clock, a thread, a random generator or does I/O.
Kernel flows are plain functions; where they need time or the scheduler they call their
engine through the contract in :mod:`irqflow.core.engine` (``busy``, the IRQ-enable
boundary, ``schedule``, ``sleep_until``, ``now``), which :mod:`irqflow.engine` implements.
``tests/test_layering.py`` keeps it so.
"""
