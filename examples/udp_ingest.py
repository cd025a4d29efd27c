"""A UDP ingest server, the kernel's way, against a plain asyncio server.

Run: ``python examples/udp_ingest.py`` (irqflow only) or ``--compare`` (both, same load).

Each message needs cheap parsing and slow processing: a "commit" of up to ``BATCH``
messages that sleeps ``COMMIT_MS`` (a database write).  So the servers' capacity is about
``BATCH / COMMIT_MS`` messages per second; a load generator (its own process) floods them
at twice that for ``--duration`` seconds.

* **irqflow** (real engine): the top half only acknowledges and schedules NAPI;
  ``NET_RX_SOFTIRQ`` polls the socket within its budget and hands the datagrams to a
  tasklet, which parses them into a bounded backlog and queues a work item; the work item
  (process context, it may sleep) commits batches.  When the backlog is full the poll
  stops reading and leaves the interrupt masked until the worker catches up: the excess
  is dropped early and cheaply, by the OS, in the socket buffer.
* **asyncio**: a ``DatagramProtocol`` parses each datagram in ``datagram_received`` and
  puts it on an ``asyncio.Queue``; a worker task commits batches.  The transport reads
  everything the socket offers, so nothing is dropped -- the queue grows instead, and
  with it memory and latency.

Each server runs in a fresh process (so its peak memory is its own) for the flood plus
at most ``DRAIN_S`` seconds to catch up.  The table shows what was delivered, where the
rest went, memory, end-to-end latency and, for irqflow, raise -> top-half latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import socket
import struct
import sys
import threading
import time
from collections import deque
from typing import Any

from irqflow import Kernel, Tasklet, Work
from irqflow.devices.real import UdpNic, udp_drops

BATCH = 16
COMMIT_MS = 1.0
CAPACITY = BATCH / (COMMIT_MS / 1000)  # messages per second
BACKLOG_MAX = 512  # irqflow: parsed messages waiting for the worker
DRAIN_S = 1.0
HEADER = struct.Struct("!QQ")  # sequence number, send time (CLOCK_MONOTONIC ns)
SIZE = 512  # bytes per datagram


# ------------------------------------------------------------------ load generator
def generate(port: int, rate: float, duration: float, out: Any) -> None:
    """Send ``rate`` datagrams per second to ``port`` for ``duration`` seconds, paced per
    millisecond; report how many were sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ("127.0.0.1", port)
    pad = b"\0" * (SIZE - HEADER.size)
    sent = 0
    t0 = time.monotonic()
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= duration:
            break
        due = int(rate * elapsed)
        while sent < due:
            s.sendto(HEADER.pack(sent, time.monotonic_ns()) + pad, addr)
            sent += 1
        time.sleep(0.0005)
    out.send(sent)


def parse(data: bytes) -> tuple[int, int, bytes]:
    """The cheap part: the header (the message keeps its body until it is committed)."""
    seq, sent_ns = HEADER.unpack_from(data)
    return seq, sent_ns, data


def commit(batch: list[tuple[int, int, bytes]], lat: list[int]) -> None:
    """Bookkeeping after a batch's slow part: end-to-end latency per message."""
    now = time.monotonic_ns()
    lat.extend(now - sent_ns for _, sent_ns, _ in batch)


def pct(xs: list[int], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] / 1e6  # ms


# ------------------------------------------------------------------ the irqflow server
def serve_irqflow(sock: socket.socket, flood_done: threading.Event) -> dict[str, Any]:
    k = Kernel(cpus=2, engine="real")
    rx: deque[bytes] = deque()  # NET_RX -> tasklet
    backlog: deque[tuple[int, int, bytes]] = deque()  # tasklet -> worker (bounded)
    lat: list[int] = []
    peak = 0
    nic: UdpNic

    def parse_tasklet(data: Any) -> None:
        nonlocal peak
        while rx:
            backlog.append(parse(rx.popleft()))
        peak = max(peak, len(backlog))
        k.queue_work(wq, worker)

    t = Tasklet(parse_tasklet)

    def on_message(data: bytes, addr: Any) -> None:  # softirq context, from the poll
        rx.append(data)
        k.tasklet_schedule(t)

    def process(w: Work) -> None:  # process context: may sleep
        while backlog:
            batch = [backlog.popleft() for _ in range(min(BATCH, len(backlog)))]
            time.sleep(COMMIT_MS / 1000)  # the slow part
            commit(batch, lat)
            if nic.paused and len(backlog) < BACKLOG_MAX // 2:
                nic.resume()

    worker = Work(process)
    wq = k.alloc_ordered_workqueue("ingest")  # one commit at a time, as in asyncio
    nic = UdpNic(
        k, 24, sock, on_message, name="eth0", pause=lambda: len(backlog) + len(rx) >= BACKLOG_MAX
    )
    k.start()
    flood_done.wait()
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline and (backlog or rx):
        time.sleep(0.01)
    report = k.stop(drain=False, timeout=2)
    snap = k.statistics()
    line = snap.irqs[24]
    top = k.latency()["raise->hardirq"]["irq 24 eth0"]
    assert line.raised == line.accepted + line.coalesced + line.lost + line.in_flight
    return {
        "received": nic.received,
        "processed": len(lat),
        "queued_at_end": len(backlog) + len(rx),
        "backlog_peak": peak,
        "socket_drops": udp_drops(sock),
        "lat": lat,
        "interrupts": line.accepted,
        "pauses": nic.pauses,
        "top_half_p50_us": top.p50 / 1000,
        "top_half_p99_us": top.p99 / 1000,
        "stopped": str(report),
    }


