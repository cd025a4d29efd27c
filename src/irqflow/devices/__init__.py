"""Interrupt sources.  :mod:`irqflow.devices.sim` drives lines in virtual time."""
