"""KernelConfig checks every field: types strictly, ranges and choices by rule, with an
error that names the field, the value and the fix."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from irqflow.core.config import INT_MAX, MAX_NS, ConfigError, KernelConfig, rule_of, setting
from irqflow.core.errors import IrqflowError

DEFAULTS = {
    "hz": 250, "nr_irqs": 256, "softirq_max_restart": 10, "softirq_max_time_ns": 2_000_000,
    "ksoftirqd_defers": False, "threadirqs": False, "preempt_model": "voluntary",
    "irq_delivery": "single", "irq_chips": "x86", "fair_class": "eevdf",
    "rt_bandwidth": "fair_server", "timer_wheel": "lazy", "msleep_extra_jiffy": False,
    "preempt_count": True,
    "workqueue_model": "cmwq",
    "napi_weight": 64, "netdev_budget": 300, "netdev_budget_usecs": -1,
    "rt_runtime_ns": 950_000_000, "rt_period_ns": 1_000_000_000,
    "sched_latency_ns": 6_000_000, "sched_min_granularity_ns": 750_000,
    "sched_wakeup_granularity_ns": 1_000_000, "irq_entry_ns": 600, "irq_exit_ns": 400,
    "softirq_pass_ns": 250, "tasklet_dispatch_ns": 100, "context_switch_ns": 1_500,
    "tick_ns": 1_000, "min_loop_ns": 100, "latency_histograms": True,
    "panic_on_oops": False, "noirqdebug": False, "wq_cpu_intensive_thresh_ns": 10_000_000,
    "softlockup_thresh_ns": 20_000_000_000,
}  # fmt: skip

#: values of the wrong type for each kind of field
WRONG_TYPES: dict[str, list[Any]] = {
    "int": [True, 1.0, 1.5, "10", None],
    "bool": [1, 0, "true", None],
    "str": [1, b"cmwq", None],
}


def test_field_names_and_defaults_are_unchanged() -> None:
    assert dataclasses.asdict(KernelConfig()) == DEFAULTS


@pytest.mark.parametrize("f", dataclasses.fields(KernelConfig), ids=lambda f: f.name)
def test_every_field_refuses_values_of_another_type(f: dataclasses.Field[Any]) -> None:
    for value in WRONG_TYPES[str(f.type)]:
        with pytest.raises(ConfigError) as err:
            KernelConfig(**{f.name: value})
        assert err.value.field == f.name
        assert str(err.value).startswith(f"KernelConfig({f.name}={value!r}): expected ")
        assert f"found {type(value).__name__}" in str(err.value)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"napi_weight": 0}, "out of range; give 1..2_147_483_647 (NAPI_POLL_WEIGHT is 64)"),
        ({"netdev_budget": 0}, "give 1.."),
        ({"netdev_budget": -5}, "give 1.."),
        ({"netdev_budget_usecs": -2}, "give -1.."),
        ({"softirq_max_restart": 0}, "the kernel's value is 10"),
        ({"rt_period_ns": 0}, "give 1..1_000_000_000_000_000"),
        ({"rt_runtime_ns": 1_000_000_001}, "more than rt_period_ns (1000000000)"),
        ({"tick_ns": MAX_NS + 1}, "give 0..1_000_000_000_000_000"),
        ({"irq_entry_ns": -1}, "give 0.."),
        ({"min_loop_ns": 0}, "spin forever"),
        ({"nr_irqs": 0}, "give 1..100_000"),
        ({"nr_irqs": 100_001}, "give 1..100_000"),
        ({"napi_weight": INT_MAX + 1}, "out of range"),
        ({"hz": 251}, "not one of (100, 250, 300, 1000)"),
        ({"workqueue_model": "kworker"}, "not one of ('per-cpu-threads', 'cmwq')"),
        ({"preempt_model": "desktop"}, "not one of ('none', 'voluntary', 'full', 'rt')"),
    ],
)
def test_values_out_of_range_name_the_field_the_value_and_the_fix(
    kw: dict[str, Any], msg: str
) -> None:
    with pytest.raises(ConfigError) as err:
        KernelConfig(**kw)
    ((name, value),) = kw.items()
    assert err.value.field == name and err.value.value == value
    assert str(err.value).startswith(f"KernelConfig({name}={value!r}): ")
    assert msg in str(err.value)
    assert isinstance(err.value, IrqflowError)


def test_the_edges_of_each_range_are_accepted() -> None:
    KernelConfig(napi_weight=1, netdev_budget=1, netdev_budget_usecs=0, rt_period_ns=1,
                 rt_runtime_ns=1, tick_ns=MAX_NS, nr_irqs=100_000, min_loop_ns=1)  # fmt: skip
    KernelConfig(rt_runtime_ns=1_000_000_000)  # runtime == period: RT never throttled


def test_netdev_budget_usecs_defaults_to_two_ticks() -> None:
    """net/core/hotdata.c: 2 * USEC_PER_SEC / HZ (this machine's sysctl reads 8000)."""
    assert KernelConfig().netdev_budget_us == 8000
    assert KernelConfig(hz=1000).netdev_budget_us == 2000
    assert KernelConfig(netdev_budget_usecs=3000).netdev_budget_us == 3000


def test_presets_set_their_era_and_explicit_fields_win() -> None:
    assert KernelConfig.preset("6.13") == KernelConfig()
    seed = KernelConfig.preset("2.6")
    assert (seed.irq_delivery, seed.workqueue_model, seed.fair_class) == (
        "spray", "per-cpu-threads", "cfs")  # fmt: skip
    assert KernelConfig.preset("4.9").ksoftirqd_defers is True
    rt = KernelConfig.preset("6.13-rt")
    assert rt.preempt_model == "rt" and rt.threadirqs is True
    assert KernelConfig.preset("2.6", hz=1000, workqueue_model="cmwq").hz == 1000
    assert KernelConfig.preset("2.6", workqueue_model="cmwq").workqueue_model == "cmwq"
    with pytest.raises(ConfigError, match=r"preset.*not one of \('2\.6'"):
        KernelConfig.preset("3.0")


def test_replace_checks_too() -> None:
    with pytest.raises(ConfigError, match="napi_weight"):
        dataclasses.replace(KernelConfig(), napi_weight=0)


def test_a_new_field_is_checked_by_the_default_rule_of_its_kind() -> None:
    """The mechanism is data-driven: a field added later is checked without new code."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Extended(KernelConfig):
        preset: str = setting("none", choices=("none", "server"))
        budget_ns: int = 5
        flag: bool = False

    assert Extended(preset="server").preset == "server"
    for kw, msg in [
        ({"preset": "desktop"}, "not one of ('none', 'server')"),
        ({"budget_ns": -1}, "give 0..1_000_000_000_000_000"),
        ({"budget_ns": 2.0}, "expected an integer (nanoseconds), found float"),
        ({"flag": "yes"}, "expected true or false, found str"),
    ]:
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            Extended(**kw)


def test_every_field_has_a_kind_the_checks_know() -> None:
    for f in dataclasses.fields(KernelConfig):
        assert str(f.type) in WRONG_TYPES, f.name
        rule = rule_of(f.name, str(f.type), f.metadata)
        if f.type == "int" and not rule.choices:
            assert rule.minimum is not None and rule.maximum is not None, f.name
