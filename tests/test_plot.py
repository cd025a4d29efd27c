"""Plots: the context timeline is rebuilt correctly and drawn; latency CDFs are drawn."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from irqflow.demo import run_demo
from irqflow.plot import context_segments, latency_cdf, timeline

pytest.importorskip("matplotlib")


def test_context_segments_cover_each_cpu_exactly_and_see_every_context() -> None:
    """Per CPU the segments tile [0, end) without gaps or overlaps; the flood shows
    hardirq, softirq, tasklet, ksoftirqd and idle time."""
    k = run_demo(lambda _line: None)
    end = k.now()
    segs = context_segments(k.trace.events(), 2, end)
    for cpu in range(2):
        mine = sorted((s, e) for c, s, e, _ in segs if c == cpu)
        assert mine[0][0] == 0 and mine[-1][1] == end
        assert all(a[1] == b[0] for a, b in pairwise(mine))
    kinds = {kind for _, _, _, kind in segs}
    assert {"hardirq", "softirq", "tasklet", "ksoftirqd", "idle"} <= kinds
    ksoft = sum(e - s for c, s, e, kind in segs if kind == "ksoftirqd" and c == 0)
    assert ksoft > 100_000  # the flood's overflow ran for a while in ksoftirqd/0


def test_timeline_and_cdf_files_are_drawn(tmp_path: Path) -> None:
    """PNG and SVG outputs are written; the SVG carries the track and legend labels."""
    k = run_demo(lambda _line: None)
    png, svg, cdf = tmp_path / "t.png", tmp_path / "t.svg", tmp_path / "c.png"
    timeline(k, png, 2_990_000, 4_200_000)
    timeline(k, svg, 2_990_000, 4_200_000)
    latency_cdf(k.latency().histograms["softirq raise->entry"], cdf)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = svg.read_text()
    assert "CPU 0" in text and "CPU 1" in text and "ksoftirqd" in text
    assert cdf.stat().st_size > 10_000
