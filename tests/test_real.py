"""The real engine: threads, lifecycle, faults, concurrency, and its interrupt sources.

Behaviour shared with the sim engine is in test_conformance.py; these tests exercise
what only OS threads and wall-clock time have.  They assert orders and counts; where a
time appears it is a generous bound, never an exact value.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

from irqflow import (
    IRQ_HANDLED,
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    Kernel,
    KernelConfig,
    SoftIrq,
    Tasklet,
    Work,
)
from irqflow.core.errors import IrqflowError
from irqflow.devices.real import (
    AsyncioBridge,
    FdSource,
    PeriodicTimer,
    SignalSource,
    UdpNic,
)
from support import wait_for

pytestmark = [pytest.mark.real_only, pytest.mark.usefixtures("no_leftover_threads")]

BLOCK = SoftIrq.BLOCK_SOFTIRQ
NET_RX = SoftIrq.NET_RX_SOFTIRQ
#: the seed's workqueue model (events/N threads), which these tests name
EVENTS_N = KernelConfig(workqueue_model="per-cpu-threads")


# ------------------------------------------------------------------ threads and lifecycle
def test_threads_carry_kernel_names_and_are_joined_at_stop() -> None:
    k = Kernel(cpus=2, engine="real", config=KernelConfig(workqueue_model="cmwq"))
    k.request_threaded_irq(24, lambda i, d: IRQ_WAKE_THREAD, lambda i, d: 1, IRQF_ONESHOT, "eth0")
    with k:
        k.raise_irq(24)
        k.schedule_work(Work(lambda w: None))
        time.sleep(0.05)
        names = {t.name for t in threading.enumerate()}
        assert {"swapper/0", "swapper/1", "ksoftirqd/0", "ksoftirqd/1", "irq/24-eth0"} <= names
        assert any(n.startswith("kworker/") for n in names)
        report = k.stop()
    assert report.clean and report.drained
    assert str(report) == "stopped: everything pending ran, every thread joined"


def test_per_cpu_threads_model_names_events_threads() -> None:
    with Kernel(cpus=2, engine="real", config=EVENTS_N) as k:
        time.sleep(0.01)
        names = {t.name for t in threading.enumerate()}
        assert {"events/0", "events/1"} <= names
        assert k.stop().clean


def test_stop_drains_pending_work_and_tasklets() -> None:
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    ran: list[str] = []
    gate = threading.Event()

    def slow(w: Any) -> None:
        gate.wait(5)
        ran.append("slow")

    works = [Work(slow)] + [Work(lambda w, i=i: ran.append(f"w{i}")) for i in range(5)]
    k.start()
    for w in works:
        k.schedule_work(w)
    threading.Timer(0.05, gate.set).start()
    report = k.stop(drain=True)
    assert report.clean
    assert ran == ["slow", "w0", "w1", "w2", "w3", "w4"]


def test_stop_without_drain_reports_what_it_abandoned() -> None:
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    gate = threading.Event()
    k.start()
    k.schedule_work(Work(lambda w: gate.wait(0.3)))
    for _ in range(3):
        k.schedule_work(Work(lambda w: None))
    time.sleep(0.02)
    report = k.stop(drain=False, timeout=2)
    gate.set()
    assert not report.drained
    assert report.abandoned.get("work items", 0) >= 3
    assert "abandoned" in str(report)
    s = k.statistics()
    assert s is not None


def test_drain_timeout_names_threads_stuck_in_driver_code() -> None:
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    release = threading.Event()
    k.start()
    k.schedule_work(Work(lambda w: release.wait(10)))
    time.sleep(0.02)
    report = k.stop(drain=True, timeout=0.2)
    assert not report.drained
    assert report.stuck_threads == ("events/0",)
    assert "events/0" in str(report)
    release.set()
    for t in threading.enumerate():
        if t.name == "events/0":
            t.join(5)


def test_lifecycle_errors_are_clear() -> None:
    k = Kernel(cpus=1, engine="real")
    with pytest.raises(IrqflowError, match="not started"):
        k.stop()
    with pytest.raises(IrqflowError, match="belong to the sim engine"):
        k.run_for(1000)
    w = Work(lambda w: None)
    k.schedule_work(w)
    with pytest.raises(IrqflowError, match="not started"):
        k.flush_work(w)
    k.start()
    with pytest.raises(IrqflowError, match="already running"):
        k.start()
    assert k.stop().clean
    with pytest.raises(IrqflowError, match="already stopped"):
        k.stop()
    sim = Kernel(cpus=1)
    with pytest.raises(IrqflowError, match='engine="sim"'):
        sim.start()


def test_exception_in_with_block_stops_at_once_and_propagates() -> None:
    """Ctrl-C (KeyboardInterrupt) in the with block: stop without draining, re-raise."""
    k = Kernel(cpus=2, engine="real")
    with pytest.raises(KeyboardInterrupt), k:
        k.schedule_work(Work(lambda w: None))
        raise KeyboardInterrupt
    assert k.engine.stopping


def test_kthread_should_stop_ends_a_thread_loop_at_stop() -> None:
    k = Kernel(cpus=1, engine="real")
    loops = 0

    async def poller(k: Any) -> None:
        nonlocal loops
        while not k.kthread_should_stop():
            loops += 1
            await k.msleep(1)

    k.kthread_run(poller, "poller")
    with k:
        time.sleep(0.05)
    assert loops >= 3


# ------------------------------------------------------------------ faults
@pytest.mark.parametrize("exc", [ValueError, SystemExit, KeyboardInterrupt])
def test_oops_in_handler_leaves_the_cpu_thread_running(exc: type[BaseException]) -> None:
    """Also for a BaseException (sys.exit(), KeyboardInterrupt raised in a handler): an
    engine thread has nobody to hand it to, so it is an oops and the CPU goes on."""
    k = Kernel(cpus=1, engine="real")
    calls = []

    def top(irq: int, dev: Any) -> int:
        calls.append(irq)
        if len(calls) == 1:
            raise exc("bad descriptor")
        return IRQ_HANDLED

    k.request_irq(24, top, name="flaky")
    with k:
        k.raise_irq(24)
        wait_for(lambda: len(calls) == 1)
        time.sleep(0.01)
        k.raise_irq(24)
        wait_for(lambda: len(calls) == 2)
    oops = k.statistics().oopses
    name = exc.__name__
    assert [(o.exc_type, o.context, o.where) for o in oops] == [(name, "hardirq", "flaky")]
    assert any(f"Oops: {name}: bad descriptor in hardirq flaky on CPU 0" in x for x in k.dmesg())


def test_watchdog_reports_a_handler_that_runs_too_long() -> None:
    k = Kernel(cpus=1, engine="real", config=KernelConfig(softlockup_thresh_ns=50_000_000))
    k.request_irq(24, lambda i, d: time.sleep(0.3) or IRQ_HANDLED, name="hog")
    with k:
        k.raise_irq(24)
    lines = [x for x in k.dmesg() if "soft lockup" in x]
    assert len(lines) == 1
    assert "CPU#0 stuck for" in lines[0]
    assert "[swapper/0:0] in hardirq hog" in lines[0]
    assert k.engine.softlockups == 1


def test_watchdog_ignores_process_context_that_blocks() -> None:
    k = Kernel(cpus=1, engine="real", config=KernelConfig(softlockup_thresh_ns=20_000_000))
    with k:
        k.schedule_work(Work(lambda w: time.sleep(0.1)))
    assert not [x for x in k.dmesg() if "soft lockup" in x]


def test_panic_on_oops_raises_out_of_stop() -> None:
    k = Kernel(cpus=1, engine="real", config=KernelConfig(panic_on_oops=True))
    k.request_irq(24, lambda i, d: 1 / 0, name="div")
    k.start()
    k.raise_irq(24)
    time.sleep(0.05)
    with pytest.raises(ZeroDivisionError):
        k.stop()


# ------------------------------------------------------------------ concurrency
def test_accounting_holds_under_raising_from_eight_threads() -> None:
    """Eight threads raise two lines as fast as they can (at least 200 raises each, and
    on until the main thread has taken 30 snapshots meanwhile): every snapshot keeps the
    accounting identity (raises queued without the lock count as raised and in flight),
    and after the drain every raise is accepted, coalesced or lost."""
    k = Kernel(cpus=2, engine="real")
    handled = [0, 0]
    k.request_irq(24, lambda i, d: handled.__setitem__(0, handled[0] + 1) or 1, name="a")
    k.request_irq(25, lambda i, d: handled.__setitem__(1, handled[1] + 1) or 1, name="b")
    k.irq_set_affinity(25, {1})
    raised = [0] * 8
    going = threading.Event()
    going.set()

    def producer(i: int) -> None:
        n = 0
        while going.is_set() or n < 200:
            k.raise_irq(24 if i % 2 else 25)
            n += 1
        raised[i] = n

    k.start()
    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for _ in range(30):
        for s in k.statistics().irqs.values():
            assert s.raised == s.accepted + s.coalesced + s.lost + s.in_flight, s
    going.clear()
    for t in threads:
        t.join()
    assert k.stop().clean
    snap = k.statistics()
    total = 0
    for n in (24, 25):
        s = snap.irqs[n]
        assert s.raised == s.accepted + s.coalesced + s.lost, s
        assert s.in_flight == 0
        assert s.accepted >= 1
        total += s.raised
    assert total == sum(raised) >= 1600
    assert handled[0] + handled[1] >= snap.irqs[24].accepted + snap.irqs[25].accepted


def test_top_half_is_not_held_up_by_a_softirq_burst() -> None:
    """While a softirq burst runs on the CPU thread, a new interrupt is taken at the next
    boundary: at most one softirq action runs between the raise and the top half."""
    k = Kernel(cpus=1, engine="real")
    log: list[str] = []
    raised_during = threading.Event()

    def action() -> None:
        log.append("softirq")
        if not raised_during.is_set():
            raised_during.set()
            time.sleep(0.02)  # the raise from the main thread lands in here
        k.raise_softirq(BLOCK)  # keep the burst going
        if log.count("softirq") >= 8:
            k.open_softirq(BLOCK, lambda: None)

    k.open_softirq(BLOCK, action)
    k.request_irq(24, lambda i, d: k.raise_softirq(BLOCK) or IRQ_HANDLED, name="a")
    k.request_irq(25, lambda i, d: log.append("top") or IRQ_HANDLED, name="b")
    with k:
        k.raise_irq(24)
        raised_during.wait(5)
        k.raise_irq(25)
        wait_for(lambda: "top" in log)
    first = log.index("softirq")
    assert log.index("top") - first <= 2


def test_local_bh_disable_in_a_task_keeps_that_cpus_softirqs_out() -> None:
    k = Kernel(cpus=1, engine="real")
    inside_bh_off = threading.Event()
    events: list[str] = []

    def action() -> None:
        events.append("softirq")

    def body(k: Any) -> None:
        k.local_bh_disable()
        inside_bh_off.set()
        events.append("bh off")
        time.sleep(0.05)  # an interrupt raises the softirq meanwhile
        events.append("bh on")
        k.local_bh_enable()

    k.open_softirq(BLOCK, action)
    k.request_irq(24, lambda i, d: k.raise_softirq(BLOCK) or IRQ_HANDLED, name="dev")
    k.kthread_run(body, "bh-user", cpu=0)
    with k:
        inside_bh_off.wait(5)
        k.raise_irq(24)
        wait_for(lambda: "softirq" in events)
    assert events == ["bh off", "bh on", "softirq"]


def test_udelay_spins_for_real() -> None:
    k = Kernel(cpus=1, engine="real")
    took: list[int] = []

    def top(irq: int, dev: Any) -> int:
        t0 = time.perf_counter_ns()
        k.udelay(2000)
        took.append(time.perf_counter_ns() - t0)
        return IRQ_HANDLED

    k.request_irq(24, top, name="spin")
    with k:
        k.raise_irq(24)
        wait_for(lambda: took)
    assert took[0] >= 2_000_000
    assert k.statistics().cpus[0].irq >= 2_000_000


def test_plain_work_function_may_block_and_wait_for_other_work() -> None:
    k = Kernel(cpus=2, engine="real", config=KernelConfig(workqueue_model="cmwq"))
    order: list[str] = []
    inner = Work(lambda w: (time.sleep(0.02), order.append("inner")))

    def outer(w: Any) -> None:
        k.queue_work(k.system_wq, inner)
        k.flush_work(inner)  # blocks this worker thread for real
        order.append("outer")

    with k:
        k.schedule_work(Work(outer))
    assert order == ["inner", "outer"]


def test_async_work_runs_on_its_own_event_loop() -> None:
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    seen: list[Any] = []

    async def fetch(w: Any) -> None:
        await asyncio.sleep(0.01)
        r = await asyncio.gather(asyncio.sleep(0.001, "a"), asyncio.sleep(0.002, "b"))
        await k.msleep(1)
        seen.append((r, k.in_task(), threading.current_thread().name))

    with k:
        k.schedule_work(Work(fetch))
    assert seen == [(["a", "b"], True, "events/0")]


def test_tracing_on_the_real_engine_gives_ordered_events() -> None:
    k = Kernel(cpus=2, engine="real")
    k.trace.enable("irq:*")
    t = Tasklet(lambda d: None)
    k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="eth0")
    with k:
        for _ in range(20):
            k.raise_irq(24)
            time.sleep(0.0005)
    evs = k.trace.events()
    names = {e.name for e in evs}
    assert {"irq:irq_handler_entry", "irq:softirq_entry", "irq:tasklet_entry"} <= names
    ts = [e.ts for e in evs]
    assert ts == sorted(ts)


# ------------------------------------------------------------------ interrupt sources
def test_fd_source_raises_once_until_rearmed() -> None:
    k = Kernel(cpus=1, engine="real")
    r, w = os.pipe()
    got: list[bytes] = []
    src: FdSource

    def top(irq: int, dev: Any) -> int:
        got.append(os.read(r, 100))
        src.rearm()
        return IRQ_HANDLED

    k.request_irq(24, top, name="pipe")
    with k:
        src = FdSource(k, 24, r, name="pipe")
        for i in range(3):
            os.write(w, b"x%d" % i)
            wait_for(lambda i=i: len(got) == i + 1)
    os.close(r)
    os.close(w)
    assert got == [b"x0", b"x1", b"x2"]
    assert src.events == 3


@pytest.mark.parametrize("napi", [True, False])
def test_udp_nic_delivers_every_datagram(napi: bool) -> None:
    k = Kernel(cpus=2, engine="real")
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    got: list[tuple[bytes, bool]] = []
    nic = UdpNic(k, 24, srv, lambda d, a: got.append((d, k.in_serving_softirq())), napi=napi)
    cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with k:
        for i in range(200):
            cl.sendto(b"%d" % i, srv.getsockname())
            if i % 20 == 0:
                time.sleep(0.001)
        wait_for(lambda: len(got) == 200)
    cl.close()
    srv.close()
    assert [d for d, _ in got] == [b"%d" % i for i in range(200)]
    assert all(soft is napi for _, soft in got)
    assert nic.received == 200
    if napi:
        assert k.statistics().irqs[24].accepted < 200  # NAPI: far fewer interrupts


def test_periodic_timer_raises_at_its_rate() -> None:
    k = Kernel(cpus=1, engine="real")
    hits: list[int] = []
    k.request_irq(40, lambda i, d: hits.append(k.now()) or IRQ_HANDLED, name="tick")
    with k:
        t0 = k.now()
        timer = PeriodicTimer(k, 40, 5_000_000)
        wait_for(lambda: timer.events >= 5)
    # without drift the n-th raise is due at start + n periods: never more than that
    assert 5 <= timer.events <= (k.now() - t0) // 5_000_000
    assert len(hits) == k.statistics().irqs[40].accepted


def test_signal_source_raises_a_line() -> None:
    k = Kernel(cpus=1, engine="real")
    hits: list[int] = []
    k.request_irq(41, lambda i, d: hits.append(i) or IRQ_HANDLED, name="usr1")
    old = signal.getsignal(signal.SIGUSR1)
    with k:
        SignalSource(k, 41, signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_for(lambda: hits)
    assert hits == [41]
    assert signal.getsignal(signal.SIGUSR1) == old  # restored at stop


def test_asyncio_bridge_awaits_work_tasklets_and_completions() -> None:
    k = Kernel(cpus=2, engine="real")
    done = k.completion()
    t = Tasklet(lambda d: done.complete())
    k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="dev")

    async def main() -> list[Any]:
        bridge = AsyncioBridge(k)
        out: list[Any] = [await bridge.run_work(lambda a, b: a + b, 2, 3)]
        bridge.raise_irq(24)
        await bridge.wait_for_completion(done)
        await bridge.tasklet_done(t)
        w = Work(lambda w: time.sleep(0.01))
        k.schedule_work(w)
        await bridge.flush_work(w)
        out.append(w.runs)
        with pytest.raises(KeyError):
            await bridge.run_work(lambda: {}["missing"])
        return out

    with k:
        assert asyncio.run(main()) == [5, 1]
    assert len(k.statistics().oopses) == 1  # the failing work item is an oops too


def test_real_sources_refuse_the_sim_engine() -> None:
    k = Kernel(cpus=1)
    with pytest.raises(IrqflowError, match='needs Kernel\\(engine="real"\\)'):
        PeriodicTimer(k, 40, 1000)


def test_perfetto_trace_of_a_real_run_has_a_track_per_thread(tmp_path: Any) -> None:
    import json

    from test_perfetto import validate

    k = Kernel(cpus=2, engine="real", config=EVENTS_N)
    k.trace.enable("*")
    t = Tasklet(lambda d: None)

    def top(irq: int, dev: Any) -> int:
        k.tasklet_schedule(t)
        k.schedule_work(w)
        return IRQ_HANDLED

    w = Work(lambda w: time.sleep(0.001))
    k.request_irq(24, top, name="eth0")
    with k:
        for _ in range(30):
            k.raise_irq(24)
            time.sleep(0.0003)
    path = tmp_path / "real.json"
    k.trace.write_perfetto(path)
    events = json.loads(path.read_text())["traceEvents"]
    validate(events)
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert any(n.startswith("swapper/") for n in names)
    assert any(n.startswith("events/") for n in names)
    slices = {e["name"].split()[0] for e in events if e["ph"] == "B"}
    assert {"hardirq", "handler", "softirq", "tasklet", "work"} <= slices


def test_ctrl_c_while_blocked_in_a_kernel_call_stops_cleanly() -> None:
    """SIGINT to a process waiting in k.flush_work: KeyboardInterrupt, the machine stops
    without draining, and the process exits promptly."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import threading, time
        from irqflow import Kernel, KernelConfig, Work
        cfg = KernelConfig(workqueue_model="per-cpu-threads")
        k = Kernel(cpus=2, engine="real", config=cfg)
        never = threading.Event()
        w = Work(lambda w: never.wait(3))
        try:
            with k:
                k.schedule_work(w)
                print("ready", flush=True)
                k.flush_work(w)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            print([x for x in k.dmesg() if "irqflow: stopped" in x][0], flush=True)
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"the child hung after Ctrl-C; output: {out!r} {err!r}") from None
    status = f"exit status {p.returncode}, output {out!r}, stderr {err[-2000:]!r}"
    assert p.returncode == 0 and "interrupted" in out, status
    assert "threads still running driver code: events/" in out, status


