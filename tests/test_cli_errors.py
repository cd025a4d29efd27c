"""Every bad input to the ``irqflow`` command is one line on stderr and exit status 2;
Ctrl-C is one line and 130.  None of them ends in a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from irqflow.cli import main

ROOT = Path(__file__).parent.parent
LIVELOCK = ROOT / "scenarios" / "receive-livelock.toml"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("irqflow: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--duration", "1e308"], "--duration 1e+308: expected <= 1_000_000_000"),
        (["--duration", "inf"], "--duration inf: expected a finite number"),
        (["--duration", "-1"], "--duration -1.0: expected >= 0"),
        (["--seed", "-1"], "--seed -1: expected >= 0"),
        (["--seed", str(2**64)], "--seed 18446744073709551616: expected <="),
        (["--out-dir", "/nonexistent"], "--out-dir /nonexistent: not a directory"),
    ],
)
def test_run_overrides_follow_the_rules_of_the_keys(
    args: list[str], msg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(LIVELOCK), "--no-progress", *args]) == 2
    assert msg in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("axis", "msg"),
    [
        ("machine.duration_ms=1:inf:1", "START, STOP and STEP must be finite numbers"),
        ("machine.duration_ms=nan:1:1", "START, STOP and STEP must be finite numbers"),
        ("machine.duration_ms=0:1:nan", "START, STOP and STEP must be finite numbers"),
        ("machine.duration_ms=-inf:1:1", "START, STOP and STEP must be finite numbers"),
        ("machine.duration_ms=0:1e308:1e-300", "at most 10000 values"),
        ("machine.duration_ms=inf", "machine.duration_ms: expected a finite number"),
        ("machine.duration_ms=nan,1", "machine.duration_ms: expected a finite number"),
        ("machine.duration_ms=1e400", "expected a finite number, found inf"),
        ("machine.config.napi_weight=0.5", "KernelConfig(napi_weight=0.5)"),
    ],
)
def test_sweep_ranges_that_are_not_finite_exit_2(
    axis: str, msg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", str(LIVELOCK), "--set", axis, "--csv", str(tmp_path / "s.csv"),
                 "--jobs", "1", "--no-progress"])  # fmt: skip
    assert code == 2
    assert msg in _one_error_line(capsys)
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize(
    "address", ["nonsense", "tcp://:x", "tcp://host:notaport", "foo://bar", "tcp://[::1"]
)
def test_a_malformed_dask_address_exits_2(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    code = main(["sweep", str(LIVELOCK), "--set", "machine.duration_ms=1", "--dask", address,
                 "--csv", str(tmp_path / "s.csv"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "not a scheduler address" in _one_error_line(capsys)


def test_sweep_jobs_must_not_be_negative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", str(LIVELOCK), "--set", "machine.duration_ms=1", "--jobs", "-2",
                 "--csv", str(tmp_path / "s.csv"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "--jobs -2" in _one_error_line(capsys)


def test_sweep_checks_its_outputs_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "adir").mkdir()
    code = main(["sweep", str(LIVELOCK), "--set", "machine.duration_ms=1",
                 "--csv", str(tmp_path / "adir"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "is a directory" in _one_error_line(capsys)


# --- Ctrl-C ---------------------------------------------------------------------------

#: runs ``irqflow`` with its run/sweep announcing on stdout once it is under way, so the
#: test sends SIGINT in the middle of the work and not before (no timing guess); Python
#: turns SIGINT into KeyboardInterrupt only if it was not ignored when it started, and a
#: shell may start a background job so: the child restores the default
_CHILD = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import irqflow.scenario as sc
from irqflow.cli import main
name = sys.argv[1]
real = getattr(sc, name)
def announced(*args, **kwargs):
    print("under way", flush=True)
    return real(*args, **kwargs)
setattr(sc, name, announced)
sys.exit(main(sys.argv[2:]))
"""


def _interrupt(tmp_path: Path, hook: str, *args: str) -> tuple[int, str]:
    """Start ``irqflow ARGS``, wait until ``hook`` is called, send SIGINT, and return the
    exit status and stderr.  A process that ignores SIGINT is killed by the timeout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, hook, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group: a failure kills the workers too
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "under way\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None or proc.returncode != 130:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def test_ctrl_c_in_run_is_one_line_and_exit_130(tmp_path: Path) -> None:
    # 10 s of virtual time at 400k packets/s: far longer than the test waits
    code, err = _interrupt(tmp_path, "run", "run", str(LIVELOCK), "--duration", "10000",
                           "--no-progress")  # fmt: skip
    assert code == 130
    assert err == "irqflow: interrupted\n"


def test_ctrl_c_in_sweep_stops_the_workers_too(tmp_path: Path) -> None:
    """communicate() returns only when every process holding the pipes (the forked
    workers among them) has exited."""
    code, err = _interrupt(tmp_path, "sweep", "sweep", str(LIVELOCK), "--set",
                           "machine.duration_ms=10000,10001", "--jobs", "2",
                           "--no-progress")  # fmt: skip
    assert code == 130
    assert err == "irqflow: interrupted\n"
    assert not list(tmp_path.iterdir())  # no CSV: nothing finished


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    """``irqflow demo | head -1``: the closed pipe ends the command without a traceback,
    with the status a shell gives a writer killed by SIGPIPE.  (The reader is gone before
    the first write, so the outcome does not depend on how fast either side runs.)"""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.Popen(
        [sys.executable, "-m", "irqflow", "demo"], stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
