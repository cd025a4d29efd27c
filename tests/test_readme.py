"""The README's example is executable documentation."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_example_runs_and_handles_every_packet(capsys: object) -> None:
    """The twenty-line driver in the README runs and accounts for all 100 packets."""
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    ns: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), ns)
    k = ns["k"]
    snap = k.statistics()  # type: ignore[attr-defined]
    line = snap.irqs[24]
    assert line.raised == 100
    assert line.raised == line.accepted + line.coalesced + line.lost
    assert line.in_flight == 0
    assert sum(snap.softirqs["NET_RX"]) >= 1
    assert "eth0" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_readme_real_engine_example_runs_and_accounts_for_every_raise() -> None:
    """The real-engine snippet runs, stops cleanly and accounts for its 1000 raises."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    real = [b for b in blocks if 'engine="real"' in b]
    assert len(real) == 1
    ns: dict[str, object] = {}
    exec(compile(real[0], "README.md", "exec"), ns)
    line = ns["k"].statistics().irqs[24]  # type: ignore[attr-defined]
    assert line.raised == 1000
    assert line.raised == line.accepted + line.coalesced + line.lost
    assert line.in_flight == 0
