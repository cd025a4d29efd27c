"""genirq: actions, request_irq, disable/enable depth, the edge and level flows, replay,
/proc/interrupts counts, the irq_handler_* tracepoints and spurious-interrupt detection
(kernel-semantics.md sections 2, 3 and 7; invariants 27-36 and 43-45).

The kernel's own paths cost nothing here (``support.ZERO``), so a handler that charges
``udelay(10)`` occupies its CPU for exactly 10 us and every time below is exact.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import pytest

import irqflow.proc
from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_NO_AUTOEN,
    IRQF_ONESHOT,
    IRQF_SHARED,
    IRQF_TRIGGER_FALLING,
    IRQF_TRIGGER_HIGH,
    IRQF_TRIGGER_RISING,
    IrqflowError,
    Kernel,
    RequestError,
)
from irqflow.core.constants import IRQF_PERCPU
from irqflow.trace.ftrace import format_event
from support import US, ZERO, make_kernel

#: for the 100000-event storms: one ns of entry cost per event keeps virtual time moving
STORM = dataclasses.replace(ZERO, irq_entry_ns=1)
IRQ = 10


class Recorder:
    """A handler that records (time, cpu) of each call, charges ``cost_us`` and returns
    the next value of ``rets`` (then ``default``)."""

    def __init__(
        self,
        k: Kernel,
        cost_us: int = 0,
        rets: Iterable[Any] = (),
        default: Any = IRQ_HANDLED,
        then: Callable[[int], None] | None = None,
    ) -> None:
        self.k = k
        self.cost_us = cost_us
        self.rets = list(rets)
        self.default = default
        self.then = then
        self.calls: list[tuple[int, int]] = []

    def __call__(self, irq: int, dev_id: Any) -> Any:
        self.calls.append((self.k.now(), self.k.smp_processor_id()))
        if self.cost_us:
            self.k.udelay(self.cost_us)
        if self.then is not None:
            self.then(len(self.calls))
        return self.rets.pop(0) if self.rets else self.default

    @property
    def times(self) -> list[int]:
        return [t for t, _ in self.calls]


def line(k: Kernel, irq: int = IRQ) -> Any:
    return k.statistics().irqs[irq]


def deassert_on_call(k: Kernel, n: int) -> Callable[[int], None]:
    """A ``Recorder`` ``then`` hook: the handler's ``n``-th call quiets the device, i.e.
    deasserts the level line ``IRQ``."""

    def then(calls: int) -> None:
        if calls == n:
            k.set_irq_level(IRQ, False)

    return then


def assert_no_overlap(calls: list[tuple[int, int]], cost_ns: int) -> None:
    """Invariant 31: no two runs of the same line's handler overlap in virtual time."""
    starts = sorted(t for t, _ in calls)
    for a, b in itertools.pairwise(starts):
        assert a + cost_ns <= b, f"handler runs at {a} and {b} overlap (cost {cost_ns} ns)"


# --- invariant 27: shared actions ----------------------------------------------------------------


def test_shared_actions_called_in_registration_order_on_every_event() -> None:
    """Invariant 27: every action of a shared line runs on every accepted event, in
    registration (append) order; a later request is appended at the tail."""
    k = make_kernel(cpus=1, trace=None)
    order: list[str] = []

    def action(name: str) -> Callable[[int, Any], Any]:
        def h(irq: int, dev_id: Any) -> Any:
            order.append(name)
            return IRQ_HANDLED

        return h

    for name in ("c", "a", "b"):
        k.request_irq(IRQ, action(name), IRQF_SHARED, name, dev_id=name)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.run()
    assert order == ["c", "a", "b", "c", "a", "b"]
    k.request_irq(IRQ, action("first?"), IRQF_SHARED, "first?", dev_id="z")
    order.clear()
    k.call_at(k.now() + 1_000, k.raise_irq, IRQ)
    k.run()
    assert order == ["c", "a", "b", "first?"]
    assert line(k).name == "c, a, b, first?"


@pytest.mark.parametrize(
    ("rets", "unhandled"),
    [
        ((IRQ_NONE, IRQ_NONE, IRQ_NONE), 1),
        ((IRQ_NONE, IRQ_NONE, IRQ_HANDLED), 0),
        ((IRQ_HANDLED, IRQ_NONE, IRQ_NONE), 0),
        ((IRQ_NONE, IRQ_HANDLED, IRQ_NONE), 0),
    ],
)
def test_shared_results_are_ored(rets: tuple[Any, ...], unhandled: int) -> None:
    """Invariant 27: the event counts as unhandled only if every action returned IRQ_NONE
    (the results are OR'ed), and every action is called even after one handled it."""
    k = make_kernel(cpus=1, trace=None)
    recs = [Recorder(k, default=r) for r in rets]
    for n, rec in enumerate(recs):
        k.request_irq(IRQ, rec, IRQF_SHARED, f"dev{n}", dev_id=n)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert [len(r.calls) for r in recs] == [1, 1, 1]
    assert line(k).unhandled == unhandled
    assert line(k).irqs_unhandled == unhandled


