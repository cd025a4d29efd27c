"""The kernel core: sans-time, sans-I/O.

Nothing in this package imports a clock, a thread, a random generator or does I/O;
kernel flows are generators that yield effects (see :mod:`irqflow.core.effects`) and
the engines in :mod:`irqflow.engine` interpret them.  ``tests/test_layering.py`` keeps it so.
"""
