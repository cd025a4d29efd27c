"""The ``irqflow`` command (also ``python -m irqflow``).

Exit codes: 0 success, 1 the run failed, 2 usage or scenario error.  Reference:
``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from irqflow import __version__
from irqflow.core.errors import IrqflowError

if TYPE_CHECKING:
    from irqflow.scenario.files import Output


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="irqflow",
        description=(
            "The Linux kernel's interrupt handling (hard IRQs, softirqs, tasklets, "
            "ksoftirqd, workqueues) as a deterministic simulator: watch the five stages, "
            "run scenario files, sweep their settings."
        ),
        epilog=(
            "Start with `irqflow demo`: it walks the five stages on a 2-CPU machine. Then "
            "`irqflow run scenarios/receive-livelock.toml` and "
            "`irqflow sweep scenarios/receive-livelock.toml --set device.eth0.rate=50000:"
            "800000:50000 --set device.eth0.napi=false,true --plot livelock.png`. "
            "Exit status: 0 ok, 1 the run failed, 2 usage or scenario error."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"irqflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the five-stage walkthrough and print the annotated trace and /proc views",
        description="Run the five-stage walkthrough: a key press, the same IRQ on two CPUs, "
        "and a packet flood that overflows into ksoftirqd.  It runs the seed article's "
        "kernel (the 2.6 era) unless --preset names another.",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--preset",
        choices=("2.6", "4.9", "6.13", "6.13-rt"),
        default="2.6",
        help="the kernel era to run (default 2.6, the seed article's; 6.13 is today's)",
    )
    run = sub.add_parser(
        "run",
        help="run a scenario file and print what happened",
        description="Run SCENARIO.toml (on the sim engine, or with --engine real on OS "
        "threads) and print devices' delivered/dropped, CPU time per context, latency "
        "percentiles, /proc/interrupts and /proc/softirqs.",
    )
    run.add_argument("scenario", metavar="SCENARIO.toml")
    run.add_argument("--seed", type=int, help="override [machine] seed")
    run.add_argument("--duration", type=float, metavar="MS", help="override duration_ms")
    run.add_argument("--trace", metavar="PATH", help="write a Perfetto/Chrome JSON trace")
    run.add_argument("--ftrace", metavar="PATH", help="write ftrace text")
    run.add_argument("--plot", metavar="PATH", help="draw the CPUs' timeline (PNG or SVG)")
    run.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    run.add_argument(
        "--out-dir",
        metavar="DIR",
        default=".",
        help="where the files the scenario's [record] table names are written (default: "
        "the current directory); they stay below it",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="let the scenario's [record] outputs replace existing regular files",
    )
    run.add_argument(
        "--engine",
        choices=("sim", "real"),
        default="sim",
        help="sim (default): virtual time, deterministic; real: the same machine on OS "
        "threads for duration_ms of wall time (what Python keeps up with)",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none when not a terminal)"
    )
    sw = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of settings, in parallel; CSV and a plot",
        description="Run SCENARIO.toml once per point of the grid made by the --set axes, in "
        "worker processes (or on a Dask cluster), and write one CSV row of numbers per point "
        "(delivered, dropped and their rate per device, CPU shares, latency percentiles) and "
        "a plot of the chosen metrics against the first axis.",
        epilog="Keys: machine.cpus, machine.config.FIELD, device.NAME.KEY (device.NAME.rate "
        "is its arrival rate), device.NAME.arrivals.KEY, thread.NAME.KEY. Values: "
        "START:STOP:STEP (STOP included) or A,B,C (numbers, true/false, words).",
    )
    sw.add_argument("scenario", metavar="SCENARIO.toml")
    sw.add_argument(
        "--set",
        dest="axes",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="an axis of the grid, e.g. device.eth0.rate=1000:20000:1000 (repeatable)",
    )
    sw.add_argument("--jobs", type=int, default=0, metavar="N",
                    help="worker processes (default: one per CPU)")  # fmt: skip
    sw.add_argument("--dask", metavar="ADDRESS",
                    help="run the points on a Dask distributed scheduler, e.g. "
                         "tcp://scheduler:8786 (pip install 'irqflow[dask]')")  # fmt: skip
    sw.add_argument("--csv", metavar="PATH", help="CSV of every row (default SCENARIO-sweep.csv)")
    sw.add_argument("--plot", metavar="PATH", help="plot the metrics against the first axis")
    sw.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME",
        help="a CSV column to print and plot (repeatable; default: each device's delivered_per_s)",
    )
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("irqflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``irqflow demo | head``): stop quietly, as cat does, and
        # keep the interpreter's final flush from failing on the closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it


def _say(text: object, *, err: bool = False, end: str = "\n") -> None:
    """Print text that may hold names and paths from a scenario, escaped for a terminal."""
    from irqflow.scenario.text import for_terminal

    print(for_terminal(str(text)), end=end, file=sys.stderr if err else sys.stdout)


def _usage(message: object) -> int:
    """A usage or scenario error: one line on stderr, exit status 2."""
    _say(f"irqflow: {message}", err=True)
    return 2


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        if args.command in ("run", "validate"):
            return _scenario(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "demo":
            return _demo(args)
    except IrqflowError as exc:
        _say(f"irqflow: {exc}", err=True)
        return 1
    return 2


def _demo(args: argparse.Namespace) -> int:
    from irqflow.demo import run_demo
    from irqflow.scenario.files import PLOT_SUFFIXES, Output

    outputs = {
        "ftrace": Output(args.ftrace) if args.ftrace else None,
        "plot": Output(args.plot, suffixes=PLOT_SUFFIXES) if args.plot else None,
        "trace": Output(args.trace) if args.trace else None,
    }
    bad = _check_outputs({f"--{k}": o for k, o in outputs.items() if o is not None})
    if bad:
        return _usage(bad)
    k = run_demo(seed=args.seed, preset=args.preset)
    if outputs["ftrace"]:
        outputs["ftrace"].write(k.trace.write_ftrace)
        _say(f"\nwrote {len(k.trace.events())} trace events to {args.ftrace}")
    if outputs["plot"]:
        from irqflow.plot import timeline

        outputs["plot"].write(
            lambda p: timeline(k, p, 2_990_000, 4_200_000, "irqflow demo: the packet flood")
        )
        _say(f"\nwrote the timeline to {args.plot}")
    if outputs["trace"]:
        outputs["trace"].write(k.trace.write_perfetto)
        _say(f"\nwrote the Perfetto/Chrome trace to {args.trace}")
    return 0


def _check_outputs(outputs: dict[str, Output]) -> str | None:
    """Why one of ``outputs`` (label -> Output) cannot be written, checked before a long
    run so that it is not lost; None if all can."""
    import importlib.util

    from irqflow.scenario.files import PLOT_SUFFIXES, PathError

    seen: dict[str, str] = {}
    for label, out in outputs.items():
        try:
            out.check()
        except PathError as exc:
            return f"{label}: {exc}"
        if out.suffixes == PLOT_SUFFIXES and importlib.util.find_spec("matplotlib") is None:
            return f"{label}: plots need matplotlib: pip install 'irqflow[plot]'"
        first = seen.setdefault(out.target(), label)
        if first != label:
            return f"{label}: the same file as {first}; give each output its own file"
    return None


#: the outputs of ``irqflow run``: option -> its [record] key
_RUN_OUTPUTS = {"trace": "perfetto", "ftrace": "ftrace", "plot": "plot", "json": "json"}


def _scenario(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    from irqflow.scenario import ScenarioError, load, run
    from irqflow.scenario.files import PLOT_SUFFIXES, Output, PathError
    from irqflow.scenario.schema import MACHINE, problem
    from irqflow.scenario.text import quote

    try:
        sc = load(args.scenario)
    except ScenarioError as exc:
        return _usage(exc)
    if args.command == "validate":
        _say(f"{args.scenario}: valid ({len(sc.devices)} devices, {len(sc.threads)} threads)")
        return 0
    machine = dict(sc.machine)
    for opt, key in (("seed", "seed"), ("duration", "duration_ms")):
        value = getattr(args, opt)
        if value is not None:
            why = problem(key, MACHINE[key], value)
            if why is not None:
                return _usage(f"--{opt} {value}: {why}")  # the same rule as the file's key
            machine[key] = value
    sc = dataclasses.replace(sc, machine=machine)
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        return _usage(f"--out-dir {args.out_dir}: not a directory")
    rec = sc.record
    outputs: dict[str, Output] = {}
    labels: dict[str, str] = {}
    for opt, key in _RUN_OUTPUTS.items():
        suffixes = PLOT_SUFFIXES if key == "plot" else ()
        given = getattr(args, opt)
        if given is not None:
            outputs[key] = Output(given, suffixes=suffixes)
            labels[key] = f"--{opt} {given}"
        elif rec[key]:
            outputs[key] = Output(rec[key], out_dir, args.force, suffixes)
            labels[key] = f"{args.scenario}: record.{key} = {quote(rec[key])}"
    bad = _check_outputs({labels[key]: out for key, out in outputs.items()})
    if bad:
        return _usage(bad)
    patterns = tuple(rec["trace"])
    if ("perfetto" in outputs or "ftrace" in outputs) and not patterns:
        patterns = ("*",)
    if "plot" in outputs:
        from irqflow.plot import TIMELINE_EVENTS

        patterns = tuple(dict.fromkeys(patterns + TIMELINE_EVENTS))
    with _bar(args.no_progress, "virtual ms", 0) as bar:

        def progress(now: int, total: int) -> None:
            bar.total = round(total / 1e6, 3)
            bar.n = round(now / 1e6, 3)
            bar.refresh()

        result = run(sc, trace=patterns or False, progress=progress, engine=args.engine)
    _say(result.summary(), end="")
    k = result.kernel

    def plot(path: str) -> None:
        from irqflow.plot import timeline

        timeline(k, path, title=f"{args.scenario}")

    def write_json(path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(result.to_json(), fh, indent=1)

    produce = {
        "perfetto": k.trace.write_perfetto,
        "ftrace": k.trace.write_ftrace,
        "plot": plot,
        "json": write_json,
    }
    failed = False
    for key, out in outputs.items():
        try:
            out.write(produce[key])
        except (PathError, OSError) as exc:  # after the checks: a full disk, a race
            _say(f"irqflow: {labels[key]}: not written: {exc}", err=True)
            failed = True
    if failed:
        return 1
    if k.trace.overwritten and outputs.keys() - {"json"}:
        print(
            f"note: the trace ring buffer overwrote its {k.trace.overwritten} oldest events; "
            "the outputs show the end of the run (raise [record] buffer_size)",
            file=sys.stderr,
        )
    oopses = k.statistics().oopses
    if oopses:
        _say(
            f"irqflow: the run faulted: {len(oopses)} oops(es) in driver code, the first: "
            f"{oopses[0].exc_type}: {oopses[0].message} in {oopses[0].context} {oopses[0].where}",
            err=True,
        )
        return 1
    return 0


def _bar(off: bool, unit: str, total: int) -> Any:
    """A progress bar on stderr (tqdm), shown only on a terminal."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the bar is refreshed by its updates
    virtual = unit == "virtual ms"
    return tqdm(
        total=total, unit="ms" if virtual else unit, disable=True if off else None,
        leave=False, file=sys.stderr,
        # the rate is simulated time per wall second
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} virtual ms [{elapsed}<{remaining}, "
        "{rate_fmt} simulated]" if virtual else None,
    )  # fmt: skip