# --- invariant 28: request_irq errors -------------------------------------------------------------


def _h(irq: int, dev_id: Any) -> Any:
    return IRQ_HANDLED


def test_shared_request_without_dev_id_is_einval() -> None:
    """Invariant 28: IRQF_SHARED with a NULL dev_id is -EINVAL; the message names the line
    and says to pass a dev_id; the line stays unrequested."""
    k = make_kernel(cpus=1, trace=None)
    with pytest.raises(RequestError) as ei:
        k.request_irq(IRQ, _h, IRQF_SHARED, "eth0", dev_id=None)
    assert ei.value.errno == "EINVAL"
    msg = str(ei.value)
    assert f"request_irq({IRQ}" in msg
    assert "eth0" in msg
    assert "dev_id" in msg
    # nothing was registered: an edge on the line is lost, no handler runs
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    s = line(k)
    assert (s.actions, s.accepted, s.lost) == (0, 0, 1)


def test_shared_request_with_no_autoen_is_einval() -> None:
    """Invariant 28 / section 2.4 step 2: IRQF_SHARED together with IRQF_NO_AUTOEN is
    -EINVAL (one sharer cannot keep a shared line disabled for the others)."""
    k = make_kernel(cpus=1, trace=None)
    with pytest.raises(RequestError) as ei:
        k.request_irq(IRQ, _h, IRQF_SHARED | IRQF_NO_AUTOEN, "eth0", dev_id=1)
    assert ei.value.errno == "EINVAL"
    assert IRQ not in k.statistics().irqs or line(k).actions == 0


def test_request_of_a_nonexistent_irq_is_refused() -> None:
    """Invariant 28 / section 2.4 step 3: an IRQ number with no descriptor is refused; the
    message names the number and the valid range."""
    k = make_kernel(cpus=1, trace=None)
    with pytest.raises(IrqflowError) as ei:
        k.request_irq(ZERO.nr_irqs, _h, 0, "eth0")
    assert str(ZERO.nr_irqs) in str(ei.value)
    assert str(ZERO.nr_irqs - 1) in str(ei.value)


def test_request_without_any_handler_is_einval() -> None:
    """Invariant 28 / section 2.4 step 4: neither handler nor thread_fn is -EINVAL."""
    k = make_kernel(cpus=1, trace=None)
    with pytest.raises(RequestError) as ei:
        k.request_threaded_irq(IRQ, None, None, 0, "eth0")
    assert ei.value.errno == "EINVAL"
    assert f"({IRQ}" in str(ei.value)


def _request_threaded_primary(k: Kernel, flags: int, name: str, dev_id: Any) -> None:
    """request_threaded_irq with only a primary handler: its flags are passed unchanged
    (no IRQF_COND_ONESHOT, unlike request_irq)."""
    k.request_threaded_irq(IRQ, _h, None, flags, name, dev_id)