def test_ksoftirqd_is_serialized_with_its_cpus_softirqs() -> None:
    """Softirqs overflow to ksoftirqd/0 (time limit) while interrupts keep arriving on
    CPU 0: the vector never runs twice at once, and ksoftirqd runs it as a softirq."""
    k = Kernel(cpus=1, engine="real")
    lock = threading.Lock()
    active = 0
    overlaps = 0
    runs: list[tuple[str, bool]] = []

    def action() -> None:
        nonlocal active, overlaps
        with lock:
            active += 1
            overlaps += active > 1
        runs.append((k.current().comm, k.in_serving_softirq()))
        time.sleep(0.002)  # long enough to cross jiffies: __do_softirq's time limit
        if len(runs) < 40:
            k.raise_softirq(BLOCK)
        with lock:
            active -= 1

    k.open_softirq(BLOCK, action)
    k.request_irq(24, lambda i, d: k.raise_softirq(BLOCK) or IRQ_HANDLED, name="dev")
    with k:
        for _ in range(20):
            k.raise_irq(24)
            time.sleep(0.003)
        wait_for(lambda: len(runs) >= 40)
    assert overlaps == 0
    assert all(serving for _, serving in runs)
    comms = {comm for comm, _ in runs}
    assert "ksoftirqd/0" in comms
    assert k.statistics().ksoftirqd_wakeups[0] >= 1


