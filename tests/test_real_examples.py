"""The real-engine examples run and show what they claim (wall clock: bounds, not goldens)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real_only

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_udp_ingest_bounds_memory_and_latency_where_asyncio_queues() -> None:
    """Under a 2x flood the irqflow server keeps its backlog bounded and drops in the
    socket buffer.  (How far the plain asyncio server's queue grows depends on the
    machine's speed and load: from 677 to 5,339 messages in runs here, so it is compared
    in the example's output and the docs, not asserted.)"""
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "udp_ingest.py"), "--compare", "--duration", "0.6",
         "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    res = json.loads(out[out.index("{") :])
    irq, aio = res["irqflow"], res["asyncio"]
    assert irq["sent"] > 5000 and aio["sent"] > 5000
    assert irq["processed"] > 1000
    assert irq["backlog_peak"] <= 512 + 64  # BACKLOG_MAX plus one NAPI budget
    assert irq["queued_at_end"] == 0
    assert irq["received"] + (irq["socket_drops"] or 0) <= irq["sent"]
    assert aio["processed"] > 1000
    assert irq["pauses"] >= 1  # flow control engaged: the excess waited in the socket
