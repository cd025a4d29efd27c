"""Raise accounting and determinism.

Every raise of a line ends in exactly one of accepted / coalesced / lost (API.md,
``statistics()``); until then it is in flight, and a quiet machine has nothing in flight.
Random storms on edge and level lines, with random handler costs, disable/enable from
outside between runs, 1-4 CPUs and random affinity, must keep that identity, and the
flow-handler rules that go with it (invariants 27, 31, 35).  Same scenario and seed must
give a byte-identical ftrace text (STYLE.md rule 3).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQF_SHARED,
    IRQF_TRIGGER_HIGH,
    IRQF_TRIGGER_RISING,
    Kernel,
    KernelConfig,
    Tasklet,
)
from irqflow.trace.ftrace import format_trace
from support import TASKLET, ZERO, make_kernel

FIRST_IRQ = 10


@dataclasses.dataclass
class LinePlan:
    level: bool
    actions: int
    affinity: frozenset[int]
    #: handler costs in ns, used in turn
    costs: list[int]
    #: handler return values (IRQ_HANDLED / IRQ_NONE), used in turn
    rets: list[int]
    #: level only: whether the handler quiets the device on its n-th call (in turn); it
    #: always does on every third call, so a level line cannot scream forever
    quiets: list[bool]


@dataclasses.dataclass
class Plan:
    cpus: int
    costs_on: bool
    lines: list[LinePlan]
    #: ("raise", line, [offsets ns]) | ("disable", line, nosync) | ("enable", line)
    #: | ("run", ns) | ("affinity", line, cpus) | ("free", line) | ("request", line)
    steps: list[tuple[Any, ...]]


class Action:
    """One driver's handler on a line: charges its cost, maybe quiets a level device, and
    records (start, cost) of every call."""

    def __init__(self, k: Kernel, irq: int, lp: LinePlan, index: int, tasklet: Tasklet) -> None:
        self.k = k
        self.tasklet = tasklet
        self.irq = irq
        self.lp = lp
        self.index = index
        self.calls: list[tuple[int, int]] = []

    def __call__(self, irq: int, dev_id: Any) -> Any:
        k, lp = self.k, self.lp
        n = len(self.calls)
        cost = lp.costs[(n + self.index) % len(lp.costs)]
        self.calls.append((k.now(), cost))
        if cost:
            k.ndelay(cost)
        if lp.level and (lp.quiets[n % len(lp.quiets)] or n % 3 == 2):
            k.set_irq_level(irq, False)
        if self.index == 0 and n % 5 == 4:
            k.tasklet_schedule(self.tasklet)  # some softirq work in between, too
        return lp.rets[n % len(lp.rets)]


def request(k: Kernel, plan: Plan, acts: list[Action]) -> None:
    for act in acts:
        i = act.irq - FIRST_IRQ
        trigger = IRQF_TRIGGER_HIGH if plan.lines[i].level else IRQF_TRIGGER_RISING
        k.request_irq(act.irq, act, IRQF_SHARED | trigger, f"dev{i}.{act.index}", (i, act.index))


def build(plan: Plan, seed: int = 0) -> tuple[Kernel, dict[int, list[Action]]]:
    k = Kernel(cpus=plan.cpus, config=KernelConfig() if plan.costs_on else ZERO, seed=seed)
    actions: dict[int, list[Action]] = {}
    tasklet = Tasklet(lambda data: None, name="bh")
    for i, lp in enumerate(plan.lines):
        irq = FIRST_IRQ + i
        actions[irq] = [Action(k, irq, lp, a, tasklet) for a in range(lp.actions)]
        request(k, plan, actions[irq])
        k.irq_set_affinity(irq, lp.affinity)
    return k, actions


def check_identity(k: Kernel, quiet: bool) -> None:
    for n, s in k.statistics().irqs.items():
        assert s.raised == s.accepted + s.coalesced + s.lost + s.in_flight, (n, s)
        assert min(s.accepted, s.coalesced, s.lost, s.in_flight) >= 0, (n, s)
        assert sum(s.per_cpu) == s.accepted, (n, s)
        if quiet:
            assert s.in_flight == 0, (n, s)
            assert s.raised == s.accepted + s.coalesced + s.lost, (n, s)


def play(plan: Plan, seed: int = 0, trace: bool = False) -> tuple[Kernel, dict[str, Any]]:
    """Run ``plan``; finally re-enable every line and run until the machine is quiet."""
    k, actions = build(plan, seed)
    if trace:
        k.trace.enable("*")
    depth = dict.fromkeys(actions, 0)
    edge_raises = dict.fromkeys(actions, 0)
    affinity_changed = set()
    freed: set[int] = set()
    ever_freed: set[int] = set()
    for step in plan.steps:
        kind = step[0]
        irq = 0 if kind == "run" else FIRST_IRQ + step[1]
        if kind in ("disable", "enable") and irq in freed:
            continue  # a freed line is shut down (depth 1); leave it alone
        if kind == "free" and irq not in freed:
            for act in actions[irq]:
                k.free_irq(irq, (step[1], act.index))  # waits while a handler runs
            freed.add(irq)
            ever_freed.add(irq)
            depth[irq] = 0
        elif kind == "request" and irq in freed:
            request(k, plan, actions[irq])
            freed.discard(irq)
        elif kind == "raise":
            for off in step[2]:
                k.call_at(k.now() + off, k.raise_irq, irq)
                if not plan.lines[step[1]].level:
                    edge_raises[irq] += 1
        elif kind == "disable":
            if step[2]:
                k.disable_irq_nosync(irq)
            else:
                k.disable_irq(irq)  # may advance virtual time
            depth[irq] += 1
        elif kind == "enable":
            k.enable_irq(irq)  # at depth 0 this only warns
            depth[irq] = max(0, depth[irq] - 1)
        elif kind == "affinity":
            k.irq_set_affinity(irq, step[2])
            affinity_changed.add(irq)
        elif kind == "run":
            k.run_for(step[1])
        check_identity(k, quiet=False)
    for irq, d in depth.items():
        for _ in range(d):
            k.enable_irq(irq)
    k.run()
    info = {
        "actions": actions,
        "edge_raises": edge_raises,
        "affinity_changed": affinity_changed,
        "freed": freed,
        "ever_freed": ever_freed,
    }
    return k, info


# --- the strategy -------------------------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    cpus = draw(st.integers(1, 4))
    nlines = draw(st.integers(1, 4))
    lines = [
        LinePlan(
            level=draw(st.booleans()),
            actions=draw(st.integers(1, 2)),
            affinity=draw(st.frozensets(st.integers(0, cpus - 1), min_size=1)),
            costs=draw(st.lists(st.integers(0, 30_000), min_size=1, max_size=3)),
            rets=draw(st.lists(st.sampled_from([IRQ_HANDLED, IRQ_NONE]), min_size=1, max_size=3)),
            quiets=draw(st.lists(st.booleans(), min_size=1, max_size=3)),
        )
        for _ in range(nlines)
    ]
    line_ix = st.integers(0, nlines - 1)
    raise_step = st.tuples(
        st.just("raise"), line_ix, st.lists(st.integers(0, 60_000), min_size=1, max_size=12)
    )
    step = st.one_of(
        raise_step,
        raise_step,
        raise_step,
        st.tuples(st.just("disable"), line_ix, st.booleans()),
        st.tuples(st.just("enable"), line_ix),
        st.tuples(st.just("run"), st.integers(0, 80_000)),
        st.tuples(
            st.just("affinity"), line_ix, st.frozensets(st.integers(0, cpus - 1), min_size=1)
        ),
        st.tuples(st.just("free"), line_ix),
        st.tuples(st.just("request"), line_ix),
    )
    steps = draw(st.lists(step, min_size=2, max_size=16))
    return Plan(cpus=cpus, costs_on=draw(st.booleans()), lines=lines, steps=steps)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(plans())
def test_raise_accounting_identity_under_random_storms(plan: Plan) -> None:
    """API.md statistics() identity, with invariants 27, 31 and 35: per line, raised ==
    accepted + coalesced + lost + in_flight at every stop, in_flight == 0 once quiet,
    /proc/interrupts sums to accepted on allowed CPUs, every action runs on every event,
    and no two runs of one line overlap in time."""
    k, info = play(plan)
    check_identity(k, quiet=True)
    snap = k.statistics()
    for irq, acts in info["actions"].items():
        lp = plan.lines[irq - FIRST_IRQ]
        s = snap.irqs[irq]
        if not lp.level:
            assert s.raised >= info["edge_raises"][irq], (irq, s)
        if irq not in info["ever_freed"]:
            # invariant 27: all actions of the line, on every chain run
            counts = {len(a.calls) for a in acts}
            assert len(counts) == 1, (irq, counts)
            calls = counts.pop()
            # each accepted event runs the chain once; edge replay passes add runs
            if lp.level:
                assert calls == s.accepted, (irq, calls, s)
            else:
                assert calls >= s.accepted, (irq, calls, s)
        # invariant 35: counted on a CPU the line may be delivered to
        if irq not in info["affinity_changed"]:
            outside = [c for c, n in enumerate(s.per_cpu) if n and c not in lp.affinity]
            assert outside == [], (irq, s.per_cpu, lp.affinity)
        # invariant 31: chain runs of one line never overlap (handlers run with IRQs off,
        # so each occupies [start, start + cost) exactly)
        spans = sorted((t, t + c) for a in acts for t, c in a.calls)
        for (_, e0), (s1, _) in itertools.pairwise(spans):
            assert e0 <= s1, (irq, spans)
        assert s.depth == (1 if irq in info["freed"] else 0)


def test_quiet_machine_has_nothing_in_flight_after_a_masked_disabled_storm() -> None:
    """API.md identity: edges and level assertions that reach a lazily disabled (then
    masked) line all settle once the line is enabled and the machine goes quiet."""
    plan = Plan(
        cpus=2,
        costs_on=False,
        lines=[
            LinePlan(False, 1, frozenset({0, 1}), [10_000], [IRQ_HANDLED], [True]),
            LinePlan(True, 2, frozenset({1}), [5_000], [IRQ_NONE, IRQ_HANDLED], [False]),
        ],
        steps=[
            ("disable", 0, True),
            ("disable", 1, True),
            ("raise", 0, [0, 10, 20, 30]),
            ("raise", 1, [0, 10, 20, 30]),
            ("run", 50_000),
            ("enable", 0),
            ("run", 100_000),
            ("raise", 0, [0, 50_000]),
            ("run", 5_000),
        ],
    )
    k, info = play(plan)
    check_identity(k, quiet=True)
    snap = k.statistics()
    edge = snap.irqs[FIRST_IRQ]
    edge_calls = info["actions"][FIRST_IRQ][0].calls
    # four edges while disabled: one replay at enable; then two lone edges
    assert [t for t, _ in edge_calls] == [50_000, 150_000, 200_000]
    assert (edge.raised, edge.accepted, edge.coalesced, edge.lost) == (6, 3, 3, 0)
    level = snap.irqs[FIRST_IRQ + 1]
    level_calls = [len(a.calls) for a in info["actions"][FIRST_IRQ + 1]]
    # the device is quieted on every third call: three events once the line is enabled
    assert level_calls == [3, 3]
    assert level.accepted == 3
    assert level.raised == level.accepted + level.coalesced + level.lost


# --- determinism ------------------------------------------------------------------------------


def random_plan(seed: int) -> Plan:
    """A busy four-CPU scenario drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    cpus = 4
    lines = [
        LinePlan(
            level=i % 2 == 1,
            actions=1 + i % 2,
            affinity=frozenset(rng.sample(range(cpus), rng.randint(1, cpus))),
            costs=[rng.randrange(0, 20_000) for _ in range(3)],
            rets=[rng.choice([IRQ_HANDLED, IRQ_NONE]) for _ in range(3)],
            quiets=[rng.random() < 0.5 for _ in range(3)],
        )
        for i in range(4)
    ]
    steps: list[tuple[Any, ...]] = []
    for _ in range(25):
        r = rng.random()
        line = rng.randrange(4)
        if r < 0.6:
            steps.append(("raise", line, [rng.randrange(0, 200_000) for _ in range(8)]))
        elif r < 0.7:
            steps.append(("disable", line, rng.random() < 0.5))
        elif r < 0.8:
            steps.append(("enable", line))
        else:
            steps.append(("run", rng.randrange(0, 300_000)))
    return Plan(cpus=cpus, costs_on=True, lines=lines, steps=steps)


