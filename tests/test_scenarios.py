"""Scenario files: strict validation with precise errors, shipped scenarios with golden
output, the generated format reference, and the run/validate commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from irqflow.cli import main
from irqflow.scenario import ScenarioError, load, loads, run
from irqflow.scenario.schema import reference

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_output_is_golden(path: Path) -> None:
    """Each shipped scenario runs and prints exactly its golden summary."""
    golden = ROOT / "scenarios" / "golden" / f"{path.stem}.txt"
    assert run(load(path)).summary() == golden.read_text().replace(
        "scenario " + f"scenarios/{path.name}", "scenario " + str(path), 1
    )


def test_irq_storm_disables_the_line_after_nobody_cared() -> None:
    """The storm scenario: 100000 accepted events, then the line is disabled."""
    res = run(load(ROOT / "scenarios" / "irq-storm.toml"))
    line = res.kernel.statistics().irqs[10]
    assert line.per_cpu == (100_000,) and line.spurious_disabled
    assert any("nobody cared" in r for r in res.kernel.dmesg())


def test_napi_keeps_up_where_interrupt_per_packet_livelocks() -> None:
    """receive-livelock.toml with napi = true delivers far more and drops far less."""
    text = (ROOT / "scenarios" / "receive-livelock.toml").read_text()
    per_packet = run(loads(text)).devices["eth0"]
    napi = run(loads(text.replace("napi = false", "napi = true"))).devices["eth0"]
    assert napi.delivered > 2 * per_packet.delivered
    assert napi.dropped < per_packet.dropped / 2


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[machine]\ncpus = 2\ncpuz = 3\n", ":3: machine.cpuz: unknown key; did you mean 'cpus'?"),
        ("[machine]\ncpus = 'two'\n", "<string>:2: machine.cpus: expected int, found str 'two'"),
        ("[machine]\ncpus = 0\n", "machine.cpus: expected 1..1024, found 0"),
        ("[machin]\n", "machin: unknown table; did you mean 'machine'?"),
        ("[machine.config]\nhz = 251\n", "machine.config.hz: KernelConfig(hz=251)"),
        ("[machine.config]\nhzz = 250\n", "not a KernelConfig field; did you mean 'hz'?"),
        ("[[device]]\nname = 'a'\n", "device[0]: missing required key 'irq'"),
        ("[[device]]\nname = 'a'\nirq = 3\nkind = 'nick'\n", "found 'nick'; did you mean 'nic'?"),
        ("[[device]]\nname='a'\nirq=3\naffinity=[5]\n", "affinity: expected CPU numbers 0..1"),
        ("[[device]]\nname='a'\nirq=3\n[[device]]\nname='b'\nirq=3\n", "shared = true on both"),
        ("[[device]]\nname='a'\nirq=3\narrivals={ process='poison' }\n", "mean 'poisson'?"),
        ("[machine\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_validation_errors_are_precise(toml: str, expected: str) -> None:
    """Unknown keys, wrong types, bad values and missing keys name the dotted path, the
    line when known, what was expected, what was found and a suggestion."""
    with pytest.raises(ScenarioError) as err:
        loads(toml)
    assert expected in str(err.value)


def test_format_reference_is_generated_from_the_schema() -> None:
    """docs/scenario-format.md is exactly what the schema renders."""
    assert (ROOT / "docs" / "scenario-format.md").read_text() == reference() + "\n"


def test_cli_validate_and_run_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate: 0 for a good file, 2 for a bad one (message on stderr); run writes JSON."""
    good = ROOT / "scenarios" / "receive-livelock.toml"
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[machine]\ncpuz = 1\n")
    assert main(["validate", str(bad)]) == 2
    assert "did you mean 'cpus'" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert main(["run", str(good), "--duration", "5", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["devices"]["eth0"]["events"] > 1000
    assert data["time_ns"] == 5_000_000


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_running_in_slices_gives_the_same_trace(path: Path) -> None:
    """A run cut into slices (as `irqflow run` does for its progress bar) does exactly
    what one run does: same trace, same numbers."""
    sc = load(path)
    sc = dataclasses.replace(sc, machine={**sc.machine, "duration_ms": 3})
    whole = run(sc, trace=True)
    sliced = run(sc, trace=True, progress=lambda now, total: None)
    assert whole.summary() == sliced.summary()
    a, b = whole.kernel.trace.events(), sliced.kernel.trace.events()
    assert [(e.ts, e.cpu, e.name, e.fields) for e in a] == [
        (e.ts, e.cpu, e.name, e.fields) for e in b
    ]