def test_timeline_of_a_real_run_has_a_row_per_thread(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    from irqflow.plot import thread_segments, timeline

    k = Kernel(cpus=2, engine="real", config=KernelConfig(workqueue_model="cmwq"))
    k.trace.enable("*")
    t = Tasklet(lambda d: k.udelay(50))
    w = Work(lambda w: k.udelay(200))

    def top(irq: int, dev: Any) -> int:
        k.udelay(20)
        k.tasklet_schedule(t)
        k.schedule_work(w)
        return IRQ_HANDLED

    k.request_irq(24, top, name="eth0")
    with k:
        for _ in range(20):
            k.raise_irq(24)
            time.sleep(0.001)
    names, segs = thread_segments(k.trace.events(), k.now())
    comms = {comm for _, comm in names}
    assert any(c.startswith("swapper/") for c in comms)
    assert any(c.startswith("kworker/") for c in comms)
    kinds = {kind for _, _, _, kind in segs}
    assert {"hardirq", "tasklet", "worker", "idle"} <= kinds
    for row in range(len(names)):  # each row's segments tile its time without overlaps
        mine = sorted((s, e) for r, s, e, _ in segs if r == row)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(mine))
    svg = tmp_path / "real.svg"
    timeline(k, svg)
    text = svg.read_text()
    assert "swapper/0 (CPU 0)" in text or "swapper/1 (CPU 1)" in text