def trace_text(seed: int) -> str:
    """The ftrace text of ``random_plan(seed)`` with every tracepoint on, plus softirq work
    raised from the handlers."""
    k, _ = play(random_plan(seed), seed=seed, trace=True)
    return format_trace(k.trace.events(), len(k.cpus))


def test_same_scenario_and_seed_give_byte_identical_ftrace() -> None:
    """STYLE.md rule 3 (determinism): the same scenario and seed give a byte-identical
    ftrace text, run after run in one process; another seed gives another trace."""
    a = trace_text(7)
    b = trace_text(7)
    assert a.count("\n") > 200
    assert "irq_handler_entry" in a
    assert f"vec={int(TASKLET)} [action=TASKLET]" in a
    assert a.encode() == b.encode()
    assert trace_text(8) != a


def test_ftrace_is_identical_across_processes_and_hash_seeds() -> None:
    """STYLE.md rule 3 (determinism): nothing depends on hash order or object addresses:
    fresh interpreters with different PYTHONHASHSEED print the same ftrace text."""
    here = Path(__file__).resolve().parent
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_accounting as t; "
        "sys.stdout.write(t.trace_text(7))"
    )
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run(
            [sys.executable, "-c", code, str(here)],
            env=env,
            capture_output=True,
            check=True,
            timeout=120,
        )
        outs.append(res.stdout)
    assert outs[0] == outs[1]
    assert outs[0] == trace_text(7).encode()