@pytest.mark.parametrize(
    ("first", "second", "word"),
    [
        pytest.param(0, IRQF_SHARED, "IRQF_SHARED", id="old-not-shared"),
        pytest.param(IRQF_SHARED, 0, "IRQF_SHARED", id="new-not-shared"),
        pytest.param(0, 0, "IRQF_SHARED", id="neither-shared"),
        pytest.param(
            IRQF_SHARED | IRQF_TRIGGER_HIGH,
            IRQF_SHARED | IRQF_TRIGGER_RISING,
            "trigger",
            id="level-vs-edge",
        ),
        pytest.param(
            IRQF_SHARED | IRQF_TRIGGER_RISING,
            IRQF_SHARED | IRQF_TRIGGER_HIGH,
            "trigger",
            id="edge-vs-level",
        ),
        pytest.param(
            IRQF_SHARED | IRQF_TRIGGER_RISING,
            IRQF_SHARED | IRQF_TRIGGER_FALLING,
            "trigger",
            id="rising-vs-falling",
        ),
        pytest.param(IRQF_SHARED, IRQF_SHARED | IRQF_PERCPU, "PERCPU", id="percpu"),
    ],
)
def test_sharing_mismatch_is_ebusy(first: int, second: int, word: str) -> None:
    """Invariant 28: -EBUSY when the sharing flags, trigger type or PERCPU differ; the
    message names the line and the mismatch, and the first action is left alone."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, _h, first, "old", dev_id=1)
    with pytest.raises(RequestError) as ei:
        k.request_irq(IRQ, _h, second, "new", dev_id=2)
    assert ei.value.errno == "EBUSY"
    msg = str(ei.value)
    assert f"irq {IRQ}" in msg
    assert word in msg
    s = line(k)
    assert (s.actions, s.name) == (1, "old")


def test_oneshot_mismatch_is_ebusy_unless_cond_oneshot() -> None:
    """Invariant 28 / section 2.3: ONESHOT must agree, except that request_irq (which adds
    IRQF_COND_ONESHOT) may join a ONESHOT line."""
    # old without ONESHOT, new with it
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, _h, IRQF_SHARED, "old", dev_id=1)
    with pytest.raises(RequestError) as ei:
        _request_threaded_primary(k, IRQF_SHARED | IRQF_ONESHOT, "new", 2)
    assert ei.value.errno == "EBUSY"
    assert "ONESHOT" in str(ei.value)
    # old with ONESHOT: request_irq joins (COND_ONESHOT) ...
    k = make_kernel(cpus=1, trace=None)
    _request_threaded_primary(k, IRQF_SHARED | IRQF_ONESHOT, "old", 1)
    k.request_irq(IRQ, _h, IRQF_SHARED, "cond", dev_id=2)
    # ... but request_threaded_irq without ONESHOT does not
    with pytest.raises(RequestError) as ei:
        _request_threaded_primary(k, IRQF_SHARED, "plain", 3)
    assert ei.value.errno == "EBUSY"
    assert line(k).name == "old, cond"


def test_sharer_without_trigger_inherits_the_lines_trigger() -> None:
    """Invariant 28 / section 2.4: a sharer that gives no trigger type takes the line's, so
    it is not a mismatch, and the line stays level."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, _h, IRQF_SHARED | IRQF_TRIGGER_HIGH, "old", dev_id=1)
    k.request_irq(IRQ, _h, IRQF_SHARED, "new", dev_id=2)
    s = line(k)
    assert (s.actions, s.trigger) == (2, "level")


# --- invariant 29: depth --------------------------------------------------------------------------


def test_disable_enable_nest_by_depth() -> None:
    """Invariant 29: only depth 0->1 disables and only 1->0 enables; the edge that came in
    while disabled is replayed exactly once at 1->0."""
    k = make_kernel(cpus=1, trace=None)
    rec = Recorder(k)
    k.request_irq(IRQ, rec)
    k.disable_irq(IRQ)
    k.disable_irq(IRQ)
    assert line(k).depth == 2
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=10_000)
    k.enable_irq(IRQ)
    assert line(k).depth == 1
    k.run(until=20_000)
    assert rec.calls == []  # still disabled at depth 1
    k.enable_irq(IRQ)
    assert line(k).depth == 0
    k.run(until=30_000)
    assert rec.times == [20_000]
    k.call_at(31_000, k.raise_irq, IRQ)
    k.run(until=40_000)
    assert rec.times == [20_000, 31_000]
    assert not [m for m in k.dmesg() if "Unbalanced" in m]


def test_unbalanced_enable_warns_and_does_nothing() -> None:
    """Invariant 29: enable_irq at depth 0 logs "Unbalanced enable for IRQ N" and changes
    nothing: depth stays 0 and a later single disable still disables."""
    k = make_kernel(cpus=1, trace=None)
    rec = Recorder(k)
    k.request_irq(IRQ, rec)
    k.enable_irq(IRQ)
    snap = k.statistics()
    assert [r.text for r in snap.log] == [f"Unbalanced enable for IRQ {IRQ}"]
    assert [m for m in k.dmesg() if m.endswith(f"Unbalanced enable for IRQ {IRQ}")]
    assert snap.irqs[IRQ].depth == 0
    k.disable_irq(IRQ)  # one disable must be enough: the bad enable did not go negative
    assert line(k).depth == 1
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=10_000)
    assert rec.calls == []
    k.enable_irq(IRQ)
    k.run(until=20_000)
    assert rec.times == [10_000]


# --- invariant 30: disable_irq waits --------------------------------------------------------------


@pytest.mark.parametrize(
    ("disable", "returns_at", "still_running"),
    [
        pytest.param(Kernel.disable_irq, 11_000, False, id="disable_irq-waits"),
        pytest.param(Kernel.disable_irq_nosync, 2_000, True, id="nosync-does-not-wait"),
    ],
)
def test_disable_irq_waits_for_a_running_handler_and_nosync_does_not(
    disable: Callable[[Kernel, int], Any], returns_at: int, still_running: bool
) -> None:
    """Invariant 30: called from outside the machine while the handler runs on CPU 0
    (1 .. 11 us), disable_irq advances virtual time until it has finished, and
    disable_irq_nosync returns at once with it still running; either way the running
    handler finishes normally and the line is left at depth 1."""
    k = make_kernel(cpus=2, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=2_000)
    disable(k, IRQ)
    assert k.now() == returns_at
    assert ("INPROGRESS" in k.irq_state(IRQ)) is still_running
    k.run(until=20_000)
    assert rec.times == [1_000]
    assert line(k).depth == 1


