"""The scenario devices and workloads behave as described, and their keys are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqflow.scenario import ScenarioError, loads, run


def _one(device: str, *, machine: str = "cpus = 1\nduration_ms = 10", extra: str = "") -> str:
    return f"[machine]\n{machine}\n\n[[device]]\n{device}\n{extra}"


def test_nic_coalescing_takes_one_interrupt_per_window() -> None:
    base = 'name = "eth0"\nkind = "nic"\nirq = 24\nnapi = true\n'
    arr = 'arrivals = { process = "periodic", period_us = 5 }\n'
    plain = run(loads(_one(base + arr)))
    coal = run(loads(_one(base + "coalesce_us = 50\n" + arr)))
    n_plain = plain.kernel.statistics().irqs[24].raised
    n_coal = coal.kernel.statistics().irqs[24].raised
    # the last few packets may still wait for their coalescing window at the end
    assert plain.devices["eth0"].delivered >= 1990 and coal.devices["eth0"].delivered >= 1990
    assert n_coal <= 2000 // 10 + 1 < n_plain


def test_onoff_arrivals_fall_only_in_the_on_windows() -> None:
    sc = loads(_one(
        'name = "d"\nirq = 5\narrivals = { process = "onoff", rate_hz = 100000, on_ms = 1, '
        "off_ms = 4 }",
        extra="",
    ))  # fmt: skip
    res = run(sc, trace=True)
    times = [e.ts for e in res.kernel.trace.events() if e.name == "irqflow:irq_entry"]
    assert times and all(t % 5_000_000 < 1_100_000 for t in times)
    assert 100 < res.devices["d"].events < 300  # 2 ms of "on" at 100k/s


def test_csv_replay_raises_at_the_listed_times(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("time_us\n10\n25.5\n1000\n")
    text = _one('name = "d"\nirq = 5\narrivals = { process = "csv", file = "t.csv" }')
    (tmp_path / "s.toml").write_text(text)
    from irqflow.scenario import load

    res = run(load(tmp_path / "s.toml"), trace=True)
    times = [e.ts for e in res.kernel.trace.events() if e.name == "irqflow:irq_entry"]
    entry = res.kernel.config.irq_entry_ns  # the trace point fires after the entry path
    assert [t - entry for t in times] == [10_000, 25_500, 1_000_000]


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        (None, "cannot read"),
        ("time_us\n10\nabc\n", "expected a time in us, found 'abc'"),
        ("5\n3\n", "in order"),
    ],
)
def test_csv_replay_errors_name_the_file_and_line(
    tmp_path: Path, content: str | None, msg: str
) -> None:
    if content is not None:
        (tmp_path / "t.csv").write_text(content)
    (tmp_path / "s.toml").write_text(
        _one('name = "d"\nirq = 5\narrivals = { process = "csv", file = "t.csv" }')
    )
    from irqflow.scenario import load

    with pytest.raises(ScenarioError, match=msg):
        load(tmp_path / "s.toml")


def test_serial_fifo_overruns_when_the_top_half_is_late() -> None:
    dev = (
        'name = "ttyS0"\nkind = "serial"\nirq = 4\nfifo = 4\nhardirq_us = 40\n'
        "tasklet_us = 2\n"
        'arrivals = { process = "burst", count = 50, spacing_us = 1 }'
    )
    res = run(loads(_one(dev)))
    st = res.devices["ttyS0"]
    assert st.events == 50
    assert st.drops.get("overrun", 0) > 0
    assert st.delivered + st.dropped == 50


def test_disk_completes_requests_through_block_softirq_and_wakes_the_thread() -> None:
    text = _one(
        'name = "sda"\nkind = "disk"\nirq = 14\nservice_us = 100\narrivals = { process = "none" }',
        extra='[[thread]]\nname = "io"\nkind = "io"\ndevice = "sda"\nthink_us = 10\n',
    )
    res = run(loads(text))
    snap = res.kernel.statistics()
    st = res.devices["sda"]
    assert 80 <= st.delivered <= st.events <= st.delivered + 1  # ~10 ms / 110 us
    assert sum(snap.softirqs["BLOCK"]) == st.delivered
    lat = res.kernel.latency()["io submit->wake"]["io"]
    assert lat.count == st.delivered and lat.p50 >= 100_000


def test_packet_reader_consumes_from_the_socket_queue() -> None:
    text = _one(
        'name = "eth0"\nkind = "nic"\nirq = 24\nnapi = true\nsocket_queue = 8\n'
        'arrivals = { process = "periodic", period_us = 20 }',
        extra='[[thread]]\nname = "rx"\nkind = "packet-reader"\ndevice = "eth0"\n'
        "per_packet_us = 50\n",
    )
    res = run(loads(text))
    st = res.devices["eth0"]
    # the reader needs 50 us per packet, packets come every 20 us: at most 10 ms / 50 us =
    # 200 are read, fewer as the softirqs that deliver them take their share of the CPU
    assert 120 <= st.delivered <= 200
    assert st.drops["socket"] > 250
    assert st.events == st.delivered + st.dropped + 8 or st.events >= st.delivered + st.dropped


def test_line_work_items_sleep_and_complete() -> None:
    text = _one(
        'name = "s"\nirq = 30\nwork_sleep_ms = 1\nwork_cpu_us = 10\n'
        'arrivals = { process = "periodic", period_us = 1000 }',
        machine='cpus = 1\nduration_ms = 30\nconfig = { workqueue_model = "cmwq" }',
    )
    res = run(loads(text))
    # msleep(1) at HZ=250 ends on the second tick after it starts (4-8 ms); cmwq wakes a
    # new worker while one sleeps, so items overlap: all but the last 8 ms' are done
    st = res.devices["s"]
    assert st.events == 30 and 30 - 8 <= st.delivered <= 30


def test_threaded_line_runs_its_work_in_the_irq_thread() -> None:
    text = _one(
        'name = "n"\nirq = 31\nthreaded = true\nhardirq_us = 20\n'
        'arrivals = { process = "periodic", period_us = 100 }'
    )
    res = run(loads(text), trace=True)
    assert res.devices["n"].delivered > 50
    assert res.kernel.latency()["hardirq"]["irq 31 n"].max < 1_000  # only the primary
    comms = {e.comm for e in res.kernel.trace.events() if e.name == "sched:sched_switch"}
    assert "irq/31-n" in comms


_NIC = 'name = "e"\nkind = "nic"\nirq = 24'
_READER = '[[thread]]\nname = "r"\nkind = "packet-reader"\ndevice = "e"\n'
_IO = '[[thread]]\nname = "r"\nkind = "io"\ndevice = "e"\n'
BAD = [
    (_one('name = "d"\nkind = "disk"\nirq = 14'), "a disk is driven by io threads"),
    (_one('name = "t"\nkind = "timer"\nirq = 0'), "a timer device fires periodically"),
    (_one(_NIC, extra=_READER), "has no socket queue"),
    (_one(_NIC, extra=_IO), "needs the name of a disk device"),
    (_one('name = "e"\nkind = "nics"\nirq = 24'), "did you mean 'nic'"),
    (_one(_NIC + "\ncoalesce = 5"), "did you mean 'coalesce_us'"),
    (_one('name = "d"\nirq = 5\narrivals = { process = "csv" }'), 'needs file = "times.csv"'),
]


@pytest.mark.parametrize(("text", "msg"), BAD)
def test_new_keys_are_validated_with_precise_errors(text: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        loads(text)


def test_record_table_chooses_tracepoints_and_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from irqflow.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        _one(
            'name = "d"\nirq = 5\ntasklet_us = 1\narrivals = { process = "periodic", '
            "period_us = 100 }",
            extra='[record]\ntrace = ["irq:tasklet_*"]\nbuffer_size = 50\n'
            'ftrace = "t.txt"\njson = "r.json"\n',
        )
    )
    assert main(["run", "s.toml", "--no-progress"]) == 0
    lines = [x for x in (tmp_path / "t.txt").read_text().splitlines() if not x.startswith("#")]
    assert lines and all("tasklet_" in x for x in lines)
    assert len(lines) == 50  # the ring buffer kept the newest 50
    assert json.loads((tmp_path / "r.json").read_text())["devices"]["d"]["delivered"] == 100


@pytest.mark.parametrize(
    ("record", "msg"),
    [
        ("[record]\ntraces = []\n", "did you mean 'trace'"),
        ("[record]\ntrace = [1]\n", "expected tracepoint patterns"),
        ("[record]\nbuffer_size = 0\n", "expected >= 1"),
    ],
)
def test_record_table_is_validated(record: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        loads(_one('name = "d"\nirq = 5', extra=record))


def test_shared_line_devices_count_only_their_own_events() -> None:
    text = (
        "[machine]\ncpus = 1\nduration_ms = 10\n"
        '[[device]]\nname = "a"\nirq = 11\nshared = true\ntasklet_us = 1\n'
        'arrivals = { process = "periodic", period_us = 100 }\n'
        '[[device]]\nname = "b"\nirq = 11\nshared = true\n'
        'arrivals = { process = "periodic", period_us = 250 }\n'
    )
    res = run(loads(text))
    a, b = res.devices["a"], res.devices["b"]
    assert 0 < a.delivered <= a.events and 0 < b.delivered <= b.events
    assert a.events - a.delivered <= 1 and b.events - b.delivered <= 1
    line = res.kernel.statistics().irqs[11]
    assert line.raised == a.events + b.events
    assert line.unhandled == 0  # every interrupt was somebody's


BAD_SCENARIOS = [
    (_one('name = "d"\nirq = 5', extra='[[thread]]\nname = "t"\npolicy = "fifo"\n'),
     "a fifo thread needs prio 1..99, found 0"),
    (_one('name = "d"\nirq = 5', extra='[[thread]]\nname = "t"\nnice = 100\n'), "-20..19"),
    (_one('name = "d"\nirq = 5\narrivals = { process = "periodic", period_us = nan }'),
     "expected a finite number, found nan"),
    (_one('name = "d"\nirq = 5', machine="duration_ms = inf"), "finite"),
    (_one('name = "d"\nirq = 5') + '[[device]]\nname = "d"\nirq = 6\n', "already named 'd'"),
    (_one('name = "d"\nirq = 5', extra='[[thread]]\nname = "t"\n[[thread]]\nname = "t"\n'),
     "a thread is already named 't'"),
    (_one('name = "d"\nirq = 5') + '[[device]]\nname = "e"\nirq = 5\nshared = true\n',
     "set shared = true on both"),
    (_one('name = "d"\nirq = 5', extra='[record]\ntrace = ["irg:*"]\n'), "did you mean 'irq'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "msg"), BAD_SCENARIOS)
def test_values_that_would_fail_the_run_are_refused_up_front(text: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        loads(text)


def test_a_scenario_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    from irqflow.scenario import load

    (tmp_path / "s.toml").write_bytes(b"[machine]\n# caf\xe9\ncpus = 1\n")
    with pytest.raises(ScenarioError, match="not UTF-8 text"):
        load(tmp_path / "s.toml")


def test_drop_places_are_always_reported_in_sweep_rows() -> None:
    from irqflow.scenario.sweep import metrics

    text = _one(
        'name = "e"\nkind = "nic"\nirq = 24\nsocket_queue = 8\n'
        'arrivals = { process = "periodic", period_us = 1000 }',
        extra='[[thread]]\nname = "r"\nkind = "packet-reader"\ndevice = "e"\n',
    )
    row = metrics(run(loads(text)))
    keys = list(row)
    assert row["e.dropped_at_ring"] == 0 and row["e.dropped_at_socket"] == 0
    assert keys.index("e.dropped_at_ring") == keys.index("e.dropped") + 1


def test_errors_point_at_the_line_of_the_right_table() -> None:
    text = (
        "[machine]\ncpus = 1\n\n"
        '[[device]]\nname = "a"\nirq = 5\n\n'
        '[[device]]\nname = "b"\nirq = 5\n'
    )
    with pytest.raises(ScenarioError, match=r"<string>:10: device\[1\]\.irq"):
        loads(text)  # the second device's irq, not the first's (line 6)
    inline = text.replace("irq = 5\n", "irq = 6\narrivals = { perod_us = 5 }\n", 2)
    with pytest.raises(ScenarioError, match=r"<string>:7: device\[0\]\.arrivals\.perod_us"):
        loads(inline)
    with pytest.raises(ScenarioError, match=r"<string>:4: device\[0\]: missing required key"):
        loads("[machine]\ncpus = 1\n\n[[device]]\nirq = 5\n")


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        (_one('name = "d"\nirq = 5\nnapi = true'), r"a line does not use napi \(it is for: nic\)"),
        (_one('name = "s"\nkind = "serial"\nirq = 4\nring = 8'), "a serial does not use ring"),
        (_one('name = "d"\nirq = 5', extra='[[thread]]\nname = "t"\ndevice = "d"\n'),
         "a cpu-bound does not use device"),
        (_one('name = "d"\nirq = 5', extra='[[thread]]\nname = "t"\nprio = 10\n'),
         "a normal thread takes nice"),
    ],
)  # fmt: skip
def test_keys_a_kind_does_not_read_are_errors(text: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg):
        loads(text)
