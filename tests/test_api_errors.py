"""Bad arguments to the API get an error that names the call, the value and the fix
(issue 14's API items), instead of a raw error, a corrupted clock or a later failure."""

from __future__ import annotations

import math

import pytest

from irqflow import (
    IRQ_HANDLED,
    IrqflowError,
    Kernel,
    Napi,
    NotOnCpuError,
    Tasklet,
    Timer,
    Work,
)
from support import MS


@pytest.mark.parametrize("until", [math.inf, math.nan, 1.5, "10", True, -1])
def test_run_until_must_be_an_int_of_ns_not_in_the_past(until: object) -> None:
    k = Kernel(cpus=1)
    with pytest.raises(IrqflowError, match=r"run\(until="):
        k.run(until=until)  # type: ignore[arg-type]
    k.run(until=MS)  # the clock was not corrupted
    assert k.now() == MS


@pytest.mark.parametrize("when", [math.nan, math.inf, -math.inf, "5", True])
def test_call_at_needs_a_finite_time(when: object) -> None:
    k = Kernel(cpus=1)
    with pytest.raises(IrqflowError, match=r"call_at\(.*finite"):
        k.call_at(when, lambda: None)  # type: ignore[arg-type]


def test_call_at_a_float_time_is_taken_as_ns() -> None:
    k = Kernel(cpus=1)
    seen: list[int] = []
    k.call_at(1500.0, lambda: seen.append(k.now()))  # type: ignore[arg-type]
    k.run()
    assert seen == [1500]


@pytest.mark.parametrize("us", [math.nan, math.inf, -1, "3", 1e16])
def test_udelay_refuses_what_is_not_a_delay(us: object) -> None:
    k = Kernel(cpus=1)
    errors: list[str] = []

    def body(k_: Kernel) -> None:
        try:
            k.udelay(us)  # type: ignore[arg-type]
        except ValueError as exc:
            errors.append(str(exc))

    k.kthread_run(body, "t")
    k.run(until=MS)
    assert len(errors) == 1 and errors[0].startswith(f"udelay({us!r})")


def test_udelay_from_outside_says_where_to_call_it() -> None:
    with pytest.raises(NotOnCpuError, match="outside the machine"):
        Kernel(cpus=1).udelay(5)


def test_request_irq_flags_and_name_must_be_what_they_say() -> None:
    k = Kernel(cpus=1)
    with pytest.raises(TypeError, match=r"flags='x'.*IRQF_"):
        k.request_irq(5, lambda i, d: IRQ_HANDLED, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name=123.*str"):
        k.request_irq(5, lambda i, d: IRQ_HANDLED, name=123)  # type: ignore[arg-type]
    assert 5 not in k.statistics().irqs  # nothing half-registered: statistics() works
    k.request_irq(5, lambda i, d: IRQ_HANDLED, name="ok")
    assert k.statistics().irqs[5].name == "ok"


@pytest.mark.parametrize("cpus", [1, "0", [], {7}, {True}, None])
def test_irq_set_affinity_takes_a_set_of_cpus(cpus: object) -> None:
    k = Kernel(cpus=2)
    with pytest.raises(IrqflowError, match=r"irq_set_affinity\(5, .*e\.g\. \{1\}"):
        k.irq_set_affinity(5, cpus)  # type: ignore[arg-type]


def test_objects_serve_one_machine() -> None:
    """A timer, tasklet, NAPI, work item or workqueue used with a second Kernel is an error
    naming the call (their state bits would mix two machines)."""
    a, b = Kernel(cpus=1), Kernel(cpus=1)
    t = Timer(lambda d: None)
    a.add_timer(t, 1)
    a.run()
    with pytest.raises(IrqflowError, match="another Kernel"):
        b.add_timer(t, 1)
    w = Work(lambda w: None)
    a.schedule_work(w)
    a.run()
    with pytest.raises(IrqflowError, match="another Kernel"):
        b.schedule_work(w)
    with pytest.raises(IrqflowError, match="workqueue belongs to another Kernel"):
        b.queue_work(a.system_wq, Work(lambda w: None))
    tl = Tasklet(lambda d: None)
    n = Napi(lambda n, budget: 0)
    errors: list[str] = []

    def use(k: Kernel) -> None:
        for call in (lambda: k.tasklet_schedule(tl), lambda: k.napi_schedule(n)):
            try:
                call()
            except IrqflowError as exc:
                errors.append(str(exc))

    a.kthread_run(use, "first")
    a.run_for(MS)
    b.kthread_run(use, "second")
    b.run_for(MS)
    assert len(errors) == 2 and all("another Kernel" in e for e in errors)
