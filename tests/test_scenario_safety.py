"""Scenario files are safe to run from anyone: what they may read, what they may write,
and that every bad input is a precise error (issue 14), one regression test per item."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from irqflow.cli import main
from irqflow.core.config import MAX_NS
from irqflow.scenario import ScenarioError, load, loads
from irqflow.scenario.files import MAX_CSV_BYTES, MAX_SCENARIO_BYTES
from irqflow.scenario.schema import MAX_CPUS
from irqflow.scenario.sweep import SweepResult
from irqflow.scenario.text import csv_cell, for_terminal, quote

BASE = '[machine]\ncpus = 1\nduration_ms = 1\n\n[[device]]\nname = "d"\nirq = 5\n'


def _csv_scenario(directory: Path, file: str) -> Path:
    path = directory / "s.toml"
    path.write_text(BASE + f'arrivals = {{ process = "csv", file = "{file}" }}\n')
    return path


# --- reads ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/outside/secret.csv (not to be read), tmp/sc/ (the scenario's directory)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text("time_us\n10\nhunter2\n")
    (tmp_path / "sc").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("file", "msg"),
    [
        ("/etc/passwd", "is not relative"),
        ("../outside/secret.csv", "goes up with '..'"),
        ("sub/../../outside/secret.csv", "goes up with '..'"),
        ("link.csv", "is a symlink"),
        ("linkdir/secret.csv", "linkdir is a symlink, not a directory"),
        ("/dev/zero", "is not relative"),
        ("~/secret.csv", "is not relative"),
    ],
)
def test_csv_files_stay_inside_the_scenario_directory(tree: Path, file: str, msg: str) -> None:
    sc = tree / "sc"
    (sc / "link.csv").symlink_to(tree / "outside" / "secret.csv")
    (sc / "linkdir").symlink_to(tree / "outside")
    with pytest.raises(ScenarioError, match=msg) as err:
        load(_csv_scenario(sc, file))
    assert "hunter2" not in str(err.value)
    assert "device[0].arrivals.file" in str(err.value)


def test_csv_in_a_subdirectory_is_read(tree: Path) -> None:
    (tree / "sc" / "sub").mkdir()
    (tree / "sc" / "sub" / "t.csv").write_text("10\n20\n")
    sc = load(_csv_scenario(tree / "sc", "sub/t.csv"))
    assert sc.devices[0]["arrivals"]["times_us"] == (10.0, 20.0)


def test_a_fifo_or_device_is_refused_without_waiting(tree: Path) -> None:
    """A FIFO with no writer would block open() and read(); it is refused at once."""
    os.mkfifo(tree / "sc" / "fifo.csv")
    with pytest.raises(ScenarioError, match="is a FIFO, not a regular file"):
        load(_csv_scenario(tree / "sc", "fifo.csv"))
    (tree / "sc" / "dir.csv").mkdir()
    with pytest.raises(ScenarioError, match="is a directory, not a regular file"):
        load(_csv_scenario(tree / "sc", "dir.csv"))


def test_a_csv_file_past_the_size_limit_is_refused(tree: Path) -> None:
    with open(tree / "sc" / "big.csv", "wb") as fh:
        fh.truncate(MAX_CSV_BYTES + 1)  # sparse: no 64 MiB written
    with pytest.raises(ScenarioError, match="larger than 64 MiB"):
        load(_csv_scenario(tree / "sc", "big.csv"))


def test_errors_quote_a_short_escaped_excerpt_of_a_csv_line(tree: Path) -> None:
    (tree / "sc" / "t.csv").write_text("time_us\n10\n\x1b]0;pwned\x07" + "x" * 5000 + "\n")
    with pytest.raises(ScenarioError) as err:
        load(_csv_scenario(tree / "sc", "t.csv"))
    msg = str(err.value)
    assert "'t.csv':3: expected a time in us" in msg
    assert "\x1b" not in msg and "\\x1b]0;pwned" in msg
    assert len(msg) < 300


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        ("1e300\n", "past irqflow's longest time"),
        ("10\n1e13\n", r"'t.csv':2: 1e\+13 us is past"),
    ],
)
def test_csv_times_are_bounded(tree: Path, content: str, msg: str) -> None:
    (tree / "sc" / "t.csv").write_text(content)
    with pytest.raises(ScenarioError, match=msg):
        load(_csv_scenario(tree / "sc", "t.csv"))


def test_the_scenario_file_must_be_a_regular_file_of_bounded_size(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f.toml")
    with pytest.raises(ScenarioError, match=r"f\.toml: is a FIFO, not a regular file"):
        load(tmp_path / "f.toml")
    with pytest.raises(ScenarioError, match="is a character device"):
        load("/dev/zero")
    with open(tmp_path / "big.toml", "wb") as fh:
        fh.truncate(MAX_SCENARIO_BYTES + 1)
    with pytest.raises(ScenarioError, match="larger than 4 MiB"):
        load(tmp_path / "big.toml")
    with pytest.raises(ScenarioError, match="is a directory"):
        load(tmp_path)
    with pytest.raises(ScenarioError, match="NUL"):
        load("a\0b.toml")


def test_cli_validate_dev_zero_and_a_fifo_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "f.toml")
    assert main(["validate", "/dev/zero"]) == 2
    assert main(["validate", str(tmp_path / "f.toml")]) == 2
    err = capsys.readouterr().err
    assert "character device" in err and "FIFO" in err


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["\\u001b[31mred", "\\u001b]8;;http://x\\u0007link", "a\\nb", "\\u202eevil", "a\\u0000"]
)
def test_names_may_not_hold_control_characters(name: str) -> None:
    with pytest.raises(ScenarioError, match=r"device\[0\]\.name: found .*control characters"):
        loads(BASE.replace('"d"', f'"{name}"'))


def test_terminal_and_csv_escapes() -> None:
    assert for_terminal("ok é\n\tend") == "ok é\n\tend"
    escaped = for_terminal("\x1b[2J\x1b]0;t\x07\x9b\u202e\x7f")
    assert escaped == "\\x1b[2J\\x1b]0;t\\x07\\x9b\\u202e\\x7f"
    assert for_terminal("\udcff") == "\\udcff"  # an undecodable argv byte prints, escaped
    for cell in ("=HYPERLINK(1)", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(cell) == "'" + cell
    assert csv_cell("eth0.events") == "eth0.events"
    assert len(quote("x" * 10_000)) < 80


def test_sweep_csv_header_and_text_cells_cannot_be_formulas(tmp_path: Path) -> None:
    res = SweepResult((), [{'=HYPERLINK("http://x").events': 5, "-2": "=cmd", "n": -3}])
    res.write_csv(tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].split(",")[0] == '"\'=HYPERLINK(""http://x"").events"'
    assert lines[0].endswith(",'-2,n")
    assert lines[1] == "5,'=cmd,-3"  # numbers stay numbers


# --- values that would fail the run -------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "msg"),
    [
        (BASE.replace("duration_ms = 1", "duration_ms = 1e308"), "duration_ms: expected <="),
        (BASE + "arrivals = { start_ms = 1e300 }\n", "arrivals.start_ms: expected <="),
        (BASE + "hardirq_us = 1e308\n", "device[0].hardirq_us: expected <="),
        (BASE + "arrivals = { process = 'burst', count = 100000000 }\n", "arrivals.count"),
        (BASE + "arrivals = { rate_hz = 1e300 }\n", "arrivals.rate_hz: expected <="),
        (BASE.replace("cpus = 1", f"cpus = {MAX_CPUS + 1}"), "machine.cpus: expected 1..1024"),
        (BASE + "[machine.config]\nrt_period_ns = 0\n", "machine.config.rt_period_ns: "),
        (BASE + "[machine.config]\nnapi_weight = 0\n", "machine.config.napi_weight: "),
        (BASE + "[machine.config]\nnetdev_budget = 1.5\n", "expected an integer, found float"),
        (BASE + "[machine.config]\nthreadirqs = 1\n", "expected true or false, found int"),
        (BASE + "affinity = [true]\n", "affinity: expected CPU numbers 0..0, found [True]"),
        (BASE + "[record]\nbuffer_size = 100000000000\n", "record.buffer_size: expected <="),
        (BASE + "shared = true\n" + BASE.split("\n\n")[1].replace('"d"', '"e"')
         + "shared = true\ntrigger = 'level'\n", "device[1].trigger: line 5 is shared with 'd', "
         "whose trigger is 'edge'; the devices on a shared line need the same trigger"),
        (BASE + "shared = true\n" + BASE.split("\n\n")[1].replace('"d"', '"e"')
         + "shared = true\nthreaded = true\n", "need the same threaded"),
        (BASE + '[record]\njson = "a\\u0000b"\n', "record.json: 'a\\x00b' contains a NUL"),
        (BASE + "[record]\nplot = 'x.txt'\n", "record.plot: 'x.txt' must end in .png"),
        (BASE + "[record]\nftrace = '/home/u/.bashrc'\n", "'/home/u/.bashrc' is not relative"),
        (BASE + "[record]\nperfetto = '../x.json'\n", "goes up with '..'"),
        (BASE + "[record]\njson = 'x/'\n", "names a directory"),
        (BASE + "[record]\njson = '" + "a" * 300 + "'\n", "longer than 255 bytes"),
    ],
)  # fmt: skip
def test_values_that_would_fail_the_run_are_refused_with_file_and_key(toml: str, msg: str) -> None:
    with pytest.raises(ScenarioError) as err:
        loads(toml, "s.toml")
    assert str(err.value).startswith("s.toml:")
    assert msg in str(err.value)


def test_the_cpu_limit_is_the_kernels() -> None:
    """validate takes exactly the CPU counts Kernel() takes (it said "valid" to 2000,
    then the run failed)."""
    from irqflow.core.errors import IrqflowError
    from irqflow.kernel import Kernel

    assert len(Kernel(cpus=MAX_CPUS).cpus) == MAX_CPUS
    assert loads(BASE.replace("cpus = 1", f"cpus = {MAX_CPUS}")).machine["cpus"] == MAX_CPUS
    with pytest.raises(IrqflowError, match=r"1\.\.1024"):
        Kernel(cpus=MAX_CPUS + 1)
    with pytest.raises(ScenarioError, match=r"1\.\.1024"):
        loads(BASE.replace("cpus = 1", f"cpus = {MAX_CPUS + 1}"))


def test_the_limits_themselves_are_accepted_and_run() -> None:
    """The edges of the ranges validate and run: no overflow, no oops."""
    from irqflow.scenario import run

    sc = loads(
        "[machine]\ncpus = 1\nduration_ms = 0.05\n"
        '[[device]]\nname = "d"\nirq = 5\nhardirq_us = 1e12\ntasklet_us = 1e12\n'
        "arrivals = { process = 'periodic', period_us = 1, stop_ms = 1e9 }\n"
        '[[thread]]\nname = "t"\nchunk_us = 1e12\n'
    )
    res = run(sc)
    assert not res.kernel.statistics().oopses
    assert loads(BASE.replace("duration_ms = 1", f"duration_ms = {MAX_NS // 10**6}"))


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        # tomllib gives up (RecursionError), or, where the interpreter's stack allows
        # it, reads it and the depth check refuses it: both name the key
        (
            "a = " + "[" * 3000 + "]" * 3000 + "\n",
            r"s\.toml:1: a(: arrays or inline tables nested|(\[0\])+: nested deeper)",
        ),
        ("[machine]\nx = " + "[" * 40 + "]" * 40 + "\n", r"machine\.x(\[0\])+: nested deeper"),
        ("[machine]\ncpus = " + "1" * 5000 + "\n", "s.toml:2: cpus: an integer of more than 4300"),
    ],
)
def test_deep_nesting_and_huge_integers_are_errors_not_tracebacks(
    tmp_path: Path, text: str, msg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ScenarioError, match=msg):
        loads(text, "s.toml")
    (tmp_path / "s.toml").write_text(text)
    assert main(["validate", str(tmp_path / "s.toml")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_long_onoff_runs_start_each_window_when_it_comes() -> None:
    """A day of 1 us on/off windows used to create every window's source up front."""
    from irqflow.scenario import run

    sc = loads(
        "[machine]\ncpus = 1\nduration_ms = 86400000\n"
        '[[device]]\nname = "d"\nirq = 5\n'
        "arrivals = { process = 'onoff', rate_hz = 1000, on_ms = 0.001, off_ms = 0.001 }\n"
    )
    res = run(sc, until_ns=1_000_000)  # 1 ms of the day: 500 windows, set up as they come
    assert 0 <= res.devices["d"].events < 10


