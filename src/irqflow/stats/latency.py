"""Latency histograms: raise -> hard-IRQ entry, hard-IRQ duration, softirq raise -> entry
and duration per vector, tasklet schedule -> run, work queue -> start and duration.

Values are nanoseconds in a log-linear histogram (16 sub-buckets per power of two, so a
percentile is within 1/16 of the true value) that costs O(1) per sample and a fixed
amount of memory however long the run.  ``text()`` prints a bcc-style log2 histogram.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

SUB_BITS = 4
SUB = 1 << SUB_BITS

KINDS = (
    "raise->hardirq",
    "hardirq",
    "softirq raise->entry",
    "softirq",
    "tasklet schedule->run",
    "work queue->start",
    "work",
    # scenario workloads: an io thread's request, from submit until the thread runs again;
    # a line device's event, from its arrival until its driver services it
    "io submit->wake",
    "event->serviced",
)


def _bucket(v: int) -> int:
    if v < SUB:
        return v
    e = v.bit_length() - SUB_BITS - 1
    return (e + 1) * SUB + (v >> e) - SUB


def _lower(b: int) -> int:
    if b < SUB:
        return b
    e = b // SUB - 1
    return (SUB + b % SUB) << e


class Histogram:
    """Counts of nanosecond values in log-linear buckets.

    ``add`` is the bound ``append`` of a list of raw samples, so a hook costs one C call;
    the samples are folded into the buckets when the histogram is read, or by
    :meth:`LatencyRecorder.fold` (the kernel calls it at its tick), so memory stays
    bounded whatever the run's length."""

    __slots__ = ("_buckets", "_count", "_max", "_min", "_samples", "_total", "add")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._total = 0
        self._max = 0
        self._min = 1 << 62
        self._samples: list[int] = []
        #: record one value (ns); negative values count as 0
        self.add: Callable[[int], None] = self._samples.append

    def fold(self) -> None:
        """Move the raw samples into the buckets."""
        samples = self._samples
        if not samples:
            return
        buckets = self._buckets
        for v, n in Counter(samples).items():
            if v < SUB:
                b = v if v > 0 else 0
            else:
                e = v.bit_length() - SUB_BITS - 1
                b = (e + 1) * SUB + (v >> e) - SUB
            buckets[b] = buckets.get(b, 0) + n
            if v > 0:
                self._total += v * n
                if v > self._max:
                    self._max = v
            if v < self._min:
                self._min = max(v, 0)
        self._count += len(samples)
        samples.clear()

    @property
    def buckets(self) -> dict[int, int]:
        self.fold()
        return self._buckets

    @property
    def count(self) -> int:
        return self._count + len(self._samples)

    @property
    def total(self) -> int:
        self.fold()
        return self._total

    @property
    def max(self) -> int:
        self.fold()
        return self._max

    @property
    def min(self) -> int:
        self.fold()
        return self._min

    def percentile(self, p: float) -> int:
        """The value below which ``p`` percent of the samples lie: its bucket's midpoint,
        kept within the smallest and largest sample seen."""
        self.fold()
        if not self.count:
            return 0
        rank = max(1, -(-self.count * p // 100))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                lo, hi = _lower(b), _lower(b + 1)
                mid = (lo + hi - 1) // 2 if hi - lo > 1 else lo
                return min(self.max, max(self.min, mid))
        return self.max

    def log2_text(self, title: str) -> str:
        """``bcc``'s ``print_log2_hist`` layout, in microseconds."""
        pow2: dict[int, int] = {}
        for b, n in self.buckets.items():
            us = (_lower(b) + _lower(b + 1)) // 2000  # the bucket's midpoint, in us
            slot = us.bit_length()
            pow2[slot] = pow2.get(slot, 0) + n
        lines = [f"{title}", "     usecs               : count     distribution"]
        top = max(pow2.values(), default=1)
        for slot in range(0, max(pow2, default=0) + 1):
            n = pow2.get(slot, 0)
            lo, hi = (1 << slot) >> 1, (1 << slot) - 1
            bar = "*" * (40 * n // top)
            lines.append(f"{lo:>10} -> {hi:<10} : {n:<8} |{bar:<40}|")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one histogram, in nanoseconds."""

    count: int
    mean: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int


@dataclass(frozen=True)
class LatencyReport:
    """``k.latency()``: ``report[kind][subject]`` -> :class:`LatencySummary`; kinds are
    :data:`KINDS`, subjects name the line, vector, tasklet or workqueue."""

    summaries: Mapping[str, Mapping[str, LatencySummary]]
    histograms: Mapping[str, Mapping[str, Histogram]]

    def __getitem__(self, kind: str) -> Mapping[str, LatencySummary]:
        return self.summaries.get(kind, {})

    def __iter__(self) -> Iterator[str]:
        return iter(self.summaries)

    def table(self) -> str:
        """One line per (kind, subject): count and percentiles in microseconds."""
        rows = [f"{'what':<24}{'of':<22}{'count':>8}{'p50':>9}{'p90':>9}{'p99':>9}"
                f"{'p99.9':>9}{'max':>9}  (us)"]  # fmt: skip
        for kind in KINDS:
            for subject, s in sorted(self[kind].items()):
                if not s.count:
                    continue
                rows.append(
                    f"{kind:<24}{subject:<22}{s.count:>8}"
                    + "".join(f"{v / 1000:>9.1f}" for v in (s.p50, s.p90, s.p99, s.p999, s.max))
                )
        return "\n".join(rows) + "\n"

    def text(self, kind: str, subject: str) -> str:
        """The bcc-style log2 histogram of one (kind, subject)."""
        return self.histograms[kind][subject].log2_text(f"{kind}: {subject}")


def _discard(v: int) -> None:
    return None


class _NoHistogram(Histogram):
    """What hooks get when recording is off: ``add`` does nothing."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.add = _discard


class LatencyRecorder:
    """Where the kernel's hooks put samples (nowhere when ``enabled`` is False)."""

    __slots__ = ("_all", "_off", "enabled", "hists")

    #: fold a histogram's raw samples into its buckets once there are this many
    FOLD_AT = 4096

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._off = _NoHistogram()
        self.hists: dict[str, dict[object, Histogram]] = {k: {} for k in KINDS}
        self._all: list[Histogram] = []

    def fold(self) -> None:
        """Fold the histograms whose raw samples have piled up (bounded memory)."""
        limit = self.FOLD_AT
        for h in self._all:
            if len(h._samples) >= limit:
                h.fold()

    def hist(self, kind: str, subject: object) -> Histogram:
        """The histogram for ``(kind, subject)``; hooks keep it to add samples directly."""
        if not self.enabled:
            return self._off
        by = self.hists[kind]
        h = by.get(subject)
        if h is None:
            h = by[subject] = Histogram()
            self._all.append(h)
        return h

    def add(self, kind: str, subject: object, ns: int) -> None:
        self.hist(kind, subject).add(ns)

    def report(self, names: Mapping[str, Mapping[object, str]] | None = None) -> LatencyReport:
        """Summaries keyed by readable subjects; ``names[kind]`` maps raw keys (IRQ and
        vector numbers) to them."""
        names = names or {}
        summaries = {
            kind: {
                names.get(kind, {}).get(subj, str(subj)): LatencySummary(
                    h.count,
                    h.total // max(1, h.count),
                    h.percentile(50),
                    h.percentile(90),
                    h.percentile(99),
                    h.percentile(99.9),
                    h.max,
                )
                for subj, h in by.items()
            }
            for kind, by in self.hists.items()
        }
        hists = {
            kind: {names.get(kind, {}).get(subj, str(subj)): h for subj, h in by.items()}
            for kind, by in self.hists.items()
        }
        return LatencyReport(summaries, hists)
