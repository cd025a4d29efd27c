"""Fuzzing ``irqflow validate`` and ``irqflow run`` with hostile scenario files.

Two sources of scenarios: hypothesis builds them from the schema (every table and key,
values in and out of range, wrong types, hostile names and paths), and it mutates the
shipped scenarios (values replaced, lines dropped, doubled or inserted, text cut, bytes
that are not UTF-8).  Every scenario is validated, and the valid ones with a bounded
workload are run for a short time.  For each the test asserts: exit status 0 or 2, no
traceback, nothing opened outside the allowed directories (an audit hook), nothing
executed or unpickled, no secret from outside the scenario's directory in the output,
and no hang (an alarm).

The examples per strategy are ``IRQFLOW_FUZZ_EXAMPLES`` (default 200, about 15 s in
all); run with ``-s`` to see the counts, and with ``--timeout=0`` for thousands.

The hook cannot see the directory fd of an ``openat``: a relative name is taken to be
below an allowed directory (irqflow opens relative names only below the directories it
walked to).  A walk that followed a symlink out would still be caught by the canary: the
secret outside must never appear in the output, and the files outside never change.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from irqflow.cli import main
from irqflow.core.config import MAX_NS, KernelConfig
from irqflow.scenario import load
from irqflow.scenario.schema import (
    ARRIVALS,
    DEVICE,
    DEVICE_KEYS,
    MACHINE,
    MAX_EVENTS,
    RECORD,
    THREAD,
    THREAD_KEYS,
    Key,
)

ROOT = Path(__file__).parent.parent
SHIPPED = [p.read_text() for p in sorted((ROOT / "scenarios").glob("*.toml"))]
EXAMPLES = int(os.environ.get("IRQFLOW_FUZZ_EXAMPLES", "200"))
#: a run's virtual time, ms, and the most arrivals a run may schedule up front
RUN_MS = "0.05"
RUN_EVENTS = 20_000
SECRET = "CANARY-7f3a9c"
#: what the whole module saw, printed at the end (pytest -s)
COUNTS: Counter[str] = Counter()


# --- the audit hook -----------------------------------------------------------------
# Audit hooks cannot be removed, so one is installed for the module; it records only
# while ``_ARMED`` holds the allowed directories (during a main() call).

_ARMED: dict[str, Any] = {}
_SEEN: list[str] = []
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_NEVER = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pickle.find_class", "exec", "compile", "marshal.loads", "ctypes.dlopen",
    "socket.connect", "urllib.Request",
}  # fmt: skip
_PATH_EVENTS = {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.symlink", "os.link",
                "os.truncate", "os.chmod", "os.chown", "shutil.rmtree", "os.utime"}  # fmt: skip


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    """``path`` is one of ``roots`` or below it; a root ending in '-' is a name prefix
    (irqflow's private temporary directories are TMP/irqflow-out-XXXXXXXX)."""
    return any(
        path.startswith(r) if r.endswith("-") else path == r or path.startswith(r + "/")
        for r in roots
    )


def _resolve(path: Any) -> str | None:
    """The absolute path an open event names (None for an fd).  A relative name without
    '..' is inside the directory it is relative to: the working directory, or a
    directory fd irqflow walked to below an allowed root; with '..' it is resolved
    against the working directory (the hook cannot see dir_fd)."""
    if isinstance(path, int):
        return None
    name = os.fsdecode(os.fspath(path))
    if not os.path.isabs(name):
        if ".." not in Path(name).parts:
            return _ARMED["cwd"]
        name = os.path.join(_ARMED["cwd"], name)
    return os.path.normpath(name)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _ARMED:
        return
    if event in _NEVER or event.startswith(("os.exec", "os.spawn")):
        _SEEN.append(f"{event} {args!r:.200}")
        return
    if event == "open" or event in _PATH_EVENTS:
        path = _resolve(args[0]) if args else None
        if path is None:
            return
        writes = event != "open" or (
            (isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
            or (isinstance(args[2], int) and args[2] & _WRITE != 0)
        )
        ok = _inside(path, _ARMED["write"]) or (not writes and _inside(path, _ARMED["read"]))
        if not ok:
            _SEEN.append(f"{event} {'write' if writes else 'read'} {path}")


sys.addaudithook(_hook)


# --- the files a scenario may try to reach -------------------------------------------


@contextlib.contextmanager
def _world() -> Iterator[Path]:
    """root/sc (scenarios and their CSV files), root/out (the working and output
    directory), root/outside (a secret, a victim file): with symlinks, a FIFO and a
    sparse 65 MiB file as bait."""
    with tempfile.TemporaryDirectory(prefix="irqflow-fuzz-") as tmp:
        root = Path(tmp)
        sc, out, outside = root / "sc", root / "out", root / "outside"
        for d in (sc / "sub", out / "sub", outside):
            d.mkdir(parents=True)
        (outside / "secret.csv").write_text(f"time_us\n10\n{SECRET}\n")
        (outside / "victim.json").write_text(SECRET)
        (sc / "times.csv").write_text("time_us\n1\n2.5\n30\n")
        (sc / "sub" / "times.csv").write_text("5\n6\n")
        (sc / "bad.csv").write_text("time_us\n1\nnot-a-time\n")
        (sc / "link.csv").symlink_to(outside / "secret.csv")
        (sc / "linkdir").symlink_to(outside)
        (sc / "zero.csv").symlink_to("/dev/zero")
        os.mkfifo(sc / "fifo.csv")
        with open(sc / "big.csv", "wb") as fh:
            fh.truncate(65 * 2**20)
        yield root


def _reset_out(root: Path) -> None:
    out = root / "out"
    for p in out.iterdir():
        if p.is_dir() and not p.is_symlink():
            for q in p.iterdir():
                q.unlink()
            if p.name != "sub":
                p.rmdir()
        else:
            p.unlink()
    (out / "victim.json").symlink_to(root / "outside" / "victim.json")
    (out / "subl").symlink_to(root / "outside")
    (out / "existing.json").write_text("{}")
    (out / "adir").mkdir()


def _snapshot(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (root / "outside").iterdir()}


class Hang(BaseException):
    """A call ran past the alarm."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


@contextlib.contextmanager
def _hang_alarm(seconds: float) -> Iterator[None]:
    """Raise Hang in a call that runs longer than ``seconds`` (a generous bound: no run
    here takes a second).  pytest-timeout's own SIGALRM timer, if any, is put back with
    what was left of it."""
    handler = signal.signal(signal.SIGALRM, _alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if outer:
            left = outer - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _call(root: Path, argv: list[str]) -> tuple[int, str]:
    """main(argv) with the hook armed and an alarm against hangs: its status and what it
    printed.  An exception out of main() is a traceback: the test fails on it."""
    out, err = io.StringIO(), io.StringIO()
    tmp = tempfile.gettempdir()
    prefix = sys.base_prefix, sys.prefix, sys.exec_prefix
    _SEEN.clear()
    try:
        _ARMED.update(
            cwd=str(root / "out"),
            write=(str(root / "sc"), str(root / "out"), os.path.join(tmp, "irqflow-out-")),
            read=(*prefix, *(p for p in sys.path if p)),
        )
        with (
            _hang_alarm(60),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
    finally:
        _ARMED.clear()
    seen = list(_SEEN)
    text = out.getvalue() + err.getvalue()
    assert not seen, f"{argv}: touched {seen}"
    assert code in (0, 2), f"{argv}: exit {code}: {text[-2000:]}"
    assert "Traceback" not in text and SECRET not in text, text[-2000:]
    assert "\x1b" not in text, text[-2000:]
    return code, text


def _check(root: Path, data: bytes, source: str) -> None:
    """Validate ``data`` as a scenario; run it briefly if it is valid and light."""
    path = root / "sc" / "s.toml"
    path.write_bytes(data)
    _reset_out(root)
    before = _snapshot(root)
    code, _ = _call(root, ["validate", str(path)])
    COUNTS[f"{source}: validate exit {code}"] += 1
    if code == 0 and _light(path):
        code, _ = _call(root, ["run", str(path), "--duration", RUN_MS, "--no-progress",
                               "--out-dir", str(root / "out")])  # fmt: skip
        COUNTS[f"{source}: run exit {code}"] += 1
        COUNTS["outputs written"] += len(_outputs(root))
    assert _snapshot(root) == before, "a file outside the allowed directories changed"
    assert (root / "out" / "existing.json").read_text() == "{}", "replaced without --force"


def _outputs(root: Path) -> list[Path]:
    """The files a run wrote below the output directory (not the bait)."""
    bait = {"victim.json", "subl", "existing.json", "adir", "sub"}
    out = root / "out"
    return [p for p in [*out.iterdir(), *(out / "sub").iterdir()] if p.name not in bait]


def _light(path: Path) -> bool:
    """A run schedules its bursts and CSV times up front, and a plot takes a while: run
    only scenarios where those are small (validation checks the limits themselves)."""
    sc = load(path)
    events = sum(
        d["arrivals"]["count"] if d["arrivals"]["process"] == "burst" else 0 for d in sc.devices
    ) + sum(len(d["arrivals"].get("times_us", ())) for d in sc.devices)
    if events > RUN_EVENTS or (sc.record["plot"] and COUNTS["run with a plot"] >= 3):
        return False
    COUNTS["run with a plot"] += bool(sc.record["plot"])
    return True


# --- TOML out of Python values ---------------------------------------------------------


class Raw(str):
    """A TOML token written as it is (huge integers, deep arrays, bare inf)."""


def _toml(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _toml_key(key: str) -> str:
    return (
        key
        if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii()
        else json.dumps(key)
    )


def _document(tables: dict[str, Any]) -> str:
    lines = []
    for name, body in tables.items():
        items = body if isinstance(body, list) else [body]
        for item in items:
            lines.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


# --- strategies ------------------------------------------------------------------------

NAMES = ["eth0", "kbd", "sda", "d1", "=HYPERLINK(\"http://x\",\"y\")", "-cmd", "a b",
         "\x1b[31mred", "\x1b]8;;http://x\x07", "ünï", "x" * 100, ""]  # fmt: skip
CSV_FILES = ["times.csv", "sub/times.csv", "bad.csv", "link.csv", "linkdir/secret.csv",
             "zero.csv", "fifo.csv", "big.csv", "../outside/secret.csv", "/etc/passwd",
             "/dev/zero", "/dev/urandom", "~/x.csv", "nope.csv", "sub", "sub/", "", "a\0b",
             "sub/../times.csv", "x" * 300]  # fmt: skip
#: output names: valid ones first, then the ones that must be refused (the bait first:
#: a symlink out, a symlinked directory, a file that exists)
OUT_FILES = ["r.json", "t.png", "t.svg", "sub/r.json",
             "victim.json", "subl/r.json", "existing.json", "nosub/r.json", "../r.json",
             "/tmp/irqflow-fuzz.json", "~/r.json", "adir", "a\0b", "x" * 300, "t.txt", "",
             "./r.json", "sub/", "sub/../r.json"]  # fmt: skip
#: mostly the bait
HOSTILE_OUT = st.sampled_from(OUT_FILES[4:7]) | st.sampled_from(OUT_FILES[4:])
#: a valid, distinct name for each [record] output
GOOD_OUTPUTS = {"json": "r.json", "ftrace": "sub/t.txt", "perfetto": "p.json", "plot": "t.png"}
PATTERNS = ["*", "irq:*", "irq:irq_handler_entry", "sched:*", "irg:*", "nope", 1, "irq:\x1b"]
HOSTILE = [
    -1, 0, 1, 2**31, 2**63, 10**30, -(10**30), 1e308, -1e308, float("inf"), float("nan"),
    1e-300, 0.5, True, "x", "", [], {}, [1, [2, [3]]], {"a": {"b": 1}},
    Raw("9" * 4400), Raw("[" * 40 + "]" * 40), Raw("{a={b={c={d={e={f={g={h={}}}}}}}}}"),
]  # fmt: skip


def _number(key: str, k: Key) -> st.SearchStrategy[Any]:
    """Mostly a value in range (small, so that runs stay short), else an edge: the range's
    ends and just past them."""
    lo = k.minimum if k.minimum is not None else -1e6
    hi = k.maximum if k.maximum is not None else 1e6
    top = min(hi, max(lo, 0) + (250 if key in ("irq", "cpus", "cpu") else 3000))
    edges = st.sampled_from([lo, hi, lo - 1, hi + 1, hi * 10])
    if k.type is int:
        return _mostly(st.integers(int(lo), int(top)), edges.map(int))
    inside = st.one_of(st.floats(lo, top, allow_nan=False), st.integers(int(lo), int(top)))
    return _mostly(inside, edges)


def _good(key: str, k: Key, table: str) -> st.SearchStrategy[Any]:
    if k.choices:
        return st.sampled_from(k.choices)
    if k.type is bool:
        return st.booleans()
    if key in ("name", "device"):
        return _mostly(st.sampled_from(NAMES[:4]), st.sampled_from(NAMES))
    if key == "file":  # half of them hostile: they are what this test is about
        return st.sampled_from(CSV_FILES[:2]) | st.sampled_from(CSV_FILES)
    if table == "record" and k.type is str:
        return st.sampled_from(OUT_FILES[:4]) | st.sampled_from(OUT_FILES)
    if key == "trace":
        return st.lists(
            _mostly(st.sampled_from(PATTERNS[:4]), st.sampled_from(PATTERNS)), max_size=3
        )
    if key == "affinity":
        cpus = _mostly(st.integers(0, 1), st.sampled_from([-1, 4, True, "0"]))
        return st.lists(cpus, max_size=3)
    if key == "config":
        return _config()
    if k.type is str:
        return st.text(max_size=20)
    return _number(key, k)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, else ``bad``: most scenarios stay valid enough to run."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)  # 0 is "simplest"


def _value(key: str, k: Key, table: str) -> st.SearchStrategy[Any]:
    return _mostly(_good(key, k, table), st.sampled_from(HOSTILE))


def _config() -> st.SearchStrategy[dict[str, Any]]:
    def value(f: Any) -> st.SearchStrategy[Any]:
        good = {
            "int": st.one_of(st.integers(0, 10**6), st.sampled_from([0, 1, 250, MAX_NS])),
            "bool": st.booleans(),
            "str": st.sampled_from(["cmwq", "per-cpu-threads", "x"]),
        }[str(f.type)]
        return _mostly(good, st.sampled_from(HOSTILE))

    fs = {f.name: f for f in fields(KernelConfig)}
    return st.lists(st.sampled_from(sorted(fs)), max_size=4, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: value(fs[n]) for n in names})
    )


def _table(
    spec: dict[str, Key], table: str, keys: list[str], required: tuple[str, ...]
) -> st.SearchStrategy[dict[str, Any]]:
    chosen = st.lists(st.sampled_from(keys), max_size=5, unique=True)
    extra = _mostly(st.just([]), st.lists(st.sampled_from(["bogus", "cpuz", "rate"]), max_size=1))
    return st.tuples(chosen, extra).flatmap(
        lambda ke: st.fixed_dictionaries(
            {
                **{r: _value(r, spec[r], table) for r in required},
                **{key: _value(key, spec[key], table) for key in ke[0] if key not in required},
                **{x: st.sampled_from(HOSTILE) for x in ke[1]},
            }
        )
    )


@st.composite
def _device(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(DEVICE_KEYS)))
    keys = ["trigger", "affinity", "shared", "hardirq_us", *DEVICE_KEYS[kind]]
    dev = draw(_table(DEVICE, "device", keys, ("name", "irq")))
    dev["kind"] = kind
    process = {"disk": "none", "timer": "periodic"}.get(kind) or draw(
        st.sampled_from(["csv", "periodic", "poisson", "burst", "onoff", "csv"])
    )
    arrivals = draw(_table(ARRIVALS, "arrivals", [k for k in ARRIVALS if k != "process"], ()))
    if process == "csv":  # which file it reads is the point
        arrivals["file"] = draw(st.sampled_from(CSV_FILES))
    dev["arrivals"] = {"process": process, **arrivals}
    return dev


@st.composite
def _thread(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(THREAD_KEYS)))
    keys = ["cpu", "policy", "prio", "nice", *THREAD_KEYS[kind]]
    th = draw(_table(THREAD, "thread", keys, ("name",)))
    th["kind"] = kind
    return th


@st.composite
def schema_scenarios(draw: st.DrawFn) -> bytes:
    tables: dict[str, Any] = {
        "machine": draw(_table(MACHINE, "machine", list(MACHINE), ())),
        "device": draw(st.lists(_device(), max_size=3)),
        "thread": draw(st.lists(_thread(), max_size=2)),
    }
    if draw(st.booleans()):
        record = draw(_table(RECORD, "record", ["trace", "buffer_size"], ()))
        keys = draw(st.lists(st.sampled_from(sorted(GOOD_OUTPUTS)), min_size=1, unique=True))
        record.update({key: GOOD_OUTPUTS[key] for key in keys})
        if draw(st.booleans()):  # one of them hostile
            record[draw(st.sampled_from(keys))] = draw(HOSTILE_OUT)
        tables["record"] = record
    return _document(tables).encode()


SNIPPETS = [
    'arrivals = { process = "csv", file = "link.csv" }',
    'arrivals = { process = "csv", file = "../outside/secret.csv" }',
    'arrivals = { process = "csv", file = "fifo.csv" }',
    'arrivals = { process = "csv", file = "times.csv", start_ms = 1e300 }',
    '[record]\njson = "victim.json"\nplot = "../p.png"',
    '[record]\nftrace = "sub/t.txt"\nperfetto = "existing.json"',
    "[machine.config]\nnapi_weight = 0\nrt_period_ns = 0",
    "[machine.config]\nhz = 1000\nthreadirqs = true",
    "duration_ms = 1e308",
    "hardirq_us = 1e308",
    'name = "\\u001b]0;owned\\u0007"',
    "cpus = 2000",
    "x = " + "[" * 500 + "]" * 500,
    "big = " + "7" * 4400,
    '[[thread]]\nname = "t9"\ncpu = 1\npolicy = "fifo"\nprio = 50',
    '[[device]]\nname = "extra"\nirq = 77\narrivals = { process = "burst", count = 5 }',
]
#: arrivals tables that read each of the CSV files (to replace a shipped arrivals line)
CSV_ARRIVALS = [f'{{ process = "csv", file = {json.dumps(f)} }}' for f in CSV_FILES]
LITERALS = [*CSV_ARRIVALS, *CSV_ARRIVALS, "0", "-1", "1", "0.001", "1e308", "inf", "nan",
            "-inf", '"x"', "true", "[]", "{}", "9" * 4400, "[" * 300 + "]" * 300, '"../x"',
            '"/etc/passwd"', '"a\\u0000b"',
            '"\\u001b[31m"', "2000", "1e-9", "1_000_000", '"csv"', "2024-01-01", '"nic"',
            "64", "1e12", "1e13", "2147483648", '""']  # fmt: skip


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> bytes:
    lines = draw(st.sampled_from(SHIPPED)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(st.sampled_from(["value", "value", "csv", "record", "drop", "double", "insert",
                                   "swap", "cut", "chars"]))  # fmt: skip
        if not lines:
            lines = [""]
        arrivals = [n for n, line in enumerate(lines) if line.startswith("arrivals =")]
        if op == "csv" and arrivals:  # a device reads a CSV file: which one is the point
            lines[draw(st.sampled_from(arrivals))] = "arrivals = " + draw(
                st.sampled_from(CSV_ARRIVALS)
            )
        elif op == "record":  # outputs, appended as the last table
            keys = draw(st.lists(st.sampled_from(sorted(GOOD_OUTPUTS)), min_size=1, unique=True))
            lines += [
                "[record]",
                *(
                    f"{k} = {json.dumps(draw(st.sampled_from(OUT_FILES[:4]) | HOSTILE_OUT))}"
                    for k in keys
                ),
            ]
        elif op == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = key + "= " + draw(st.sampled_from(LITERALS))
        elif op == "drop":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines[i + 1 : i + 1] = draw(st.sampled_from(SNIPPETS)).splitlines()
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
            del lines[i + 1 :]
        elif op == "chars":
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + draw(st.text(max_size=6)) + lines[i][pos:]
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.binary(min_size=1, max_size=4)) + data[pos:]
    return data


#: no shrinking: a failure's message already names the scenario, its exit status and its
#: output, and shrinking slow examples could take longer than the suite's timeout
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with _world() as root:
        _warm_up(root)
        yield root
    if COUNTS:
        print("\nfuzz:", dict(sorted(COUNTS.items())))


def _warm_up(root: Path) -> None:
    """One run with every output before the hook is armed, so the imports and caches
    it needs (matplotlib's font cache, tempfile's directory) are in place."""
    path = root / "sc" / "warm.toml"
    path.write_text(
        '[machine]\ncpus = 1\nduration_ms = 0.01\n[[device]]\nname = "d"\nirq = 5\n'
        '[record]\njson = "w.json"\nplot = "w.png"\nftrace = "w.txt"\nperfetto = "w.pf"\n'
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(path), "--out-dir", str(root / "out"), "--no-progress"]) == 0
        assert main(["validate", str(path)]) == 0
    path.unlink()


@FUZZ
@given(data=schema_scenarios())
def test_fuzz_scenarios_built_from_the_schema(world: Path, data: bytes) -> None:
    _check(world, data, "schema")


@FUZZ
@given(data=mutated_scenarios())
def test_fuzz_mutated_shipped_scenarios(world: Path, data: bytes) -> None:
    _check(world, data, "mutated")


def test_the_hook_sees_what_it_must(world: Path) -> None:
    """The fuzz's own check can fail: the hook flags a write outside, a read outside and
    code execution while armed."""
    _ARMED.update(cwd=str(world / "out"), write=(str(world / "out"),), read=())
    try:
        with contextlib.suppress(OSError):
            open(world / "outside" / "victim.json").close()
        with contextlib.suppress(OSError):
            open(world / "outside" / "new", "w").close()
        exec("1")
    finally:
        _ARMED.clear()
    seen = list(_SEEN)
    _SEEN.clear()
    assert any("read" in s and "victim.json" in s for s in seen)
    assert any("write" in s and s.endswith("/new") for s in seen)
    assert any(s.startswith("exec") for s in seen)
    (world / "outside" / "new").unlink()


def test_a_max_size_burst_validates_and_is_left_out_of_the_runs(world: Path) -> None:
    text = (
        f'[[device]]\nname = "d"\nirq = 5\narrivals = {{ process = "burst", '
        f"count = {MAX_EVENTS} }}\n"
    )
    (world / "sc" / "s.toml").write_text(text)
    assert not _light(world / "sc" / "s.toml")