def test_free_irq_with_a_raise_in_flight_settles_it() -> None:
    """API.md identity: an edge already waiting in a CPU's request register when free_irq
    removes the line's last action must still settle (here: lost), so the quiet machine has
    nothing in flight and raised == accepted + coalesced + lost."""
    k = make_kernel(cpus=1, trace=None)
    victim_calls: list[int] = []

    def slow(irq: int, dev_id: Any) -> Any:
        k.udelay(10)  # CPU 0 has IRQs off from 1 us to 11 us
        return IRQ_HANDLED

    def victim(irq: int, dev_id: Any) -> Any:
        victim_calls.append(k.now())
        return IRQ_HANDLED

    k.request_irq(FIRST_IRQ, slow, 0, "slow")
    k.request_irq(FIRST_IRQ + 1, victim, 0, "victim")
    k.call_at(1_000, k.raise_irq, FIRST_IRQ)
    k.call_at(2_000, k.raise_irq, FIRST_IRQ + 1)  # waits in CPU 0's request register
    k.run(until=5_000)
    assert k.free_irq(FIRST_IRQ + 1) == "victim"
    k.run()
    assert victim_calls == []
    s = k.statistics().irqs[FIRST_IRQ + 1]
    assert s.in_flight == 0
    assert s.raised == s.accepted + s.coalesced + s.lost == 1