def _sweep(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from irqflow.scenario import ScenarioError, parse_axis, sweep
    from irqflow.scenario.files import PLOT_SUFFIXES, Output

    csv_path = args.csv or f"{Path(args.scenario).stem}-sweep.csv"
    csv_out = Output(csv_path)
    plot_out = Output(args.plot, suffixes=PLOT_SUFFIXES) if args.plot else None
    bad = _check_outputs({"--csv": csv_out, **({"--plot": plot_out} if plot_out else {})})
    if bad:
        return _usage(bad)
    if args.jobs < 0:
        return _usage(f"--jobs {args.jobs}: give a number of processes >= 1 (0: one per CPU)")
    try:
        axes = [parse_axis(a) for a in args.axes]
        jobs = args.jobs or os.cpu_count() or 1
        with _bar(args.no_progress, "runs", 0) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = sweep(args.scenario, axes, jobs=jobs, dask_address=args.dask,
                           progress=progress)  # fmt: skip
    except ScenarioError as exc:
        return _usage(exc)
    try:
        csv_out.write(result.write_csv)  # first: a typo in --metric must not lose the runs
    except OSError as exc:
        _say(f"irqflow: --csv {csv_path}: not written: {exc}", err=True)
        return 1
    cols = result.columns()
    metric_names = args.metric or [c for c in cols if c.endswith(".delivered_per_s")]
    unknown = [m for m in metric_names if m not in cols]
    if unknown:
        return _usage(f"no such metric {unknown} (the rows are saved in {csv_path}); the "
                      f"columns are: {', '.join(cols)}")  # fmt: skip
    _say(result.table(metric_names), end="")
    _say(f"\nwrote {len(result.rows)} rows to {csv_path}")
    if plot_out is not None:
        from irqflow.plot import sweep_curve

        keys = [a.key for a in axes]
        plot_out.write(lambda p: sweep_curve(
            result.rows, keys[0], metric_names, p, group_by=keys[1:],
            title=f"{Path(args.scenario).name}: sweep of {keys[0]}"))  # fmt: skip
        _say(f"wrote the plot to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
