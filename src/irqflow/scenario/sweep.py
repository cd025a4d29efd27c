"""Sweeps: one scenario run over a grid of settings, in parallel.

``--set KEY=START:STOP:STEP`` (numbers, STOP included) or ``--set KEY=A,B,C`` (any
values: numbers, ``true``/``false``, words) names an axis; several ``--set`` make a grid.
Keys are dotted paths into the scenario:

==================================  ===============================================
``machine.cpus``                    a ``[machine]`` key
``machine.config.hz``               a ``KernelConfig`` field
``device.eth0.napi``                a key of the device named ``eth0``
``device.eth0.arrivals.rate_hz``    a key of its arrival process
``device.eth0.rate``                short for ``device.eth0.arrivals.rate_hz``
``thread.receiver.nice``            a key of the thread named ``receiver``
==================================  ===============================================

Every point is validated like a scenario file before anything runs, so a bad value is
an error naming the point.  Points run in worker processes (``jobs``) or on a Dask
distributed cluster (``dask_address``); each yields a flat row of numbers (see
:func:`metrics`) for the CSV and the plot.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import itertools
import math
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irqflow.scenario.run import Result, run
from irqflow.scenario.schema import Scenario, ScenarioError, from_dict, parse, read_text
from irqflow.scenario.text import csv_cell, quote

#: short forms accepted in sweep keys
ALIASES = {"rate": ("arrivals", "rate_hz")}
#: keys whose values are text even when they look like numbers
TEXT_KEYS = frozenset({"machine.preset"})
#: the largest grid a sweep runs
MAX_POINTS = 100_000
#: how long to wait for a Dask scheduler to answer
DASK_CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class Axis:
    """One swept key and the values it takes."""

    key: str
    values: tuple[Any, ...]


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text.strip()


def parse_axis(spec: str) -> Axis:
    """``KEY=START:STOP:STEP`` or ``KEY=A,B,...`` (or ``KEY=V``) into an :class:`Axis`."""
    key, sep, rhs = spec.partition("=")
    key = key.strip()
    if not sep or not key or not rhs.strip():
        raise ScenarioError(
            f"--set {spec!r}: expected KEY=START:STOP:STEP or KEY=A,B,... "
            "(e.g. device.eth0.rate=1000:20000:1000)"
        )
    if ":" in rhs:
        parts = rhs.split(":")
        nums = [_value(p) for p in parts]
        if len(parts) != 3 or not all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in nums
        ):
            raise ScenarioError(f"--set {spec!r}: a range is START:STOP:STEP, three numbers")
        start, stop, step = nums
        if not all(math.isfinite(x) for x in nums):
            raise ScenarioError(f"--set {spec!r}: START, STOP and STEP must be finite numbers")
        if step <= 0 or stop < start:
            raise ScenarioError(f"--set {spec!r}: need STEP > 0 and STOP >= START")
        span = (stop - start) / step
        if span > 10_000:  # also the spans too large to count exactly
            raise ScenarioError(f"--set {spec!r}: a sweep axis takes at most 10000 values")
        n = math.floor(span + 1e-9) + 1
        if n > 10_000:
            raise ScenarioError(f"--set {spec!r}: {n} values; a sweep axis takes at most 10000")
        as_int = all(isinstance(x, int) for x in nums)
        values = tuple(
            (start + i * step) if as_int else round(start + i * step, 12) for i in range(n)
        )
        return Axis(key, values)
    if key in TEXT_KEYS:  # "2.6" names a preset; it is not the number 2.6
        return Axis(key, tuple(v.strip() for v in rhs.split(",")))
    return Axis(key, tuple(_value(v) for v in rhs.split(",")))


def _named(raw: dict[str, Any], table: str, name: str, key: str) -> dict[str, Any]:
    items = raw.get(table, [])
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    names = [i.get("name") for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    raise ScenarioError(
        f"--set {key}: no {table} named {quote(name)} (the {table}s: {quote(names)})"
    )


def apply(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` to ``value`` in the raw scenario tables ``raw``."""
    parts = key.split(".")
    head = parts[0]
    if head == "machine" and len(parts) >= 2:
        target = raw.setdefault("machine", {})
        path = parts[1:]
    elif head in ("device", "thread") and len(parts) >= 3:
        target = _named(raw, head, parts[1], key)
        path = parts[2:]
        if head == "device" and len(path) == 1 and path[0] in ALIASES:
            path = list(ALIASES[path[0]])
    else:
        raise ScenarioError(
            f"--set {key}: keys look like machine.cpus, machine.config.hz, "
            "device.NAME.KEY (device.NAME.rate for its arrival rate) or thread.NAME.KEY"
        )
    for p in path[:-1]:
        nxt = target.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ScenarioError(f"--set {key}: {p} is not a table")
        target = nxt
    target[path[-1]] = value


