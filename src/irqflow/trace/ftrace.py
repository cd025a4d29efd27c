"""ftrace text output: recorded tracepoint hits as ``cat /sys/kernel/tracing/trace`` shows them.

Mirrors Linux v6.13:

* ``kernel/trace/trace_output.c``: ``trace_print_context()`` (the line prefix),
  ``trace_print_lat_fmt()`` (the five irq-info flag characters) and ``trace_print_time()``;
* ``kernel/trace/trace.c``: the nop tracer's header (``s_show()``, ``print_event_info()``,
  ``print_func_help_header_irq()``), ``tracing_gen_ctx_irq_test()`` (how the flags are taken
  from ``preempt_count``) and ``ns2usecs()``;
* the ``TP_printk()`` formats of ``include/trace/events/irq.h``, ``sched.h`` and
  ``workqueue.h``, plus irqflow's own ``irqflow:*`` stage events.

A line looks like::

          <idle>-0       [002] d.h1.  4321.123456: irq_handler_entry: irq=33 name=eth0

Pointers (``%p``) print as the kernel prints a hashed pointer on 64-bit (``hash-ptr`` is on
by default): 16 hex digits of a 32-bit value, ``00000000xxxxxxxx``.  irqflow's objects have
no addresses, so a pointer field given as a name (``"eth0"``, a work item's name) prints
a stable fake pointer, the CRC-32 of the object's kind and name: the same object shows the
same pointer in every line of a trace and in every run.  An int prints as its 16 hex
digits, and a string that already is 16 hex digits is kept.  Symbols (``%ps``) print a
string field as it is or a callable's ``__qualname__``.  An event irqflow does not know, or
a known event whose fields do not fit its format, prints its fields as ``key=value`` pairs
in dict order: formatting a trace never fails on a strange event.

The file (:func:`format_trace`) is what reading ``trace`` shows: the header counts the
entries kept and written (kept + overwritten), and when the ring buffer overwrote events
the iterator annotates the start of each CPU's data with ``##### CPU N buffer started
####``.  ``trace`` is a non-consuming reader, which prints ``CPU:N [LOST EVENTS]`` only
when the writer overtakes it during the read; reading a finished trace never does, so
those lines never appear there.  ``pipe=True`` renders ``trace_pipe`` instead: no header,
and the consuming reader's ``CPU:N [LOST n EVENTS]`` before the first line of each CPU
that lost events.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from irqflow.core.constants import (
    HARDIRQ_MASK,
    NMI_MASK,
    PREEMPT_MASK,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_NAMES,
    SOFTIRQ_OFFSET,
)
from irqflow.trace.event import TraceEvent

__all__ = ["fake_pointer", "format_event", "format_trace", "write_ftrace"]

#: include/linux/sched.h TASK_COMM_LEN (16, with the NUL): a comm shows at most 15 chars.
_TASK_COMM_LEN: Final = 16

_FieldFormatter = Callable[[Mapping[str, Any]], str]


def format_event(ev: TraceEvent) -> str:
    """One trace line without its newline: ``"%16s-%-7d [%03d] <5 flags> %5lu.%06lu: "``,
    then the event name, ``": "`` and the formatted fields (invariant 65)."""
    event = ev.event or ev.name
    return (
        f"{_comm(ev.comm, ev.pid):>16s}-{ev.pid:<7d} [{ev.cpu:03d}] "
        f"{_irq_info(ev.preempt_count, ev.irqs_off, ev.need_resched, ev.migrate_disable)} "
        f"{_timestamp(ev.ts)}: {event}: {_format_fields(event, ev.fields)}"
    )


def format_trace(
    events: Iterable[TraceEvent],
    ncpus: int,
    *,
    header: bool = True,
    overruns: Mapping[int, int] | None = None,
    pipe: bool = False,
) -> str:
    """The whole ``trace`` file: the nop tracer's header (unless ``header=False``), then one
    line per event, merged across CPUs in (timestamp, CPU) order; ties keep their order.

    ``overruns`` is the number of events the ring buffer overwrote, per CPU.  The header's
    ``entries-in-buffer/entries-written`` is kept / kept + overwritten (print_event_info()).
    When anything was overwritten, the iterator annotates (test_cpu_buff_start()): before
    the first line of each CPU it prints ``##### CPU N buffer started ####``, except for the
    CPUs of the first two lines, as the kernel's ``iter->idx > 1`` test leaves them out.

    ``pipe=True`` renders ``trace_pipe`` instead: no header and no annotation; the
    consuming reader prints ``CPU:N [LOST n EVENTS]`` before the first line it reads from
    a CPU that lost ``n`` events (print_trace_line()).
    """
    ordered = sorted(events, key=lambda ev: (ev.ts, ev.cpu))
    lost = {cpu: n for cpu, n in (overruns or {}).items() if n > 0}
    lines = []
    if header and not pipe:
        lines.append(_header(len(ordered), len(ordered) + sum(lost.values()), ncpus))
    annotate = bool(lost) and not pipe
    started: set[int] = set()
    for idx, ev in enumerate(ordered):
        if ev.cpu not in started:
            started.add(ev.cpu)
            if pipe and ev.cpu in lost:
                lines.append(f"CPU:{ev.cpu} [LOST {lost[ev.cpu]} EVENTS]\n")
            elif annotate and idx > 1:
                lines.append(f"##### CPU {ev.cpu} buffer started ####\n")
        lines.append(format_event(ev) + "\n")
    return "".join(lines)


def write_ftrace(
    path: str | os.PathLike[str],
    events: Iterable[TraceEvent],
    ncpus: int,
    *,
    overruns: Mapping[int, int] | None = None,
) -> None:
    """Write :func:`format_trace` (with header) to ``path`` as UTF-8 with ``\\n`` endings."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(format_trace(events, ncpus, overruns=overruns))


