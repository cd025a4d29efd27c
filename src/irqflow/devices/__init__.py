"""Interrupt sources.  :mod:`irqflow.devices.sim`: arrival processes scheduled with
``call_at`` (periodic, Poisson, burst; deterministic on the sim engine, usable on both).
:mod:`irqflow.devices.real`: file descriptors, sockets, timers, signals and asyncio, for
the real engine."""
