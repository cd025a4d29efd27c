"""Build and run a validated scenario on the sim engine."""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from irqflow import proc
from irqflow.core.constants import (
    BLOCK_SOFTIRQ,
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    IRQF_SHARED,
    IRQF_TRIGGER_HIGH,
    NET_RX_SOFTIRQ,
)
from irqflow.core.napi import Napi
from irqflow.core.tasklet import Tasklet
from irqflow.core.workqueue import Work
from irqflow.devices.sim import Burst, Periodic, Poisson, Source
from irqflow.kernel import Kernel
from irqflow.scenario.schema import Scenario


@dataclass
class DeviceStats:
    """Per device: events that arrived, what reached its consumer, what was dropped (and
    where: ``ring``, ``socket``, ``overrun``)."""

    name: str
    events: int = 0
    delivered: int = 0
    dropped: int = 0
    drops: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    """What a run produced: the machine (for traces and plots) and its numbers."""

    scenario: Scenario
    kernel: Kernel
    devices: dict[str, DeviceStats] = field(default_factory=dict)
    #: real engine only: what stopping the machine left
    stop_report: Any = None

    def summary(self) -> str:
        k = self.kernel
        snap = k.statistics()
        kind = "wall-clock time, real engine" if k.engine_name == "real" else "virtual time"
        lines = [
            f"scenario {self.scenario.source}: {len(k.cpus)} CPUs, "
            f"{snap.time_ns / 1e6:.3f} ms of {kind}"
        ]
        if self.stop_report is not None and not self.stop_report.clean:
            lines.append(str(self.stop_report))
        lines.append("")
        lines.append(f"{'device':<12}{'events':>10}{'delivered':>11}{'dropped':>9}")
        for d in self.devices.values():
            lines.append(f"{d.name:<12}{d.events:>10}{d.delivered:>11}{d.dropped:>9}")
        for d in self.devices.values():
            if sum(1 for n in d.drops.values() if n) > 1:
                where = ", ".join(f"{n} at the {w}" for w, n in d.drops.items() if n)
                lines.append(f"{d.name} dropped {where}")
        lines += ["", "CPU time", proc.mpstat(snap).rstrip("\n")]
        if any(snap.ksoftirqd_wakeups):
            per = ", ".join(f"CPU{n} {w}" for n, w in enumerate(snap.ksoftirqd_wakeups))
            lines.append(f"ksoftirqd wakeups (softirq work deferred to a thread): {per}")
        lines.append("")
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
            "devices": {n: dataclasses.asdict(d) for n, d in self.devices.items()},
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
    process = a["process"]
    if process == "burst":
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
    elif process == "periodic":
        Periodic(
            k,
            dev["irq"],
            max(1, int(a["period_us"] * 1e3)),
            start_ns=start,
            stop_ns=stop,
            name=name,
            on_event=arrive,
        )
    elif process == "onoff":
        if start < stop and a["rate_hz"] > 0:
            _onoff_window(k, dev, arrive, stop, start, 0)
    elif process == "csv":
        Source(k, dev["irq"], name=name, on_event=arrive).at(
            t for t in (int(us * 1e3) + start for us in a["times_us"]) if t < stop
        )
    elif process == "poisson" and a["rate_hz"] > 0:
        Poisson(
            k, dev["irq"], a["rate_hz"], start_ns=start, stop_ns=stop, name=name, on_event=arrive
        )


def _onoff_window(k: Kernel, dev: dict[str, Any], arrive: Any, stop: int, t: int, n: int) -> None:
    """The ``n``-th on-window of an onoff process, starting at ``t``: Poisson arrivals for
    ``on_ms``; it schedules the next window when it starts, not all of them up front (a
    long run has millions of windows)."""
    a = dev["arrivals"]
    on, off = int(a["on_ms"] * 1e6), int(a["off_ms"] * 1e6)
    Poisson(
        k,
        dev["irq"],
        a["rate_hz"],
        start_ns=t,
        stop_ns=min(t + on, stop),
        name=f"{dev['name']}/{n}",
        on_event=arrive,
    )
    nxt = t + on + off
    if nxt < stop:
        k.call_at(nxt, functools.partial(_onoff_window, k, dev, arrive, stop, nxt, n + 1))


