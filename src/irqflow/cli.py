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
    run = sub.add_parser(
        "run",
        help="run a scenario file and print what happened",
        description="Run SCENARIO.toml on the sim engine: devices delivered/dropped, CPU "
        "time per context, latency percentiles, /proc/interrupts and /proc/softirqs.",
    )
    run.add_argument("scenario", metavar="SCENARIO.toml")
    run.add_argument("--seed", type=int, help="override [machine] seed")
    run.add_argument("--duration", type=float, metavar="MS", help="override duration_ms")
    run.add_argument("--trace", metavar="PATH", help="write a Perfetto/Chrome JSON trace")
    run.add_argument("--ftrace", metavar="PATH", help="write ftrace text")
    run.add_argument("--plot", metavar="PATH", help="draw the CPUs' timeline (PNG or SVG)")
    run.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario", metavar="SCENARIO.toml")
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
        if args.command in ("run", "validate"):
            return _scenario(args)
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


def _scenario(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from irqflow.scenario import ScenarioError, load, run

    try:
        sc = load(args.scenario)
    except ScenarioError as exc:
        print(f"irqflow: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(f"{args.scenario}: valid ({len(sc.devices)} devices, {len(sc.threads)} threads)")
        return 0
    machine = dict(sc.machine)
    if args.seed is not None:
        machine["seed"] = args.seed
    if args.duration is not None:
        machine["duration_ms"] = args.duration
    sc = dataclasses.replace(sc, machine=machine)
    result = run(sc, trace=bool(args.trace or args.ftrace or args.plot))
    print(result.summary(), end="")
    k = result.kernel
    if args.trace:
        k.trace.write_perfetto(args.trace)
    if args.ftrace:
        k.trace.write_ftrace(args.ftrace)
    if args.plot:
        from irqflow.plot import timeline

        timeline(k, args.plot, title=f"{args.scenario}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result.to_json(), fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
