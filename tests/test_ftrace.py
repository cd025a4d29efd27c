"""Golden tests for irqflow.trace.ftrace: ftrace text lines, flags and the nop header.

Expected lines are written out by hand from v6.13 kernel/trace/trace_output.c
(trace_print_context, trace_print_lat_fmt, trace_print_time), kernel/trace/trace.c
(print_func_help_header_irq) and the TP_printk formats of include/trace/events/*.h.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from irqflow.core.constants import (
    HARDIRQ_OFFSET,
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_OFFSET,
    TIMER_SOFTIRQ,
)
from irqflow.trace.event import TraceEvent
from irqflow.trace.ftrace import fake_pointer, format_event, format_trace, write_ftrace

#: The prefix every event in the field-format tests gets (kworker/0:1, pid 42, CPU 0, 1 s).
PREFIX = "     kworker/0:1-42      [000] .....     1.000000: "


def event(
    name: str,
    fields: dict[str, Any] | None = None,
    *,
    ts: int = 1_000_000_000,
    cpu: int = 0,
    comm: str = "kworker/0:1",
    pid: int = 42,
    preempt_count: int = 0,
    irqs_off: bool = False,
    need_resched: bool = False,
    migrate_disable: int = 0,
) -> TraceEvent:
    return TraceEvent(
        name=name,
        ts=ts,
        cpu=cpu,
        comm=comm,
        pid=pid,
        fields=fields if fields is not None else {},
        preempt_count=preempt_count,
        irqs_off=irqs_off,
        need_resched=need_resched,
        migrate_disable=migrate_disable,
    )


def rx_tasklet_fn(data: object) -> None:
    """A function whose name the ``%ps`` fields print."""


# --- the line ------------------------------------------------------------------------------


def test_spec_example_lines() -> None:
    """Invariant 65: the three example lines of the spec, flags and all."""
    hardirq = event(
        "irq:irq_handler_entry",
        {"irq": 33, "name": "eth0"},
        ts=4321_123_456_000,
        cpu=2,
        comm="swapper/2",
        pid=0,
        preempt_count=0x10001,
        irqs_off=True,
    )
    softirq = event(
        "irq:softirq_entry",
        {"vec": 3},
        ts=4321_130_001_000,
        cpu=2,
        comm="ksoftirqd/2",
        pid=24,
        preempt_count=0x100,
    )
    work = event(
        "workqueue:workqueue_execute_start",
        {"work": 0x5D1E2C3A, "function": "vmstat_update"},
        ts=4321_140_000_000,
        cpu=2,
        comm="kworker/2:1",
        pid=87,
    )
    assert format_event(hardirq) == (
        "          <idle>-0       [002] d.h1.  4321.123456: irq_handler_entry: irq=33 name=eth0"
    )
    assert format_event(softirq) == (
        "     ksoftirqd/2-24      [002] ..s..  4321.130001: softirq_entry: vec=3 [action=NET_RX]"
    )
    assert format_event(work) == (
        "     kworker/2:1-87      [002] .....  4321.140000: workqueue_execute_start: "
        "work struct 000000005d1e2c3a: function vmstat_update"
    )


@pytest.mark.parametrize(
    ("preempt_count", "irqs_off", "need_resched", "flags"),
    [
        (0x0, False, False, "....."),
        (0x0, True, False, "d...."),
        (0x200, False, False, "b...."),
        (0x200, True, False, "D...."),
        (0x400, True, False, "D...."),
        (0x0, False, True, ".N..."),
        (0x100, False, False, "..s.."),
        (0x101, False, False, "..s1."),
        (0x300, False, False, "b.s.."),
        (0x10000, True, False, "d.h.."),
        (0x10100, True, False, "d.H.."),
        (0x20000, True, True, "dNh.."),
        (0x10201, True, True, "DNh1."),
        (0x110000, True, False, "d.Z.."),
        (0x100000, True, False, "d.z.."),
        (0x3, False, False, "...3."),
        (0xA, False, False, "...a."),
        (0xF, False, False, "...f."),
        (0x20, False, False, "...f."),
        (0xFF, True, True, "dN.f."),
    ],
)
def test_irq_info_flags(preempt_count: int, irqs_off: bool, need_resched: bool, flags: str) -> None:
    """Invariant 65: flag 1 in {D,d,b,.} (BH disabled means a count >= 0x200, not the
    serving bit), flag 2 N or ., flag 3 in {Z,z,H,h,s,.}, flag 4 the preempt depth in hex
    capped at 15, flag 5 always '.'."""
    ev = event(
        "irqflow:irq_replay",
        {"irq": 5},
        ts=1_000_000,
        cpu=1,
        comm="bash",
        pid=1234,
        preempt_count=preempt_count,
        irqs_off=irqs_off,
        need_resched=need_resched,
    )
    expected = f"            bash-1234    [001] {flags}     0.001000: irq_replay: irq=5"
    assert format_event(ev) == expected


IDLE = 1  # the idle task's own preempt count on a PREEMPT_COUNT 6.13 kernel


@pytest.mark.parametrize(
    ("what", "name", "preempt_count", "irqs_off", "need_resched", "flags"),
    [
        ("hardirq on an idle CPU", "irq:irq_handler_entry", HARDIRQ_OFFSET + IDLE, True,
         False, "d.h1."),
        ("the same after a wakeup flagged resched", "irq:irq_handler_exit",
         HARDIRQ_OFFSET + IDLE, True, True, "dNh1."),
        ("hardirq on a task at depth 0", "irq:irq_handler_entry", HARDIRQ_OFFSET, True, False,
         "d.h.."),
        ("hardirq inside a serving softirq", "irq:irq_handler_entry",
         HARDIRQ_OFFSET + SOFTIRQ_OFFSET, True, False, "d.H.."),
        ("softirq at irq exit on an idle CPU", "irq:softirq_entry", SOFTIRQ_OFFSET + IDLE,
         False, False, "..s1."),
        ("softirq on a task", "irq:softirq_entry", SOFTIRQ_OFFSET, False, False, "..s.."),
        ("raise inside a hardirq", "irq:softirq_raise", HARDIRQ_OFFSET, True, False, "d.h.."),
        ("sched_switch: IRQs off, schedule + rq lock", "sched:sched_switch", 2, True, False,
         "d..2."),
        ("sched_waking from a task", "sched:sched_waking", 2, True, False, "d..2."),
        ("sched_wakeup from a task, rq lock held", "sched:sched_wakeup", 3, True, False,
         "d..3."),
        ("sched_waking from a hardirq on an idle CPU", "sched:sched_waking",
         HARDIRQ_OFFSET + 3, True, False, "d.h3."),
        ("sched_wakeup from a hardirq on an idle CPU", "sched:sched_wakeup",
         HARDIRQ_OFFSET + 4, True, True, "dNh4."),
        ("BH disabled only", "irq:softirq_raise", SOFTIRQ_DISABLE_OFFSET, False, False, "b...."),
        ("IRQs off and BH disabled", "irq:softirq_raise", SOFTIRQ_DISABLE_OFFSET, True, False,
         "D...."),
        ("local_bh_disable inside a softirq", "irq:softirq_raise",
         SOFTIRQ_OFFSET + SOFTIRQ_DISABLE_OFFSET, False, False, "b.s.."),
    ],
)  # fmt: skip
def test_typical_context_strings_of_6_13(
    what: str, name: str, preempt_count: int, irqs_off: bool, need_resched: bool, flags: str
) -> None:
    """The memo's typical context columns (section 14, 17), from the preempt count, IRQ
    flag and need-resched state the core records: the idle task's own count 1 shows in the
    depth digit (``d.h1.``), sched_switch is ``d..2.``, hardirq inside a serving softirq is
    ``H``, and BH-disabled without IRQs off is ``b``."""
    ev = event(name, {}, preempt_count=preempt_count, irqs_off=irqs_off,
               need_resched=need_resched)  # fmt: skip
    assert format_event(ev).split()[2] == flags, what


@pytest.mark.parametrize(
    ("migrate", "flags"), [(0, "....."), (1, "....1"), (2, "....2"), (15, "....f"), (40, "....f")]
)
def test_migrate_disable_column(migrate: int, flags: str) -> None:
    """Flag 5 is the task's migrate_disable() depth in hex, capped at 15, ``.`` when 0 (on
    PREEMPT_RT a spinlock_t section shows 1)."""
    ev = event("irqflow:irq_replay", {"irq": 1}, migrate_disable=migrate)
    assert format_event(ev) == PREFIX.replace(".....", flags) + "irq_replay: irq=1"


@pytest.mark.parametrize(
    ("ts", "stamp"),
    [
        (0, "    0.000000"),
        (1_000, "    0.000001"),
        (4321_123_456_000, " 4321.123456"),
        (1_000_000_499, "    1.000000"),
        (1_000_000_500, "    1.000001"),
        (1_999_999_500, "    2.000000"),
        (123456_000_000_000, "123456.000000"),
    ],
)
def test_timestamp_is_seconds_and_rounded_microseconds(ts: int, stamp: str) -> None:
    """Invariant 65: ``" %5lu.%06lu"`` of ns2usecs(ts), which rounds to the nearest µs."""
    line = format_event(event("irqflow:irq_restore", {"irq": 1}, ts=ts))
    assert line == "     kworker/0:1-42      [000] ..... " + stamp + ": irq_restore: irq=1"


def test_comm_and_pid_columns() -> None:
    """``%16s-%-7d [%03d]``: pid 0 prints ``<idle>``, a comm keeps at most 15 characters,
    and wide pids and CPU numbers push the columns instead of being cut."""
    idle = event("irqflow:irq_replay", {"irq": 1}, ts=0, cpu=10, comm="swapper/10", pid=0)
    long_comm = event(
        "irqflow:irq_replay",
        {"irq": 1},
        ts=123456_000_000_000,
        cpu=3,
        comm="kworker/u16:3-events_unbound",
        pid=99,
    )
    wide = event("irqflow:irq_replay", {"irq": 1}, ts=0, cpu=1234, comm="p", pid=12345678)
    assert format_event(idle) == (
        "          <idle>-0       [010] .....     0.000000: irq_replay: irq=1"
    )
    assert format_event(long_comm) == (
        " kworker/u16:3-e-99      [003] ..... 123456.000000: irq_replay: irq=1"
    )
    assert format_event(wide) == (
        "               p-12345678 [1234] .....     0.000000: irq_replay: irq=1"
    )


# --- event fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "text"),
    [
        (
            "irq:irq_handler_entry",
            {"irq": 33, "name": "eth0"},
            "irq_handler_entry: irq=33 name=eth0",
        ),
        (
            "irq:irq_handler_exit",
            {"irq": 33, "ret": IRQ_HANDLED},
            "irq_handler_exit: irq=33 ret=handled",
        ),
        (
            "irq:irq_handler_exit",
            {"irq": 9, "ret": IRQ_NONE},
            "irq_handler_exit: irq=9 ret=unhandled",
        ),
        (
            "irq:irq_handler_exit",
            {"irq": 33, "ret": IRQ_WAKE_THREAD},
            "irq_handler_exit: irq=33 ret=handled",
        ),
        (
            "irq:irq_handler_exit",
            {"irq": 33, "ret": IRQ_HANDLED | IRQ_WAKE_THREAD},
            "irq_handler_exit: irq=33 ret=handled",
        ),
        ("irq:irq_handler_exit", {"irq": 7, "ret": 0x40}, "irq_handler_exit: irq=7 ret=handled"),
        ("irq:irq_handler_exit", {"irq": 7, "ret": None}, "irq_handler_exit: irq=7 ret=unhandled"),
        (
            "napi:napi_poll",
            {"napi": "eth0", "dev_name": "eth0", "work": 12, "budget": 64},
            "napi_poll: napi poll on napi struct 000000009216d69d for device eth0 work 12 "
            "budget 64",
        ),
        (
            "napi:napi_poll",
            {"napi": 0xFFFF888104A60010, "dev_name": "enp3s0", "work": 64, "budget": 64},
            "napi_poll: napi poll on napi struct ffff888104a60010 for device enp3s0 work 64 "
            "budget 64",
        ),
        (
            "napi:napi_poll",
            {"napi": "eth0", "work": 0, "budget": 64},
            "napi_poll: napi poll on napi struct 000000009216d69d for device eth0 work 0 budget 64",
        ),
        (
            "timer:timer_expire_entry",
            {
                "timer": "watchdog",
                "function": "watchdog_fire",
                "now": 4294937296,
                "baseclk": 4294937295,
            },
            "timer_expire_entry: timer=0000000030497f4b function=watchdog_fire now=4294937296 "
            "baseclk=4294937295",
        ),
        (
            "timer:timer_expire_entry",
            {"timer": "watchdog", "now": 1000, "function": rx_tasklet_fn},
            "timer_expire_entry: timer=0000000030497f4b function=rx_tasklet_fn now=1000 "
            "baseclk=1000",
        ),
        (
            "timer:timer_expire_exit",
            {"timer": "watchdog"},
            "timer_expire_exit: timer=0000000030497f4b",
        ),
        (
            "timer:hrtimer_expire_entry",
            {"hrtimer": "sleeper", "function": "hrtimer_wakeup", "now": 1_000_123_456},
            "hrtimer_expire_entry: hrtimer=00000000f5e91034 function=hrtimer_wakeup now=1000123456",
        ),
        (
            "timer:hrtimer_expire_exit",
            {"hrtimer": "sleeper"},
            "hrtimer_expire_exit: hrtimer=00000000f5e91034",
        ),
        ("irq_vectors:local_timer_entry", {"vector": 236}, "local_timer_entry: vector=236"),
        ("irq_vectors:local_timer_exit", {}, "local_timer_exit: vector=236"),
        ("irq_vectors:reschedule_entry", {}, "reschedule_entry: vector=253"),
        ("irq_vectors:irq_work_exit", {"vector": 246}, "irq_work_exit: vector=246"),
        ("irq_vectors:call_function_single_entry", {}, "call_function_single_entry: vector=251"),
        ("irq:softirq_raise", {"vec": 3}, "softirq_raise: vec=3 [action=NET_RX]"),
        ("irq:softirq_entry", {"vec": 0}, "softirq_entry: vec=0 [action=HI]"),
        ("irq:softirq_exit", {"vec": 9}, "softirq_exit: vec=9 [action=RCU]"),
        ("irq:softirq_entry", {"vec": TIMER_SOFTIRQ}, "softirq_entry: vec=1 [action=TIMER]"),
        ("irq:softirq_raise", {"vec": 12}, "softirq_raise: vec=12 [action=0xc]"),
        (
            "irq:tasklet_entry",
            {"tasklet": "rx_tasklet", "func": "rx_tasklet_fn"},
            "tasklet_entry: tasklet=rx_tasklet function=rx_tasklet_fn",
        ),
        (
            "irq:tasklet_exit",
            {"tasklet": "rx_tasklet", "func": rx_tasklet_fn},
            "tasklet_exit: tasklet=rx_tasklet function=rx_tasklet_fn",
        ),
        (
            "sched:sched_switch",
            {
                "prev_comm": "bash",
                "prev_pid": 1234,
                "prev_prio": 120,
                "prev_state": "R+",
                "next_comm": "irq/33-eth0",
                "next_pid": 87,
                "next_prio": 49,
            },
            "sched_switch: prev_comm=bash prev_pid=1234 prev_prio=120 prev_state=R+ ==> "
            "next_comm=irq/33-eth0 next_pid=87 next_prio=49",
        ),
        (
            "sched:sched_switch",
            {
                "prev_comm": "irq/33-eth0",
                "prev_pid": 87,
                "prev_prio": 49,
                "prev_state": 0x1,
                "next_comm": "swapper/0",
                "next_pid": 0,
                "next_prio": 120,
            },
            "sched_switch: prev_comm=irq/33-eth0 prev_pid=87 prev_prio=49 prev_state=S ==> "
            "next_comm=swapper/0 next_pid=0 next_prio=120",
        ),
        (
            "sched:sched_wakeup",
            {"comm": "irq/33-eth0", "pid": 87, "prio": 49, "target_cpu": 2},
            "sched_wakeup: comm=irq/33-eth0 pid=87 prio=49 target_cpu=002",
        ),
        (
            "sched:sched_waking",
            {"comm": "ksoftirqd/1", "pid": 18, "prio": 120, "target_cpu": 1},
            "sched_waking: comm=ksoftirqd/1 pid=18 prio=120 target_cpu=001",
        ),
        (
            "sched:sched_wakeup_new",
            {"comm": "kworker/0:2", "pid": 301, "prio": 120, "target_cpu": 0},
            "sched_wakeup_new: comm=kworker/0:2 pid=301 prio=120 target_cpu=000",
        ),
        (
            "workqueue:workqueue_queue_work",
            {
                "work": 0xFFFF8881003A2C40,
                "function": "vmstat_update",
                "workqueue": "events",
                "req_cpu": 8192,
                "cpu": 0,
            },
            "workqueue_queue_work: work struct=ffff8881003a2c40 function=vmstat_update "
            "workqueue=events req_cpu=8192 cpu=0",
        ),
        (
            "workqueue:workqueue_queue_work",
            {
                "work": "000000005d1e2c3a",
                "function": rx_tasklet_fn,
                "workqueue": "events_unbound",
                "req_cpu": 8192,
                "cpu": -1,
            },
            "workqueue_queue_work: work struct=000000005d1e2c3a function=rx_tasklet_fn "
            "workqueue=events_unbound req_cpu=8192 cpu=-1",
        ),
        (
            "workqueue:workqueue_queue_work",
            {
                "work": "store",
                "function": "store_fn",
                "workqueue": "events",
                "req_cpu": 1,
                "cpu": 1,
            },
            "workqueue_queue_work: work struct=000000008f95bdb1 function=store_fn "
            "workqueue=events req_cpu=1 cpu=1",
        ),
        (
            "workqueue:workqueue_queue_work",
            {"work": "store", "function": "store_fn", "workqueue": "events_unbound"},
            "workqueue_queue_work: work struct=000000008f95bdb1 function=store_fn "
            "workqueue=events_unbound req_cpu=8192 cpu=-1",
        ),
        (
            "workqueue:workqueue_activate_work",
            {"work": "store", "function": "store_fn"},
            "workqueue_activate_work: work struct 000000008f95bdb1 function=store_fn ",
        ),
        (
            "workqueue:workqueue_execute_start",
            {"work": "store", "function": "store_fn"},
            "workqueue_execute_start: work struct 000000008f95bdb1: function store_fn",
        ),
        (
            "workqueue:workqueue_execute_end",
            {"work": "store", "function": "store_fn"},
            "workqueue_execute_end: work struct 000000008f95bdb1: function store_fn",
        ),
        (
            "workqueue:workqueue_activate_work",
            {"work": 0xFFFF8881003A2C40, "function": "vmstat_update"},
            "workqueue_activate_work: work struct ffff8881003a2c40 function=vmstat_update ",
        ),
        (
            "workqueue:workqueue_execute_start",
            {"work": 0xFFFF8881003A2C40, "function": "vmstat_update"},
            "workqueue_execute_start: work struct ffff8881003a2c40: function vmstat_update",
        ),
        (
            "workqueue:workqueue_execute_end",
            {"work": 0xFFFF8881003A2C40, "function": "vmstat_update"},
            "workqueue_execute_end: work struct ffff8881003a2c40: function vmstat_update",
        ),
        (
            "irqflow:irq_entry",
            {"irq": 33, "interrupted": "softirq"},
            "irq_entry: irq=33 interrupted=softirq",
        ),
        (
            "irqflow:irq_pending",
            {"irq": 33, "inprogress_cpu": 1},
            "irq_pending: irq=33 inprogress_cpu=1",
        ),
        ("irqflow:irq_replay", {"irq": 9}, "irq_replay: irq=9"),
        ("irqflow:irq_restore", {"irq": 9}, "irq_restore: irq=9"),
        (
            "irqflow:ksoftirqd_wakeup",
            {"reason": "restart_limit"},
            "ksoftirqd_wakeup: reason=restart_limit",
        ),
    ],
)
def test_event_fields_follow_the_print_fmt(name: str, fields: dict[str, Any], text: str) -> None:
    """Each known event prints its fields the way its TP_printk() does."""
    assert format_event(event(name, fields)) == PREFIX + text


@pytest.mark.parametrize(
    ("state", "text"),
    [(0x0, "R"), (0x100, "R+"), (0x1, "S"), (0x2, "D"), (0x3, "S|D"), (0x40, "P"), (0x80, "I")],
)
def test_sched_switch_prev_state_bits(state: int, text: str) -> None:
    """An integer prev_state decodes like the kernel's __print_flags() table, ``R`` when no
    bit is set and ``+`` for a preempted task."""
    fields = {
        "prev_comm": "a",
        "prev_pid": 1,
        "prev_prio": 120,
        "prev_state": state,
        "next_comm": "b",
        "next_pid": 2,
        "next_prio": 120,
    }
    assert format_event(event("sched:sched_switch", fields)) == (
        PREFIX + "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=" + text + " ==> "
        "next_comm=b next_pid=2 next_prio=120"
    )


def test_fake_pointers_are_stable_per_object_and_kind() -> None:
    """A named object prints the same pointer in every line (and run); another object, or
    another kind of object with the same name, prints another one; all look like the
    kernel's hashed pointers (16 hex digits, the upper 8 zero)."""
    queue = event("workqueue:workqueue_queue_work",
                  {"work": "store", "function": "f", "workqueue": "events"})  # fmt: skip
    start = event("workqueue:workqueue_execute_start", {"work": "store", "function": "f"})
    other = event("workqueue:workqueue_execute_start", {"work": "load", "function": "f"})
    timer = event("timer:timer_expire_exit", {"timer": "store"})
    ptr = fake_pointer("work", "store")
    assert ptr == "000000008f95bdb1"
    assert f"work struct={ptr} " in format_event(queue)
    assert f"work struct {ptr}:" in format_event(start)
    assert ptr not in format_event(other)
    assert format_event(timer).endswith(f"timer={fake_pointer('timer', 'store')}")
    assert fake_pointer("timer", "store") != ptr