# --- outputs --------------------------------------------------------------------------


def _record(tmp_path: Path, **paths: str) -> Path:
    lines = "".join(f'{k} = "{v}"\n' for k, v in paths.items())
    path = tmp_path / "s.toml"
    path.write_text(BASE + "[record]\n" + lines)
    return path


def test_record_outputs_never_follow_a_symlink_or_replace_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "link.json").symlink_to(victim)
    sc = _record(tmp_path, json="link.json")
    assert main(["run", str(sc), "--no-progress"]) == 2
    assert main(["run", str(sc), "--no-progress", "--force"]) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    sc = _record(tmp_path, json="victim")
    assert main(["run", str(sc), "--no-progress"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    assert main(["run", str(sc), "--no-progress", "--force"]) == 0
    assert json.loads(victim.read_text())["time_ns"] == 1_000_000


def test_record_outputs_refuse_symlinked_directories_on_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "sub").symlink_to(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "out")
    assert main(["run", str(_record(tmp_path, json="sub/r.json")), "--no-progress"]) == 2
    assert "sub is a symlink, not a directory" in capsys.readouterr().err
    assert not list((tmp_path / "elsewhere").iterdir())


def test_record_outputs_go_below_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "traces").mkdir(parents=True)
    sc = _record(tmp_path, json="r.json", ftrace="traces/t.txt")
    assert main(["run", str(sc), "--no-progress", "--out-dir", "out"]) == 0
    assert (tmp_path / "out" / "r.json").exists()
    assert (tmp_path / "out" / "traces" / "t.txt").read_text().startswith("# tracer: nop")
    assert not (tmp_path / "r.json").exists()
    assert main(["run", str(sc), "--no-progress", "--out-dir", "nowhere"]) == 2
    assert "--out-dir nowhere: not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("record", "msg"),
    [
        ({"json": "adir"}, "exists and is a directory"),
        ({"json": "nosuchdir/r.json"}, "the directory nosuchdir cannot be used"),
        ({"json": "file/r.json"}, "file is not a regular file, not a directory"),
        ({"plot": "p.png", "json": "adir"}, "adir"),
    ],
)
def test_record_outputs_are_checked_before_the_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    record: dict[str, str],
    msg: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "file").write_text("")
    ran: list[object] = []
    monkeypatch.setattr("irqflow.scenario.run", lambda *a, **k: ran.append(a))
    assert main(["run", str(_record(tmp_path, **record)), "--no-progress"]) == 2
    assert msg in capsys.readouterr().err
    assert not ran  # refused before the run, so no run is lost


