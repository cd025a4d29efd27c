"""Trials of the real engine's lifecycle under signals: run each many times, count the
failures (the counts quoted in docs/real-engine.md come from here).

Usage::

    python benchmarks/trials_real.py [ctrl-c|with|sigterm|drain ...] [--trials N]

* ``ctrl-c``: a child process runs kernel calls in a loop in its main thread (raise_irq,
  schedule_work, statistics) and gets 13 SIGINTs at random moments 5-50 ms apart,
  catching each KeyboardInterrupt; then an interrupt must still be handled and
  ``stop()`` must return a clean report.
* ``with``: the documented ``with k:`` pattern, a loop of kernel calls, one Ctrl-C: the
  child must print that it was interrupted and exit by itself.
* ``sigterm``: a SIGTERM handler calls ``k.stop()`` while the main thread is in kernel
  calls: it must return a report with no stuck thread.
* ``drain``: (in this process) a worker asleep in a blocking call with work queued
  behind it: ``stop(drain=True)`` must not report success.

``tests/test_real_signals.py`` runs a few trials of each in the suite.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence

#: every child ends by itself well within this (s); past it a trial counts as hung
CHILD_TIMEOUT_S = 60

CTRL_C_CHILD = textwrap.dedent(
    """
    import threading, time
    from irqflow import IRQ_HANDLED, Kernel, Work
    k = Kernel(cpus=2, engine="real")
    hits = []
    k.request_irq(24, lambda i, d: hits.append(i) or IRQ_HANDLED, name="dev")
    k.start()
    w = Work(lambda w: None)
    print("ready", flush=True)
    kis = 0
    end = time.monotonic() + 1.5  # the parent's 13 signals come within 0.7 s
    while time.monotonic() < end:
        try:
            while time.monotonic() < end:
                k.raise_irq(24)
                k.schedule_work(w)
                k.statistics()
        except KeyboardInterrupt:
            kis += 1
    print("interrupts caught:", kis, flush=True)
    n = len(hits)
    k.raise_irq(24)
    deadline = time.monotonic() + 20
    while len(hits) == n and time.monotonic() < deadline:
        time.sleep(0.001)
    print("handled after" if len(hits) > n else "NOT handled after", flush=True)
    print(k.stop(timeout=20), flush=True)
    """
)

WITH_CHILD = textwrap.dedent(
    """
    from irqflow import IRQ_HANDLED, Kernel, Work
    k = Kernel(cpus=2, engine="real")
    k.request_irq(24, lambda i, d: IRQ_HANDLED, name="dev")
    w = Work(lambda w: None)
    try:
        with k:
            print("ready", flush=True)
            while True:
                k.raise_irq(24)
                k.schedule_work(w)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print([x for x in k.dmesg() if "irqflow: stopped" in x][-1], flush=True)
    """
)

SIGTERM_CHILD = textwrap.dedent(
    """
    import signal, time
    from irqflow import IRQ_HANDLED, Kernel, Tasklet, Work
    k = Kernel(cpus=2, engine="real")
    t = Tasklet(lambda d: None)
    k.request_irq(24, lambda i, d: k.tasklet_schedule(t) or IRQ_HANDLED, name="dev")
    reports = []
    signal.signal(signal.SIGTERM, lambda s, f: reports.append(k.stop(timeout=20)))
    w = Work(lambda w: None)
    k.start()
    print("ready", flush=True)
    try:
        while not reports:
            k.raise_irq(24)
            k.schedule_work(w)
    except Exception as exc:  # a call after the stop: refused, as it should be
        print("refused:", exc, flush=True)
    while not reports:
        time.sleep(0.01)
    r = reports[0]
    print("report:", r, "| stuck:", r.stuck_threads, "| timed out:", r.timed_out, flush=True)
    """
)

CHILDREN = {"ctrl-c": (CTRL_C_CHILD, signal.SIGINT, 13), "with": (WITH_CHILD, signal.SIGINT, 1),
            "sigterm": (SIGTERM_CHILD, signal.SIGTERM, 1)}  # fmt: skip


def run_child(kind: str) -> tuple[int | None, str]:
    """Run one child trial: (its exit status, None if it hung; its output)."""
    script, sig, count = CHILDREN[kind]
    p = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    if p.stdout.readline().strip() != "ready":
        p.kill()
        return p.wait(), "no 'ready' line: " + p.communicate()[1][-2000:]
    for _ in range(count):
        time.sleep(random.uniform(0.005, 0.05))
        if p.poll() is not None:
            break
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out + err[-2000:]
    return p.returncode, out + err[-2000:]


def child_ok(kind: str, status: int | None, out: str) -> bool:
    if status != 0:
        return False
    if kind == "ctrl-c":
        return "handled after" in out and "stopped: everything pending ran" in out
    if kind == "with":
        return "interrupted" in out and "irqflow: stopped" in out
    return "report: stopped" in out and "stuck: ()" in out and "timed out: False" in out


def drain_trial() -> tuple[bool, str]:
    from irqflow import Kernel, KernelConfig, Work

    # the seed's events/0: the item behind the sleeping one has no other worker
    k = Kernel(cpus=1, engine="real", config=KernelConfig(workqueue_model="per-cpu-threads"))
    never = k.completion()
    ran: list[int] = []
    k.start()
    k.schedule_work(Work(lambda w: never.wait()))
    k.schedule_work(Work(lambda w: ran.append(1)))
    time.sleep(0.02)  # quiet: every thread asleep
    report = k.stop(drain=True, timeout=0.2)
    return (not report.drained and not ran and report.abandoned.get("work items") == 2), str(report)


def trial(kind: str) -> tuple[bool, str]:
    if kind == "drain":
        return drain_trial()
    status, out = run_child(kind)
    return child_ok(kind, status, out), f"exit status {status}:\n{out}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kinds", nargs="*", default=["ctrl-c", "with", "sigterm", "drain"])
    p.add_argument("--trials", type=int, default=20)
    a = p.parse_args(argv)
    failed_any = False
    for kind in a.kinds:
        bad = 0
        for i in range(a.trials):
            ok, detail = trial(kind)
            if not ok:
                bad += 1
                print(f"{kind} trial {i} failed: {detail[-1500:]}", flush=True)
        print(f"{kind}: {bad} of {a.trials} trials failed", flush=True)
        failed_any |= bad > 0
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