def test_unknown_events_print_key_value_pairs() -> None:
    """An event irqflow has no format for prints its fields as key=value in dict order; a
    known event whose fields do not fit falls back to the same form instead of failing."""
    custom = event("custom:thing", {"napi": "eth0", "work": 64, "budget": 64})
    broken = event("irq:irq_handler_entry", {"irq": 5})
    bare = event("custom:marker")
    assert format_event(custom) == PREFIX + "thing: napi=eth0 work=64 budget=64"
    assert format_event(broken) == PREFIX + "irq_handler_entry: irq=5"
    assert format_event(bare) == PREFIX + "marker: "


# --- the file --------------------------------------------------------------------------------

HEADER = (
    "# tracer: nop\n"
    "#\n"
    "# entries-in-buffer/entries-written: 3/3   #P:4\n"
    "#\n"
    "#                                _-----=> irqs-off/BH-disabled\n"
    "#                               / _----=> need-resched\n"
    "#                              | / _---=> hardirq/softirq\n"
    "#                              || / _--=> preempt-depth\n"
    "#                              ||| / _-=> migrate-disable\n"
    "#                              |||| /     delay\n"
    "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
    "#              | |         |   |||||     |         |\n"
)


def three_events() -> list[TraceEvent]:
    return [
        event("irqflow:irq_replay", {"irq": 3}, ts=2_000_000_000, cpu=1),
        event("irqflow:irq_replay", {"irq": 2}, ts=1_000_000_000, cpu=3),
        event("irqflow:irq_replay", {"irq": 1}, ts=1_000_000_000, cpu=0),
    ]


