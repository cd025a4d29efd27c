"""`irqflow sweep`: axes, keys, the grid, parallel and Dask execution, CSV and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from irqflow.cli import main
from irqflow.scenario import ScenarioError, parse_axis, sweep
from irqflow.scenario.schema import parse
from irqflow.scenario.sweep import apply, points

ROOT = Path(__file__).parent.parent
LIVELOCK = ROOT / "scenarios" / "receive-livelock.toml"


def test_axis_ranges_include_stop_and_lists_take_any_values() -> None:
    assert parse_axis("device.eth0.rate=1000:5000:2000").values == (1000, 3000, 5000)
    assert parse_axis("machine.duration_ms=0.5:1.5:0.5").values == (0.5, 1.0, 1.5)
    axis = parse_axis("machine.config.workqueue_model=per-cpu-threads,cmwq")
    assert axis.values == ("per-cpu-threads", "cmwq")
    assert parse_axis("device.eth0.napi=false,true").values == (False, True)
    assert parse_axis("machine.cpus=4").values == (4,)
    # presets are names, even those that look like numbers (6.10 is not 6.1)
    assert parse_axis("machine.preset=2.6,6.10,6.13-rt").values == ("2.6", "6.10", "6.13-rt")


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        ("device.eth0.rate", "expected KEY=START:STOP:STEP"),
        ("device.eth0.rate=1:10", "three numbers"),
        ("device.eth0.rate=10:1:1", "STOP >= START"),
        ("device.eth0.rate=1:10:0", "STEP > 0"),
        ("device.eth0.rate=0:1000000:1", "at most 10000"),
    ],
)
def test_bad_axes_say_what_is_expected(spec: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        parse_axis(spec)


def test_keys_reach_machine_config_devices_arrivals_and_threads() -> None:
    raw = parse(
        '[machine]\ncpus = 1\n[[device]]\nname = "eth0"\nkind = "nic"\nirq = 24\n'
        '[[thread]]\nname = "t"\n'
    )
    apply(raw, "machine.cpus", 2)
    apply(raw, "machine.config.hz", 1000)
    apply(raw, "device.eth0.napi", True)
    apply(raw, "device.eth0.rate", 5000)  # short for arrivals.rate_hz
    apply(raw, "device.eth0.arrivals.process", "periodic")
    apply(raw, "thread.t.nice", 5)
    assert raw["machine"] == {"cpus": 2, "config": {"hz": 1000}}
    dev = raw["device"][0]
    assert dev["napi"] is True
    assert dev["arrivals"] == {"rate_hz": 5000, "process": "periodic"}
    assert raw["thread"][0]["nice"] == 5
    with pytest.raises(ScenarioError, match=r"no device named 'eth1' \(the devices: \['eth0'\]\)"):
        apply(raw, "device.eth1.napi", True)
    with pytest.raises(ScenarioError, match="keys look like"):
        apply(raw, "eth0.napi", True)


def test_an_invalid_point_is_named_before_anything_runs() -> None:
    raw = parse(LIVELOCK.read_text())
    axes = [parse_axis("device.eth0.ring=256,0")]
    with pytest.raises(ScenarioError, match=r"sweep point device\.eth0\.ring=0: .*expected >= 1"):
        points(raw, axes, str(LIVELOCK))


def test_livelock_sweep_collapses_per_packet_and_stays_flat_with_napi() -> None:
    """The issue's check: offered load past saturation makes interrupt-per-packet delivery
    collapse, while NAPI stays at its capacity."""
    res = sweep(
        LIVELOCK,
        [
            parse_axis("device.eth0.rate=100000:700000:150000"),
            parse_axis("device.eth0.napi=false,true"),
            parse_axis("machine.duration_ms=10"),
        ],
        jobs=2,
    )
    by = {(r["device.eth0.rate"], r["device.eth0.napi"]): r for r in res.rows}
    assert len(by) == 10
    rates = sorted({rate for rate, _ in by})
    plain = [by[(r, False)]["eth0.delivered_per_s"] for r in rates]
    napi = [by[(r, True)]["eth0.delivered_per_s"] for r in rates]
    assert plain[-1] < 0.5 * max(plain)  # collapse: the livelock
    assert napi[-1] > 0.9 * max(napi)  # flat past saturation
    assert napi[-1] > 3 * plain[-1]
    assert [r["device.eth0.rate"] for r in res.rows] == sorted(
        r["device.eth0.rate"] for r in res.rows
    )  # grid order, whatever order the workers finished in


def test_cli_sweep_prints_writes_csv_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_csv, out_png = tmp_path / "s.csv", tmp_path / "s.png"
    code = main(
        ["sweep", str(LIVELOCK), "--set", "device.eth0.rate=100000:300000:100000",
         "--set", "machine.duration_ms=2", "--jobs", "1", "--csv", str(out_csv),
         "--plot", str(out_png), "--metric", "eth0.delivered_per_s", "--metric", "cpu.irq",
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "device.eth0.rate" in text and "eth0.delivered_per_s" in text and "cpu.irq" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["device.eth0.rate"] for r in rows] == ["100000", "200000", "300000"]
    assert {"eth0.dropped", "cpu.softirq", "raise->hardirq|irq 24 eth0.p99_us"} <= set(rows[0])
    assert out_png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--set", "device.nope.rate=1"], "no device named 'nope'"),
        (["--set", "device.eth0.rate"], "expected KEY=START:STOP:STEP"),
        (["--set", "machine.duration_ms=1", "--metric", "nonsense"], "no such metric"),
        ([], "at least one --set"),
    ],
)
def test_cli_sweep_usage_errors_exit_2(
    args: list[str], msg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", str(LIVELOCK), "--csv", str(tmp_path / "x.csv"), "--no-progress", *args])
    assert code == 2
    assert msg in capsys.readouterr().err


def test_sweep_runs_on_a_dask_cluster() -> None:
    """--dask: the same grid on a distributed.LocalCluster started here."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        res = sweep(
            LIVELOCK,
            [
                parse_axis("device.eth0.rate=100000:200000:100000"),
                parse_axis("machine.duration_ms=2"),
            ],
            dask_address=cluster.scheduler_address,
        )
    local = sweep(
        LIVELOCK,
        [parse_axis("device.eth0.rate=100000:200000:100000"), parse_axis("machine.duration_ms=2")],
    )
    assert res.rows == local.rows  # deterministic: the cluster computes the same numbers


