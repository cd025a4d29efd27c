"""The demo is executable documentation: its output is golden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from irqflow.cli import main
from irqflow.demo import run_demo
from support import DEMO_STAGE_LABELS

GOLDEN = Path(__file__).parent / "golden" / "demo.txt"


def test_demo_output_matches_golden() -> None:
    """`irqflow demo` prints exactly the checked-in walkthrough (deterministic sim)."""
    lines: list[str] = []
    run_demo(lines.append)
    assert "\n".join(lines) + "\n" == GOLDEN.read_text()


def test_demo_shows_every_stage() -> None:
    """A newcomer who read the seed must find every stage in the demo's trace."""
    text = GOLDEN.read_text()
    for label in (*DEMO_STAGE_LABELS, "/proc/softirqs"):
        assert label in text, label


def test_demo_accounting_line_balances() -> None:
    """The demo's NIC line obeys raised == accepted + coalesced + lost once quiet."""
    k = run_demo(lambda _line: None)
    line = k.statistics().irqs[24]
    assert line.in_flight == 0
    assert line.raised == line.accepted + line.coalesced + line.lost


def test_cli_demo_exit_code_and_ftrace(tmp_path: Path, capsys: object) -> None:
    """`irqflow demo --ftrace PATH` exits 0 and writes an ftrace text file."""
    out = tmp_path / "demo.trace"
    assert main(["demo", "--ftrace", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# tracer: nop")
    assert "irq_handler_entry: irq=24 name=eth0" in text
    json_out = tmp_path / "demo.json"
    assert main(["demo", "--trace", str(json_out)]) == 0
    assert '"traceEvents"' in json_out.read_text()


def test_python_dash_m_irqflow_help() -> None:
    """`python -m irqflow --help` works and teaches where to start."""
    res = subprocess.run(
        [sys.executable, "-m", "irqflow", "--help"], capture_output=True, text=True, check=True
    )
    assert "irqflow demo" in res.stdout


def test_cli_without_command_is_usage_error() -> None:
    """No command: help and exit code 2."""
    assert main([]) == 2