class _Build:
    """What building a machine shares between devices: softirq vectors several devices
    use get one action that calls each device's part, and wait queues for readers."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.actions: dict[int, list[Any]] = {}
        #: nic name -> (socket queue, wait queue head, stats)
        self.sockets: dict[str, tuple[deque[int], Any, DeviceStats]] = {}
        #: disk name -> (submit(), wait queue head)
        self.disks: dict[str, Any] = {}
        #: threaded line name -> its thread function
        self.thread_fns: dict[str, Any] = {}
        #: irq -> the pending-event queues of the line devices on it (level lines stay
        #: asserted while any of them has an event)
        self.lines: dict[int, list[deque[int]]] = {}

    def on_softirq(self, vec: int, fn: Any) -> None:
        self.actions.setdefault(vec, []).append(fn)

    def open_softirqs(self) -> None:
        for vec, fns in self.actions.items():
            if len(fns) == 1:
                self.k.open_softirq(vec, fns[0])
            else:
                self.k.open_softirq(vec, functools.partial(_call_all, fns))


def _call_all(fns: list[Any]) -> None:
    for fn in fns:
        fn()


def _drop(st: DeviceStats, where: str, n: int = 1) -> None:
    st.dropped += n
    st.drops[where] = st.drops.get(where, 0) + n


def _nic(b: _Build, dev: dict[str, Any], st: DeviceStats) -> Any:
    k = b.k
    irq = dev["irq"]
    ring: deque[int] = deque()
    backlog = [0]
    st.drops["ring"] = 0
    if dev["socket_queue"]:
        st.drops["socket"] = 0
    sock: deque[int] | None = None
    if dev["socket_queue"]:
        sock = deque()
        wq = k.wait_queue_head(f"{dev['name']}_sock")
        b.sockets[dev["name"]] = (sock, wq, st)

    def deliver(data: object) -> None:
        n, backlog[0] = backlog[0], 0
        k.udelay(dev["deliver_us"] * n)
        if sock is None:
            st.delivered += n
            return
        room = dev["socket_queue"] - len(sock)
        taken = min(room, n)
        sock.extend([1] * taken)
        if n > taken:
            _drop(st, "socket", n - taken)
        if taken:
            k.wake_up(wq)

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
        pending = [False]

        def net_rx() -> None:
            if not pending[0]:
                return
            pending[0] = False
            take(64)
            if ring:
                pending[0] = True
                k.raise_softirq(NET_RX_SOFTIRQ)

        b.on_softirq(NET_RX_SOFTIRQ, net_rx)

        def top(i: int, d: object) -> int:
            k.udelay(dev["hardirq_us"])
            pending[0] = True
            k.raise_softirq(NET_RX_SOFTIRQ)
            return int(IRQ_HANDLED)

    coalesce = int(dev["coalesce_us"] * 1e3)
    armed = [False]

    def fire() -> None:
        armed[0] = False
        k.raise_irq(irq)

    def arrive() -> None:
        st.events += 1
        if len(ring) >= dev["ring"]:
            _drop(st, "ring")
        else:
            ring.append(1)
        if not coalesce:
            k.raise_irq(irq)
        elif not armed[0]:
            armed[0] = True  # rx-usecs: one interrupt for what arrives in the window
            k.call_at(k.now() + coalesce, fire)

    return top, arrive


def _line(b: _Build, dev: dict[str, Any], st: DeviceStats) -> Any:
    """A generic device: each event waits in the device (its status register) until the
    driver services it.  The handler services every pending event of *this* device
    (``hardirq_us`` each) and says IRQ_NONE when it has none: on a shared line the other
    devices' handlers run too.  Bottom halves get the events the handler serviced."""
    k = b.k
    irq, level = dev["irq"], dev["trigger"] == "level"
    #: arrival times of the events the driver has not serviced yet
    pending: deque[int] = deque()
    b.lines.setdefault(irq, []).append(pending)
    serviced = k.lat.hist("event->serviced", dev["name"])
    backlog = [0]  # serviced by the top half, for the tasklet
    work = dev["work_cpu_us"] or dev["work_sleep_ms"]
    tasklet = None
    if dev["tasklet_us"]:

        def bottom_half(data: object) -> None:
            n, backlog[0] = backlog[0], 0
            k.udelay(dev["tasklet_us"])
            if not work:
                st.delivered += n

        tasklet = Tasklet(bottom_half, name=f"{dev['name']}_tasklet")

    async def work_fn(w: Work) -> None:
        if dev["work_sleep_ms"]:
            await k.msleep(dev["work_sleep_ms"])
        k.udelay(dev["work_cpu_us"])
        st.delivered += 1

    def top(i: int, d: object) -> int:
        if dev["threaded"]:
            k.udelay(0.2)  # the primary handler: check the device, wake the thread
            mine = dev["handled"] and pending
            return int(IRQ_WAKE_THREAD) if mine else int(IRQ_NONE)
        return handle(i, d)

    def handle(i: int, d: object) -> int:
        if not dev["handled"]:
            k.udelay(dev["hardirq_us"])
            return int(IRQ_NONE)  # a device its driver does not recognise: it stays asserted
        n = len(pending)
        if not n:
            k.udelay(0.2)  # read the status register: not this device (a shared line)
            return int(IRQ_NONE)
        # the events pending now; those that arrive while the handler works raise the
        # line again and are serviced by the next run
        taken = [pending.popleft() for _ in range(n)]
        k.udelay(dev["hardirq_us"] * n)
        now = k.now()
        for t in taken:
            serviced.add(now - t)
        if level and not any(b.lines[irq]):
            k.set_irq_level(irq, False)  # every device on the line is quiet now
        if tasklet is not None:
            backlog[0] += n
            k.tasklet_schedule(tasklet)
        if work:
            for _ in range(n):
                k.schedule_work(Work(work_fn, name=f"{dev['name']}_work"))
        elif tasklet is None:
            st.delivered += n
        return int(IRQ_HANDLED)

    def arrive() -> None:
        st.events += 1
        if dev["handled"]:
            pending.append(k.now())
        k.raise_irq(irq)

    if dev["threaded"]:
        b.thread_fns[dev["name"]] = handle
    return top, arrive