def points(
    raw: dict[str, Any], axes: Sequence[Axis], source: str, text: str = ""
) -> list[tuple[dict[str, Any], Scenario]]:
    """Every grid point as (its settings, the validated scenario)."""
    keys = [a.key for a in axes]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ScenarioError(f"--set {dup[0]} is given twice; give one axis per key (A,B,C)")
    size = math.prod(len(a.values) for a in axes)
    if size > MAX_POINTS:
        raise ScenarioError(
            f"the grid has {size:,} points; a sweep runs at most {MAX_POINTS:,} (use coarser steps)"
        )
    out = []
    for combo in itertools.product(*(a.values for a in axes)):
        settings = {a.key: v for a, v in zip(axes, combo, strict=True)}
        r = copy.deepcopy(raw)
        for k, v in settings.items():
            apply(r, k, v)
        where = ", ".join(f"{k}={v}" for k, v in settings.items())
        try:
            sc = from_dict(r, source, text)
        except ScenarioError as exc:
            raise ScenarioError(f"sweep point {where}: {exc}") from None
        for key in settings:
            _check_rate_key(key, sc, where)
        out.append((settings, sc))
    return out


def _check_rate_key(key: str, sc: Scenario, where: str) -> None:
    """A swept arrival rate must be one the device's arrival process uses."""
    parts = key.split(".")
    if parts[0] != "device" or parts[-1] not in ("rate", "rate_hz"):
        return
    dev = next(d for d in sc.devices if d["name"] == parts[1])
    process = dev["arrivals"]["process"]
    if process not in ("poisson", "onoff"):
        raise ScenarioError(
            f"sweep point {where}: {key}: {dev['name']}'s arrivals are {process}, which do not "
            "use rate_hz; sweep what they use (period_us, count, spacing_us) instead"
        )


def metrics(res: Result) -> dict[str, Any]:
    """The numbers of one run, flat: per device ``NAME.events/delivered/dropped``,
    ``NAME.delivered_per_s``, ``NAME.dropped_at_WHERE``; CPU time shares ``cpu.user`` ...
    (percent of all CPUs); ``ksoftirqd.wakeups``; and for each latency histogram
    ``KIND|SUBJECT.p50_us`` / ``.p99_us``."""
    k = res.kernel
    snap = k.statistics()
    secs = max(snap.time_ns, 1) / 1e9
    row: dict[str, Any] = {}
    for d in res.devices.values():
        row[f"{d.name}.events"] = d.events
        row[f"{d.name}.delivered"] = d.delivered
        row[f"{d.name}.delivered_per_s"] = round(d.delivered / secs, 1)
        row[f"{d.name}.dropped"] = d.dropped
        for where, n in d.drops.items():
            row[f"{d.name}.dropped_at_{where}"] = n
    total = sum(c.user + c.system + c.irq + c.softirq + c.idle for c in snap.cpus) or 1
    for cat in ("user", "system", "irq", "softirq", "idle"):
        row[f"cpu.{cat}"] = round(100 * sum(getattr(c, cat) for c in snap.cpus) / total, 2)
    row["ksoftirqd.wakeups"] = sum(snap.ksoftirqd_wakeups)
    lat = k.latency()
    for kind in lat:
        for subject, s in sorted(lat[kind].items()):
            if s.count:
                row[f"{kind}|{subject}.p50_us"] = round(s.p50 / 1000, 2)
                row[f"{kind}|{subject}.p99_us"] = round(s.p99 / 1000, 2)
    return row


def run_point(sc: Scenario) -> dict[str, Any]:
    """Run one point (in a worker process or on a Dask worker); a sweep records no trace."""
    return metrics(run(dataclasses.replace(sc, record={**sc.record, "trace": []})))