def test_disable_irq_on_idle_line_returns_at_once() -> None:
    """Invariant 30: with no handler running there is nothing to wait for."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, Recorder(k))
    k.run(until=5_000)
    k.disable_irq(IRQ)
    assert k.now() == 5_000


# --- invariants 31, 32: edge serialization and replay ---------------------------------------------


def test_edge_arrival_on_other_cpu_while_in_progress_sets_pending() -> None:
    """Invariants 31, 32: an edge that arrives on CPU 1 while CPU 0 runs the line only sets
    PENDING; CPU 0 runs the chain once more, right after the first run, and the two runs
    never overlap."""
    k = make_kernel(cpus=2, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.run(until=5_000)
    assert {"PENDING", "MASKED", "INPROGRESS"} <= set(k.irq_state(IRQ).split("|"))
    k.run()
    assert rec.calls == [(1_000, 0), (11_000, 0)]
    assert_no_overlap(rec.calls, 10 * US)
    assert line(k).per_cpu == (1, 0)


@pytest.mark.parametrize("extra", [1, 2, 3])
def test_n_arrivals_during_one_run_give_exactly_one_replay_pass(extra: int) -> None:
    """Invariant 32: N edges that each reach the flow handler (on CPUs 1..N) while CPU 0 runs
    the line collapse into exactly one extra pass."""
    k = make_kernel(cpus=4, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)

    def irqs_off_for_6us(k: Kernel) -> None:
        with k.local_irq_save():
            k.udelay(6)

    for cpu in (1, 2, 3):
        k.kthread_run(irqs_off_for_6us, f"block{cpu}", cpu=cpu)
    k.irq_set_affinity(IRQ, {0})
    k.call_at(500, k.raise_irq, IRQ)  # CPU 0 runs the handler 0.5 .. 10.5 us

    def raise_on(cpu: int) -> None:
        k.irq_set_affinity(IRQ, {cpu})  # CPU n has IRQs off: the edge waits there
        k.raise_irq(IRQ)

    for n in range(extra):
        k.call_at(1_000 + 1_000 * n, raise_on, 1 + n)
    k.trace.enable("irqflow:irq_pending")
    k.run()
    # each extra edge reached a flow handler (at 6 us, when its CPU enabled IRQs) ...
    pend = [e for e in k.trace.events() if e.name == "irqflow:irq_pending"]
    assert sorted(e.cpu for e in pend) == list(range(1, 1 + extra))
    # ... and together they made exactly one replay pass on CPU 0
    assert rec.calls == [(500, 0), (10_500, 0)]
    s = line(k)
    assert s.per_cpu == (1, 0, 0, 0)
    assert s.raised == 1 + extra


@pytest.mark.parametrize("extra", [1, 2, 5, 20])
def test_many_edges_during_one_run_cost_one_extra_pass(extra: int) -> None:
    """Invariant 32: the first extra edge sets PENDING and masks the line; the ones after
    it, arriving at the masked pin, merge into the replay PENDING already owes. However
    many edges came during the first run, the handler runs exactly twice."""
    k = make_kernel(cpus=2, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)
    k.call_at(1_000, k.raise_irq, IRQ)
    for n in range(extra):
        k.call_at(2_000 + 100 * n, k.raise_irq, IRQ)
    k.run()
    assert rec.calls == [(1_000, 0), (11_000, 0)]
    assert_no_overlap(rec.calls, 10 * US)
    s = line(k)
    assert s.per_cpu == (1, 0)
    assert (s.raised, s.accepted, s.coalesced + s.lost, s.in_flight) == (
        1 + extra,
        1,
        extra,
        0,
    )


def test_edge_replay_loop_stops_when_handler_disables_the_line() -> None:
    """Invariant 32: the chain is re-run only while PENDING is set *and* the line is not
    disabled; the pending edge is replayed at enable_irq instead."""
    k = make_kernel(cpus=2, trace=None)
    state = {"disable": True}

    def then(n: int) -> None:
        if state["disable"]:
            state["disable"] = False
            k.disable_irq_nosync(IRQ)

    rec = Recorder(k, cost_us=10, then=then)
    k.request_irq(IRQ, rec)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)  # PENDING while the first run disables the line
    k.run(until=50_000)
    assert rec.times == [1_000]
    k.enable_irq(IRQ)
    k.run()
    assert rec.times == [1_000, 50_000]


# --- invariant 33: level lines --------------------------------------------------------------------


def test_level_line_refires_until_the_device_is_quiet() -> None:
    """Invariant 33: a level line is masked while its handler runs and unmasked after; while
    the device still asserts it, it fires again, until the handler deasserts it."""
    k = make_kernel(cpus=1, trace=None)
    rec = Recorder(k, cost_us=10, then=deassert_on_call(k, 3))
    k.request_irq(IRQ, rec, IRQF_TRIGGER_HIGH, "lvl")
    k.call_at(1_000, k.set_irq_level, IRQ, True)
    k.run()
    assert rec.times == [1_000, 11_000, 21_000]
    s = line(k)
    assert s.trigger == "level"
    assert (s.per_cpu, s.accepted, s.in_flight) == ((3,), 3, 0)


def test_level_line_is_masked_while_the_handler_runs() -> None:
    """Invariant 33: mask+ack come before the handlers: inside the handler the line is
    masked and in progress; after it the line is unmasked and idle."""
    k = make_kernel(cpus=1, trace=None)
    inside: list[str] = []

    def h(irq: int, dev_id: Any) -> Any:
        inside.append(k.irq_state(IRQ))
        k.set_irq_level(IRQ, False)
        return IRQ_HANDLED

    k.request_irq(IRQ, h, IRQF_TRIGGER_HIGH, "lvl")
    k.call_at(1_000, k.raise_irq, IRQ)  # raise_irq asserts a level line
    k.run()
    assert len(inside) == 1
    assert "MASKED" in inside[0].split("|")
    assert "INPROGRESS" in inside[0].split("|")
    assert "PENDING" not in inside[0].split("|")
    assert k.irq_state(IRQ) == "0"


def test_level_line_disabled_in_handler_stays_masked() -> None:
    """Invariant 33: after the handlers the line is unmasked only if not disabled: a handler
    that disables its own still-asserted line runs once; enable_irq lets it fire again."""
    k = make_kernel(cpus=1, trace=None)

    def then(n: int) -> None:
        if n == 1:
            k.disable_irq_nosync(IRQ)
        else:
            k.set_irq_level(IRQ, False)

    rec = Recorder(k, cost_us=10, then=then)
    k.request_irq(IRQ, rec, IRQF_TRIGGER_HIGH, "lvl")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=100_000)
    assert rec.times == [1_000]
    assert "MASKED" in k.irq_state(IRQ).split("|")
    k.enable_irq(IRQ)
    k.run()
    assert rec.times == [1_000, 100_000]
    assert line(k).per_cpu == (2,)


def test_level_line_shared_by_two_cpus_never_runs_twice_at_once() -> None:
    """Invariants 31, 33: a screaming level line on two CPUs runs its handler one event at
    a time; each event is counted on the CPU that took it."""
    k = make_kernel(cpus=2, trace=None)
    rec = Recorder(k, cost_us=10, then=deassert_on_call(k, 6))
    k.request_irq(IRQ, rec, IRQF_TRIGGER_HIGH, "lvl")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert len(rec.calls) == 6
    assert_no_overlap(rec.calls, 10 * US)
    s = line(k)
    assert s.accepted == 6
    assert sum(s.per_cpu) == 6
    per_cpu = [0, 0]
    for _, cpu in rec.calls:
        per_cpu[cpu] += 1
    assert tuple(per_cpu) == s.per_cpu


# --- invariant 34: lazy disable and replay --------------------------------------------------------


@pytest.mark.parametrize("cpus", [1, 2])
def test_lazily_disabled_edge_is_masked_pending_and_replayed_once(cpus: int) -> None:
    """Invariant 34: disable_irq leaves the line unmasked (lazy); an edge then masks it with
    PENDING recorded and no handler call; enable_irq replays it exactly once."""
    k = make_kernel(cpus=cpus, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)
    k.disable_irq(IRQ)
    assert k.irq_state(IRQ).split("|") == ["DISABLED"]  # lazy: not masked yet
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=50_000)
    assert rec.calls == []
    assert set(k.irq_state(IRQ).split("|")) == {"DISABLED", "MASKED", "PENDING"}
    assert line(k).per_cpu == (0,) * cpus  # a PENDING-only arrival is not counted
    k.enable_irq(IRQ)
    k.run()
    assert rec.times == [50_000]
    assert sum(line(k).per_cpu) == 1
    assert "PENDING" not in k.irq_state(IRQ)


def test_disabled_level_line_is_not_replayed_by_software() -> None:
    """Invariant 34: a level line that fired while disabled is not replayed on enable_irq
    if the device has stopped asserting it meanwhile."""
    k = make_kernel(cpus=1, trace=None)
    rec = Recorder(k, then=lambda n: k.set_irq_level(IRQ, False))
    k.request_irq(IRQ, rec, IRQF_TRIGGER_HIGH, "lvl")
    k.disable_irq(IRQ)
    k.call_at(1_000, k.set_irq_level, IRQ, True)
    k.call_at(2_000, k.set_irq_level, IRQ, False)
    k.run(until=10_000)
    assert "PENDING" in k.irq_state(IRQ)
    k.enable_irq(IRQ)
    k.run()
    assert rec.calls == []
    assert line(k).per_cpu == (0,)
    assert "PENDING" not in k.irq_state(IRQ)


def test_disabled_level_line_still_asserted_fires_once_after_enable() -> None:
    """Invariant 34: a level line still asserted at enable_irq fires because the hardware
    re-asserts it on unmask (not a software replay): exactly one handler call."""
    k = make_kernel(cpus=1, trace=None)
    rec = Recorder(k, then=lambda n: k.set_irq_level(IRQ, False))
    k.request_irq(IRQ, rec, IRQF_TRIGGER_HIGH, "lvl")
    k.disable_irq(IRQ)
    k.call_at(1_000, k.set_irq_level, IRQ, True)
    k.run(until=10_000)
    k.enable_irq(IRQ)
    k.run()
    assert rec.times == [10_000]
    assert line(k).per_cpu == (1,)


def test_first_request_resends_an_edge_left_pending() -> None:
    """Invariant 34 / section 2.4: an edge that came in while the line was disabled is still
    PENDING after free_irq (shutdown does not clear it); the next first request starts the
    line up with resend, so the new handler runs once."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, Recorder(k), 0, "old")
    k.disable_irq(IRQ)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=2_000)
    assert "PENDING" in k.irq_state(IRQ)
    k.free_irq(IRQ)
    new = Recorder(k)
    k.request_irq(IRQ, new, 0, "new")
    k.run()
    assert new.times == [2_000]