def test_dask_address_that_is_not_there_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    import sys

    monkeypatch.setattr(sys.modules["irqflow.scenario.sweep"], "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(ScenarioError, match="cannot reach the scheduler"):
        sweep(LIVELOCK, [parse_axis("machine.duration_ms=1")], dask_address="tcp://127.0.0.1:9")


def test_cli_reference_names_every_command_and_option() -> None:
    """docs/cli.md stays true to the parser: every subcommand and option is in it."""
    import argparse

    from irqflow.cli import _parser

    doc = (ROOT / "docs" / "cli.md").read_text()
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert f"irqflow {name}" in doc, name
        for action in p._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert f"`{opt}" in doc, (name, opt)


@pytest.mark.parametrize(
    ("axes", "msg"),
    [
        (["device.eth0.rate=1000", "device.eth0.rate=2000"], "given twice"),
        (["device.eth0.ring=1:10000:1", "device.eth0.rx_us=1:10000:1"], "at most 100,000"),
    ],
)
def test_sweep_grids_are_checked_before_they_run(axes: list[str], msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        sweep(LIVELOCK, [parse_axis(a) for a in axes])


def test_sweeping_a_rate_the_arrivals_do_not_use_is_an_error() -> None:
    five = ROOT / "scenarios" / "five-stages.toml"  # kbd arrivals are periodic
    with pytest.raises(ScenarioError, match="kbd's arrivals are periodic"):
        sweep(five, [parse_axis("device.kbd.rate=100,1000")])


def test_cli_checks_outputs_and_durations_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(LIVELOCK), "--duration", "nan", "--no-progress"]) == 2
    assert main(["run", str(LIVELOCK), "--json", "/nonexistent/dir/x.json"]) == 2
    assert main(["run", str(LIVELOCK), "--plot", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert "--duration nan: expected a finite number" in err
    assert "does not exist" in err and ".png, .svg" in err


def test_a_metric_typo_keeps_the_sweep_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.csv"
    code = main(["sweep", str(LIVELOCK), "--set", "machine.duration_ms=1", "--metric",
                 "eth0.delivered_per_sec", "--csv", str(out), "--no-progress"])  # fmt: skip
    assert code == 2
    assert "saved in" in capsys.readouterr().err
    assert len(list(csv.DictReader(out.open()))) == 1