@dataclass
class SweepResult:
    axes: tuple[Axis, ...]
    rows: list[dict[str, Any]]

    def columns(self) -> list[str]:
        keys = [a.key for a in self.axes]
        seen: dict[str, None] = {}
        for r in self.rows:
            for c in r:
                if c not in keys:
                    seen.setdefault(c, None)
        return keys + list(seen)

    def write_csv(self, path: str | Path) -> None:
        """Every row; text cells (the header's device names among them) that a
        spreadsheet would take for a formula get a leading ``'``."""
        cols = self.columns()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([csv_cell(c) for c in cols])
            for r in self.rows:
                w.writerow([_cell(r.get(c, "")) for c in cols])

    def table(self, metric_names: Sequence[str]) -> str:
        cols = [a.key for a in self.axes] + list(metric_names)
        widths = [max(len(c), *(len(_fmt(r.get(c, ""))) for r in self.rows)) for c in cols]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
        for r in self.rows:
            cells = [_fmt(r.get(c, "")) for c in cols]
            lines.append("  ".join(v.rjust(w) for v, w in zip(cells, widths, strict=True)))
        return "\n".join(lines) + "\n"


def _cell(v: Any) -> Any:
    return csv_cell(v) if isinstance(v, str) else v


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def sweep(
    sc_path: str | Path,
    axes: Sequence[Axis],
    *,
    jobs: int = 1,
    dask_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Run the grid of ``axes`` over the scenario file ``sc_path``; rows come back in
    grid order whatever order the points finish in."""
    p = Path(sc_path)
    text = read_text(p)
    if not axes:
        raise ScenarioError("sweep: give at least one --set KEY=VALUES")
    grid = points(parse(text, str(p)), axes, str(p), text)
    rows: list[dict[str, Any] | None] = [None] * len(grid)
    for done, (i, row) in enumerate(_execute([sc for _, sc in grid], jobs, dask_address), 1):
        rows[i] = {**grid[i][0], **row}
        if progress is not None:
            progress(done, len(grid))
    return SweepResult(tuple(axes), [r for r in rows if r is not None])


def _execute(
    scenarios: list[Scenario], jobs: int, dask_address: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    if dask_address is not None:
        yield from _execute_dask(scenarios, dask_address)
        return
    jobs = min(jobs, len(scenarios))
    if jobs <= 1:
        for i, sc in enumerate(scenarios):
            yield i, run_point(sc)
        return
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_sigint)
    try:
        with _sigint_held():  # the workers are forked here
            futures = {pool.submit(run_point, sc): i for i, sc in enumerate(scenarios)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    except BaseException:  # Ctrl-C or a failed point: stop the workers now, not after the grid
        workers = getattr(pool, "_processes", None) or {}
        for proc in list(workers.values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back while workers are forked: a KeyboardInterrupt raised in fork()'s
    own hooks would be swallowed there ("Exception ignored") and the sweep would go on.
    A Ctrl-C that came meanwhile is raised when the block ends."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        mask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops them (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: the schemes a Dask scheduler address may have
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def _check_scheduler_address(address: str) -> None:
    """Refuse an address that cannot name a scheduler before trying to connect (whether
    Dask says so or times out trying depends on the address and the network)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
        port = parts.port
        ok = parts.scheme in DASK_SCHEMES and bool(parts.hostname) and port is not None
        why = "" if ok else "it needs a scheme, a host and a port"
    except ValueError as exc:
        why = str(exc)
    if why:
        raise ScenarioError(
            f"--dask {quote(address)}: not a scheduler address ({why}); give one like "
            "tcp://HOST:8786"
        )


def _execute_dask(scenarios: list[Scenario], address: str) -> Iterator[tuple[int, dict[str, Any]]]:
    import importlib

    try:
        dist: Any = importlib.import_module("distributed")  # untyped: used as Any
    except ImportError:
        raise ScenarioError(
            "--dask needs Dask's distributed scheduler: pip install 'irqflow[dask]'"
        ) from None
    _check_scheduler_address(address)
    try:
        client = dist.Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except OSError as exc:
        raise ScenarioError(f"--dask {quote(address)}: cannot reach the scheduler: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ScenarioError(
            f"--dask {quote(address)}: not a scheduler address ({exc}); give one like "
            "tcp://HOST:8786"
        ) from None
    try:
        futures = client.map(run_point, scenarios, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in dist.as_completed(futures):
            yield index[fut.key], fut.result()
    finally:
        client.close()