def test_format_trace_header_and_merge_order() -> None:
    """The nop tracer's header (entries, #P, the 5-flag legend), then the lines merged by
    (timestamp, CPU)."""
    assert format_trace(three_events(), 4) == HEADER + (
        "     kworker/0:1-42      [000] .....     1.000000: irq_replay: irq=1\n"
        "     kworker/0:1-42      [003] .....     1.000000: irq_replay: irq=2\n"
        "     kworker/0:1-42      [001] .....     2.000000: irq_replay: irq=3\n"
    )


def test_format_trace_keeps_order_of_ties_and_can_skip_the_header() -> None:
    """Events with the same (timestamp, CPU) keep their recorded order; header=False gives
    only the lines."""
    events = [
        event("irq:softirq_entry", {"vec": 1}, ts=5_000, cpu=0, preempt_count=0x100),
        event("irq:softirq_exit", {"vec": 1}, ts=5_000, cpu=0, preempt_count=0x100),
    ]
    assert format_trace(events, 1, header=False) == (
        "     kworker/0:1-42      [000] ..s..     0.000005: softirq_entry: vec=1 [action=TIMER]\n"
        "     kworker/0:1-42      [000] ..s..     0.000005: softirq_exit: vec=1 [action=TIMER]\n"
    )


def test_format_trace_of_nothing_is_just_the_header() -> None:
    """An empty trace still has the header, with zero entries."""
    assert format_trace([], 2) == HEADER.replace("3/3   #P:4", "0/0   #P:2")


