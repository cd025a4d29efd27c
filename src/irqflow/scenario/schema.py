"""The scenario format, as data: every table's keys with their type, default and meaning.

Validation is strict: an unknown key is an error with a suggestion, a wrong type or value
names the dotted key path, what was expected and what was found, and, where the file
says it, the line.  ``reference()`` renders this schema as the format reference in
``docs/scenario-format.md``.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from irqflow.core.config import INT_MAX, MAX_NS, PRESETS, ConfigError, KernelConfig, rule_of
from irqflow.core.errors import IrqflowError
from irqflow.scenario.files import (
    MAX_CSV_BYTES,
    MAX_SCENARIO_BYTES,
    PLOT_SUFFIXES,
    PathError,
    check_name,
    read_beneath,
    read_file,
)
from irqflow.scenario.text import quote


class ScenarioError(IrqflowError):
    """A scenario file is not valid: says where, what was expected and what was found."""


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


_NUM = (int, float)
#: Kernel(cpus=) takes 1..1024 (irqflow.core.kernel); a scenario takes the same
MAX_CPUS = 1024
#: the longest time a scenario may name, in its units: MAX_NS (10**15 ns, 11.6 days)
MAX_MS = MAX_NS // 10**6
MAX_US = MAX_NS // 10**3
#: the most events a burst or a CSV file may list (each is scheduled when the run starts)
MAX_EVENTS = 1_000_000
#: the fastest arrival rate: one event per nanosecond
MAX_RATE_HZ = 1e9
#: the largest trace ring buffer, in events
MAX_BUFFER = 10_000_000
#: how deep arrays and tables may nest in a scenario file
MAX_DEPTH = 16


def _ms(default: float, doc: str, minimum: float = 0) -> Key:
    return Key(_NUM, default, doc, minimum=minimum, maximum=MAX_MS)


def _us(default: float, doc: str, minimum: float = 0) -> Key:
    return Key(_NUM, default, doc, minimum=minimum, maximum=MAX_US)


def _int(default: int | None, doc: str, minimum: int = 0, maximum: int = INT_MAX) -> Key:
    return Key(int, default, doc, minimum=minimum, maximum=maximum)


MACHINE: dict[str, Key] = {
    "cpus": _int(2, "number of CPUs", minimum=1, maximum=MAX_CPUS),
    "seed": _int(0, "seed of every random arrival process", maximum=2**64 - 1),
    "duration_ms": _ms(20, "virtual time to run, in ms"),
    "preset": Key(
        str,
        "6.13",
        "the kernel era (KernelConfig.preset): 2.6 is the seed article's kernel, 6.13 "
        "today's; config fields override it",
        tuple(PRESETS),
    ),
    "config": Key(dict, {}, "KernelConfig fields, e.g. hz = 250, ksoftirqd_defers = true"),
}
ARRIVALS: dict[str, Key] = {
    "process": Key(
        str,
        "poisson",
        "arrival process: periodic; poisson; burst (count events spacing_us apart); onoff "
        "(poisson at rate_hz during on_ms, silent for off_ms, repeating); csv (replay the "
        "times in file); none (the device is driven by a thread: disk)",
        ("periodic", "poisson", "burst", "onoff", "csv", "none"),
    ),
    "rate_hz": Key(
        _NUM, 10_000, "poisson, onoff: mean events per second", minimum=0, maximum=MAX_RATE_HZ
    ),
    "period_us": _us(100, "periodic: time between events, us", minimum=0.001),
    "count": _int(100, "burst: number of events", maximum=MAX_EVENTS),
    "spacing_us": _us(1, "burst: time between events, us"),
    "on_ms": _ms(1, "onoff: length of a burst, ms", minimum=0.001),
    "off_ms": _ms(4, "onoff: silence between bursts, ms"),
    "file": Key(
        str,
        "",
        "csv: file of event times in us, one per line (first column; a header line is "
        "skipped): a regular file below the scenario's directory, named relative to it "
        f"(no absolute path, '..' or symlink), at most {MAX_CSV_BYTES // 2**20} MiB and "
        f"{MAX_EVENTS:,} times",
    ),
    "start_ms": _ms(0, "first event not before this time, ms"),
    "stop_ms": _ms(-1, "no event after this time, ms (-1: the run's duration)", minimum=-1),
}
DEVICE: dict[str, Key] = {
    "name": Key(
        str, None, "device (and action) name, shown in /proc/interrupts (no control characters)"
    ),
    "kind": Key(
        str,
        "line",
        "nic: a receive ring drained by NET_RX or NAPI; line: a generic device with a top "
        "half, an optional tasklet and optional work items; serial: a UART (keyboard) whose "
        "FIFO the top half drains, pushing characters on with a tasklet; disk: completes "
        "the requests of io threads (interrupt, BLOCK_SOFTIRQ, wake the waiting thread); "
        "timer: a periodic timer device (a top half only)",
        ("nic", "line", "serial", "disk", "timer"),
    ),
    "irq": _int(None, "interrupt line (below machine.config.nr_irqs)"),
    "trigger": Key(
        str, "edge", "edge or level (level: the handler quiets the device)", ("edge", "level")
    ),
    "affinity": Key(list, [], "CPUs allowed to take the line (empty: all)"),
    "shared": Key(bool, False, "request with IRQF_SHARED"),
    "hardirq_us": _us(
        1.0, "top-half CPU time per interrupt, us (line: per event the handler services)"
    ),
    "handled": Key(bool, True, "line: the handler recognises its device (False: IRQ_NONE)"),
    "threaded": Key(
        bool,
        False,
        "line: request_threaded_irq: the top half only wakes irq/N-name (ONESHOT), whose "
        "thread function does the hardirq_us of work",
    ),
    "tasklet_us": _us(0.0, "line: tasklet CPU time per interrupt, us (0: none)"),
    "ring": _int(256, "nic: receive ring size; packets beyond it are dropped", minimum=1),
    "rx_us": _us(2.0, "nic: protocol work per packet in NET_RX/poll, us"),
    "deliver_us": _us(0.5, "nic: per-packet delivery tasklet work, us"),
    "napi": Key(bool, False, "nic: mask the line and poll with NAPI"),
    "napi_weight": _int(64, "nic: NAPI weight (packets per poll)", minimum=1),
    "coalesce_us": _us(
        0,
        "nic: interrupt coalescing (rx-usecs): raise the line this long after the first "
        "packet since the last interrupt instead of per packet (0: off)",
    ),
    "socket_queue": _int(
        0,
        "nic: packets are delivered to a socket queue of this size read by a packet-reader "
        "thread (0: delivered straight away); a full queue drops",
    ),
    "fifo": _int(16, "serial: hardware FIFO size; characters beyond it overrun", minimum=1),
    "char_us": _us(0.2, "serial: top-half time per character drained, us"),
    "service_us": _us(100, "disk: time the device takes per request, us"),
    "softirq_us": _us(2, "disk: BLOCK_SOFTIRQ completion work per request, us"),
    "work_cpu_us": _us(
        0,
        "line: each interrupt queues a work item that sleeps work_sleep_ms, then uses "
        "this much CPU, us (0 and work_sleep_ms 0: no work item)",
    ),
    "work_sleep_ms": _ms(0, "line: the work item's sleep (msleep), ms"),
    "arrivals": Key(dict, {}, "the arrival process (a table, see [device.arrivals])"),
}
THREAD: dict[str, Key] = {
    "name": Key(str, None, "thread name (comm; no control characters)"),
    "kind": Key(
        str,
        "cpu-bound",
        "cpu-bound: computes forever; packet-reader: reads packets from a nic's socket "
        "queue (device, per_packet_us); io: submits requests to a disk and sleeps until "
        "each completes (device, think_us)",
        ("cpu-bound", "packet-reader", "io"),
    ),
    "device": Key(str, "", "packet-reader: the nic; io: the disk"),
    "per_packet_us": _us(5, "packet-reader: CPU time per packet read, us"),
    "think_us": _us(10, "io: CPU time between requests, us"),
    "cpu": _int(0, "CPU it runs on", maximum=MAX_CPUS - 1),
    "policy": Key(str, "normal", "scheduling policy", ("normal", "fifo", "rr")),
    "prio": _int(0, "real-time priority 1..99 (fifo/rr)", maximum=99),
    "nice": _int(0, "nice -20..19 (normal)", minimum=-20, maximum=19),
    "chunk_us": _us(1000, "CPU time between two cond_resched() calls, us", minimum=0.001),
}
RECORD: dict[str, Key] = {
    "trace": Key(
        list,
        [],
        'tracepoint patterns to record, e.g. ["irq:*", "workqueue:*"] (empty: none, '
        "unless an output below needs them)",
    ),
    "buffer_size": _int(
        500_000,
        "trace ring buffer, events (the oldest are overwritten)",
        minimum=1,
        maximum=MAX_BUFFER,
    ),
    "perfetto": Key(str, "", "irqflow run writes the trace as Perfetto/Chrome JSON here"),
    "ftrace": Key(str, "", "irqflow run writes the trace as ftrace text here"),
    "plot": Key(str, "", "irqflow run draws the CPUs' timeline here (.png, .svg or .pdf)"),
    "json": Key(
        str,
        "",
        "irqflow run writes the numbers as JSON here.  These four paths are relative to the "
        "output directory (the current one, or --out-dir) and stay below it: no absolute "
        "path, '..' or symlink, and an existing file is replaced only with --force.  The "
        "command's options override them; sweeps record nothing",
    ),
}
#: the keys each kind of device or thread reads, beyond the common ones
_COMMON_DEVICE = ("name", "kind", "irq", "trigger", "affinity", "shared", "hardirq_us", "arrivals")
_LINE_KEYS = ("handled", "tasklet_us", "threaded", "work_cpu_us", "work_sleep_ms")
DEVICE_KEYS = {
    "nic": ("ring", "rx_us", "deliver_us", "napi", "napi_weight", "coalesce_us", "socket_queue"),
    "line": _LINE_KEYS,
    "timer": _LINE_KEYS,
    "serial": ("fifo", "char_us", "tasklet_us"),
    "disk": ("service_us", "softirq_us"),
}
_COMMON_THREAD = ("name", "kind", "cpu", "policy", "prio", "nice")
THREAD_KEYS = {
    "cpu-bound": ("chunk_us",),
    "packet-reader": ("device", "per_packet_us"),
    "io": ("device", "think_us"),
}


def _applies(
    src: str,
    text: str,
    path: str,
    raw: dict[str, Any],
    kind: str,
    common: tuple[str, ...],
    per_kind: dict[str, tuple[str, ...]],
) -> None:
    """A key given for a kind that does not read it is an error, not silently ignored."""
    for key in raw:
        if key in common or key in per_kind[kind]:
            continue
        users = [k for k, keys in per_kind.items() if key in keys]
        raise _err(
            src, text, f"{path}.{key}",
            f"a {kind} does not use {key} (it is for: {', '.join(users)}); remove it",
        )  # fmt: skip


#: the [record] keys that name output files
OUTPUTS = ("perfetto", "ftrace", "plot", "json")

TOP = {
    "machine": "table",
    "device": "array of tables",
    "thread": "array of tables",
    "record": "table",
}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    machine: dict[str, Any]
    config: KernelConfig
    devices: tuple[dict[str, Any], ...]
    threads: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    source: str = "<string>"
    #: what to record and write (the [record] table); command-line options override it
    record: dict[str, Any] = field(default_factory=lambda: _defaults(RECORD))


def _defaults(spec: dict[str, Key]) -> dict[str, Any]:
    return {k: v.default for k, v in spec.items()}


_HEADER = re.compile(r"(?m)^[ \t]*\[")


def _line(text: str, path: str) -> int | None:
    """The line of ``path`` (``device[1].arrivals.rate_hz``) in the TOML ``text``: the key
    inside its own table (the n-th ``[[device]]``), else that table's header."""
    head = path.split(".", 1)[0]
    m = re.fullmatch(r"(\w+)\[(\d+)\]", head)
    if m:
        headers = list(re.finditer(rf"(?m)^[ \t]*\[\[[ \t]*{m.group(1)}[ \t]*\]\]", text))
        found = headers[int(m.group(2))] if int(m.group(2)) < len(headers) else None
    else:
        found = re.search(rf"(?m)^[ \t]*\[[ \t]*{re.escape(head)}[ \t]*\]", text)
    start, end = 0, len(text)
    if found is not None:
        start = found.start()
        nxt = _HEADER.search(text, found.end())
        end = nxt.start() if nxt else len(text)
    key = path.rsplit(".", 1)[-1].split("[")[0]
    km = re.compile(rf"(?<![\w-]){re.escape(key)}[ \t]*=").search(text, start, end)
    pos = km.start() if km else (start if found is not None else None)
    if pos is None:
        km = re.compile(rf"(?m)^[ \t]*{re.escape(key)}[ \t]*=").search(text)
        pos = km.start() if km else None
    return None if pos is None else text.count("\n", 0, pos) + 1