# --- invariant 35: /proc/interrupts ---------------------------------------------------------------


def test_proc_interrupts_counts_accepted_events_on_the_accepting_cpu() -> None:
    """Invariant 35: one count per accepted event, in the column of the CPU that took it."""
    k = make_kernel(cpus=3, trace=None)
    rec = Recorder(k, cost_us=1)
    k.request_irq(IRQ, rec, 0, "eth0")
    k.irq_set_affinity(IRQ, {2})
    for t in (1_000, 5_000, 9_000):
        k.call_at(t, k.raise_irq, IRQ)
    k.run(until=20_000)
    k.irq_set_affinity(IRQ, {1})
    k.call_at(21_000, k.raise_irq, IRQ)
    k.run()
    assert [cpu for _, cpu in rec.calls] == [2, 2, 2, 1]
    snap = k.statistics()
    assert snap.irqs[IRQ].per_cpu == (0, 1, 3)
    row = [r for r in irqflow.proc.interrupts(snap).splitlines() if r.lstrip().startswith("10:")]
    assert len(row) == 1
    assert row[0].split()[1:4] == ["0", "1", "3"]


def test_proc_interrupts_ignores_pending_only_arrivals_and_replay_passes() -> None:
    """Invariant 35: neither the PENDING-only arrival on CPU 1 nor CPU 0's replay pass is
    counted: two handler runs, one count."""
    k = make_kernel(cpus=2, trace=None)
    rec = Recorder(k, cost_us=10)
    k.request_irq(IRQ, rec)
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.run()
    assert len(rec.calls) == 2
    s = line(k)
    assert s.per_cpu == (1, 0)
    assert s.accepted == 1