def test_write_ftrace_writes_the_formatted_trace(tmp_path: Path) -> None:
    """write_ftrace() writes exactly format_trace() with its header."""
    path = tmp_path / "trace.txt"
    write_ftrace(path, three_events(), 4)
    assert path.read_text(encoding="utf-8") == format_trace(three_events(), 4)
    assert path.read_text(encoding="utf-8").startswith(HEADER)


# --- a wrapped ring buffer --------------------------------------------------------------------


def wrapped_events() -> list[TraceEvent]:
    """What is left of a trace whose ring buffer overwrote events: CPU 1 first, then CPU 0
    twice, then CPU 2 and CPU 3 for the first time."""
    return [
        event("irqflow:irq_replay", {"irq": 1}, ts=1_000, cpu=1),
        event("irqflow:irq_replay", {"irq": 2}, ts=2_000, cpu=0),
        event("irqflow:irq_replay", {"irq": 3}, ts=3_000, cpu=0),
        event("irqflow:irq_replay", {"irq": 4}, ts=4_000, cpu=2),
        event("irqflow:irq_replay", {"irq": 5}, ts=5_000, cpu=1),
        event("irqflow:irq_replay", {"irq": 6}, ts=6_000, cpu=3),
    ]


def line_of(irq: int, cpu: int) -> str:
    return f"     kworker/0:1-42      [{cpu:03d}] .....     0.00000{irq}: irq_replay: irq={irq}\n"