def _err(src: str, text: str, path: str, msg: str) -> ScenarioError:
    line = _line(text, path)
    where = f"{src}:{line}" if line else src
    return ScenarioError(f"{where}: {path}: {msg}")


def _show(x: float) -> str:
    if not float(x).is_integer():
        return f"{x:g}"
    return f"{int(x):_}" if abs(x) >= 100_000 else str(int(x))


def _out_of_range(k: Key, value: float) -> str | None:
    """Why ``value`` is outside the key's range, or None."""
    lo, hi = k.minimum, k.maximum
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return None
    if lo is not None and hi is not None and hi - lo <= 100_000:
        return f"expected {_show(lo)}..{_show(hi)}, found {quote(value)}"
    if lo is not None and value < lo:
        return f"expected >= {_show(lo)}, found {quote(value)}"
    note = ""
    if hi in (MAX_MS, MAX_US):
        note = f" (irqflow's longest time is 10**{len(str(MAX_NS)) - 1} ns, about 11.6 days)"
    return f"expected <= {_show(hi or 0)}, found {quote(value)}{note}"


def _key(key: str) -> str:
    """A key as shown in a path: plain keys as they are, others quoted and cut short."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else quote(key)


def problem(key: str, k: Key, value: Any) -> str | None:
    """Why ``value`` is not valid for ``key`` (spec ``k``), or None; the scenario tables
    and the command's overrides (--duration, --seed) are checked by this one function."""
    ok = isinstance(value, k.type) and not (isinstance(value, bool) and k.type in (int, _NUM))
    if not ok:
        want = k.type.__name__ if isinstance(k.type, type) else "number"
        return f"expected {want}, found {type(value).__name__} {quote(value)}"
    if k.choices and value not in k.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in k.choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"expected one of {list(k.choices)}, found {quote(value)}{hint}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, found {value!r}"
    if isinstance(value, int | float):
        return _out_of_range(k, value)
    if key == "name" and not value.isprintable():
        return (
            f"found {quote(value)}: a name is shown on terminals and in files, so it may not "
            "hold control characters, escape sequences or separators other than a space"
        )
    return None