def test_two_outputs_may_not_name_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second write would fail (O_EXCL) or overwrite the first after the run."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError, match=r"record\.json: '\./t\.png' is also record\.plot"):
        load(_record(tmp_path, plot="t.png", json="./t.png"))
    sc = _record(tmp_path, json="r.json")
    assert main(["run", str(sc), "--trace", str(tmp_path / "r.json"), "--no-progress"]) == 2
    assert "record.json = 'r.json': the same file as --trace" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("opt", "path", "msg"),
    [
        ("--json", "adir", "--json adir: is a directory"),
        ("--json", "~/x.json", "the directory ~ does not exist"),
        ("--json", "nosuchdir/../x.json", "the directory nosuchdir/.. does not exist"),
        ("--json", "a" * 300, "longer than 255 bytes"),
        ("--trace", "adir/", "names a directory"),
        ("--plot", "p.txt", "must end in .png, .svg, .pdf"),
    ],
)
def test_command_line_outputs_are_checked_before_the_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    opt: str,
    path: str,
    msg: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    ran: list[object] = []
    monkeypatch.setattr("irqflow.scenario.run", lambda *a, **k: ran.append(a))
    assert main(["run", str(_record(tmp_path)), opt, path, "--no-progress"]) == 2
    assert msg in capsys.readouterr().err
    assert not ran


def test_command_line_outputs_are_the_users_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path given on the command line is opened as given: it may be absolute, go up,
    follow a symlink and replace a file."""
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")
    (tmp_path / "target.json").write_text("old")
    (tmp_path / "out" / "link.json").symlink_to(tmp_path / "target.json")
    assert main(["run", str(_record(tmp_path)), "--json", "link.json", "--no-progress"]) == 0
    assert json.loads((tmp_path / "target.json").read_text())["time_ns"] == 1_000_000
    assert main(["run", str(_record(tmp_path)), "--json", "../up.json", "--no-progress"]) == 0
    assert (tmp_path / "up.json").exists()


def test_run_prints_names_and_paths_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scenario's own path (the user's, but still text) reaches the terminal escaped."""
    odd = tmp_path / "s\x1b[2J.toml"
    odd.write_text(BASE)
    assert main(["run", str(odd), "--no-progress"]) == 0
    assert main(["validate", str(odd)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "s\\x1b[2J.toml" in out