# ------------------------------------------------------------------ regressions (review)
def test_a_failing_waiter_callback_does_not_leave_the_kernel_lock_held() -> None:
    """An AsyncioBridge wait abandoned by a closed event loop, then the completion fires:
    the machine keeps working and stops."""
    k = Kernel(cpus=1, engine="real")
    k.start()
    c = k.completion()

    async def main() -> None:
        bridge = AsyncioBridge(k)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bridge.wait_for_completion(c), 0.05)

    asyncio.run(main())  # the loop is closed; its waiter is still registered
    c.complete()
    assert k.engine.lock.acquire(timeout=5)  # nobody holds it
    k.engine.lock.release()
    assert k.stop(timeout=5).clean


def test_a_blocking_call_in_an_irq_thread_waits_for_its_condition_despite_wake_ups() -> None:
    """A second interrupt wakes the IRQ thread while its thread_fn waits in flush_work:
    the wait goes on until the work is done, and the busy accounting stays balanced."""
    k = Kernel(cpus=2, engine="real")
    log: list[bool] = []
    w = Work(lambda w: time.sleep(0.3))

    def thread_fn(irq: int, dev: Any) -> int:
        if not log:
            k.queue_work(k.system_wq, w)
            k.flush_work(w)
            log.append(bool(w.running or w.state & 1))
        return IRQ_HANDLED

    k.request_threaded_irq(30, lambda i, d: IRQ_WAKE_THREAD, thread_fn, name="dev")
    with k:
        k.raise_irq(30)
        time.sleep(0.05)
        k.raise_irq(30)
        wait_for(lambda: bool(log))
    assert log == [False]  # flush_work returned only once the work had finished
    assert [c.engine_state.busy_tasks for c in k.cpus] == [0, 0]