# --- the line prefix ----------------------------------------------------------------------


def _comm(comm: str, pid: int) -> str:
    """trace_find_cmdline(): pid 0 is always ``<idle>``; a comm is at most 15 characters."""
    return "<idle>" if pid == 0 else comm[: _TASK_COMM_LEN - 1]


#: flag 1, by (IRQs off, BH disabled)
_IRQS_OFF_CHAR: Final[Mapping[tuple[bool, bool], str]] = {
    (True, True): "D",
    (True, False): "d",
    (False, True): "b",
    (False, False): ".",
}


def _irq_info(preempt_count: int, irqs_off: bool, need_resched: bool, migrate: int = 0) -> str:
    """trace_print_lat_fmt() from what tracing_gen_ctx_irq_test() records.

    1. ``D`` IRQs off and BH disabled, ``d`` IRQs off, ``b`` BH disabled, ``.`` neither.
       BH disabled means ``softirq_count() >> (SOFTIRQ_SHIFT + 1)``: a local_bh_disable()
       count, not the SOFTIRQ_OFFSET bit of a running softirq.
    2. ``N`` need-resched (irqflow has no lazy or fold-only states), else ``.``.
    3. ``Z`` NMI inside hardirq, ``z`` NMI, ``H`` hardirq inside a serving softirq,
       ``h`` hardirq, ``s`` serving softirq, ``.`` task.
    4. preempt-disable depth: ``min(preempt_count & 0xff, 0xf)`` in hex, ``.`` if 0.
    5. migrate-disable depth: ``min(depth, 0xf)`` in hex, ``.`` if 0.
    """
    bh_off = (preempt_count & SOFTIRQ_MASK) >= SOFTIRQ_DISABLE_OFFSET
    irqs = _IRQS_OFF_CHAR[irqs_off, bh_off]
    resched = "N" if need_resched else "."
    nmi = preempt_count & NMI_MASK
    hardirq = preempt_count & HARDIRQ_MASK
    softirq = preempt_count & SOFTIRQ_OFFSET
    if nmi:
        hardsoft = "Z" if hardirq else "z"
    elif hardirq:
        hardsoft = "H" if softirq else "h"
    else:
        hardsoft = "s" if softirq else "."
    depth = min(preempt_count & PREEMPT_MASK, 0xF)
    preempt = f"{depth:x}" if depth else "."
    mig = min(migrate, 0xF)
    return f"{irqs}{resched}{hardsoft}{preempt}{f'{mig:x}' if mig > 0 else '.'}"