def _serial(b: _Build, dev: dict[str, Any], st: DeviceStats) -> Any:
    """A UART: characters land in its FIFO; the top half drains it (char_us each) into
    the flip buffer, and a tasklet pushes the buffer on to the tty (tasklet_us)."""
    k = b.k
    fifo = [0]
    flip = [0]
    st.drops["overrun"] = 0

    def push(data: object) -> None:
        n, flip[0] = flip[0], 0
        k.udelay(dev["tasklet_us"])
        st.delivered += n

    tasklet = Tasklet(push, name=f"{dev['name']}_flip")

    def top(i: int, d: object) -> int:
        n, fifo[0] = fifo[0], 0
        k.udelay(dev["hardirq_us"] + dev["char_us"] * n)
        if n:
            flip[0] += n
            k.tasklet_schedule(tasklet)
        return int(IRQ_HANDLED)

    def arrive() -> None:
        st.events += 1
        if fifo[0] >= dev["fifo"]:
            _drop(st, "overrun")  # the FIFO was full: the character is lost
        else:
            fifo[0] += 1
        k.raise_irq(dev["irq"])

    return top, arrive


def _is_done(req: _Request) -> bool:
    return req.done


class _Request:
    __slots__ = ("done", "t_submit")

    def __init__(self, t_submit: int) -> None:
        self.done = False
        self.t_submit = t_submit


def _disk(b: _Build, dev: dict[str, Any], st: DeviceStats) -> Any:
    """A disk: requests are served one at a time (service_us); each completion raises the
    line; the top half moves finished requests to BLOCK_SOFTIRQ, which completes them
    (softirq_us each) and wakes their waiters."""
    k = b.k
    queue: deque[_Request] = deque()
    finished: list[_Request] = []
    completed: list[_Request] = []
    busy = [False]
    wq = k.wait_queue_head(f"{dev['name']}_io")
    service = int(dev["service_us"] * 1e3)

    def start_next() -> None:
        if queue and not busy[0]:
            busy[0] = True
            k.call_at(k.now() + service, complete)

    def complete() -> None:
        busy[0] = False
        finished.append(queue.popleft())
        k.raise_irq(dev["irq"])
        start_next()

    def submit() -> _Request:
        st.events += 1
        req = _Request(k.now())
        queue.append(req)
        start_next()
        return req

    def top(i: int, d: object) -> int:
        k.udelay(dev["hardirq_us"])
        completed.extend(finished)
        finished.clear()
        k.raise_softirq(BLOCK_SOFTIRQ)
        return int(IRQ_HANDLED)

    def block() -> None:
        reqs = completed[:]
        completed.clear()
        for req in reqs:
            k.udelay(dev["softirq_us"])
            req.done = True
            st.delivered += 1
        if reqs:
            k.wake_up(wq)

    b.on_softirq(BLOCK_SOFTIRQ, block)
    b.disks[dev["name"]] = (submit, wq)
    return top, None