def test_an_interrupt_for_cpu_0_never_runs_in_a_thread_that_moved_to_cpu_1() -> None:
    k = Kernel(cpus=2, engine="real", config=KernelConfig(threadirqs=True))
    from irqflow import IRQF_NO_THREAD

    seen: list[int] = []
    slow = Tasklet(lambda d: time.sleep(0.2))
    k.request_irq(30, lambda i, d: k.tasklet_schedule(slow) or IRQ_HANDLED, name="mig")
    k.request_irq(31, lambda i, d: seen.append(k.smp_processor_id()) or 1, IRQF_NO_THREAD, "c0")
    k.request_irq(32, lambda i, d: time.sleep(0.5) or 1, IRQF_NO_THREAD, "hog0")
    k.irq_set_affinity(31, [0])
    k.irq_set_affinity(32, [0])
    k.irq_set_affinity(30, [1])
    with k:
        k.raise_irq(32)
        time.sleep(0.05)
        k.raise_irq(30)
        time.sleep(0.05)
        k.raise_irq(31)
        wait_for(lambda: bool(seen))
    assert seen == [0]


def test_the_selector_survives_a_source_whose_descriptor_was_closed() -> None:
    k = Kernel(cpus=1, engine="real")
    a1, a2 = socket.socketpair()
    b1, b2 = socket.socketpair()
    hits = {40: 0, 41: 0}

    def h(irq: int, dev: Any) -> int:
        hits[irq] += 1
        return IRQ_HANDLED

    k.request_irq(40, h, name="a")
    k.request_irq(41, h, name="b")
    with k:
        sa, sb = FdSource(k, 40, a1, name="a"), FdSource(k, 41, b1, name="b")
        a2.send(b"x")
        wait_for(lambda: hits[40] == 1)
        a1.close()
        sa.rearm()  # a driver bug: rearming a closed descriptor
        time.sleep(0.05)
        b2.send(b"y")
        wait_for(lambda: hits[41] == 1)
        assert sb._sel.thread.is_alive()
    for s in (a2, b1, b2):
        s.close()
    assert any("cannot watch a" in line for line in k.dmesg())


