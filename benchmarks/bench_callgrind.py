"""Benchmark: CPU instructions per simulated hard IRQ, counted by callgrind.

Usage::

    python benchmarks/bench_callgrind.py [--short-ms N] [--long-ms N] [--model irqflow|simpy]
                                         [--cpus N] [--config KEY=VALUE ...]

Instruction counts do not depend on what else the machine is doing (wall-clock timings
on a shared machine do), so this is the number to compare builds and changes with.  The
2-CPU NIC workload of ``workload.py`` runs twice under ``valgrind --tool=callgrind``, for a
short and a long virtual duration; the difference in instructions divided by the
difference in hard IRQs is the cost of one more simulated interrupt, with start-up,
imports and the drain left out.  ``--model simpy`` counts the SimPy model of the same
workload (per packet) for the baseline.  Needs valgrind on the PATH.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: runs one model for N ms of virtual time and prints the hard IRQs (packets) simulated
CHILD = r"""
import json, sys
sys.path.insert(0, {here!r})
from workload import NicWorkload
ms, model, cpus, config = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
w = NicWorkload(cpus=cpus, duration_ns=ms * 1_000_000)
if model == "simpy":
    from simpy_model import run_simpy
    r = run_simpy(w)
else:
    import dataclasses
    import irqflow_model
    irqflow_model.CONFIG = dataclasses.replace(irqflow_model.CONFIG, **config)
    r = irqflow_model.run_irqflow(w)
print("HARDIRQS", r.hardirqs)
"""


def count(ms: int, model: str, cpus: int, config: dict[str, object]) -> tuple[int, int]:
    """(instructions, hard IRQs) of one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(here=str(HERE)))
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(script),
                str(ms),
                model,
                str(cpus),
                json.dumps(config),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    irqs = int(re.search(r"HARDIRQS (\d+)", proc.stdout).group(1))  # type: ignore[union-attr]
    instr = int(re.search(r"Collected : (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    return instr, irqs


def parse_config(items: list[str]) -> dict[str, object]:
    config: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        config[key] = json.loads(value) if value not in ("", None) else True
    return config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short-ms", type=int, default=5)
    p.add_argument("--long-ms", type=int, default=25)
    p.add_argument("--model", choices=("irqflow", "simpy"), default="irqflow")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument(
        "--config", nargs="*", default=[], metavar="KEY=VALUE",
        help="KernelConfig fields as JSON values, e.g. latency_histograms=false",
    )  # fmt: skip
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 1
    config = parse_config(args.config)
    i1, n1 = count(args.short_ms, args.model, args.cpus, config)
    i2, n2 = count(args.long_ms, args.model, args.cpus, config)
    per = (i2 - i1) / max(1, n2 - n1)
    what = "hard IRQ" if args.model == "irqflow" else "packet"
    print(
        f"{args.model} ({args.cpus} CPUs{', ' + str(config) if config else ''}): "
        f"{per:,.0f} instructions per simulated {what} "
        f"({i1:,} for {n1} and {i2:,} for {n2})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