def _timestamp(ts_ns: int) -> str:
    """trace_print_time(): ``"%5lu.%06lu"`` of ns2usecs(ts), which rounds to the nearest
    microsecond (``nsec += 500; do_div(nsec, 1000)``)."""
    secs, usecs = divmod((ts_ns + 500) // 1000, 1_000_000)
    return f"{secs:5d}.{usecs:06d}"


# --- the header ---------------------------------------------------------------------------


def _header(entries: int, written: int, ncpus: int) -> str:
    """s_show() + print_event_info() + print_func_help_header_irq() without record-tgid
    (``prec`` 2 in the kernel's ``"%.*s"`` slots)."""
    return (
        "# tracer: nop\n"
        "#\n"
        f"# entries-in-buffer/entries-written: {entries}/{written}   #P:{ncpus}\n"
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


# --- event fields -------------------------------------------------------------------------


def _format_fields(event: str, fields: Mapping[str, Any]) -> str:
    formatter = _FORMATTERS.get(event)
    if formatter is not None:
        try:
            return formatter(fields)
        except (KeyError, TypeError, ValueError):
            pass  # fields that do not fit the format: fall back to the generic form
    return " ".join(f"{key}={value}" for key, value in fields.items())


def _d(value: Any) -> str:
    """``%d``"""
    return str(int(value))


def _u(value: Any) -> str:
    """``%u`` (a 32-bit unsigned int)"""
    return str(int(value) & 0xFFFFFFFF)


_HEX_POINTER: Final = re.compile(r"[0-9a-f]{16}")


def fake_pointer(kind: str, name: str) -> str:
    """A stable stand-in for a hashed ``%p`` of the ``kind`` object called ``name``: the
    CRC-32 of ``"kind:name"``, printed like the kernel prints a hashed pointer on 64-bit
    (16 hex digits, the upper 8 zero)."""
    return f"{zlib.crc32(f'{kind}:{name}'.encode()):016x}"


def _p(value: Any, kind: str = "") -> str:
    """``%p``: an int as the kernel's 16 hex digits, a string of 16 hex digits as it is,
    a name (or any other value) as the stable :func:`fake_pointer` of its ``kind``."""
    if isinstance(value, int):
        return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"
    text = str(value)
    return text if _HEX_POINTER.fullmatch(text) else fake_pointer(kind, text)


def _ps(value: Any) -> str:
    """``%ps`` (a symbol): a string as it is, a callable by its qualified name."""
    if isinstance(value, str):
        return value
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    return name if isinstance(name, str) else str(value)


def _s(value: Any) -> str:
    """``%s``"""
    return str(value)


def _comm_field(value: Any) -> str:
    """A ``char comm[TASK_COMM_LEN]`` field."""
    return str(value)[: _TASK_COMM_LEN - 1]


def _softirq_name(vec: int) -> str:
    """show_softirq_name(): __print_symbolic() prints an unknown value as ``0x%lx``."""
    return SOFTIRQ_NAMES[vec] if 0 <= vec < len(SOFTIRQ_NAMES) else f"0x{vec:x}"


#: include/trace/events/sched.h __print_flags() table for prev_state (TASK_REPORT bits).
_TASK_STATE_LETTERS: Final = (
    (0x01, "S"),
    (0x02, "D"),
    (0x04, "T"),
    (0x08, "t"),
    (0x10, "X"),
    (0x20, "Z"),
    (0x40, "P"),
    (0x80, "I"),
)
_TASK_REPORT_MAX: Final = 0x100  # set for a preempted task: prints "R+"


def _prev_state(value: Any) -> str:
    """``prev_state=%s%s``: a string is printed as it is; an int is decoded like the kernel
    (letters joined by ``|``, ``R`` when none, ``+`` for preemption)."""
    if isinstance(value, str):
        return value
    state = int(value)
    reported = state & (_TASK_REPORT_MAX - 1)
    letters = "|".join(ch for bit, ch in _TASK_STATE_LETTERS if reported & bit)
    return (letters or "R") + ("+" if state & _TASK_REPORT_MAX else "")


def _irq_handler_entry(f: Mapping[str, Any]) -> str:
    return f"irq={_d(f['irq'])} name={_s(f['name'])}"


def _handled(ret: Any) -> str:
    """``__entry->ret ? "handled" : "unhandled"``: any non-zero return is handled (a
    bogus value too); a value that is not a number counts by its truth."""
    try:
        nonzero = int(ret) != 0
    except (TypeError, ValueError):
        nonzero = bool(ret)
    return "handled" if nonzero else "unhandled"


def _irq_handler_exit(f: Mapping[str, Any]) -> str:
    return f"irq={_d(f['irq'])} ret={_handled(f['ret'])}"


def _softirq(f: Mapping[str, Any]) -> str:
    vec = int(f["vec"])
    return f"vec={_u(vec)} [action={_softirq_name(vec)}]"


def _tasklet(f: Mapping[str, Any]) -> str:
    return f"tasklet={_ps(f['tasklet'])} function={_ps(f['func'])}"


def _sched_switch(f: Mapping[str, Any]) -> str:
    return (
        f"prev_comm={_comm_field(f['prev_comm'])} prev_pid={_d(f['prev_pid'])} "
        f"prev_prio={_d(f['prev_prio'])} prev_state={_prev_state(f['prev_state'])} "
        f"==> next_comm={_comm_field(f['next_comm'])} next_pid={_d(f['next_pid'])} "
        f"next_prio={_d(f['next_prio'])}"
    )


def _sched_wakeup(f: Mapping[str, Any]) -> str:
    return (
        f"comm={_comm_field(f['comm'])} pid={_d(f['pid'])} prio={_d(f['prio'])} "
        f"target_cpu={int(f['target_cpu']):03d}"
    )


#: include/linux/workqueue.h WORK_CPU_UNBOUND = NR_CPUS; 8192 is a distro kernel's
#: CONFIG_NR_CPUS.  queue_work()/schedule_work() trace it as req_cpu.
WORK_CPU_UNBOUND: Final = 8192


def _workqueue_queue_work(f: Mapping[str, Any]) -> str:
    """``req_cpu`` is the CPU the caller asked for (WORK_CPU_UNBOUND for queue_work()),
    ``cpu`` the pool's CPU (-1 for an unbound pool); a missing req_cpu prints as
    WORK_CPU_UNBOUND and a missing cpu as -1."""
    return (
        f"work struct={_p(f['work'], 'work')} function={_ps(f['function'])} "
        f"workqueue={_s(f['workqueue'])} req_cpu={_d(f.get('req_cpu', WORK_CPU_UNBOUND))} "
        f"cpu={_d(f.get('cpu', -1))}"
    )


def _workqueue_activate_work(f: Mapping[str, Any]) -> str:
    return f"work struct {_p(f['work'], 'work')} function={_ps(f['function'])} "


def _workqueue_execute(f: Mapping[str, Any]) -> str:
    return f"work struct {_p(f['work'], 'work')}: function {_ps(f['function'])}"


def _napi_poll(f: Mapping[str, Any]) -> str:
    """include/trace/events/napi.h: the napi struct is a pointer (a fake one from the NAPI
    instance's name); the device name defaults to the NAPI's name."""
    napi = f["napi"]
    dev = f.get("dev_name", napi)
    return (
        f"napi poll on napi struct {_p(napi, 'napi')} for device {_s(dev)} "
        f"work {_d(f['work'])} budget {_d(f['budget'])}"
    )


def _lu(value: Any) -> str:
    """``%lu`` (a 64-bit unsigned long)"""
    return str(int(value) & 0xFFFFFFFFFFFFFFFF)


def _timer_head(f: Mapping[str, Any], kind: str) -> str:
    """``timer=%p function=%ps`` (or ``hrtimer=``); a missing ``function`` prints the
    timer's name."""
    timer = f[kind]
    return f"{kind}={_p(timer, kind)} function={_ps(f.get('function', timer))}"


def _timer_expire_entry(f: Mapping[str, Any]) -> str:
    """include/trace/events/timer.h: ``now`` is jiffies, ``baseclk`` the timer base's clock
    when the timer ran; a missing ``baseclk`` prints ``now`` (the value on a CPU whose
    wheel is not catching up)."""
    now = f["now"]
    return f"{_timer_head(f, 'timer')} now={_lu(now)} baseclk={_lu(f.get('baseclk', now))}"


def _hrtimer_expire_entry(f: Mapping[str, Any]) -> str:
    return f"{_timer_head(f, 'hrtimer')} now={_lu(f['now'])}"


def _pointer_only(kind: str) -> _FieldFormatter:
    """``"timer=%p"`` and the like: the one pointer field named ``kind``."""

    def fmt(f: Mapping[str, Any]) -> str:
        return f"{kind}={_p(f[kind], kind)}"

    return fmt


#: arch/x86/include/asm/irq_vectors.h: the vectors of the irq_vectors events
_X86_VECTORS: Final[Mapping[str, int]] = {
    "local_timer": 0xEC,
    "spurious_apic": 0xFF,
    "error_apic": 0xFE,
    "reschedule": 0xFD,
    "call_function": 0xFC,
    "call_function_single": 0xFB,
    "thermal_apic": 0xFA,
    "threshold_apic": 0xF9,
    "x86_platform_ipi": 0xF7,
    "irq_work": 0xF6,
    "deferred_error_apic": 0xF4,
}


def _vector_event(default: int) -> _FieldFormatter:
    """arch/x86/include/asm/trace/irq_vectors.h ``"vector=%d"``; a missing field prints
    the event's own vector (LOCAL_TIMER_VECTOR 236 for local_timer_entry)."""

    def fmt(f: Mapping[str, Any]) -> str:
        return f"vector={_d(f.get('vector', default))}"

    return fmt


def _irq_entry(f: Mapping[str, Any]) -> str:
    return f"irq={_d(f['irq'])} interrupted={_s(f['interrupted'])}"


def _irq_pending(f: Mapping[str, Any]) -> str:
    return f"irq={_d(f['irq'])} inprogress_cpu={_d(f['inprogress_cpu'])}"


def _irq_only(f: Mapping[str, Any]) -> str:
    return f"irq={_d(f['irq'])}"


def _ksoftirqd_wakeup(f: Mapping[str, Any]) -> str:
    return f"reason={_s(f['reason'])}"


#: Event name (without its system) -> the text its TP_printk() produces.
_FORMATTERS: Final[Mapping[str, _FieldFormatter]] = {
    # include/trace/events/irq.h
    "irq_handler_entry": _irq_handler_entry,
    "irq_handler_exit": _irq_handler_exit,
    "softirq_raise": _softirq,
    "softirq_entry": _softirq,
    "softirq_exit": _softirq,
    "tasklet_entry": _tasklet,
    "tasklet_exit": _tasklet,
    # include/trace/events/sched.h
    "sched_switch": _sched_switch,
    "sched_waking": _sched_wakeup,
    "sched_wakeup": _sched_wakeup,
    "sched_wakeup_new": _sched_wakeup,
    # include/trace/events/workqueue.h
    "workqueue_queue_work": _workqueue_queue_work,
    "workqueue_activate_work": _workqueue_activate_work,
    "workqueue_execute_start": _workqueue_execute,
    "workqueue_execute_end": _workqueue_execute,
    # include/trace/events/napi.h
    "napi_poll": _napi_poll,
    # include/trace/events/timer.h
    "timer_expire_entry": _timer_expire_entry,
    "timer_expire_exit": _pointer_only("timer"),
    "timer_cancel": _pointer_only("timer"),
    "timer_init": _pointer_only("timer"),
    "hrtimer_expire_entry": _hrtimer_expire_entry,
    "hrtimer_expire_exit": _pointer_only("hrtimer"),
    "hrtimer_cancel": _pointer_only("hrtimer"),
    # arch/x86/include/asm/trace/irq_vectors.h
    **{
        f"{name}_{edge}": _vector_event(vector)
        for name, vector in _X86_VECTORS.items()
        for edge in ("entry", "exit")
    },
    # irqflow's own stage events (system "irqflow")
    "irq_entry": _irq_entry,
    "irq_pending": _irq_pending,
    "irq_replay": _irq_only,
    "irq_restore": _irq_only,
    "ksoftirqd_wakeup": _ksoftirqd_wakeup,
}