# ------------------------------------------------------------------ the asyncio server
def serve_asyncio(sock: socket.socket, flood_done: threading.Event) -> dict[str, Any]:
    lat: list[int] = []
    peak = 0
    received = 0

    async def main() -> dict[str, Any]:
        nonlocal peak, received
        queue: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue()  # unbounded: the usual way

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                nonlocal peak, received
                received += 1
                queue.put_nowait(parse(data))
                peak = max(peak, queue.qsize())

        async def worker() -> None:
            while True:
                batch = [await queue.get()]
                while len(batch) < BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                await asyncio.sleep(COMMIT_MS / 1000)  # the slow part
                commit(batch, lat)

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        task = asyncio.create_task(worker())
        await loop.run_in_executor(None, flood_done.wait)
        deadline = loop.time() + DRAIN_S
        while loop.time() < deadline and not queue.empty():
            await asyncio.sleep(0.01)
        task.cancel()
        drops = udp_drops(sock)
        transport.close()
        return {"queued_at_end": queue.qsize(), "socket_drops": drops}

    out = asyncio.run(main())
    return {
        "received": received,
        "processed": len(lat),
        "queued_at_end": out["queued_at_end"],
        "backlog_peak": peak,
        "socket_drops": out["socket_drops"],
        "lat": lat,
    }


# ------------------------------------------------------------------ one run, one process
def run_server(kind: str, rate: float, duration: float, out: Any) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    flood_done = threading.Event()
    ctx = mp.get_context("spawn")
    recv_end, send_end = ctx.Pipe(duplex=False)
    gen = ctx.Process(target=generate, args=(port, rate, duration, send_end))

    def watch() -> None:
        gen.join()
        flood_done.set()

    gen.start()
    threading.Thread(target=watch, daemon=True).start()
    t0 = time.monotonic()
    serve = serve_irqflow if kind == "irqflow" else serve_asyncio
    res = serve(sock, flood_done)
    res["elapsed"] = time.monotonic() - t0
    res["sent"] = recv_end.recv()
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lat = res.pop("lat")
    res["e2e_p50_ms"] = pct(lat, 50)
    res["e2e_p99_ms"] = pct(lat, 99)
    if kind == "irqflow":
        sock.close()
    out.send(res)


def measure(kind: str, rate: float, duration: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    recv_end, send_end = ctx.Pipe(duplex=False)
    p = ctx.Process(target=run_server, args=(kind, rate, duration, send_end))
    p.start()
    res: dict[str, Any] = recv_end.recv()
    p.join()
    return res


def table(results: dict[str, dict[str, Any]], duration: float) -> str:
    rows = [
        ("sent by the load generator", lambda r: f"{r['sent']:,}"),
        ("processed (committed)", lambda r: f"{r['processed']:,}"),
        ("delivered rate, msg/s", lambda r: f"{r['processed'] / r['elapsed']:,.0f}"),
        ("dropped in the socket buffer", lambda r: _maybe(r["socket_drops"])),
        ("still queued in the app at the end", lambda r: f"{r['queued_at_end']:,}"),
        ("peak app backlog, messages", lambda r: f"{r['backlog_peak']:,}"),
        ("peak memory (RSS), MB", lambda r: f"{r['rss_mb']:.0f}"),
        ("end-to-end latency p50, ms", lambda r: f"{r['e2e_p50_ms']:.1f}"),
        ("end-to-end latency p99, ms", lambda r: f"{r['e2e_p99_ms']:.1f}"),
        ("raise -> top half p50 / p99, us", _top_half),
    ]
    names = list(results)
    lines = [f"{'':<36}" + "".join(f"{n:>14}" for n in names)]
    for label, fmt in rows:
        lines.append(f"{label:<36}" + "".join(f"{fmt(results[n]):>14}" for n in names))
    return "\n".join(lines)


def _maybe(x: Any) -> str:
    return "n/a" if x is None else f"{x:,}"


def _top_half(r: dict[str, Any]) -> str:
    if "top_half_p50_us" not in r:
        return "-"
    return f"{r['top_half_p50_us']:.0f} / {r['top_half_p99_us']:.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", action="store_true", help="also run the plain asyncio server")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of flood (default 3)")
    p.add_argument(
        "--rate", type=float, default=2 * CAPACITY, help="messages/s (default: 2x capacity)"
    )
    p.add_argument("--json", action="store_true", help="print the raw results as JSON")
    a = p.parse_args(argv)
    print(
        f"capacity ~{CAPACITY:,.0f} msg/s (batches of {BATCH}, {COMMIT_MS} ms each); flood at "
        f"{a.rate:,.0f} msg/s for {a.duration} s, then up to {DRAIN_S} s to catch up"
    )
    kinds = ["irqflow", "asyncio"] if a.compare else ["irqflow"]
    results = {kind: measure(kind, a.rate, a.duration) for kind in kinds}
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results, a.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
