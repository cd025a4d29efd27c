"""Build and run a validated scenario on the sim engine."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from irqflow import proc
from irqflow.core.constants import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQF_SHARED,
    IRQF_TRIGGER_HIGH,
    NET_RX_SOFTIRQ,
)
from irqflow.core.napi import Napi
from irqflow.core.tasklet import Tasklet
from irqflow.devices.sim import Burst, Periodic, Poisson
from irqflow.kernel import Kernel
from irqflow.scenario.schema import Scenario


@dataclass
class DeviceStats:
    name: str
    events: int = 0
    delivered: int = 0
    dropped: int = 0


@dataclass
class Result:
    """What a run produced: the machine (for traces and plots) and its numbers."""

    scenario: Scenario
    kernel: Kernel
    devices: dict[str, DeviceStats] = field(default_factory=dict)

    def summary(self) -> str:
        k = self.kernel
        snap = k.statistics()
        lines = [
            f"scenario {self.scenario.source}: {len(k.cpus)} CPUs, "
            f"{snap.time_ns / 1e6:.3f} ms of virtual time"
        ]
        lines.append("")
        lines.append(f"{'device':<12}{'events':>10}{'delivered':>11}{'dropped':>9}")
        for d in self.devices.values():
            lines.append(f"{d.name:<12}{d.events:>10}{d.delivered:>11}{d.dropped:>9}")
        lines += ["", "CPU time", proc.mpstat(snap).rstrip("\n"), ""]
        lines += ["latency", k.latency().table().rstrip("\n"), ""]
        lines += ["/proc/interrupts", proc.interrupts(snap).rstrip("\n"), ""]
        lines += ["/proc/softirqs", proc.softirqs(snap).rstrip("\n")]
        log = [r.text for r in snap.log if r.level in ("err", "emerg")]
        if log:
            lines += ["", "kernel log", *log[:12]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        snap = self.kernel.statistics()
        lat = self.kernel.latency()
        return {
            "scenario": self.scenario.source,
            "time_ns": snap.time_ns,
            "devices": {n: vars(d) for n, d in self.devices.items()},
            "cpus": [vars_of(c) for c in snap.cpus],
            "irqs": {
                str(n): {
                    "raised": s.raised,
                    "accepted": s.accepted,
                    "coalesced": s.coalesced,
                    "lost": s.lost,
                    "unhandled": s.unhandled,
                }
                for n, s in snap.irqs.items()
            },
            "latency_ns": {
                kind: {subj: vars_of(s) for subj, s in lat[kind].items()} for kind in lat
            },
        }


def vars_of(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__slots__}


def _arrivals(k: Kernel, dev: dict[str, Any], duration_ns: int, arrive: Any) -> None:
    """Start the device's arrival process (irqflow.devices.sim) calling ``arrive``."""
    a, name = dev["arrivals"], dev["name"]
    start = int(a["start_ms"] * 1e6)
    stop = duration_ns if a["stop_ms"] < 0 else int(a["stop_ms"] * 1e6)
    if a["process"] == "burst":
        spacing = int(a["spacing_us"] * 1e3)
        Burst(
            k,
            dev["irq"],
            a["count"],
            start_ns=start,
            spacing_ns=spacing,
            name=name,
            on_event=arrive,
        )
    elif a["process"] == "periodic":
        Periodic(
            k,
            dev["irq"],
            max(1, int(a["period_us"] * 1e3)),
            start_ns=start,
            stop_ns=stop,
            name=name,
            on_event=arrive,
        )
    elif a["rate_hz"] > 0:
        Poisson(
            k, dev["irq"], a["rate_hz"], start_ns=start, stop_ns=stop, name=name, on_event=arrive
        )