def test_watchdog_sees_a_task_that_disabled_bottom_halves_itself() -> None:
    k = Kernel(
        cpus=1,
        engine="real",
        config=KernelConfig(workqueue_model="per-cpu-threads", softlockup_thresh_ns=50_000_000),
    )

    def body(w: Any) -> None:
        with k.bh_disabled():
            time.sleep(0.3)

    with k:
        k.schedule_work(Work(body))
    lines = [x for x in k.dmesg() if "soft lockup" in x]
    assert len(lines) == 1 and "[events/0:" in lines[0] and "BH off" in lines[0]


def test_stop_from_driver_code_returns_and_reports() -> None:
    k = Kernel(cpus=1, engine="real", config=EVENTS_N)
    reports: list[Any] = []
    k.start()
    k.schedule_work(Work(lambda w: reports.append(k.stop(drain=False, timeout=0.5))))
    wait_for(lambda: bool(reports))
    assert "stopped" in str(reports[0])
    for t in threading.enumerate():
        if t.name == "events/0":
            t.join(5)


def test_udelay_on_one_cpu_does_not_stop_the_others() -> None:
    """A handler busy-waiting 100 ms on CPU 0 leaves CPU 1 taking its interrupts."""
    k = Kernel(cpus=2, engine="real", config=EVENTS_N)
    ticks: list[int] = []
    k.request_irq(24, lambda i, d: k.udelay(100_000) or IRQ_HANDLED, name="spin")
    k.irq_set_affinity(24, {0})
    k.request_irq(25, lambda i, d: ticks.append(i) or IRQ_HANDLED, name="tick")
    k.irq_set_affinity(25, {1})
    with k:
        k.raise_irq(24)
        time.sleep(0.01)
        for _ in range(20):
            k.raise_irq(25)
            time.sleep(0.002)
        assert k.engine.running, "the spinning handler should still be running"
    assert len(ticks) >= 15