# --- invariant 36: tracepoints --------------------------------------------------------------------


def test_irq_handler_tracepoints_bracket_each_action() -> None:
    """Invariant 36: irq_handler_entry/exit bracket every action call, in chain order, with
    exit's ret printed "handled" for any non-zero return and "unhandled" for IRQ_NONE."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, Recorder(k, default=IRQ_HANDLED), IRQF_SHARED, "a", dev_id=1)
    k.request_irq(IRQ, Recorder(k, default=IRQ_NONE), IRQF_SHARED, "b", dev_id=2)
    k.request_irq(IRQ, Recorder(k, default=IRQ_WAKE_THREAD), IRQF_SHARED, "c", dev_id=3)
    k.trace.enable("irq:*")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.call_at(2_000, k.raise_irq, IRQ)
    k.run()
    evs = [e for e in k.trace.events() if e.name.startswith("irq:irq_handler_")]
    got = [
        (e.name.partition(":")[2], e.fields["irq"], e.fields.get("name"), e.fields.get("ret"))
        for e in evs
    ]
    one = [
        ("irq_handler_entry", IRQ, "a", None),
        ("irq_handler_exit", IRQ, None, IRQ_HANDLED),
        ("irq_handler_entry", IRQ, "b", None),
        ("irq_handler_exit", IRQ, None, IRQ_NONE),
        ("irq_handler_entry", IRQ, "c", None),
        ("irq_handler_exit", IRQ, None, IRQ_WAKE_THREAD),
    ]
    assert got == one * 2
    assert [e.ts for e in evs] == [1_000] * 6 + [2_000] * 6
    exits = [format_event(e).split(": ", 2)[2] for e in evs if e.name.endswith("exit")][:3]
    assert exits == [f"irq={IRQ} ret=handled", f"irq={IRQ} ret=unhandled", f"irq={IRQ} ret=handled"]
    entries = [format_event(e).split(": ", 2)[2] for e in evs if e.name.endswith("entry")][:2]
    assert entries == [f"irq={IRQ} name=a", f"irq={IRQ} name=b"]


def test_irq_handler_exit_comes_after_the_handlers_cpu_time() -> None:
    """Invariant 36: the exit tracepoint fires when the action has finished, i.e. after the
    CPU time it charged."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, Recorder(k, cost_us=7), 0, "slow")
    k.trace.enable("irq:irq_handler_*")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run()
    assert [(e.name, e.ts) for e in k.trace.events()] == [
        ("irq:irq_handler_entry", 1_000),
        ("irq:irq_handler_exit", 8_000),
    ]


