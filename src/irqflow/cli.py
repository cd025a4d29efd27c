"""The ``irqflow`` command (also ``python -m irqflow``).

Exit codes: 0 success, 1 the run failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from irqflow import __version__
from irqflow.core.errors import IrqflowError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="irqflow",
        description=(
            "The Linux kernel's interrupt handling (hard IRQs, softirqs, tasklets, "
            "ksoftirqd) as a deterministic simulator."
        ),
        epilog="Start with `irqflow demo`: it walks the five stages on a 2-CPU machine.",
    )
    p.add_argument("--version", action="version", version=f"irqflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the five-stage walkthrough and print the annotated trace and /proc views",
        description="Run the five-stage walkthrough: a key press, the same IRQ on two CPUs, "
        "and a packet flood that overflows into ksoftirqd.",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--ftrace", metavar="PATH", help="also write the whole trace as ftrace text")
    demo.add_argument(
        "--plot",
        metavar="PATH",
        help="also draw the CPUs' timeline during the flood (PNG or SVG; needs matplotlib)",
    )
    demo.add_argument(
        "--trace",
        metavar="PATH",
        help="also write the trace as Chrome JSON (open it in ui.perfetto.dev or chrome://tracing)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        if args.command == "demo":
            from irqflow.demo import run_demo

            k = run_demo(seed=args.seed)
            if args.ftrace:
                k.trace.write_ftrace(args.ftrace)
                print(f"\nwrote {len(k.trace.events())} trace events to {args.ftrace}")
            if args.plot:
                from irqflow.plot import timeline

                timeline(k, args.plot, 2_990_000, 4_200_000, "irqflow demo: the packet flood")
                print(f"\nwrote the timeline to {args.plot}")
            if args.trace:
                k.trace.write_perfetto(args.trace)
                print(f"\nwrote the Perfetto/Chrome trace to {args.trace}")
            return 0
    except IrqflowError as exc:
        print(f"irqflow: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