def test_cpu_time_counts_calls_under_way_and_not_their_sleeps() -> None:
    k = Kernel(cpus=1, engine="real")

    async def sleeper(k: Any) -> None:
        while not k.kthread_should_stop():
            await k.msleep(5)

    spinning = threading.Event()
    spun: list[int] = []

    def spinner(k: Any) -> None:
        spinning.set()
        t0 = time.perf_counter_ns()
        k.udelay(150_000)
        spun.append(time.perf_counter_ns() - t0)

    k.kthread_run(sleeper, "sleeper")
    k.kthread_run(spinner, "spinner")
    with k:
        spinning.wait(20)
        time.sleep(0.01)
        mid = k.statistics().cpus[0].user  # the spinner is still running
        wait_for(lambda: bool(spun))
        time.sleep(0.1)  # the sleeper sleeps on
    user = k.statistics().cpus[0].user
    lifetime = k.now()
    assert 0 < mid < user
    # the spin, not the sleeper's time asleep (which would add about the lifetime)
    assert 150_000_000 <= user < spun[0] + lifetime // 2


def test_cli_runs_a_scenario_on_the_real_engine(tmp_path: Any, capsys: Any) -> None:
    from irqflow.cli import main

    (tmp_path / "s.toml").write_text(
        '[machine]\ncpus = 1\nduration_ms = 60\n[[device]]\nname = "d"\nirq = 5\n'
        'tasklet_us = 5\narrivals = { process = "periodic", period_us = 2000 }\n'
    )
    assert main(["run", str(tmp_path / "s.toml"), "--engine", "real", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ms of wall-clock time, real engine" in out
    first = out.splitlines()[3].split()
    # a periodic source without drift raises at most once per period of the run
    assert first[0] == "d" and 0 <= int(first[1]) <= 60_000 // 2000 + 1
    assert first[1] == first[2]


def test_a_work_item_blocked_in_plain_io_stops_holding_its_cmwq_pool() -> None:
    """time.sleep in a plain work function is invisible to concurrency management; past
    wq_cpu_intensive_thresh_ns the item is marked CPU_INTENSIVE and the next item runs."""
    k = Kernel(cpus=1, engine="real", config=KernelConfig(workqueue_model="cmwq"))
    order: list[str] = []
    with k:
        k.schedule_work(Work(lambda w: (time.sleep(0.4), order.append("blocking"))))
        k.schedule_work(Work(lambda w: order.append("next")))
    assert order == ["next", "blocking"]
    assert all(p.nr_running == 0 for p in k.wq.cmwq.pools)


def _machine_with_every_kind_of_thread(model: str, threadirqs: bool, bad: list[str]) -> None:
    """Run softirqs overflowing to ksoftirqd, workers, IRQ threads and a BH-disabling
    kthread, while recording any thread that changes a CPU's own context fields."""
    from irqflow.core.cpu import Cpu

    pc_slot, on_slot = Cpu.__dict__["preempt_count"], Cpu.__dict__["irqs_on"]
    k = Kernel(cpus=2, engine="real",
               config=KernelConfig(workqueue_model=model, threadirqs=threadirqs))  # fmt: skip

    class CheckedCpu(Cpu):
        __slots__ = ()

        def _check(self, what: str) -> None:
            cur = k.engine.current_cpu
            if cur is not self and cur is not None:
                bad.append(f"{threading.current_thread().name} changed CPU {self.nr} {what}")

        @property  # type: ignore[override]
        def preempt_count(self) -> int:
            return pc_slot.__get__(self)  # type: ignore[no-any-return]

        @preempt_count.setter
        def preempt_count(self, v: int) -> None:
            self._check("preempt_count")
            pc_slot.__set__(self, v)

        @property  # type: ignore[override]
        def irqs_on(self) -> bool:
            return on_slot.__get__(self)  # type: ignore[no-any-return]

        @irqs_on.setter
        def irqs_on(self, v: bool) -> None:
            self._check("irqs_on")
            on_slot.__set__(self, v)

    for c in k.cpus:
        c.__class__ = CheckedCpu
    t = Tasklet(lambda d: time.sleep(0.001))

    def action() -> None:
        time.sleep(0.003)  # long passes: the time limit sends work to ksoftirqd
        k.raise_softirq(BLOCK)

    def top(irq: int, dev: Any) -> int:
        k.raise_softirq(BLOCK)
        k.tasklet_schedule(t)
        return IRQ_HANDLED

    def bh_user(k: Any) -> None:
        for _ in range(5):
            with k.bh_disabled():
                k.raise_softirq(BLOCK)
            time.sleep(0.002)

    k.open_softirq(BLOCK, action)
    k.request_irq(24, top, name="dev")
    k.request_threaded_irq(30, lambda i, d: IRQ_WAKE_THREAD, lambda i, d: 1, IRQF_ONESHOT, "thr")
    k.kthread_run(bh_user, "bh-user", cpu=1)
    with k:
        for _ in range(10):
            k.raise_irq(24)
            k.raise_irq(30)
            k.schedule_work(Work(lambda w: time.sleep(0.001)))
            time.sleep(0.005)
        k.open_softirq(BLOCK, lambda: None)  # let the machine quiet down
    assert sum(k.statistics().ksoftirqd_wakeups) >= 1


@pytest.mark.parametrize(("model", "threadirqs"), [("per-cpu-threads", False), ("cmwq", True)])
def test_no_thread_changes_another_contexts_cpu_state(model: str, threadirqs: bool) -> None:
    """Each CPU's own preempt_count and IRQ flag may only be changed by that CPU's thread.
    A kernel flow that captured the CPU object instead of its thread's context (ksoftirqd
    once did) would change them from another thread."""
    bad: list[str] = []
    _machine_with_every_kind_of_thread(model, threadirqs, bad)
    assert not bad, bad[:5]


def test_call_at_a_moment_just_past_runs_at_once_on_the_wall_clock() -> None:
    """Wall time moves while a caller computes a time: on the real engine a call_at for a
    moment already past runs at once (on the sim it stays an error)."""
    k = Kernel(cpus=1, engine="real")
    ran: list[int] = []
    with k:
        k.call_at(k.now() - 1_000_000, lambda: ran.append(k.now()))
        wait_for(lambda: bool(ran))
    with pytest.raises(IrqflowError, match="in the past"):
        sim = Kernel(cpus=1)
        sim.run_for(1000)
        sim.call_at(0, lambda: None)


@pytest.mark.parametrize("case", ["two cpus", "one cpu", "no action", "disabled"])
def test_lock_free_raises_count_exactly_as_the_core_does(case: str) -> None:
    """A burst of raises taken in one batch (counted in bulk once their end is settled)
    ends exactly as the same raises made one by one through the core (sim)."""
    machines = [Kernel(cpus=2), Kernel(cpus=2, engine="real")]  # the real one not started
    for k in machines:
        if case != "no action":
            k.request_irq(24, lambda i, d: IRQ_HANDLED, name="dev")
        if case == "one cpu":
            k.irq_set_affinity(24, {1})
        if case == "disabled":
            k.disable_irq_nosync(24)
        for _ in range(1000):
            k.raise_irq(24)
    sim, real = (k.statistics().irqs[24] for k in machines)
    fields = ("raised", "accepted", "coalesced", "lost", "in_flight")
    assert [getattr(real, f) for f in fields] == [getattr(sim, f) for f in fields]
    assert machines[1].genirq.descs[24].rr_next == machines[0].genirq.descs[24].rr_next
    assert real.raised == 1000