def test_wrapped_buffer_header_counts_kept_and_written_and_annotates_cpu_starts() -> None:
    """print_event_info(): entries kept / kept + overwritten.  With overruns the ``trace``
    iterator prints ``##### CPU N buffer started ####`` before each CPU's first line, except
    on the first two lines of the trace (test_cpu_buff_start()'s ``iter->idx > 1``); it
    prints no ``[LOST ...]`` line: that is the consuming reader's."""
    text = format_trace(wrapped_events(), 4, overruns={0: 5, 1: 0, 2: 2})
    assert text == HEADER.replace("3/3   #P:4", "6/13   #P:4") + (
        line_of(1, 1)
        + line_of(2, 0)
        + line_of(3, 0)
        + "##### CPU 2 buffer started ####\n"
        + line_of(4, 2)
        + line_of(5, 1)
        + "##### CPU 3 buffer started ####\n"
        + line_of(6, 3)
    )
    assert "LOST" not in text


def test_no_overruns_no_annotation() -> None:
    """Nothing overwritten (or zero counts): kept == written and no CPU banners."""
    text = format_trace(wrapped_events(), 4, overruns={0: 0})
    assert "6/6   #P:4" in text
    assert "#####" not in text


def test_trace_pipe_prints_lost_events_per_cpu() -> None:
    """pipe=True: trace_pipe's consuming reader, no header, ``CPU:N [LOST n EVENTS]`` before
    the first line read from each CPU that lost events, and no buffer-started banners."""
    text = format_trace(wrapped_events(), 4, overruns={0: 5, 2: 2}, pipe=True)
    assert text == (
        line_of(1, 1)
        + "CPU:0 [LOST 5 EVENTS]\n"
        + line_of(2, 0)
        + line_of(3, 0)
        + "CPU:2 [LOST 2 EVENTS]\n"
        + line_of(4, 2)
        + line_of(5, 1)
        + line_of(6, 3)
    )