# --- invariants 43-45: spurious-interrupt detection -----------------------------------------------


@pytest.mark.parametrize("hz", [250, 100])
def test_unhandled_count_resets_after_hz_over_10(hz: int) -> None:
    """Invariant 43: an IRQ_NONE more than HZ/10 jiffies after the previous one resets
    irqs_unhandled to 1; one at most HZ/10 later adds 1."""
    k = make_kernel(cpus=1, trace=None, hz=hz)
    k.request_irq(IRQ, Recorder(k, default=IRQ_NONE), 0, "stray")
    jiffy = k.config.tick_period_ns
    window = hz // 10
    t0 = 10 * jiffy
    times = [t0, t0 + window * jiffy, t0 + (2 * window + 1) * jiffy, t0 + (2 * window + 2) * jiffy]
    expected = [1, 2, 1, 2]
    for t, want in zip(times, expected, strict=True):
        k.call_at(t + 1_000, k.raise_irq, IRQ)
        k.run(until=t + 2_000)
        assert line(k).irqs_unhandled == want, f"at jiffy {t // jiffy}"
    s = line(k)
    assert (s.unhandled, s.irq_count) == (4, 4)


def test_irq_count_advances_only_while_there_are_unhandled_events() -> None:
    """Invariant 44: handled events do not move irq_count while irqs_unhandled is 0; once
    an unhandled one came, every event (handled or not) advances it."""
    k = make_kernel(cpus=1, trace=None)
    rets = [IRQ_HANDLED] * 5 + [IRQ_NONE] + [IRQ_HANDLED] * 4 + [IRQ_NONE]
    k.request_irq(IRQ, Recorder(k, rets=rets), 0, "dev")
    counts = []
    for _ in rets:
        k.call_at(k.now() + 1_000, k.raise_irq, IRQ)
        k.run(until=k.now() + 2_000)
        s = line(k)
        counts.append((s.irq_count, s.irqs_unhandled))
    assert counts == [(0, 0)] * 5 + [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2)]