def _thread(b: _Build, th: dict[str, Any]) -> None:
    k = b.k
    kind = th["kind"]
    if kind == "cpu-bound":
        chunk = th["chunk_us"]

        async def body(k: Kernel) -> None:
            while True:
                k.udelay(chunk)
                await k.cond_resched()

    elif kind == "packet-reader":
        sock, wq, st = b.sockets[th["device"]]
        per = th["per_packet_us"]

        async def body(k: Kernel) -> None:
            while True:
                await k.wait_event(wq, lambda: bool(sock))
                sock.popleft()
                k.udelay(per)
                st.delivered += 1

    else:  # io
        submit, wq = b.disks[th["device"]]
        think = th["think_us"]
        hist = k.lat.hist("io submit->wake", th["name"])

        async def body(k: Kernel) -> None:
            while True:
                k.udelay(think)
                req = submit()
                await k.wait_event(wq, functools.partial(_is_done, req))
                hist.add(k.now() - req.t_submit)  # includes the thread's wake-up latency

    k.kthread_run(body, th["name"], th["cpu"], th["policy"], th["prio"], th["nice"])


_BUILDERS = {"nic": _nic, "line": _line, "timer": _line, "serial": _serial, "disk": _disk}


def run(
    sc: Scenario,
    *,
    trace: bool | tuple[str, ...] = False,
    until_ns: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "sim",
) -> Result:
    """Build the machine of ``sc``, run it for its duration and return the result.
    ``trace``: True records every tracepoint, a tuple of patterns just those, False what
    the scenario's ``[record] trace`` says; the buffer is ``[record] buffer_size``.
    ``progress(now_ns, duration_ns)`` is called as virtual time advances (for bars).

    ``engine="real"`` runs the same machine on OS threads for ``duration_ms`` of wall
    time (the devices' arrivals come from the clock thread, ``udelay`` spins), then stops
    it without draining: a measure of what Python threads keep up with, not a model."""
    m = sc.machine
    k = Kernel(cpus=m["cpus"], engine=engine, config=sc.config, seed=m["seed"])
    if trace is True:
        patterns: tuple[str, ...] = ("*",)
    elif trace:
        patterns = trace
    else:
        patterns = tuple(sc.record["trace"])
    if patterns:
        k.trace.enable(patterns, buffer_size=sc.record["buffer_size"])
    result = Result(sc, k)
    duration = int(m["duration_ms"] * 1e6) if until_ns is None else until_ns
    b = _Build(k)
    for dev in sc.devices:
        st = result.devices.setdefault(dev["name"], DeviceStats(dev["name"]))
        top, arrive = _BUILDERS[dev["kind"]](b, dev, st)
        flags = (IRQF_SHARED if dev["shared"] else 0) | (
            IRQF_TRIGGER_HIGH if dev["trigger"] == "level" else 0
        )
        dev_id = dev["name"] if dev["shared"] else None
        thread_fn = b.thread_fns.get(dev["name"])
        if thread_fn is None:
            k.request_irq(dev["irq"], top, flags, dev["name"], dev_id)
        else:
            k.request_threaded_irq(
                dev["irq"], top, thread_fn, flags | IRQF_ONESHOT, dev["name"], dev_id
            )
        if dev["affinity"]:
            k.irq_set_affinity(dev["irq"], dev["affinity"])
        if arrive is not None:
            _arrivals(k, dev, duration, arrive)
    b.open_softirqs()
    for th in sc.threads:
        _thread(b, th)
    if engine == "real":
        import time

        with k:
            t_end = time.monotonic() + duration / 1e9
            while (left := t_end - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))
                if progress is not None:
                    progress(min(k.now(), duration), duration)
            result.stop_report = k.stop(drain=False, timeout=2.0)
    elif progress is None:
        k.run(until=duration)
    else:
        step = max(1, duration // 200)
        while k.now() < duration:
            k.run(until=min(duration, k.now() + step))
            progress(k.now(), duration)
    return result