def _nic(k: Kernel, dev: dict[str, Any], st: DeviceStats) -> Any:
    irq = dev["irq"]
    ring: deque[int] = deque()
    backlog = [0]

    def deliver(data: object) -> None:
        n, backlog[0] = backlog[0], 0
        k.udelay(dev["deliver_us"] * n)
        st.delivered += n

    tasklet = Tasklet(deliver, name=f"{dev['name']}_deliver")

    def take(budget: int) -> int:
        done = 0
        while ring and done < budget:
            ring.popleft()
            done += 1
        k.udelay(dev["rx_us"] * done)
        if done:
            backlog[0] += done
            k.tasklet_schedule(tasklet)
        return done

    if dev["napi"]:

        def poll(napi: Napi, budget: int) -> int:
            done = take(budget)
            if done < budget and k.napi_complete_done(napi, done):
                k.enable_irq(irq)
            return done

        napi = Napi(poll, dev["napi_weight"], name=dev["name"])

        def top(i: int, d: object) -> int:
            if not ring:
                return int(IRQ_NONE)
            k.udelay(dev["hardirq_us"])
            k.disable_irq_nosync(irq)
            k.napi_schedule(napi)
            return int(IRQ_HANDLED)
    else:

        def net_rx() -> None:
            take(64)
            if ring:
                k.raise_softirq(NET_RX_SOFTIRQ)

        k.open_softirq(NET_RX_SOFTIRQ, net_rx)

        def top(i: int, d: object) -> int:
            k.udelay(dev["hardirq_us"])
            k.raise_softirq(NET_RX_SOFTIRQ)
            return int(IRQ_HANDLED)

    def arrive() -> None:
        st.events += 1
        if len(ring) >= dev["ring"]:
            st.dropped += 1
        else:
            ring.append(1)
        k.raise_irq(irq)

    return top, arrive


def _line(k: Kernel, dev: dict[str, Any], st: DeviceStats) -> Any:
    irq, level = dev["irq"], dev["trigger"] == "level"
    tasklet = None
    if dev["tasklet_us"]:

        def bottom_half(data: object) -> None:
            k.udelay(dev["tasklet_us"])
            st.delivered += 1

        tasklet = Tasklet(bottom_half, name=f"{dev['name']}_tasklet")

    def top(i: int, d: object) -> int:
        k.udelay(dev["hardirq_us"])
        if not dev["handled"]:
            return int(IRQ_NONE)  # not my device: it stays asserted if level
        if level:
            k.set_irq_level(irq, False)  # quiet the device
        if tasklet is not None:
            k.tasklet_schedule(tasklet)
        else:
            st.delivered += 1
        return int(IRQ_HANDLED)

    def arrive() -> None:
        st.events += 1
        k.raise_irq(irq)

    return top, arrive


def run(sc: Scenario, *, trace: bool = False, until_ns: int | None = None) -> Result:
    """Build the machine of ``sc``, run it for its duration and return the result."""
    m = sc.machine
    k = Kernel(cpus=m["cpus"], config=sc.config, seed=m["seed"])
    if trace:
        k.trace.enable("*")
    result = Result(sc, k)
    duration = int(m["duration_ms"] * 1e6) if until_ns is None else until_ns
    for dev in sc.devices:
        st = result.devices.setdefault(dev["name"], DeviceStats(dev["name"]))
        top, arrive = (_nic if dev["kind"] == "nic" else _line)(k, dev, st)
        flags = (IRQF_SHARED if dev["shared"] else 0) | (
            IRQF_TRIGGER_HIGH if dev["trigger"] == "level" else 0
        )
        k.request_irq(dev["irq"], top, flags, dev["name"], dev["name"] if dev["shared"] else None)
        if dev["affinity"]:
            k.irq_set_affinity(dev["irq"], dev["affinity"])
        _arrivals(k, dev, duration, arrive)
    for th in sc.threads:
        chunk = th["chunk_us"]

        async def spin(k: Kernel, chunk: float = chunk) -> None:
            while True:
                k.udelay(chunk)
                await k.cond_resched()

        k.kthread_run(spin, th["name"], th["cpu"], th["policy"], th["prio"], th["nice"])
    k.run(until=duration)
    return result
