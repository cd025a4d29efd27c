"""Examples are executable documentation: each one's output is golden."""

from __future__ import annotations

import contextlib
import io
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
NAMES = sorted(p.stem for p in (EXAMPLES / "golden").glob("*.txt"))
#: real-engine examples: wall-clock output, checked by test_real_examples.py instead
REAL = {"udp_ingest"}


def test_every_example_has_a_golden_output() -> None:
    """No example goes unchecked."""
    assert sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem not in REAL) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_output_matches_golden(name: str) -> None:
    """`python examples/<name>.py` prints exactly its checked-in output (deterministic sim)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    assert out.getvalue() == (EXAMPLES / "golden" / f"{name}.txt").read_text()
