"""``irqflow demo``: the seed article's five stages, run and annotated.

A 2-CPU machine with two devices:

* ``i8042`` (a keyboard) on IRQ 1: the top half reads the scancode and schedules a
  tasklet that decodes it;
* ``eth0`` (a NIC) on IRQ 24: the top half acknowledges the card
  and raises ``NET_RX_SOFTIRQ``; the softirq takes up to 8 packets per run off the
  card's receive ring, re-raises itself while packets remain, and hands the packets to a
  tasklet that delivers them.

Three moments are traced: a key press (stages 1, 3, 4, 5 and the exit), two packets a
microsecond apart, and a flood of packets that keeps NET_RX busy past its restart limit,
so the rest goes to ``ksoftirqd``.

The demo runs the seed article's kernel by default (``KernelConfig.preset("2.6")``),
where a line's interrupts go to whichever CPU is idle: the second packet lands on the
other CPU while the first still runs, which shows stage 2 (the pending flag and the
replay).  ``preset="6.13"`` runs today's kernel, where each line's vector targets one CPU:
the second packet then waits for the first on that CPU, and stage 2's race is rare.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    NET_RX_SOFTIRQ,
    Kernel,
    KernelConfig,
    Tasklet,
    proc,
)
from irqflow.trace.event import TraceEvent
from irqflow.trace.ftrace import format_event

KBD_IRQ = 1
NIC_IRQ = 24
NAPI_LIKE_BUDGET = 8  # packets per NET_RX run in this toy driver

STAGES = {
    "irqflow:irq_entry": "1 entry/save",
    "irqflow:irq_pending": "2 busy elsewhere: PENDING",
    "irqflow:irq_replay": "2 PENDING set: replay",
    "irq:irq_handler_entry": "3 handler",
    "irq:irq_handler_exit": "3 handler",
    "irqflow:irq_restore": "6 exit/restore",
    "irqflow:ksoftirqd_wakeup": "4 overflow: ksoftirqd",
    "sched:sched_wakeup": "  scheduler",
    "sched:sched_switch": "  scheduler",
}
LEGEND = (
    "stages: 1 entry/save = IRQ number taken, interrupted context saved (IRQs off);",
    "        2 = same IRQ busy on another CPU: set PENDING and leave / replay it;",
    "        3 = the request_irq handlers, IRQs off; they raise softirqs and schedule tasklets;",
    "        4 = softirqs from the per-CPU pending mask, IRQs on; overflow goes to ksoftirqd;",
    "        5 = tasklets on HI/TASKLET_SOFTIRQ; 6 exit/restore = registers restored.",
)


def stage_of(ev: TraceEvent) -> str:
    """Which stage of the seed article a trace event belongs to."""
    name = ev.name
    if name in STAGES:
        return STAGES[name]
    if name.startswith("irq:tasklet_"):
        return "5 tasklet"
    if name.startswith("irq:softirq_"):
        vec = ev.fields.get("vec")
        if name == "irq:softirq_raise":
            return "3 handler raises softirq" if ev.preempt_count & 0xF0000 else "4 raise softirq"
        if vec in (0, 6):
            return "5 tasklet softirq"
        return "4 softirq"
    return ""


@dataclass
class Nic:
    """A toy network card: a receive ring the driver drains from NET_RX."""

    ring: deque[int] = field(default_factory=deque)
    ring_size: int = 256
    received: int = 0
    dropped: int = 0
    delivered: int = 0

    def packet_arrives(self, k: Kernel) -> None:
        if len(self.ring) >= self.ring_size:
            self.dropped += 1
        else:
            self.ring.append(self.received)
        self.received += 1
        k.raise_irq(NIC_IRQ)


def build(k: Kernel) -> tuple[Nic, list[str]]:
    """Install the two drivers on ``k``; returns the NIC and the keyboard's key log."""
    nic = Nic()
    keys: list[str] = []
    backlog: deque[int] = deque()
    scancodes: deque[int] = deque()

    # --- keyboard ----------------------------------------------------------------
    def kbd_decode(data: object) -> None:
        while scancodes:
            keys.append(chr(scancodes.popleft()))
            k.udelay(2)

    kbd_tasklet = Tasklet(kbd_decode, name="kbd_tasklet")

    def i8042_interrupt(irq: int, dev_id: object) -> int:
        k.udelay(3)  # read the scancode from the controller's data port
        scancodes.append(ord("a") + len(keys) + len(scancodes))
        k.tasklet_schedule(kbd_tasklet)
        return IRQ_HANDLED

    k.request_irq(KBD_IRQ, i8042_interrupt, name="i8042")
    k.irq_set_affinity(KBD_IRQ, {0})

    # --- network card ----------------------------------------------------------------
    def deliver(data: object) -> None:
        while backlog:
            backlog.popleft()
            k.udelay(1)  # hand the packet to its socket
            nic.delivered += 1

    rx_tasklet = Tasklet(deliver, name="rx_deliver")

    def net_rx_action() -> None:
        for _ in range(NAPI_LIKE_BUDGET):
            if not nic.ring:
                break
            backlog.append(nic.ring.popleft())
            k.udelay(4)  # protocol processing
        k.tasklet_schedule(rx_tasklet)
        if nic.ring:
            k.raise_softirq(NET_RX_SOFTIRQ)  # more to do: ask for another pass

    def eth0_interrupt(irq: int, dev_id: object) -> int:
        if not nic.ring:
            return IRQ_NONE
        k.udelay(1)  # acknowledge the card
        k.raise_softirq(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    k.open_softirq(NET_RX_SOFTIRQ, net_rx_action)
    k.request_irq(NIC_IRQ, eth0_interrupt, name="eth0")
    return nic, keys


def _window(events: Iterable[TraceEvent], start: int, end: int) -> list[TraceEvent]:
    return [e for e in events if start <= e.ts < end]


def _print_events(events: list[TraceEvent], out: Callable[[str], None]) -> None:
    for ev in events:
        out(f"{stage_of(ev):<26} {format_event(ev).strip()}")


#: what the demo's header calls each preset's kernel
ERAS = {
    "2.6": "the seed article's kernel (2.6 era)",
    "4.9": "Linux 4.9",
    "6.13": "Linux 6.13",
    "6.13-rt": "Linux 6.13 with PREEMPT_RT",
}


def run_demo(out: Callable[[str], None] = print, *, seed: int = 0, preset: str = "2.6") -> Kernel:
    """Run the demo on the kernel of ``preset`` and print it through ``out``; returns the
    machine for inspection."""
    config = KernelConfig.preset(preset)
    k = Kernel(cpus=2, engine="sim", config=config, seed=seed)
    nic, keys = build(k)
    k.trace.enable("irq:*,irqflow:*,sched:sched_switch,sched:sched_wakeup")
    key_at, pair_at, flood_at = 100_000, 1_000_000, 3_000_000
    k.call_at(key_at, k.raise_irq, KBD_IRQ)
    k.call_at(pair_at, nic.packet_arrives, k)
    k.call_at(pair_at + 500, nic.packet_arrives, k)
    flood, spacing = 300, 3_000
    for i in range(flood):
        k.call_at(flood_at + i * spacing, nic.packet_arrives, k)
    k.run(until=20_000_000)
    events = k.trace.events()

    out("irqflow demo: the five stages of Linux interrupt handling, on a 2-CPU machine")
    out(f"running {ERAS[preset]}: KernelConfig.preset({preset!r}) (irqflow demo --preset)")
    out(f"(virtual time, seed {seed}; each line: the stage it belongs to, then the ftrace line)")
    for legend_line in LEGEND:
        out(legend_line)
    out("")
    out("1. A key press on the keyboard (IRQ 1, i8042) while both CPUs are idle")
    _print_events(_window(events, key_at, key_at + 100_000), out)
    out("")
    if config.irq_delivery == "spray":
        out("2. Two packets 0.5 us apart (IRQ 24, eth0, may go to either CPU):")
        out("   CPU 1 takes the second interrupt while CPU 0 still runs the first one's handler")
    else:
        cpu = k.genirq.descs[NIC_IRQ].target
        out(f"2. Two packets 0.5 us apart (IRQ 24, eth0: its vector targets CPU {cpu} only):")
        out(f"   the second waits in CPU {cpu}'s request register until interrupts are on again")
        out("   (in the softirq the first raised) and is taken there; stage 2's 'busy on")
        out("   another CPU' race needs the seed era's delivery (irqflow demo --preset 2.6)")
    _print_events(_window(events, pair_at, pair_at + 100_000), out)
    out("")
    out(
        f"3. A flood: {flood} packets {spacing // 1000} us apart, more than NET_RX can keep up with"
    )
    flood_events = _window(events, flood_at, 20_000_000)
    wake = next((e for e in flood_events if e.name == "irqflow:ksoftirqd_wakeup"), None)
    passes = [e for e in flood_events if e.name == "irq:softirq_entry" and e.fields["vec"] == 3]
    out(f"   NET_RX ran {len(passes)} times; the first __do_softirq made passes until its")
    if wake is not None:
        out(f"   {wake.fields['reason']} and woke ksoftirqd; around that moment:")
        i = flood_events.index(wake)
        _print_events(flood_events[max(0, i - 6) : i + 10], out)
        later = [
            e
            for e in flood_events[i:]
            if e.name == "sched:sched_switch" and e.fields["prev_comm"] == "ksoftirqd/0"
        ]
        if later:
            out("   ... ksoftirqd is an ordinary thread; it sleeps again once the mask is empty:")
            _print_events(later[:1], out)
    out("")
    snap = k.statistics()
    out("/proc/interrupts")
    out(proc.interrupts(snap).rstrip("\n"))
    out("")
    out("/proc/softirqs")
    out(proc.softirqs(snap).rstrip("\n"))
    out("")
    line = snap.irqs[NIC_IRQ]
    out(
        f"eth0: {line.raised} raised = {line.accepted} accepted + {line.coalesced} coalesced"
        f" + {line.lost} lost (+ {line.in_flight} in flight)"
    )
    out(
        f"NIC: {nic.received} packets, {nic.delivered} delivered, {nic.dropped} dropped;"
        f" keys decoded: {''.join(keys)!r}"
    )
    out(f"ksoftirqd wakeups per CPU: {snap.ksoftirqd_wakeups}")
    return k