def _table(src: str, text: str, path: str, raw: Any, spec: dict[str, Key]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _err(src, text, path, f"expected a table, found {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{_key(key)}"
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(spec)}"
            raise _err(src, text, where, f"unknown key{hint}")
        why = problem(key, spec[key], value)
        if why is not None:
            raise _err(src, text, where, why)
        out[key] = value
    for key, k in spec.items():
        if key not in out:
            if k.default is None:
                raise _err(src, text, path, f"missing required key {key!r} ({k.doc})")
            out[key] = k.default
    return out


def _too_deep(raw: Any) -> str | None:
    """The path of a value nested deeper than MAX_DEPTH, or None (walked without
    recursion, so no depth breaks it)."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack.extend(
                (v, f"{path}.{_key(k)}" if path else _key(k), depth + 1) for k, v in value.items()
            )
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{n}]", depth + 1) for n, v in enumerate(value))
    return None


def _line_of(text: str, pattern: str) -> tuple[int, str] | None:
    """The line of the first match of ``pattern`` in ``text`` and the key on that line."""
    m = re.search(pattern, text)
    if m is None:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    key = text[start : m.start()].partition("=")[0].strip()
    return text.count("\n", 0, m.start()) + 1, key


def parse(text: str, source: str = "<string>") -> dict[str, Any]:
    """The raw tables of scenario TOML text (not validated yet)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        found = _line_of(text, r"[\[{]([ \t\r\n]*[\[{]){64}")
        where = f"{source}:{found[0]}: {found[1]}" if found and found[1] else source
        raise ScenarioError(
            f"{where}: arrays or inline tables nested too deeply to read (a scenario "
            f"nests at most {MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:  # an integer past int's 4300-digit string limit
        found = _line_of(text, r"[0-9][0-9_]{4300}")
        if found is None:
            raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
        where = f"{source}:{found[0]}: {found[1]}" if found[1] else f"{source}:{found[0]}"
        raise ScenarioError(
            f"{where}: an integer of more than 4300 digits; no key takes one that large"
        ) from None


def loads(text: str, source: str = "<string>") -> Scenario:
    """Validate scenario TOML text."""
    return from_dict(parse(text, source), source, text)


def from_dict(raw: dict[str, Any], source: str = "<string>", text: str = "") -> Scenario:
    """Validate parsed scenario tables; ``text`` (the file's) lets errors give lines."""
    deep = _too_deep(raw)
    if deep is not None:
        raise _err(source, text, deep, f"nested deeper than {MAX_DEPTH} levels; no key takes that")
    for key in raw:
        if key not in TOP:
            close = difflib.get_close_matches(key, list(TOP), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(TOP)}"
            raise _err(source, text, _key(key), f"unknown table{hint}")
    machine = _table(source, text, "machine", raw.get("machine", {}), MACHINE)
    names = {f.name for f in fields(KernelConfig)}
    for key in machine["config"]:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _err(
                source, text, f"machine.config.{_key(key)}", f"not a KernelConfig field{hint}"
            )
    try:
        config = KernelConfig.preset(machine["preset"], **machine["config"])
    except ConfigError as exc:
        raise _err(source, text, f"machine.config.{exc.field}", str(exc)) from None
    except (IrqflowError, TypeError) as exc:
        raise _err(source, text, "machine.config", str(exc)) from None
    devices: list[dict[str, Any]] = []
    for i, d in enumerate(_array(source, text, raw, "device")):
        dev = _table(source, text, f"device[{i}]", d, DEVICE)
        _applies(source, text, f"device[{i}]", d, dev["kind"], _COMMON_DEVICE, DEVICE_KEYS)
        dev["arrivals"] = _table(source, text, f"device[{i}].arrivals", dev["arrivals"], ARRIVALS)
        if dev["irq"] >= config.nr_irqs:
            raise _err(
                source,
                text,
                f"device[{i}].irq",
                f"expected < nr_irqs ({config.nr_irqs}), found {dev['irq']}",
            )
        bad = [
            c
            for c in dev["affinity"]
            if type(c) is not int or not 0 <= c < machine["cpus"]  # not a bool either
        ]
        if bad:
            raise _err(
                source,
                text,
                f"device[{i}].affinity",
                f"expected CPU numbers 0..{machine['cpus'] - 1}, found {quote(bad)}",
            )
        if any(d["name"] == dev["name"] for d in devices):
            raise _err(
                source, text, f"device[{i}].name", f"a device is already named {dev['name']!r}"
            )
        first = next((d for d in devices if d["irq"] == dev["irq"]), None)
        if first is not None and not (dev["shared"] and first["shared"]):
            raise _err(
                source,
                text,
                f"device[{i}].irq",
                f"line {dev['irq']} is already used by {first['name']!r}; "
                "set shared = true on both to share it",
            )
        for key in ("trigger", "threaded"):  # request_irq refuses a flags mismatch
            if first is not None and dev[key] != first[key]:
                raise _err(
                    source,
                    text,
                    f"device[{i}].{key}",
                    f"line {dev['irq']} is shared with {first['name']!r}, whose {key} is "
                    f"{first[key]!r}; the devices on a shared line need the same {key}",
                )
        if dev["kind"] in ("nic", "serial", "disk", "timer") and dev["trigger"] != "edge":
            raise _err(source, text, f"device[{i}].trigger", f"a {dev['kind']} is edge-triggered")
        proc_ = dev["arrivals"]["process"]
        if (dev["kind"] == "disk") != (proc_ == "none"):
            raise _err(
                source,
                text,
                f"device[{i}].arrivals.process",
                'a disk is driven by io threads: use process = "none" for it (and only '
                f"for it), found {proc_!r}",
            )
        if dev["kind"] == "timer" and proc_ != "periodic":
            raise _err(
                source,
                text,
                f"device[{i}].arrivals.process",
                f'a timer device fires periodically: use process = "periodic", found {proc_!r}',
            )
        if proc_ == "csv":
            dev["arrivals"]["times_us"] = _csv_times(source, text, i, dev["arrivals"]["file"])
        devices.append(dev)
    threads: list[dict[str, Any]] = []
    for i, t in enumerate(_array(source, text, raw, "thread")):
        th = _table(source, text, f"thread[{i}]", t, THREAD)
        _applies(source, text, f"thread[{i}]", t, th["kind"], _COMMON_THREAD, THREAD_KEYS)
        if th["policy"] == "normal" and "prio" in t:
            raise _err(
                source,
                text,
                f"thread[{i}].prio",
                "prio is a real-time priority (policy fifo or rr); a normal thread takes nice",
            )
        if any(o["name"] == th["name"] for o in threads):
            raise _err(
                source, text, f"thread[{i}].name", f"a thread is already named {th['name']!r}"
            )
        if th["policy"] in ("fifo", "rr") and not 1 <= th["prio"] <= 99:
            raise _err(
                source,
                text,
                f"thread[{i}].prio",
                f"a {th['policy']} thread needs prio 1..99, found {th['prio']}",
            )
        if not -20 <= th["nice"] <= 19:
            raise _err(source, text, f"thread[{i}].nice", f"expected -20..19, found {th['nice']}")
        if th["cpu"] >= machine["cpus"]:
            raise _err(
                source,
                text,
                f"thread[{i}].cpu",
                f"expected 0..{machine['cpus'] - 1}, found {th['cpu']}",
            )
        kinds = {"packet-reader": ("nic",), "io": ("disk",)}.get(th["kind"])
        if kinds is not None:
            target = next((d for d in devices if d["name"] == th["device"]), None)
            if target is None or target["kind"] not in kinds:
                found = [d["name"] for d in devices if d["kind"] in kinds]
                raise _err(
                    source,
                    text,
                    f"thread[{i}].device",
                    f"a {th['kind']} thread needs the name of a {kinds[0]} device "
                    f"(found {th['device']!r}; {kinds[0]} devices here: {found})",
                )
            if th["kind"] == "packet-reader" and not target["socket_queue"]:
                raise _err(
                    source,
                    text,
                    f"thread[{i}].device",
                    f"nic {target['name']!r} has no socket queue for a reader; set "
                    "socket_queue (e.g. 256) on it",
                )
        threads.append(th)
    record = _table(source, text, "record", raw.get("record", {}), RECORD)
    for pat in record["trace"]:
        _check_pattern(source, text, pat)
    named: dict[tuple[str, ...], str] = {}
    for key in OUTPUTS:
        if record[key]:
            try:
                parts = check_name(record[key], PLOT_SUFFIXES if key == "plot" else ())
            except PathError as exc:
                raise _err(source, text, f"record.{key}", f"{quote(record[key])} {exc}") from None
            other = named.setdefault(parts, key)
            if other != key:
                raise _err(
                    source,
                    text,
                    f"record.{key}",
                    f"{quote(record[key])} is also record.{other}; give each output its own file",
                )
    return Scenario(machine, config, tuple(devices), tuple(threads), source, record)


def _check_pattern(src: str, text: str, pat: Any) -> None:
    from irqflow.trace.tracer import TRACE_SYSTEMS

    if not isinstance(pat, str):
        raise _err(
            src, text, "record.trace", f"expected tracepoint patterns (strings), found {pat!r}"
        )
    system = pat.split(":", 1)[0]
    if pat == "*" or (":" in pat and any(fnmatch.fnmatchcase(s, system) for s in TRACE_SYSTEMS)):
        return
    close = difflib.get_close_matches(system, TRACE_SYSTEMS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise _err(
        src,
        text,
        "record.trace",
        f"{pat!r} matches no tracepoint: patterns are 'system:event' with a system of "
        f"{', '.join(TRACE_SYSTEMS)}{hint}",
    )


def _csv_times(src: str, text: str, i: int, name: str) -> tuple[float, ...]:
    """Read a CSV of event times (us) named by a scenario, below its directory."""
    path = f"device[{i}].arrivals.file"
    if not name:
        raise _err(src, text, path, 'process = "csv" needs file = "times.csv"')
    base = Path(src).parent if src != "<string>" else Path.cwd()
    try:
        data = read_beneath(base, name, MAX_CSV_BYTES)
    except PathError as exc:
        raise _err(src, text, path, f"{quote(name)} {exc}") from None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise _err(
            src, text, path, f"{quote(name)} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    times: list[float] = []
    for n, line in enumerate(lines, 1):
        cell = line.split(",", 1)[0].strip()
        if not cell or cell.startswith("#"):
            continue
        try:
            t = float(cell)
            if not math.isfinite(t):
                raise ValueError(cell)
        except ValueError:
            if n == 1:
                continue  # a header
            raise _err(
                src, text, path, f"{quote(name)}:{n}: expected a time in us, found {quote(cell)}"
            ) from None
        if t < 0 or (times and t < times[-1]):
            raise _err(
                src,
                text,
                path,
                f"{quote(name)}:{n}: times must be >= 0 and in order, found {quote(cell)}",
            )
        if t > MAX_US:
            raise _err(
                src,
                text,
                path,
                f"{quote(name)}:{n}: {t:g} us is past irqflow's longest time ({_show(MAX_US)} us)",
            )
        if len(times) == MAX_EVENTS:
            raise _err(src, text, path, f"{quote(name)} lists more than {MAX_EVENTS:,} times")
        times.append(t)
    return tuple(times)


def _array(src: str, text: str, raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise _err(src, text, key, f"expected an array of tables ([[{key}]]), found a table")
    return value


def read_text(path: str | Path) -> str:
    """The text of a scenario file: a regular file of at most 4 MiB of UTF-8."""
    p = Path(path)
    try:
        data = read_file(p, MAX_SCENARIO_BYTES)
    except PathError as exc:
        raise ScenarioError(f"{p}: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load(path: str | Path) -> Scenario:
    """Validate a scenario file (see :func:`read_text`)."""
    return loads(read_text(path), str(Path(path)))


def _range(k: Key) -> str:
    lo, hi = k.minimum, k.maximum
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f">= {_show(lo or 0)}"
    return f"{_show(lo or 0)} .. {_show(hi)}"


_SC_MIB, _CSV_MIB = MAX_SCENARIO_BYTES // 2**20, MAX_CSV_BYTES // 2**20
FILE_RULES = f"""\
## Files

A scenario may come from anyone, so running one touches only the files its user names:

- **The scenario file** is read only if it is a regular file (not a FIFO, a device or a
  directory) of at most {_SC_MIB} MiB of UTF-8 TOML. Arrays and tables nest at most
  {MAX_DEPTH} levels. Nothing in it is ever executed.
- **CSV arrival files** (`file`) are named relative to the scenario's directory and stay
  below it: an absolute path, `..` or a symlink anywhere on the way is an error. Each is a
  regular file of at most {_CSV_MIB} MiB and {MAX_EVENTS:,} times. An error quotes at
  most a short, escaped excerpt of it.
- **Outputs** (`[record]` `perfetto`, `ftrace`, `plot`, `json`) are named relative to the
  output directory: the current directory, or the one `irqflow run --out-dir DIR` names.
  They stay below it (no absolute path, `~`, `..` or symlink on the way), are created
  with `O_EXCL|O_NOFOLLOW`, and never replace an existing file unless `irqflow run
  --force` (which still replaces only a regular file, never a symlink). Each output
  names its own file. Every output is checked before the run starts (its directory
  exists and is writable, the name fits, it is not a directory), so a bad path never
  loses a finished run. Paths given on the command line (`--json`, `--trace`, ...) are
  the user's own and are opened as given.
- **Times** are at most 10**{len(str(MAX_NS)) - 1} ns of virtual time (about 11.6 days:
  `duration_ms` <= {_show(MAX_MS)}, `*_us` <= {_show(MAX_US)}), so no value
  overflows in a run; a burst has at most {MAX_EVENTS:,} events, a rate at most one
  event per ns.
- **Names** (`name` of devices and threads) are shown on terminals and written to CSV
  headers: they may not hold control characters; `irqflow` escapes what it prints, and
  a CSV cell starting with `=`, `+`, `-` or `@` gets a leading `'`.
- `machine.config` takes exactly `KernelConfig`'s fields and rules (types are strict:
  an int field takes no float or bool), so a scenario that validates also runs.
"""


def reference() -> str:
    """The format reference (Markdown), generated from the tables above."""
    out = ["# Scenario format", "", "Generated from `irqflow.scenario.schema`; do not edit.", ""]
    for title, spec in (
        ("[machine]", MACHINE),
        ("[[device]]", DEVICE),
        ("[device.arrivals]", ARRIVALS),
        ("[[thread]]", THREAD),
        ("[record]", RECORD),
    ):
        out += [
            f"## `{title}`",
            "",
            "| key | type | default | range | meaning |",
            "|---|---|---|---|---|",
        ]
        for key, k in spec.items():
            typ = k.type.__name__ if isinstance(k.type, type) else "number"
            default = "required" if k.default is None else f"`{k.default!r}`"
            doc = k.doc + (f" (one of {', '.join(map(str, k.choices))})" if k.choices else "")
            out.append(f"| `{key}` | {typ} | {default} | {_range(k)} | {doc} |")
        out.append("")
    out += [
        "## `[machine.config]`",
        "",
        "`KernelConfig`'s fields (`irqflow.core.config`), checked by its own rules.",
        "",
        "| key | type | default | range |",
        "|---|---|---|---|",
    ]
    for f in fields(KernelConfig):
        rule = rule_of(f.name, str(f.type), f.metadata)
        span = (
            ", ".join(map(str, rule.choices))
            if rule.choices
            else _range(Key(int, 0, "", minimum=rule.minimum, maximum=rule.maximum))
        )
        out.append(f"| `{f.name}` | {f.type} | `{f.default!r}` | {span} |")
    out += ["", FILE_RULES]
    return "\n".join(out)