def test_small_ring_buffer_of_a_run(tmp_path: Path) -> None:
    """A real run with a 40-event ring buffer: CPU 0 takes 60 interrupts, CPU 1 one at the
    end.  The tracer counts what it overwrote per CPU, and the file's header says kept /
    written and CPU 1's first line gets its buffer-started banner."""
    from irqflow import IRQ_HANDLED, NET_RX_SOFTIRQ, Kernel

    k = Kernel(cpus=2)
    k.trace.enable("irq:*", buffer_size=40)
    k.open_softirq(NET_RX_SOFTIRQ, lambda: k.ndelay(2000))

    def nic(irq: int, dev: object) -> int:
        k.raise_softirq(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    k.request_irq(24, nic, name="eth0")
    k.request_irq(25, nic, name="eth1")
    k.irq_set_affinity(24, [0])
    k.irq_set_affinity(25, [1])
    for i in range(60):
        k.call_at(10_000 * (i + 1), k.raise_irq, 24)
    k.call_at(605_000, k.raise_irq, 25)
    k.run()
    tr = k.trace
    assert len(tr.events()) == 40
    assert tr.overwritten == 5 * 61 - 40
    assert tr.overruns == {0: tr.overwritten}
    path = tmp_path / "trace"
    tr.write_ftrace(path)
    text = path.read_text(encoding="utf-8")
    assert f"# entries-in-buffer/entries-written: 40/{5 * 61}   #P:2\n" in text
    lines = [x for x in text.splitlines() if not x.startswith("# ")]
    banner = lines.index("##### CPU 1 buffer started ####")
    assert "[001]" in lines[banner + 1] and "eth1" in lines[banner + 1]
    assert all("[001]" not in x for x in lines[:banner])
    assert sum(x.startswith("#####") for x in lines) == 1  # CPU 0's first line is the first
    tr.clear()
    assert (tr.overwritten, tr.overruns) == (0, {})