def test_bogus_return_values_are_reported_at_most_100_times() -> None:
    """Section 7.1 step 2 (invariants 43-44 context): a return above IRQ_HANDLED |
    IRQ_WAKE_THREAD is reported as "irq event N: bogus return value X", at most 100 times
    system-wide, and such events do not feed the unhandled counters."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, Recorder(k, default=4), 0, "bogus")
    for n in range(150):
        k.call_at(1_000 * (n + 1), k.raise_irq, IRQ)
    k.run()
    reports = [r.text for r in k.statistics().log if "bogus return value" in r.text]
    assert reports == [f"irq event {IRQ}: bogus return value 4"] * 100
    s = line(k)
    assert (s.accepted, s.irqs_unhandled, s.irq_count) == (150, 0, 0)


def _storm(
    k: Kernel,
    name: str = "scream",
    flags: int = IRQF_SHARED,
    handled_calls: Iterable[int] = (),
    stop_after: int | None = None,
) -> Recorder:
    """A screaming level line: the handler returns IRQ_NONE (except on the call numbers in
    ``handled_calls``) and never quiets the device, unless ``stop_after`` calls were made."""
    handled = set(handled_calls)

    class Screamer(Recorder):
        def __call__(self, irq: int, dev_id: Any) -> Any:
            self.calls.append((0, 0))  # times are not needed: keep it cheap
            n = len(self.calls)
            if stop_after is not None and n == stop_after:
                self.k.set_irq_level(IRQ, False)
            return IRQ_HANDLED if n in handled else IRQ_NONE

    rec = Screamer(k)
    k.request_irq(IRQ, rec, flags | IRQF_TRIGGER_HIGH, name, dev_id="screamer")
    k.call_at(1_000, k.raise_irq, IRQ)
    return rec


def test_nobody_cared_disables_a_screaming_line() -> None:
    """Invariant 44: after 100000 events with more than 99900 unhandled, "nobody cared" and
    "Disabling IRQ #N" are logged, the line is disabled (depth 1, SPURIOUS_DISABLED) and
    both counters reset."""
    k = make_kernel(cpus=1, trace=None, config=STORM)
    rec = _storm(k)
    k.run(until=10_000_000)
    assert len(rec.calls) == 100_000
    s = line(k)
    assert s.spurious_disabled
    assert s.depth == 1
    assert (s.irq_count, s.irqs_unhandled) == (0, 0)
    assert (s.accepted, s.unhandled) == (100_000, 100_000)
    log = [r.text for r in k.statistics().log]
    cared = [i for i, t in enumerate(log) if t.startswith(f"irq {IRQ}: nobody cared")]
    disabling = [i for i, t in enumerate(log) if t == f"Disabling IRQ #{IRQ}"]
    assert len(cared) == 1
    assert len(disabling) == 1
    assert cared[0] < disabling[0]
    assert any("nobody cared" in m for m in k.dmesg())


@pytest.mark.parametrize(
    ("handled", "disabled"),
    [pytest.param(100, False, id="99900-unhandled"), pytest.param(99, True, id="99901")],
)
def test_nobody_cared_needs_more_than_99900_unhandled(handled: int, disabled: bool) -> None:
    """Invariant 44: at the 100000th counted event the line is disabled only if more than
    99900 of them were unhandled; either way both counters reset."""
    k = make_kernel(cpus=1, trace=None, config=STORM)
    # call 1 is unhandled (starts the window), calls 2..handled+1 are handled
    rec = _storm(k, handled_calls=range(2, handled + 2), stop_after=100_000)
    k.run(until=10_000_000)
    assert len(rec.calls) == 100_000
    s = line(k)
    assert s.spurious_disabled is disabled
    assert s.depth == (1 if disabled else 0)
    assert (s.irq_count, s.irqs_unhandled) == (0, 0)
    assert any("Disabling IRQ" in r.text for r in k.statistics().log) is disabled


def test_spurious_disabled_shared_line_is_polled_every_hz_over_10() -> None:
    """Invariant 44 / section 7.3: a spurious-disabled (shared) line is polled every HZ/10
    by poll_spurious_irqs, which runs its handlers while the line stays disabled."""
    k = make_kernel(cpus=1, trace=None, config=STORM)
    rec = _storm(k)
    k.run(until=10_000_000)  # disabled after ~100 us of virtual time
    assert line(k).spurious_disabled
    before = len(rec.calls)
    k.run_for(450_000_000)  # 4.5 x HZ/10 (100 ms at HZ=250)
    assert len(rec.calls) - before == 4
    assert line(k).spurious_disabled  # polling does not re-enable it


def test_new_shared_request_reenables_a_spurious_disabled_line() -> None:
    """Invariant 45: a new shared request on a spurious-disabled line clears the flag, does
    one enable (depth 1 -> 0) and resets the counters; the new driver then handles it."""
    k = make_kernel(cpus=1, trace=None, config=STORM)
    rec = _storm(k)
    k.run(until=10_000_000)
    assert line(k).spurious_disabled
    fixer = Recorder(k, then=lambda n: k.set_irq_level(IRQ, False))
    k.request_irq(IRQ, fixer, IRQF_SHARED | IRQF_TRIGGER_HIGH, "fixer", dev_id="fixer")
    s = line(k)
    assert not s.spurious_disabled
    assert s.depth == 0
    assert (s.irq_count, s.irqs_unhandled) == (0, 0)
    before = len(rec.calls)
    k.run_for(1_000_000)
    assert len(rec.calls) - before == 1  # the still-asserted line fired once more ...
    assert len(fixer.calls) == 1  # ... and the new action quieted it
    s = line(k)
    assert (s.depth, s.irq_count, s.irqs_unhandled, s.accepted) == (0, 0, 0, 100_001)


def test_spurious_reenable_is_a_single_enable() -> None:
    """Invariant 45: the re-enable is one __enable_irq: if a driver also disabled the line,
    it stays disabled (depth 2 -> 1) until that driver's enable_irq."""
    k = make_kernel(cpus=1, trace=None, config=STORM)
    rec = _storm(k)
    k.run(until=10_000_000)
    k.disable_irq(IRQ)
    assert line(k).depth == 2
    fixer = Recorder(k, then=lambda n: k.set_irq_level(IRQ, False))
    k.request_irq(IRQ, fixer, IRQF_SHARED | IRQF_TRIGGER_HIGH, "fixer", dev_id="fixer")
    s = line(k)
    assert (s.spurious_disabled, s.depth) == (False, 1)
    before = len(rec.calls)
    k.run_for(1_000_000)
    assert len(rec.calls) == before
    assert fixer.calls == []
    k.enable_irq(IRQ)
    k.run_for(1_000_000)
    assert len(fixer.calls) == 1
    assert line(k).depth == 0
