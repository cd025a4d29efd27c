"""Frozen statistics snapshots (``Kernel.statistics()``)."""

from irqflow.stats.snapshot import CpuTimes, IrqStats, LogRecord, Oops, Snapshot

__all__ = ["CpuTimes", "IrqStats", "LogRecord", "Oops", "Snapshot"]
